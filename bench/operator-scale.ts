// Operators side by side at scale (a benchmark, not a test): SCALE_SERVICES Services of
// `loadBalancerClass: tailscale` created at once -> all provisioned (a StatefulSet and a Secret
// each, the auth key minted), an idle window with all of them, then all deleted -> every child
// gone. For tailnet-operator and for Tailscale's own operator (tailscale.com/cmd/k8s-operator at
// the pinned TAILSCALE_VERSION) in the same run, against the same kube-apiserver and the same
// Headscale, one after the other, alternating the order each round.
//
// Both run as plain processes in sandbox host namespaces with kubeconfigs of their own (see
// src/sandbox/bench-operators.ts and docs/adr/0021-operator-scale-bench.md); no node runs, and the
// controller-manager runs without its StatefulSet controller, so no proxy pod is ever made.
// The Go operator's v2 API calls are served from Headscale by src/sandbox/tailscale-api-adapter.ts.
//
// Before the operators start, SCALE_UNRELATED objects no operator should act on (half Opaque
// Secrets, half headless Services, in a namespace of their own) are created, as in a cluster
// where the exposed Services are a small part of what there is: a watch cache pays for them.
//
// Figures: provision and delete wall time, peak / idle / steady RSS, CPU seconds, API requests
// (from the API server's audit log, by user) during each phase and per second at idle.
//
//   SCALE_SERVICES=1000 SCALE_UNRELATED=10000 SCALE_ROUNDS=1 SCALE_IDLE_S=60 SCALE_TIMEOUT_S=900 node bench/operator-scale.ts
//   SCALE_PROFILE_DIR=<dir>: ours runs with --cpu-prof and --heap-prof, profiles written there
//   SCALE_ONLY=ours|go: run one of them (profiling); prints its figures without ratios
import { Agent, request } from "node:https";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { KubernetesObjectApi, type KubernetesObject } from "@kubernetes/client-node";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { HUB_ADDRESS, type SandboxHost } from "../src/sandbox/network.ts";
import { AuditLog, breakdown, requestCountingPolicy } from "../src/sandbox/audit-log.ts";
import { TailscaleApiAdapter } from "../src/sandbox/tailscale-api-adapter.ts";
import { goOperatorCrds, startGoOperator, startOurOperator, type BenchOperator } from "../src/sandbox/bench-operators.ts";
import { systemClock, waitFor } from "../src/shared/clock.ts";
import { HeadscaleApi } from "../src/control/headscale-api.ts";
import { timeKeyMints, type KeyMintTimes } from "./scale/key-mints.ts";

const knob = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};
const SERVICES = Math.floor(knob("SCALE_SERVICES", 1000));
const ROUNDS = Math.floor(knob("SCALE_ROUNDS", 1));
// Zero is allowed: the figures without a crowded cluster.
const UNRELATED = process.env["SCALE_UNRELATED"] === "0" ? 0 : Math.floor(knob("SCALE_UNRELATED", 10_000));
const IDLE_WINDOW_MS = knob("SCALE_IDLE_S", 60) * 1000;
const TIMEOUT_MS = knob("SCALE_TIMEOUT_S", 900) * 1000;
const PROFILE_DIR = process.env["SCALE_PROFILE_DIR"];
const ONLY = process.env["SCALE_ONLY"];
if (ONLY !== undefined && ONLY !== "ours" && ONLY !== "go") throw new Error("SCALE_ONLY must be ours or go");
/** Before the idle window: late status writes and the last events of the burst settle. */
const SETTLE_MS = 15_000;
const CREATE_CONCURRENCY = 32;
const NAMESPACE = "bench";
const UNRELATED_NAMESPACE = "bench-unrelated";
const USERS = { ours: "bench:tailnet-operator", go: "bench:tailscale-k8s-operator" } as const;
const PARENT_SELECTOR = `tailscale.com/parent-resource-ns=${NAMESPACE}`;
const CLOCK_TICKS = 100;

const log = (message: string): void => {
  process.stderr.write(`[scale] ${new Date().toISOString().slice(11, 19)} ${message} (load ${loadavg()[0]?.toFixed(1) ?? "?"})\n`);
};

// ---- the harness's own API calls: raw HTTPS with keep-alive, metadata-only lists ----

