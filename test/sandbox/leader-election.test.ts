// Leader election on the real node, the chart's two replicas: "at most one replica acts" is
// sampled from every operator pod's /metrics every 300 ms for the whole file, through three
// failovers: the leader's pod deleted (it drains, then releases the Lease), its container killed
// (the standby waits for the Lease to expire by its own clock), and its API access cut by an
// nftables rule in the pod's network namespace (it stops acting at its renew deadline, before the
// standby may take over).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Log, type V1Pod } from "@kubernetes/client-node";
import { PassThrough } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, pidsOf, processEnvironment } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
// client-go's defaults: on a busy machine an API call can take seconds, and a request budget
// of half the renew deadline must cover it.
const TIMING = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 };
const SAMPLE_EVERY_MS = 300;
const CUT_TABLE = "tno_cut_api";

/** One scrape of one pod: whether it acts, and since when (unix ms), as it reports. */
interface Scrape {
  readonly pod: string;
  readonly startedAt: number;
  readonly acting: boolean;
  readonly sinceMs: number;
}

/** Samples every operator pod's leader gauges until stopped; keeps every proven overlap. */
class LeaderSampler {
  readonly rounds: Scrape[][] = [];
  readonly overlaps: string[] = [];
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const round = await this.round().catch(() => []);
        this.rounds.push(round);
        this.check(round);
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Pods (terminating ones too: a draining leader still acts) scraped at the same moment. */
  private async round(): Promise<Scrape[]> {
    const pods = (await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: "app.kubernetes.io/name=tailnet-operator" })).items;
    const byIp = new Map<string, string>();
    for (const pod of pods) if (pod.status?.podIP) byIp.set(pod.status.podIP, pod.metadata?.name ?? "");
    return Promise.all([...byIp].map(async ([ip, pod]) => {
      const startedAt = Date.now();
      const text = await fetch(`http://${ip}:8081/metrics`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text()).catch(() => "");
      const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? "0");
      return { pod, startedAt, acting: gauge("tailnet_operator_is_leader") === 1, sinceMs: gauge("tailnet_operator_leader_since_seconds") * 1000 };
    }));
  }

  /**
   * Two replicas reporting "acting" in one round overlap for sure when the one that started
   * later had started before the other was asked (all pods share the node's clock).
   */
  private check(round: Scrape[]): void {
    const acting = round.filter((s) => s.acting).sort((a, b) => a.sinceMs - b.sinceMs);
    for (let i = 1; i < acting.length; i++) {
      const [earlier, later] = [acting[0], acting[i]];
      if (earlier && later && later.sinceMs <= earlier.startedAt) {
        this.overlaps.push(`${earlier.pod} (since ${new Date(earlier.sinceMs).toISOString()}) and ${later.pod} (since ${new Date(later.sinceMs).toISOString()}) both acting at ${new Date(earlier.startedAt).toISOString()}`);
      }
    }
  }

  /** The pod that acts in the latest round with exactly one acting replica. */
  actingPods(): string[] {
    return (this.rounds.at(-1) ?? []).filter((s) => s.acting).map((s) => s.pod);
  }

  /** How many rounds saw at least one replica acting. */
  roundsWithALeader(): number {
    return this.rounds.filter((r) => r.some((s) => s.acting)).length;
  }
}

const sampler = new LeaderSampler();

before(async () => {
  await installOperator(sandbox, { values: { replicaCount: 2, leaderElection: TIMING } });
  sampler.start();
});

after(async () => {
  await sampler.stop();
});

/** Waits until exactly one pod acts (other than `not`), and returns it. */
async function actingLeader(not?: string): Promise<string> {
  try {
    return await waitFor("exactly one acting leader", () => {
      const acting = sampler.actingPods();
      return acting.length === 1 && acting[0] !== not ? acting[0] : undefined;
    }, { timeoutMs: 120_000, intervalMs: SAMPLE_EVERY_MS });
  } catch (error) {
    throw new Error(`${(error as Error).message}; ${await diagnostics()}`, { cause: error });
  }
}

