// Proxy footprint on the sandbox's real node (a benchmark, not a test): memory of a proxy pod
// exposing a Service (our tailnet-proxy beside tailscaled), against the Tailscale operator's
// proxy (containerboot v<pinned> beside tailscaled, the anchor) run in the same sandbox, both
// carrying traffic from a tailnet laptop to an HTTP backend, measured after they settle.
//
// Per process: RSS, RssAnon (private: what each more proxy really costs), RssFile (executable
// text, shared through the page cache by every proxy on the node using the same image layer),
// PSS. Per pod: the container cgroup's usage and working set (what the kubelet reports).
//
//   node bench/proxy-footprint.ts [--settle-s 30]
import { parseArgs } from "node:util";
import type { V1Service } from "@kubernetes/client-node";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { AnchorProxy } from "../src/sandbox/anchor-proxy.ts";
import { cgroupMemory, childrenOf, cmdline, medianOf, processMemory, proxyProcesses, sumOf, type CgroupMemory, type ProcessMemory } from "../src/sandbox/proc-memory.ts";
import { systemClock, waitFor } from "../src/shared/clock.ts";
import { ClusterEnv } from "../test/helpers/cluster-env.ts";

const { values } = parseArgs({ options: { "settle-s": { type: "string", default: "30" } } });
const settleMs = Number(values["settle-s"]) * 1000;
/** The target of issue 8 for the supervisor alone. */
const SUPERVISOR_TARGET_MIB = 40;

const bench = (name: string, value: number, unit: string, baseline?: number): void => {
  const extra = baseline === undefined ? {} : { baseline: Number(baseline.toFixed(2)), ratio: Number((value / baseline).toFixed(3)) };
  process.stdout.write(`BENCH ${JSON.stringify({ name, value: Number(value.toFixed(2)), unit, ...extra })}\n`);
};
function anchorProcesses(anchor: AnchorProxy): ProcessMemory[] {
  const pid = anchor.process.pid;
  if (pid === undefined) throw new Error("containerboot has no PID");
  // ip netns exec execs into containerboot, so the PID is containerboot's own.
  const daemons = childrenOf(pid).filter((child) => cmdline(child)[0]?.endsWith("tailscaled"));
  return [processMemory(pid, "containerboot"), ...daemons.map((child) => processMemory(child, "tailscaled"))];
}