const sandbox = await Sandbox.start({ nodes: [], controllers: ["*", "-statefulset"], auditPolicy: requestCountingPolicy(Object.values(USERS)) });
const ca = readFileSync(sandbox.kube.caFile, "utf8");
const agent = new Agent({ keepAlive: true, maxSockets: CREATE_CONCURRENCY, ca });

function kube(method: string, path: string, body?: unknown, accept = "application/json"): Promise<{ status: number; body: unknown }> {
  const url = new URL(path, sandbox.kube.server);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${sandbox.kube.adminToken}`,
          accept,
          ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
        timeout: 60_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : {} });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** Names (and the parent label) of the objects a list returns, as PartialObjectMetadata only. */
async function metadataList(path: string): Promise<{ name: string; parent: string }[]> {
  type Item = { metadata: { name: string; labels?: Record<string, string> } };
  const response = await kube("GET", path, undefined, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1");
  if (response.status !== 200) throw new Error(`GET ${path}: HTTP ${String(response.status)}`);
  return ((response.body as { items?: Item[] }).items ?? []).map((item) => ({ name: item.metadata.name, parent: item.metadata.labels?.["tailscale.com/parent-resource"] ?? "" }));
}

async function inPool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await work(item);
      }
    }),
  );
}

const names = Array.from({ length: SERVICES }, (_, i) => `svc-${String(i)}`);
const CHILD_KINDS = [
  ["statefulsets", "/apis/apps/v1"],
  ["secrets", "/api/v1"],
  ["services", "/api/v1"],
  ["configmaps", "/api/v1"],
  ["serviceaccounts", "/api/v1"],
  ["roles", "/apis/rbac.authorization.k8s.io/v1"],
  ["rolebindings", "/apis/rbac.authorization.k8s.io/v1"],
] as const;
const children = (op: BenchOperator, kind: (typeof CHILD_KINDS)[number]): Promise<{ name: string; parent: string }[]> =>
  metadataList(`${kind[1]}/namespaces/${op.namespace}/${kind[0]}?labelSelector=${encodeURIComponent(PARENT_SELECTOR)}`);

// ---- the operator process: RSS and CPU from /proc ----

function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${String(pid)}/status`, "utf8");
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${String(pid)}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5); the slice starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

