// The chaos run (issue 9): in one sandbox with the operator installed from its image, Services
// exposed through `loadBalancerClass: tailscale` or `tailscale.com/expose` are created, changed
// (hostname, tags, port) and deleted while the operator, proxies, kube-apiserver and Headscale are
// killed and restarted at random moments. Afterwards, within a deadline of the last fault, every
// Service that should be exposed must be Ready and reachable from a tailnet device, and nothing
// may be left over: no orphaned device, Secret, StatefulSet or usable key, no duplicate device.
// Seeded (CHAOS_SEED), so a failing plan can be replayed; docs/chaos.md describes the knobs.
//
//   node src/sandbox/launch.ts -- node bench/chaos.ts
import { PatchStrategy, type V1Service } from "@kubernetes/client-node";
import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { waitFor } from "../src/shared/clock.ts";
import { ClusterEnv, NGINX_IMAGE } from "../test/helpers/cluster-env.ts";
import { FAULT_WEIGHTS, drawFault, inject, pick, prng, type FaultKind, type Injected } from "./chaos/faults.ts";
import { check, diagnose, failed, keepLogs, type Verdict, type Wanted } from "./chaos/checks.ts";

const knob = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, not ${raw ?? ""}`);
  return value;
};
const SEED = knob("CHAOS_SEED", randomInt(2 ** 31));
const FAULTS = knob("CHAOS_FAULTS", 200);
const SERVICES = knob("CHAOS_SERVICES", 100);
/** Services alive at once: each has a proxy pod with tailscaled, and the machine has 2 cores. */
const MAX_ALIVE = knob("CHAOS_MAX_ALIVE", 10);
/** Mean time between faults; the churn is paced to last as long as the faults. */
const FAULT_INTERVAL_MS = knob("CHAOS_FAULT_INTERVAL_MS", 1_500);
const CONVERGE_MS = knob("CHAOS_CONVERGE_SECONDS", 60) * 1000;
/** How long to keep looking after a missed deadline, so the report says whether it converged late. */
const GRACE_MS = knob("CHAOS_GRACE_SECONDS", 120) * 1000;
const NS = "chaos";
const TAGS = ["tag:k8s", "tag:k8s,tag:test"] as const;

const faultRandom = prng(SEED);
const churnRandom = prng(SEED ^ 0x9e3779b9);

const log = (line: string): void => {
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
const bench = (name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void => {
  process.stdout.write(`BENCH ${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra })}\n`);
};
const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split("\n")[0]?.slice(0, 200) ?? "";
const statusOf = (error: unknown): number | undefined => {
  const code = (error as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
};

/** Retries an API call through restarts of the API server; 404/409 are the caller's to judge. */
async function retried<T>(what: string, call: () => Promise<T>, accept: readonly number[] = []): Promise<T | undefined> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (accept.includes(statusOf(error) ?? 0)) return undefined;
      if (Date.now() > deadline) throw new Error(`${what}: ${errorText(error)}`, { cause: error });
      await sleep(1_000);
    }
  }
}

// ---- The churn: what the Services should be ----------------------------------------------------

const alive = new Map<string, Wanted>();
const churnCounts = { created: 0, hostname: 0, tags: 0, port: 0, deleted: 0 };

function serviceBody(want: Wanted): V1Service {
  const annotations: Record<string, string> = { "tailscale.com/hostname": want.hostname, "tailscale.com/tags": want.tags };
  if (want.mode === "annotation") annotations["tailscale.com/expose"] = "true";
  return {
    metadata: { name: want.name, namespace: NS, annotations },
    spec: {
      selector: { app: "web" },
      ports: [{ name: "http", port: want.port, targetPort: 80 }],
      ...(want.mode === "loadBalancer" ? { type: "LoadBalancer", loadBalancerClass: "tailscale" } : {}),
    },
  };
}

async function createService(env: ClusterEnv, index: number): Promise<void> {
  const name = `svc-${String(index).padStart(3, "0")}`;
  const want: Wanted = { name, mode: churnRandom() < 0.5 ? "loadBalancer" : "annotation", hostname: `chaos-${index}`, tags: pick(churnRandom, TAGS) ?? "tag:k8s", port: 80, generation: 0 };
  alive.set(name, want);
  churnCounts.created++;
  await apply(env, want);
}

async function changeService(env: ClusterEnv, want: Wanted): Promise<void> {
  const what = pick(churnRandom, ["hostname", "tags", "port"] as const) ?? "port";
  if (what === "hostname") want.hostname = `${want.hostname.replace(/-g\d+$/, "")}-g${++want.generation}`;
  if (what === "tags") want.tags = want.tags === TAGS[0] ? TAGS[1] : TAGS[0];
  if (what === "port") want.port = want.port === 80 ? 8080 : 80;
  churnCounts[what]++;
  await apply(env, want);
}

/** Server-side apply by one field manager: a field left out (the old port) is removed. */
async function apply(env: ClusterEnv, want: Wanted): Promise<void> {
  await retried(`apply ${want.name}`, () => env.objects.patch({ apiVersion: "v1", kind: "Service", ...serviceBody(want) }, undefined, undefined, "chaos", true, PatchStrategy.ServerSideApply));
}

async function deleteService(env: ClusterEnv, want: Wanted): Promise<void> {
  alive.delete(want.name);
  churnCounts.deleted++;
  await retried(`delete ${want.name}`, () => env.core.deleteNamespacedService({ namespace: NS, name: want.name }), [404]);
}

/** Creates SERVICES Services evenly over durationMs; between creations, changes and deletes. */
async function churn(env: ClusterEnv, durationMs: number): Promise<void> {
  const start = Date.now();
  const slot = durationMs / Math.max(1, SERVICES);
  for (let i = 0; i < SERVICES; i++) {
    while (alive.size >= MAX_ALIVE) {
      const victim = pick(churnRandom, [...alive.values()]);
      if (victim) await deleteService(env, victim);
    }
    await createService(env, i);
    for (let op = 0; op < 2; op++) {
      await sleep(Math.max(0, start + (i + (op + 1) / 3) * slot - Date.now()));
      const roll = churnRandom();
      const target = pick(churnRandom, [...alive.values()]);
      if (!target) continue;
      if (roll < 0.5) await changeService(env, target);
      else if (roll < 0.85 && alive.size > 4) await deleteService(env, target);
    }
    await sleep(Math.max(0, start + (i + 1) * slot - Date.now()));
  }
}

// ---- The faults ---------------------------------------------------------------------------------

const faultCounts = Object.fromEntries(Object.keys(FAULT_WEIGHTS).map((k) => [k, 0])) as Record<FaultKind, number>;

async function faults(sandbox: Sandbox, env: ClusterEnv): Promise<void> {
  let injected = 0;
  let misses = 0;
  while (injected < FAULTS) {
    // Exponential gaps: faults at random moments, some in quick succession.
    await sleep(Math.min(4 * FAULT_INTERVAL_MS, -Math.log(1 - faultRandom()) * FAULT_INTERVAL_MS));
    // A pod kind with no victim now (nothing Ready long enough) gives way to another pod kind;
    // never to a restart of the API server or Headscale, which would then crowd out the rest.
    let done: Injected | string = "";
    for (let attempt = 0; attempt < 10 && typeof done === "string"; attempt++) {
      const kind = drawFault(faultRandom, attempt > 0);
      try {
        done = await inject(sandbox, env, kind, faultRandom);
      } catch (error) {
        // The API server may be down from an earlier fault: that fault is counted, this one is not.
        done = `${kind}: ${errorText(error)}`;
      }
      if (typeof done === "string") misses++;
    }
    if (typeof done === "object") {
      faultCounts[done.kind]++;
      injected++;
      lastFaultAt = Date.now();
      log(`fault ${injected}: ${done.kind} ${done.victim}`);
      if (injected % 20 === 0) log(`${injected}/${FAULTS} faults; ${alive.size} Services alive, ${churnCounts.created}/${SERVICES} created`);
    } else log(`no fault injected: ${done}`);
  }
  log(`faults done (${misses} draws gave way: no victim Ready long enough, or the API server was down)`);
}
let lastFaultAt = 0;

// ---- The run ------------------------------------------------------------------------------------

const started = Date.now();
log(`seed ${SEED} (CHAOS_SEED=${SEED} replays this plan), ${FAULTS} faults, ${SERVICES} Services, at most ${MAX_ALIVE} alive`);
// The audit log (kept with CHAOS_KEEP_LOGS) says who deleted a pod or changed a node (taints):
// pods that go without a fault of ours, and nodes marked unreachable, are the sandbox's doing.
const sandbox = await Sandbox.start({
  auditPolicy: {
    apiVersion: "audit.k8s.io/v1",
    kind: "Policy",
    omitStages: ["RequestReceived"],
    rules: [
      { level: "Metadata", verbs: ["create", "delete", "deletecollection"], resources: [{ group: "", resources: ["pods", "pods/eviction"] }] },
      { level: "Request", verbs: ["update", "patch"], resources: [{ group: "", resources: ["nodes"] }] },
      { level: "None" },
    ],
  },
});
let verdict: Verdict | undefined;
let convergedMs: number | undefined;
try {
  const env = new ClusterEnv(sandbox);
  // Two replicas, as a production install runs: a new leader's first key sweep takes every
  // orphan at once (ADR 0022); tag:test is the churn's own tag, which only the operator mints.
  await installOperator(sandbox, { values: { replicaCount: 2, orphanKeySweep: true, orphanKeySweepTags: ["tag:test"] } });
  await env.ensureNamespace(NS);
  await env.apps.createNamespacedDeployment({
    namespace: NS,
    body: {
      metadata: { name: "web" },
      spec: { selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "nginx", image: NGINX_IMAGE, ports: [{ containerPort: 80 }] }] } } },
    },
  });
  await waitFor("the web backend", async () => ((await env.apps.readNamespacedDeployment({ namespace: NS, name: "web" })).status?.readyReplicas ? true : undefined), { timeoutMs: 180_000, intervalMs: 500 });
  const laptop = await sandbox.addDevice("chaos-laptop");
  log(`sandbox, operator and laptop ready in ${((Date.now() - started) / 1000).toFixed(0)} s; chaos starts`);

  const chaosStart = Date.now();
  // A Service lives about MAX_ALIVE slots: long enough, mostly, for its proxy to come up.
  await Promise.all([churn(env, Math.max(FAULTS * FAULT_INTERVAL_MS, SERVICES * 4_000)), faults(sandbox, env)]);
  const quietFrom = Math.max(lastFaultAt, Date.now());
  log(`chaos done in ${((quietFrom - chaosStart) / 1000).toFixed(0)} s; ${alive.size} Services should be exposed; checking`);

  const deadline = quietFrom + CONVERGE_MS;
  let lastSummary = "";
  for (;;) {
    verdict = await retried("check", () => check(sandbox, env, laptop, alive, NS));
    if (verdict && !failed(verdict)) {
      convergedMs = Date.now() - quietFrom;
      break;
    }
    const summary = verdict?.problems.slice(0, 8).join("; ") ?? "";
    if (summary !== lastSummary) log(`+${((Date.now() - quietFrom) / 1000).toFixed(0)} s: ${verdict?.problems.length ?? 0} problems: ${summary}`);
    lastSummary = summary;
    if (Date.now() > deadline + GRACE_MS) break;
    await sleep(3_000);
  }
  if (verdict && (convergedMs === undefined || convergedMs > CONVERGE_MS)) await diagnose(env, verdict, alive, NS, log);
} finally {
  const keep = process.env["CHAOS_KEEP_LOGS"];
  if (keep) await keepLogs(sandbox, keep, log).catch((error: unknown) => { log(`keeping logs: ${errorText(error)}`); });
  await sandbox.stop().catch((error: unknown) => { log(`sandbox stop: ${errorText(error)}`); });
}

const v = verdict;
if (!v) throw new Error("no verdict");
const total = Object.values(faultCounts).reduce((a, b) => a + b, 0);
const ok = convergedMs !== undefined && convergedMs <= CONVERGE_MS;
bench("chaos_faults_injected", total, "count", { seed: SEED, ...faultCounts });
bench("chaos_services_churned", churnCounts.created, "count", { changes: churnCounts.hostname + churnCounts.tags + churnCounts.port, deleted: churnCounts.deleted });
bench("chaos_convergence_time", (convergedMs ?? Number.NaN) / 1000, "s", { deadline: CONVERGE_MS / 1000 });
bench("chaos_services_ready", v.ready, "count", { expected: v.expected });
bench("chaos_services_reachable", v.reachable, "count", { expected: v.expected });
bench("chaos_orphaned_devices", v.orphanedDevices, "count");
bench("chaos_duplicate_devices", v.duplicateDevices, "count");
bench("chaos_orphaned_secrets", v.orphanedSecrets, "count");
bench("chaos_orphaned_statefulsets", v.orphanedStatefulSets, "count");
bench("chaos_usable_keys", v.usableKeys, "count", { namedByNoSecret: v.unnamedUsableKeys });
bench("chaos_run_duration", (Date.now() - started) / 1000, "s");

const row = (label: string, value: string): string => `  ${label.padEnd(44)} ${value}\n`;
process.stdout.write(`\nChaos run, seed ${SEED} (${ok ? "PASS" : "FAIL"})\n`);
process.stdout.write(row("faults injected", `${total} (${Object.entries(faultCounts).map(([k, n]) => `${k} ${n}`).join(", ")})`));
process.stdout.write(row("Services churned", `${churnCounts.created} created, ${churnCounts.hostname} hostname / ${churnCounts.tags} tags / ${churnCounts.port} port changes, ${churnCounts.deleted} deleted`));
process.stdout.write(row("convergence after the last fault", convergedMs === undefined ? `none within ${(CONVERGE_MS + GRACE_MS) / 1000} s` : `${(convergedMs / 1000).toFixed(1)} s (deadline ${CONVERGE_MS / 1000} s)`));
process.stdout.write(row("Services Ready / reachable / expected", `${v.ready} / ${v.reachable} / ${v.expected}`));
process.stdout.write(row("deleted Services still there", String(v.stuckServices)));
process.stdout.write(row("orphaned devices / missing / duplicate", `${v.orphanedDevices} / ${v.missingDevices} / ${v.duplicateDevices}`));
process.stdout.write(row("orphaned Secrets / StatefulSets", `${v.orphanedSecrets} / ${v.orphanedStatefulSets}`));
process.stdout.write(row("usable keys (named by no Secret)", `${v.usableKeys} (${v.unnamedUsableKeys})`));
process.stdout.write(row("run time", `${((Date.now() - started) / 1000).toFixed(0)} s`));
process.exitCode = ok ? 0 : 1;
