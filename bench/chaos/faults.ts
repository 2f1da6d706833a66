// The chaos run's faults: the operator, proxies, kube-apiserver and Headscale killed or restarted.
// Processes are found through their node's containerd and /proc by PID, never by name: other
// sandboxes (and their operators and proxies) run on the same machine.
import { readFileSync, readdirSync } from "node:fs";
import type { V1Pod } from "@kubernetes/client-node";
import type { Sandbox } from "../../src/sandbox/sandbox.ts";
import { OPERATOR_NAMESPACE, type ClusterEnv } from "../../test/helpers/cluster-env.ts";

export const pick = <T>(random: () => number, xs: readonly T[]): T | undefined => xs[Math.floor(random() * xs.length)];

/** mulberry32: small, seedable, good enough to pick faults and victims. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAULT_WEIGHTS = {
  "operator-kill": 10,
  "operator-pod-delete": 8,
  "proxy-pod-delete": 22,
  "tailscaled-kill": 24,
  "proxy-kill": 16,
  "apiserver-restart": 4,
  "headscale-kill": 12,
} as const;
export type FaultKind = keyof typeof FAULT_WEIGHTS;

const SERVER_FAULTS: ReadonlySet<FaultKind> = new Set(["apiserver-restart", "headscale-kill"]);

/** A kind by weight; podsOnly leaves out the server restarts. */
export function drawFault(random: () => number, podsOnly = false): FaultKind {
  const kinds = (Object.entries(FAULT_WEIGHTS) as [FaultKind, number][]).filter(([kind]) => !podsOnly || !SERVER_FAULTS.has(kind));
  const total = kinds.reduce((a, [, w]) => a + w, 0);
  let roll = random() * total;
  for (const [kind, weight] of kinds) {
    roll -= weight;
    if (roll < 0) return kind;
  }
  return "proxy-pod-delete";
}

/** The PID of a pod's container, from its node's containerd (never by name: other sandboxes run on this machine). */
async function containerPid(sandbox: Sandbox, pod: V1Pod, container: string): Promise<number | undefined> {
  const id = pod.status?.containerStatuses?.find((c) => c.name === container)?.containerID?.replace(/^containerd:\/\//, "");
  const nodeName = pod.spec?.nodeName;
  if (!id || !nodeName) return undefined;
  const { stdout } = await sandbox.runner.run(sandbox.node(nodeName).ctr(["-n", "k8s.io", "task", "ls"]), { timeoutMs: 20_000 });
  for (const line of stdout.split("\n")) {
    const [task, pid, status] = line.trim().split(/\s+/);
    if (task === id && status === "RUNNING") return Number(pid);
  }
  return undefined;
}

/** Descendants of pid whose command line contains needle (the proxy's tailscaled is its child). */
function descendantsMatching(root: number, needle: string): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone.
    }
  }
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle)) found.push(pid);
    } catch {
      // Gone.
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

export /** A process's command line; empty once it is gone. */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

export const restarts = (pod: V1Pod): number => pod.status?.containerStatuses?.reduce((n, c) => n + c.restartCount, 0) ?? 0;
/**
 * A victim is a pod Ready for at least minUpMs: killing what is still coming up starves it (an
 * operator killed every few seconds never acts), which shows nothing about recovery.
 */
const readyFor = (pod: V1Pod, minUpMs: number): boolean => {
  if (pod.metadata?.deletionTimestamp || pod.status?.phase !== "Running") return false;
  if (minUpMs === 0) return true;
  const ready = pod.status.conditions?.find((c) => c.type === "Ready");
  const since = ready?.lastTransitionTime ? new Date(ready.lastTransitionTime).getTime() : Number.POSITIVE_INFINITY;
  return ready?.status === "True" && Date.now() - since >= minUpMs;
};
/** The operator takes over the Lease after it is Ready (up to its lease duration, 15 s). */
const OPERATOR_MIN_UP_MS = 30_000;
/** Proxies may be hit while they start (on a loaded machine that takes minutes). */
const PROXY_MIN_UP_MS = 0;

async function proxyPods(env: ClusterEnv): Promise<V1Pod[]> {
  const pods = await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: "tailscale.com/parent-resource-ns" });
  return pods.items.filter((p) => readyFor(p, PROXY_MIN_UP_MS));
}

/**
 * Injects one fault of the given kind, or a nearby one when it has no victim (no proxy running).
 * A container killed twice already is deleted instead: the kubelet's crash-loop back-off would
 * otherwise keep it down for minutes, which tests the kubelet rather than the operator.
 */
/** A fault injected: its kind and what it hit. */
export interface Injected {
  readonly kind: FaultKind;
  readonly victim: string;
}

export async function inject(sandbox: Sandbox, env: ClusterEnv, kind: FaultKind, random: () => number): Promise<Injected | string> {
  const deletePod = async (pod: V1Pod): Promise<void> => {
    await env.core.deleteNamespacedPod({ namespace: OPERATOR_NAMESPACE, name: pod.metadata?.name ?? "", gracePeriodSeconds: 0 });
  };
  switch (kind) {
    case "apiserver-restart":
      await sandbox.restartKubeApiserver();
      return { kind, victim: "kube-apiserver" };
    case "headscale-kill":
      await sandbox.restartHeadscale({ hard: true });
      return { kind, victim: "headscale" };
    case "operator-kill":
    case "operator-pod-delete": {
      const pod = pick(random, (await env.operatorPods()).filter((p) => readyFor(p, OPERATOR_MIN_UP_MS)));
      const name = pod?.metadata?.name ?? "";
      if (!pod) return "no operator pod Ready long enough";
      if (kind === "operator-pod-delete" || restarts(pod) >= 2) {
        await deletePod(pod);
        return { kind: "operator-pod-delete", victim: name };
      }
      const pid = await containerPid(sandbox, pod, pod.spec?.containers[0]?.name ?? "");
      if (pid === undefined || !commandLine(pid).includes("/app/bin/tailnet-operator")) return `no running operator container in ${name}`;
      process.kill(pid, "SIGKILL");
      return { kind, victim: `${name} pid ${pid}` };
    }
    case "proxy-pod-delete":
    case "tailscaled-kill":
    case "proxy-kill": {
      const pod = pick(random, await proxyPods(env));
      const name = pod?.metadata?.name ?? "";
      if (!pod) return "no proxy pod running";
      if (kind === "proxy-pod-delete" || restarts(pod) >= 2) {
        await deletePod(pod);
        return { kind: "proxy-pod-delete", victim: name };
      }
      const pid = await containerPid(sandbox, pod, "tailscale");
      if (pid === undefined || !commandLine(pid).includes("/app/bin/tailnet-proxy")) return `no running proxy container in ${name}`;
      const victim = kind === "proxy-kill" ? pid : descendantsMatching(pid, "tailscaled")[0];
      if (victim === undefined) return `no tailscaled under ${name} pid ${pid}`;
      process.kill(victim, "SIGKILL");
      return { kind, victim: `${name} pid ${victim}` };
    }
  }
}