class RssSampler {
  readonly samples: { at: number; rss: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  constructor(pid: number) {
    this.timer = setInterval(() => {
      try {
        this.samples.push({ at: Date.now(), rss: rssMiB(pid).rss });
      } catch {
        // Exited.
      }
    }, 1_000);
  }
  between(from: number, to: number): number[] {
    return this.samples.filter((s) => s.at >= from && s.at < to).map((s) => s.rss);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

interface Figures {
  provisionS: number;
  provisioned: number;
  deleteS: number;
  peakRss: number;
  /** The highest RSS sampled in each phase: where the peak comes from. */
  phasePeaks: { provision: number; idle: number; delete: number };
  idleRssBefore: number;
  steadyRss: number;
  cpuProvision: number;
  cpuDelete: number;
  cpuIdle: number;
  idleRps: number;
  idleTop: [string, number][];
  provisionTop: [string, number][];
  deleteTop: [string, number][];
  provisionRequests: number;
  deleteRequests: number;
  childrenPerService: string;
  load: { provision: number; idle: number; delete: number };
  controlCalls?: string;
}

const audit = new AuditLog(sandbox.kube.auditLog ?? "");

async function measure(op: BenchOperator, adapter?: TailscaleApiAdapter): Promise<Figures> {
  const sampler = new RssSampler(op.pid);
  try {
    await systemClock.sleep(10_000);
    const idleRssBefore = median(Array.from({ length: 5 }, () => rssMiB(op.pid).rss));
    const load = { provision: 0, idle: 0, delete: 0 };
    const keysBefore = adapter?.calls.get("POST keys") ?? 0;

    // Burst: every Service created at once (32 requests in flight from the harness).
    log(`${op.label}: creating ${String(SERVICES)} Services`);
    const cpu0 = cpuSeconds(op.pid);
    const t0 = Date.now();
    await inPool(names, CREATE_CONCURRENCY, async (name) => {
      const body = {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace: NAMESPACE },
        // No node ports: a thousand of them would not fit the default range twice over.
        spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", allocateLoadBalancerNodePorts: false, ports: [{ port: 80 }] },
      };
      const response = await kube("POST", `/api/v1/namespaces/${NAMESPACE}/services`, body);
      if (response.status !== 201) throw new Error(`create ${name}: HTTP ${String(response.status)} ${JSON.stringify(response.body)}`);
    });
    log(`${op.label}: created in ${((Date.now() - t0) / 1000).toFixed(1)} s; waiting for every StatefulSet and Secret`);
    let provisioned = 0;
    const done = await waitFor(
      "all provisioned",
      async () => {
        const [sets, secrets] = await Promise.all([children(op, CHILD_KINDS[0]), children(op, CHILD_KINDS[1])]);
        const withSecret = new Set(secrets.map((s) => s.parent));
        provisioned = new Set(sets.map((s) => s.parent).filter((parent) => withSecret.has(parent))).size;
        return provisioned >= SERVICES ? Date.now() : undefined;
      },
      { timeoutMs: TIMEOUT_MS, intervalMs: 2_000 },
    ).catch(() => undefined);
    const t1 = done ?? Date.now();
    load.provision = loadavg()[0] ?? Number.NaN;
    const cpuProvision = cpuSeconds(op.pid) - cpu0;
    const provisionS = done === undefined ? Number.NaN : (t1 - t0) / 1000;
    log(`${op.label}: ${String(provisioned)}/${String(SERVICES)} provisioned in ${((t1 - t0) / 1000).toFixed(1)} s, ${cpuProvision.toFixed(1)} CPU s`);
    const counts = await Promise.all(CHILD_KINDS.map(async (kind) => [kind[0], (await children(op, kind)).length] as const));
    const childrenPerService = counts.filter(([, n]) => n > 0).map(([kind, n]) => `${(n / SERVICES).toFixed(1)} ${kind}`).join(", ");

    // Idle with every Service in place.
    await systemClock.sleep(SETTLE_MS);
    const cpuIdle0 = cpuSeconds(op.pid);
    const w0 = Date.now();
    await systemClock.sleep(IDLE_WINDOW_MS);
    const w1 = Date.now();
    const cpuIdle = cpuSeconds(op.pid) - cpuIdle0;
    load.idle = loadavg()[0] ?? Number.NaN;
    // The audit log is written as requests complete; a moment later it has the window's last ones.
    await systemClock.sleep(2_000);
    const idle = audit.between(op.user, w0, w1);
    const steadyRss = median(sampler.between(w0, w1));
    log(`${op.label}: idle ${String(idle.length)} requests in ${String(IDLE_WINDOW_MS / 1000)} s, steady RSS ${steadyRss.toFixed(0)} MiB`);

    // Delete: every Service, then every child gone.
    const cpu2 = cpuSeconds(op.pid);
    const t2 = Date.now();
    await inPool(names, CREATE_CONCURRENCY, async (name) => {
      const response = await kube("DELETE", `/api/v1/namespaces/${NAMESPACE}/services/${name}`);
      if (response.status !== 200 && response.status !== 202 && response.status !== 404) throw new Error(`delete ${name}: HTTP ${String(response.status)}`);
    });
    const gone = await waitFor(
      "every Service and child gone",
      async () => {
        const left = (await metadataList(`/api/v1/namespaces/${NAMESPACE}/services`)).length;
        const kids = await Promise.all(CHILD_KINDS.map((kind) => children(op, kind)));
        return left === 0 && kids.every((k) => k.length === 0) ? Date.now() : undefined;
      },
      { timeoutMs: TIMEOUT_MS, intervalMs: 2_000 },
    ).catch(() => undefined);
    const t3 = gone ?? Date.now();
    load.delete = loadavg()[0] ?? Number.NaN;
    const cpuDelete = cpuSeconds(op.pid) - cpu2;
    log(`${op.label}: ${gone === undefined ? "NOT all gone" : "all gone"} after ${((t3 - t2) / 1000).toFixed(1)} s, ${cpuDelete.toFixed(1)} CPU s`);
    await systemClock.sleep(2_000);
    const peakRss = Math.max(rssMiB(op.pid).hwm, ...sampler.samples.map((s) => s.rss));
    const phasePeak = (from: number, to: number): number => Math.max(...sampler.between(from, to));
    const phasePeaks = { provision: phasePeak(t0, t1), idle: phasePeak(t1, t2), delete: phasePeak(t2, t3 + 2_000) };
    const keys = (adapter?.calls.get("POST keys") ?? 0) - keysBefore;
    const provisioning = audit.between(op.user, t0, t1);
    const deleting = audit.between(op.user, t2, t3);
    return {
      provisionS,
      provisioned,
      deleteS: gone === undefined ? Number.NaN : (t3 - t2) / 1000,
      peakRss,
      phasePeaks,
      idleRssBefore,
      steadyRss,
      cpuProvision,
      cpuDelete,
      cpuIdle,
      idleRps: idle.length / (IDLE_WINDOW_MS / 1000),
      idleTop: breakdown(idle).slice(0, 4),
      provisionRequests: provisioning.length,
      deleteRequests: deleting.length,
      provisionTop: breakdown(provisioning),
      deleteTop: breakdown(deleting),
      childrenPerService,
      load,
      ...(adapter ? { controlCalls: `${String(keys)} keys via the v2 adapter; ${[...adapter.calls.entries()].map(([k, v]) => `${k} ${String(v)}`).join(", ")}` } : {}),
    };
  } finally {
    sampler.stop();
  }
}

/** Objects in the cluster that neither operator acts on: half Opaque Secrets, half headless Services. */
async function createUnrelated(): Promise<void> {
  if (UNRELATED === 0) return;
  const t0 = Date.now();
  log(`creating ${String(UNRELATED)} unrelated Secrets and Services in ${UNRELATED_NAMESPACE}`);
  await kube("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: UNRELATED_NAMESPACE } });
  const indexes = Array.from({ length: UNRELATED }, (_, i) => i);
  await inPool(indexes, CREATE_CONCURRENCY, async (i) => {
    const name = `unrelated-${String(i)}`;
    const [path, body] =
      i % 2 === 0
        ? ["secrets", { apiVersion: "v1", kind: "Secret", metadata: { name, labels: { app: name } }, type: "Opaque", stringData: { "config.json": JSON.stringify({ index: i, padding: "x".repeat(512) }) } }]
        : ["services", { apiVersion: "v1", kind: "Service", metadata: { name, labels: { app: name } }, spec: { clusterIP: "None", selector: { app: name }, ports: [{ port: 80 }] } }];
    const response = await kube("POST", `/api/v1/namespaces/${UNRELATED_NAMESPACE}/${path}`, body);
    if (response.status !== 201) throw new Error(`create ${path}/${name}: HTTP ${String(response.status)}`);
  });
  log(`created ${String(UNRELATED)} unrelated objects in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Keys minted before the operators start, one at a time and as many as our operator's workers at once. */
const KEY_MINT_SAMPLES = 20;
const KEY_MINT_CONCURRENCY = 4;
let keyMints: KeyMintTimes = { serialMs: [], concurrentMsPerKey: 0 };

const results: Record<BenchOperator["key"], Figures[]> = { ours: [], go: [] };
try {
  const objects = KubernetesObjectApi.makeApiClient(sandbox.kubeConfig());
  for (const ns of [NAMESPACE, "tailscale", "tailscale-go"]) await objects.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  for (const file of goOperatorCrds()) await objects.create(parse(readFileSync(file, "utf8")) as KubernetesObject);
  await waitFor(
    "the Go operator's CRDs to be established",
    async () => {
      type Crd = { status?: { conditions?: { type: string; status: string }[] } };
      const list = (await kube("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")).body as { items: Crd[] };
      return list.items.every((crd) => crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  await createUnrelated();
  const headscale = new HeadscaleApi({ url: sandbox.headscale.url, apiKey: await sandbox.headscaleAdmin.createApiKey() });
  keyMints = await timeKeyMints(headscale, KEY_MINT_SAMPLES, KEY_MINT_CONCURRENCY);
  log(`Headscale minted ${String(KEY_MINT_SAMPLES)} keys: ${median(keyMints.serialMs).toFixed(0)} ms each one at a time (median), ${keyMints.concurrentMsPerKey.toFixed(0)} ms per key ${String(KEY_MINT_CONCURRENCY)} at a time`);
  const [oursKubeconfig, goKubeconfig] = await Promise.all([
    sandbox.userKubeconfig(USERS.ours, ["system:masters"]),
    sandbox.userKubeconfig(USERS.go, ["system:masters"]),
  ]);
  const adapter = sandbox.track(
    await TailscaleApiAdapter.start({
      headscaleUrl: sandbox.headscale.url,
      headscaleApiKey: await sandbox.headscaleAdmin.createApiKey(),
      clientId: "bench-client",
      clientSecret: "bench-client-secret",
      baseDomain: sandbox.headscale.baseDomain,
      host: HUB_ADDRESS,
      port: 8088,
    }),
  );
  const hosts: Record<BenchOperator["key"], SandboxHost> = { ours: await sandbox.network.addHost("ours"), go: await sandbox.network.addHost("goop") };
  for (const host of Object.values(hosts)) sandbox.track({ stop: () => sandbox.network.removeHost(host) });

  for (let round = 0; round < ROUNDS; round++) {
    const order: BenchOperator["key"][] = round % 2 === 0 ? ["ours", "go"] : ["go", "ours"];
    for (const key of order.filter((k) => ONLY === undefined || k === ONLY)) {
      const common = { sandbox, host: hosts[key], user: USERS[key] };
      log(`round ${String(round + 1)}/${String(ROUNDS)}: starting ${key}`);
      const op =
        key === "ours"
          ? await startOurOperator({
              ...common,
              dir: join(sandbox.run.dir, "bench-ours"),
              kubeconfig: oursKubeconfig,
              namespace: "tailscale",
              env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("SCALE_OURS_")).map(([k, v]) => [k.slice("SCALE_OURS_".length), v])),
              ...(PROFILE_DIR ? { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`, "--heap-prof", `--heap-prof-dir=${PROFILE_DIR}`] } : {}),
            })
          : await startGoOperator({
              ...common,
              dir: join(sandbox.run.dir, "bench-go"),
              kubeconfig: goKubeconfig,
              namespace: "tailscale-go",
              adapterUrl: adapter.url,
              clientId: "bench-client",
              clientSecret: "bench-client-secret",
            });
      try {
        results[key].push(await measure(op, key === "go" ? adapter : undefined));
      } finally {
        await op.stop();
      }
    }
  }
  report();
} finally {
  agent.destroy();
  await sandbox.stop();
}

