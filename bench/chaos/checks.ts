// The chaos run's verdict: what must hold once the faults stop (every wanted Service Ready and
// reachable from a tailnet device; no orphaned device, Secret, StatefulSet or usable key; no
// duplicate device), counted so the run can print figures, with a line per problem found.
import type { V1Secret, V1StatefulSet } from "@kubernetes/client-node";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TAILNET_DOMAIN, type Sandbox } from "../../src/sandbox/sandbox.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { OPERATOR_NAMESPACE, readyCondition, type ClusterEnv } from "../../test/helpers/cluster-env.ts";
import { restarts } from "./faults.ts";

/** What the churn wants of one Service. */
export interface Wanted {
  readonly name: string;
  readonly mode: "loadBalancer" | "annotation";
  hostname: string;
  tags: string;
  port: number;
  generation: number;
}

export interface Verdict {
  readonly expected: number;
  readonly ready: number;
  readonly reachable: number;
  readonly stuckServices: number;
  readonly orphanedDevices: number;
  readonly missingDevices: number;
  readonly duplicateDevices: number;
  readonly orphanedSecrets: number;
  readonly orphanedStatefulSets: number;
  readonly usableKeys: number;
  /** Usable keys that no config Secret names: only a sweep of the control plane finds these. */
  readonly unnamedUsableKeys: number;
  readonly problems: string[];
}

export const failed = (v: Verdict): boolean =>
  v.ready !== v.expected ||
  v.reachable !== v.expected ||
  v.stuckServices + v.orphanedDevices + v.missingDevices + v.duplicateDevices + v.orphanedSecrets + v.orphanedStatefulSets + v.usableKeys > 0;

export const fqdn = (want: Wanted): string => `${want.hostname}.${TAILNET_DOMAIN}`;

async function reachable(sandbox: Sandbox, laptop: TailnetDevice, want: Wanted): Promise<boolean> {
  const url = `http://${fqdn(want)}:${want.port}/`;
  const result = await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", url, "--timeout-ms", "4000"])), { timeoutMs: 15_000 }).catch(() => undefined);
  return result?.stdout.startsWith("HTTP/1.1 200") ?? false;
}

export async function check(sandbox: Sandbox, env: ClusterEnv, laptop: TailnetDevice, alive: ReadonlyMap<string, Wanted>, namespace: string): Promise<Verdict> {
  const problems: string[] = [];
  const services = (await env.core.listNamespacedService({ namespace })).items.filter((s) => s.metadata?.name?.startsWith("svc-"));
  const byName = new Map(services.map((s) => [s.metadata?.name ?? "", s]));
  let ready = 0;
  const readyOnes: Wanted[] = [];
  for (const want of alive.values()) {
    const svc = byName.get(want.name);
    const condition = svc && readyCondition(svc);
    const seen = svc?.status?.conditions?.find((c) => c.type === "TailscaleProxyReady")?.observedGeneration === svc?.metadata?.generation;
    const lbOk = want.mode === "annotation" || svc?.status?.loadBalancer?.ingress?.[0]?.hostname === fqdn(want);
    if (condition?.status === "True" && condition.reason === "ProxyReady" && condition.message.includes(fqdn(want)) && seen && lbOk) {
      ready++;
      readyOnes.push(want);
    } else problems.push(`${want.name} (${fqdn(want)}) not ready: ${JSON.stringify(condition)} seen=${String(seen)} lb=${String(lbOk)}`);
  }
  const stuck = services.filter((s) => !alive.has(s.metadata?.name ?? ""));
  for (const s of stuck) problems.push(`${s.metadata?.name ?? ""} deleted but still there (finalizers ${JSON.stringify(s.metadata?.finalizers)})`);

  // Reachability costs a request each: only once every Service says it is ready.
  let reach = 0;
  if (ready === alive.size) {
    const results = await Promise.all(readyOnes.map((w) => reachable(sandbox, laptop, w)));
    readyOnes.forEach((w, i) => {
      if (results[i]) reach++;
      else problems.push(`${w.name}: http://${fqdn(w)}:${w.port}/ not reachable from ${laptop.hostname}`);
    });
  }

  // What the operator's objects name, by parent.
  const secrets = (await env.core.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE, labelSelector: "tailscale.com/parent-resource-ns" })).items;
  const sets = (await env.apps.listNamespacedStatefulSet({ namespace: OPERATOR_NAMESPACE, labelSelector: "tailscale.com/parent-resource-ns" })).items;
  const parentOf = (o: V1Secret | V1StatefulSet): string => `${o.metadata?.labels?.["tailscale.com/parent-resource-ns"] ?? ""}/${o.metadata?.labels?.["tailscale.com/parent-resource"] ?? ""}`;
  const live = (o: V1Secret | V1StatefulSet): boolean => parentOf(o).startsWith(`${namespace}/`) && alive.has(parentOf(o).slice(namespace.length + 1));
  const orphanedSecrets = secrets.filter((s) => !live(s));
  const orphanedSets = sets.filter((s) => !live(s));
  for (const o of [...orphanedSecrets, ...orphanedSets]) problems.push(`orphaned ${o.kind ?? "object"} ${o.metadata?.name ?? ""} of ${parentOf(o)}`);

  // Devices: every operator device (tag:k8s) must be the one a live proxy's state Secret names.
  const decode = (s: V1Secret, key: string): string => Buffer.from(s.data?.[key] ?? "", "base64").toString("utf8");
  const owned = new Map(secrets.filter((s) => live(s) && s.metadata?.labels?.["tailscale.com/secret-type"] === "state").map((s) => [decode(s, "device_id"), parentOf(s)]));
  const nodes = (await sandbox.headscaleAdmin.listNodes()).filter((n) => n.tags?.includes("tag:k8s"));
  const orphanedDevices = nodes.filter((n) => !owned.has(String(n.id)));
  for (const n of orphanedDevices) problems.push(`orphaned device ${String(n.id)} ${n.given_name ?? n.name} (${(n.tags ?? []).join(",")})`);
  const byHostname = new Map<string, number>();
  for (const n of nodes) byHostname.set(n.name, (byHostname.get(n.name) ?? 0) + 1);
  const duplicates = [...byHostname.entries()].filter(([, count]) => count > 1);
  for (const [hostname, count] of duplicates) problems.push(`${count} devices with hostname ${hostname}`);
  const givenNames = new Set(nodes.map((n) => n.given_name));
  const missing = [...alive.values()].filter((w) => !givenNames.has(w.hostname));
  for (const w of missing) problems.push(`no device named ${w.hostname} for ${w.name}`);

  const keys = await env.usableKeys();
  const named = new Set(secrets.map((s) => s.metadata?.annotations?.["tailscale.com/auth-key-id"]));
  const unnamed = keys.filter((k) => !named.has(k.id));
  for (const k of keys) problems.push(`usable key ${k.id} (${k.tags.join(",")})${named.has(k.id) ? " named by a Secret" : " named by no Secret"}`);

  return {
    expected: alive.size,
    ready,
    reachable: reach,
    stuckServices: stuck.length,
    orphanedDevices: orphanedDevices.length,
    missingDevices: missing.length,
    duplicateDevices: duplicates.length,
    orphanedSecrets: orphanedSecrets.length,
    orphanedStatefulSets: orphanedSets.length,
    usableKeys: keys.length,
    unnamedUsableKeys: unnamed.length,
    problems,
  };
}