const sandbox = await Sandbox.start();
try {
  const env = new ClusterEnv(sandbox);
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  const laptop = await sandbox.addDevice("laptop");
  const fetchOk = async (url: string): Promise<boolean> => {
    const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", url, "--timeout-ms", "3000"])), { timeoutMs: 15_000 }).catch(() => ({ stdout: "" }));
    return stdout.startsWith("HTTP/1.1 200");
  };

  // Ours: the seed-like Service, exposed through a real proxy pod.
  await env.webService("bench", "web", { type: "LoadBalancer", loadBalancerClass: "tailscale" });
  const svc = await env.waitForService("bench", "web", "EXTERNAL-IP", (s: V1Service) => Boolean(s.status?.loadBalancer?.ingress?.[0]?.hostname));
  const host = svc.status?.loadBalancer?.ingress?.[0]?.hostname ?? "";
  await waitFor("a request through our proxy", async () => ((await fetchOk(`http://${host}/`)) ? true : undefined), { timeoutMs: 120_000, intervalMs: 250 });

  // The anchor: containerboot forwarding to an HTTP backend on the sandbox bridge.
  const backend = await sandbox.addBackend({ name: "anchor-backend", ips: [], ports: [80] });
  const anchorHost = await sandbox.network.addHost("anchor");
  const anchor = sandbox.track(
    await AnchorProxy.start({
      runner: sandbox.runner,
      host: anchorHost,
      dir: `${sandbox.run.dir}/anchor`,
      tailscaled: sandbox.bins.tailscaled,
      loginServer: sandbox.headscale.url,
      authKey: await sandbox.headscaleAdmin.createPreAuthKey({ tags: ["tag:k8s"] }),
      hostname: "anchor-proxy",
      destination: backend.host.address,
    }),
  );
  sandbox.track({ stop: () => sandbox.network.removeHost(anchorHost) });
  const anchorIp = await anchor.tailnetIp();
  await waitFor("a request through containerboot", async () => ((await fetchOk(`http://${anchorIp}/`)) ? true : undefined), { timeoutMs: 120_000, intervalMs: 250 });

  // Steady state: both have served traffic; requests to each while settling, and a sample of
  // both every round of the second half (the figures are the samples' medians).
  const oursSamples: ProcessMemory[][] = [];
  const theirSamples: ProcessMemory[][] = [];
  const started = Date.now();
  while (Date.now() - started < settleMs) {
    await fetchOk(`http://${host}/`);
    await fetchOk(`http://${anchorIp}/`);
    await systemClock.sleep(2_000);
    if (Date.now() - started >= settleMs / 2) {
      oursSamples.push(proxyProcesses(sandbox.run.id, "bench-web"));
      theirSamples.push(anchorProcesses(anchor));
    }
  }
  const ours = medianOf(oursSamples);
  const theirs = medianOf(theirSamples);
  const pod: CgroupMemory = cgroupMemory(ours[0]?.pid ?? 0);

  const [supervisor, ourDaemon] = ours;
  const [containerboot, theirDaemon] = theirs;
  if (!supervisor || !ourDaemon || !containerboot || !theirDaemon) throw new Error(`missing processes: ours ${ours.length}, anchor ${theirs.length}`);
  bench("proxy_supervisor_rss", supervisor.rss, "MiB", containerboot.rss);
  bench("proxy_supervisor_rss_anon", supervisor.rssAnon, "MiB", containerboot.rssAnon);
  bench("proxy_supervisor_pss", supervisor.pss, "MiB", containerboot.pss);
  bench("proxy_supervisor_rss_vs_target", supervisor.rss, "MiB", SUPERVISOR_TARGET_MIB);
  bench("proxy_tailscaled_rss", ourDaemon.rss, "MiB", theirDaemon.rss);
  bench("proxy_tailscaled_rss_anon", ourDaemon.rssAnon, "MiB", theirDaemon.rssAnon);
  bench("proxy_pod_rss", sumOf(ours, "rss"), "MiB", sumOf(theirs, "rss"));
  bench("proxy_pod_rss_anon", sumOf(ours, "rssAnon"), "MiB", sumOf(theirs, "rssAnon"));
  bench("proxy_pod_pss", sumOf(ours, "pss"), "MiB", sumOf(theirs, "pss"));
  bench("proxy_pod_cgroup_working_set", pod.workingSet, "MiB");
  bench("proxy_pod_cgroup_usage", pod.usage, "MiB");
  bench("proxy_pod_cgroup_peak", pod.peak, "MiB");

  const row = (p: ProcessMemory): string =>
    `  ${p.name.padEnd(16)} ${p.rss.toFixed(1).padStart(7)} ${p.rssAnon.toFixed(1).padStart(7)} ${p.rssFile.toFixed(1).padStart(7)} ${p.pss.toFixed(1).padStart(7)} ${p.peakRss.toFixed(1).padStart(7)}`;
  const total = (name: string, items: ProcessMemory[]): string =>
    `  ${name.padEnd(16)} ${sumOf(items, "rss").toFixed(1).padStart(7)} ${sumOf(items, "rssAnon").toFixed(1).padStart(7)} ${sumOf(items, "rssFile").toFixed(1).padStart(7)} ${sumOf(items, "pss").toFixed(1).padStart(7)}`;
  process.stdout.write(`\nProxy footprint, medians of ${oursSamples.length} samples over the last ${settleMs / 2000} s of ${settleMs / 1000} s of light traffic (MiB):\n`);
  process.stdout.write(`  ${"process".padEnd(16)} ${"RSS".padStart(7)} ${"anon".padStart(7)} ${"file".padStart(7)} ${"PSS".padStart(7)} ${"peak".padStart(7)}\n`);
  process.stdout.write(`${ours.map(row).join("\n")}\n${total("ours, pod", ours)}\n`);
  process.stdout.write(`${theirs.map(row).join("\n")}\n${total("anchor", theirs)}\n`);
  process.stdout.write(`  our pod's cgroup: usage ${pod.usage.toFixed(1)}, working set ${pod.workingSet.toFixed(1)} (anon ${pod.anon.toFixed(1)}, file ${pod.file.toFixed(1)}), peak ${pod.peak.toFixed(1)}\n`);
  process.stdout.write(`  supervisor target ${SUPERVISOR_TARGET_MIB} MiB RSS: ${supervisor.rss <= SUPERVISOR_TARGET_MIB ? "met" : `missed by ${(supervisor.rss - SUPERVISOR_TARGET_MIB).toFixed(1)} MiB (node's own text, ${supervisor.rssFile.toFixed(1)} MiB file-backed, is shared by every proxy on a node)`}\n`);
} finally {
  await sandbox.stop();
}