/** What a failure message needs: the Lease, the pods, their logs (previous containers' too). */
async function diagnostics(): Promise<string> {
  const lease = await env.leases.readNamespacedLease({ name: "tailnet-operator-leader", namespace: OPERATOR_NAMESPACE }).catch(() => undefined);
  const pods = (await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE })).items;
  const parts = [`lease ${JSON.stringify(lease?.spec)}`, `last samples ${JSON.stringify(sampler.rounds.slice(-2))}`];
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "";
    parts.push(`${name} ${JSON.stringify({ deleting: Boolean(pod.metadata?.deletionTimestamp), ip: pod.status?.podIP, statuses: pod.status?.containerStatuses?.map((c) => ({ ready: c.ready, restarts: c.restartCount, last: c.lastState?.terminated })) })}`);
    for (const previous of [true, false]) {
      const text = await env.core.readNamespacedPodLog({ namespace: OPERATOR_NAMESPACE, name, container: "operator", previous, tailLines: 30 }).catch(() => "");
      if (text) parts.push(`${previous ? "previous" : "current"}:\n${text}`);
    }
  }
  const events = (await env.core.listNamespacedEvent({ namespace: OPERATOR_NAMESPACE })).items.filter((e) => e.type === "Warning").map((e) => `${e.involvedObject.name ?? ""}: ${e.reason ?? ""}: ${e.message ?? ""}`);
  parts.push(`warnings: ${events.join("; ")}`);
  return parts.join("\n");
}

function operatorPids(pod: string): number[] {
  return pidsOf("/app/bin/tailnet-operator.js").filter((p) => processEnvironment(p).split("\n").includes(`LEADER_ELECTION_ID=${pod}`));
}

/** The operator's main process in a pod (the container's first process), by PID. */
function operatorPid(pod: string): number {
  const [pid] = operatorPids(pod);
  assert.ok(pid, `the operator process of ${pod}`);
  return pid;
}