/** What a failed run needs to be understood: the operator's last log lines and each stuck Service's story. */
export async function diagnose(env: ClusterEnv, verdict: Verdict, alive: ReadonlyMap<string, Wanted>, namespace: string, log: (line: string) => void): Promise<void> {
  for (const problem of verdict.problems) log(`problem: ${problem}`);
  for (const pod of await env.operatorPods()) log(`operator ${pod.metadata?.name ?? ""} (restarts ${restarts(pod)}) log tail:\n${await env.podLogTail(OPERATOR_NAMESPACE, pod.metadata?.name ?? "", 60)}`);
  for (const want of alive.values()) {
    const events = (await env.events(namespace, want.name)).slice(-4).map((e) => `${e.reason ?? ""}: ${e.message ?? ""}`);
    if (verdict.problems.some((p) => p.startsWith(`${want.name} `))) log(`${want.name} events: ${JSON.stringify(events)}`);
  }
}


/**
 * Keeps what explains a run after the sandbox is gone (CHAOS_KEEP_LOGS=<dir>): every pod's logs
 * from each node (the kubelet's /var/log/pods, a tmpfs that vanishes with the node), the logs of
 * the sandbox's daemons (kubelet, containerd, API server, Headscale), and Headscale's nodes.
 */
export async function keepLogs(sandbox: Sandbox, dir: string, log: (line: string) => void): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const node of sandbox.nodes) {
    await sandbox.runner.run(node.exec(["tar", "-C", "/var/log", "-czf", join(dir, `pods-${node.name}.tgz`), "pods"]), { timeoutMs: 60_000 }).catch((error: unknown) => {
      log(`keeping ${node.name}'s pod logs: ${(error as Error).message.split("\n")[0] ?? ""}`);
    });
  }
  // The sandbox's own daemons (kubelet, containerd, API server, Headscale, ...) log under the run directory.
  await sandbox.runner.run(["sh", "-c", `cd "$1" && find . -name '*.log' -size -200M -print0 | tar --null -czf "$2" -T -`, "keep-logs", sandbox.run.dir, join(dir, "run-logs.tgz")], { timeoutMs: 120_000 }).catch((error: unknown) => {
    log(`keeping the run directory's logs: ${(error as Error).message.split("\n")[0] ?? ""}`);
  });
  await writeFile(join(dir, "headscale-nodes.json"), JSON.stringify(await sandbox.headscaleAdmin.listNodes(), null, 2)).catch(() => undefined);
  log(`logs kept in ${dir}`);
}