function report(): void {
  const bench = (name: string, unit: string, pick: (f: Figures) => number): string => {
    const ours = mean(results.ours.map(pick));
    const go = mean(results.go.map(pick));
    // No ratio against a zero or missing baseline (an idle Go operator makes no requests at all).
    const ratio = go > 0 && Number.isFinite(ours) ? Number((ours / go).toFixed(3)) : undefined;
    const line = { name, value: Number(ours.toFixed(3)), unit, baseline: Number(go.toFixed(3)), ...(ratio === undefined ? {} : { ratio }) };
    process.stdout.write(`BENCH ${JSON.stringify(line)}\n`);
    const digits = name.includes("rps") ? 2 : 1;
    const range = (xs: number[]): string => (xs.length > 1 ? `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}` : (xs[0] ?? Number.NaN).toFixed(digits));
    return `  ${name.padEnd(44)} ${range(results.ours.map(pick)).padStart(12)} ${range(results.go.map(pick)).padStart(12)} ${unit.padEnd(5)} ${(ratio === undefined ? "-" : ratio.toFixed(2)).padStart(6)}`;
  };
  const n = String(SERVICES);
  const rows = [
    bench(`scale_${n}_services_provisioned`, "s", (f) => f.provisionS),
    bench(`scale_${n}_services_deleted`, "s", (f) => f.deleteS),
    bench(`scale_${n}_operator_peak_rss`, "MiB", (f) => f.peakRss),
    bench(`scale_${n}_operator_idle_rss_before`, "MiB", (f) => f.idleRssBefore),
    bench(`scale_${n}_operator_steady_rss`, "MiB", (f) => f.steadyRss),
    bench(`scale_${n}_operator_cpu_provision`, "s", (f) => f.cpuProvision),
    bench(`scale_${n}_operator_cpu_delete`, "s", (f) => f.cpuDelete),
    bench(`scale_${n}_operator_cpu_per_service`, "ms", (f) => ((f.cpuProvision + f.cpuDelete) / SERVICES) * 1000),
    bench(`scale_${n}_operator_cpu_idle_${String(IDLE_WINDOW_MS / 1000)}s`, "s", (f) => f.cpuIdle),
    bench(`scale_${n}_api_requests_provision`, "req", (f) => f.provisionRequests),
    bench(`scale_${n}_api_requests_delete`, "req", (f) => f.deleteRequests),
    bench(`scale_${n}_api_idle_rps`, "req/s", (f) => f.idleRps),
  ];
  const mint = median(keyMints.serialMs);
  const mintConcurrent = keyMints.concurrentMsPerKey;
  process.stdout.write(`BENCH ${JSON.stringify({ name: "scale_headscale_key_mint", value: Number(mint.toFixed(1)), unit: "ms" })}\n`);
  rows.push(`  ${"scale_headscale_key_mint (one at a time)".padEnd(44)} ${mint.toFixed(1).padStart(12)} ${"".padStart(12)} ms    (x ${n} keys = ${((mint * SERVICES) / 1000).toFixed(0)} s if serial)`);
  process.stdout.write(`BENCH ${JSON.stringify({ name: `scale_headscale_key_mint_${String(KEY_MINT_CONCURRENCY)}_at_a_time`, value: Number(mintConcurrent.toFixed(1)), unit: "ms" })}\n`);
  rows.push(`  ${`scale_headscale_key_mint (${String(KEY_MINT_CONCURRENCY)} at a time)`.padEnd(44)} ${mintConcurrent.toFixed(1).padStart(12)} ${"".padStart(12)} ms    (wall-clock per key: x ${n} keys = ${((mintConcurrent * SERVICES) / 1000).toFixed(0)} s)`);
  process.stdout.write(`\n${n} Services of loadBalancerClass tailscale, created at once then deleted, among ${String(UNRELATED)} unrelated Secrets and Services; ${String(ROUNDS)} round(s), order alternating`);
  process.stdout.write(`\n(both operators as processes, same kube-apiserver and Headscale, no proxy pods; values are ranges over rounds, ratio of means)\n`);
  process.stdout.write(`  ${"figure".padEnd(44)} ${"ours".padStart(12)} ${"Go operator".padStart(12)} ${"unit".padEnd(5)} ${"ratio".padStart(6)}\n${rows.join("\n")}\n`);
  const counted = (top: [string, number][]): string => top.map(([what, count]) => `${what} x${String(count)}`).join(", ") || "none";
  for (const key of ["ours", "go"] as const) {
    for (const [i, f] of results[key].entries()) {
      process.stdout.write(`\n  ${key} round ${String(i + 1)}: ${String(f.provisioned)}/${n} provisioned; children per Service: ${f.childrenPerService}; load average at provision/idle/delete end ${f.load.provision.toFixed(1)}/${f.load.idle.toFixed(1)}/${f.load.delete.toFixed(1)}\n`);
      process.stdout.write(`    highest RSS sampled while provisioning/idle/deleting: ${[f.phasePeaks.provision, f.phasePeaks.idle, f.phasePeaks.delete].map((v) => v.toFixed(1)).join("/")} MiB\n`);
      process.stdout.write(`    requests while provisioning: ${counted(f.provisionTop)}\n`);
      process.stdout.write(`    requests while deleting: ${counted(f.deleteTop)}\n`);
      process.stdout.write(`    idle requests: ${counted(f.idleTop)}\n`);
      if (f.controlCalls) process.stdout.write(`    control plane: ${f.controlCalls}\n`);
    }
  }
  const ours = results.ours.map((f) => f.provisioned);
  const go = results.go.map((f) => f.provisioned);
  if ([...ours, ...go].some((count) => count < SERVICES)) {
    process.stdout.write(`\n  NOT every Service was provisioned within ${String(TIMEOUT_MS / 1000)} s (ours ${ours.join("/")}, Go ${go.join("/")}): lower SCALE_SERVICES or raise SCALE_TIMEOUT_S\n`);
  }
}