/** The JSON log lines a pod's operator container wrote. */
async function logLines(pod: string): Promise<Record<string, unknown>[]> {
  const text = await env.core.readNamespacedPodLog({ namespace: OPERATOR_NAMESPACE, name: pod, container: "operator" });
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A container's log from now on, streamed (follow) until the container ends. */
async function followLog(pod: string): Promise<{ text: () => string; ended: Promise<true> }> {
  const sink = new PassThrough();
  let text = "";
  sink.setEncoding("utf8");
  sink.on("data", (chunk: string) => (text += chunk));
  const ended = new Promise<true>((resolve) => {
    sink.once("end", () => {
      resolve(true);
    });
  });
  await new Log(sandbox.kubeConfig()).log(OPERATOR_NAMESPACE, pod, "operator", sink, { follow: true });
  return { text: () => text, ended };
}

async function restartCount(pod: string): Promise<number> {
  return (await env.pod(OPERATOR_NAMESPACE, pod))?.status?.containerStatuses?.[0]?.restartCount ?? 0;
}

const identityOf = (lines: Record<string, unknown>[]): string | undefined => lines.find((l) => l["msg"] === "became leader")?.["identity"] as string | undefined;

describe("leader election on the real node (two replicas)", () => {
  it("elects one leader; the other replica stands by, ready", async () => {
    const leader = await actingLeader();
    assert.equal(await env.leader(), leader, "the Lease holder is the pod that acts");
    const pods = await env.operatorPods();
    assert.equal(pods.length, 2);
    const unready = pods.filter((pod) => !pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")).map((p) => p.metadata?.name);
    assert.deepEqual(unready, [], `every replica is ready: ${unready.length ? await diagnostics() : ""}`);
  });

  it("hands over when the leader's pod is deleted: it drains, releases, and the standby takes the free Lease", async () => {
    const old = await actingLeader();
    // Followed from before the deletion: the kubelet streams every line until the container ends,
    // and a deleted pod's log cannot be read afterwards (its container is removed with it).
    const oldLog = await followLog(old);
    await env.core.deleteNamespacedPod({ namespace: OPERATOR_NAMESPACE, name: old });
    const next = await actingLeader(old);
    const timer = new AbortController();
    const ended = await Promise.race([oldLog.ended, delay(60_000, false, { signal: timer.signal })]);
    timer.abort();
    assert.ok(ended, `the old leader's log ends with its container within 60 s: ${oldLog.text()}`);
    const took = (await logLines(next)).find((l) => l["msg"] === "took the free leader Lease" || l["msg"] === "took over the leader Lease after it expired");
    assert.equal(took?.["msg"], "took the free leader Lease", `the old leader released the Lease (no wait for expiry); its log:\n${oldLog.text()}`);
    const messages = oldLog.text().split("\n").filter((l) => l.startsWith("{")).map((l) => (JSON.parse(l) as { msg: string }).msg);
    const order = ["shutting down", "released the leader Lease", "stopped"].map((m) => messages.indexOf(m));
    assert.ok(order.every((i, n) => i >= 0 && (n === 0 || i > (order[n - 1] ?? 0))), `drained, then released, then stopped: ${messages.join(" | ")}`);
    assert.deepEqual(sampler.overlaps, []);
  });

  it("fails over when the leader's container is killed, only once the Lease expired by the standby's own clock", async () => {
    const old = await actingLeader();
    const oldIdentity = identityOf(await logLines(old));
    const restarts = await restartCount(old);
    process.kill(operatorPid(old), "SIGKILL");
    const next = await waitFor("another process to lead", async () => {
      const pod = await actingLeader().catch(() => undefined);
      if (!pod) return undefined;
      // The killed container may come back first; either way a new process leads.
      const lines = await logLines(pod);
      const took = lines.find((l) => l["msg"] === "took over the leader Lease after it expired" && l["previousHolder"] === oldIdentity);
      return took ? { pod, took } : undefined;
    }, { timeoutMs: 120_000, intervalMs: 500 });
    const observedForMs = Number(next.took["observedForMs"]);
    assert.ok(observedForMs >= TIMING.leaseDurationSeconds * 1000, `${next.pod} took over after seeing the Lease unchanged for ${observedForMs} ms (lease: ${TIMING.leaseDurationSeconds} s)`);
    assert.ok((await restartCount(old)) > restarts || next.pod !== old, "the killed container was restarted or the other replica leads");
    assert.deepEqual(sampler.overlaps, []);
  });

  it("stops a leader cut off from the API server before its renew deadline, without a restart; the standby takes over only after expiry", async () => {
    const old = await actingLeader();
    const oldPod: V1Pod | undefined = await env.pod(OPERATOR_NAMESPACE, old);
    const oldIdentity = identityOf(await logLines(old));
    const restarts = await restartCount(old);
    const pid = operatorPid(old);
    const apiHost = /^KUBERNETES_SERVICE_HOST=(.+)$/m.exec(processEnvironment(pid))?.[1];
    assert.ok(apiHost, "the pod's API server address");
    // In the pod's own network namespace only: its packets to the API server are dropped.
    const inPod = (argv: string[], input?: string) => sandbox.runner.run(["nsenter", "-t", String(pid), "-n", ...argv], input === undefined ? {} : { input });
    await inPod(["nft", "-f", "-"], `table ip ${CUT_TABLE} {\n chain out { type filter hook output priority 0; ip daddr ${apiHost} drop; }\n}\n`);
    try {
      const next = await actingLeader(old);
      // Its work stopped within the renew deadline, so it stands by in the same process (ADR 0026).
      const oldLines = await waitFor("the cut-off leader to stand by", async () => {
        const lines = await logLines(old);
        return lines.some((l) => l["msg"] === "standing by to lead again") ? lines : undefined;
      }, { timeoutMs: 60_000, intervalMs: 500 }).catch(async (error: unknown) => {
        throw new Error(`${(error as Error).message}; ${await diagnostics()}`, { cause: error });
      });
      assert.equal(await restartCount(old), restarts, "no restart: it stood down in-process");
      const stopped = oldLines.find((l) => l["msg"] === "stopped leading: could not renew the Lease in time");
      assert.ok(stopped, "the cut-off leader logged that it stopped leading");
      const sinceLastRenewMs = Number(stopped["sinceLastRenewMs"]);
      assert.ok(sinceLastRenewMs <= TIMING.renewDeadlineSeconds * 1000 + 250, `stopped ${sinceLastRenewMs} ms after its last renewal started (renew deadline ${TIMING.renewDeadlineSeconds} s)`);
      const took = (await logLines(next)).find((l) => l["msg"] === "took over the leader Lease after it expired" && l["previousHolder"] === oldIdentity);
      assert.ok(took, `${next} took over from ${oldIdentity ?? "?"} after expiry`);
      assert.ok(Number(took["observedForMs"]) >= TIMING.leaseDurationSeconds * 1000, `after ${String(took["observedForMs"])} ms`);
      assert.deepEqual(sampler.overlaps, []);
    } finally {
      // The pod's namespace outlives its container: whichever process runs there now.
      const current = operatorPids(old)[0] ?? pid;
      await sandbox.runner.run(["nsenter", "-t", String(current), "-n", "nft", "delete", "table", "ip", CUT_TABLE]).catch(() => undefined);
    }
    assert.ok(oldPod);
  });

  it("never had two replicas acting at once, over the whole file", async () => {
    await sampler.stop();
    assert.deepEqual(sampler.overlaps, []);
    // The file waits out at least two lease expiries (the kill and the cut): a live sampler took a
    // round every SAMPLE_EVERY_MS through them (each round costs a scrape of every pod, so fewer).
    const minimum = Math.floor((2 * TIMING.leaseDurationSeconds * 1000) / SAMPLE_EVERY_MS / 2);
    assert.ok(sampler.rounds.length >= minimum, `sampled ${sampler.rounds.length} rounds, expected at least ${minimum}`);
    // Failovers after a kill or a cut wait for the Lease to expire, so many rounds have no leader.
    assert.ok(sampler.roundsWithALeader() > 30, `a leader acted in ${sampler.roundsWithALeader()} rounds (the gauge is live)`);
  });
});
