// The proxy's data path on the sandbox's real node (a benchmark, not a test):
//  1. TCP throughput with iperf3 (median of --rounds runs of --seconds s), in the same sandbox:
//     direct, tailnet laptop -> another tailnet device; and through the proxy, tailnet laptop ->
//     proxy pod -> kube-proxy -> a backend host (a selector-less Service whose EndpointSlice
//     points at it, so no pod's own limits are in the way);
//  2. latency: Service created (its nginx pods already running) -> EXTERNAL-IP set -> first
//     successful request from the laptop, and the gap between the two.
//
//   node bench/proxy-datapath.ts [--rounds 3] [--seconds 5] [--latency-rounds 3] [--hold-s 0]
// --hold-s keeps the sandbox that long before teardown, to look at it by hand.
import { join } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { V1Service } from "@kubernetes/client-node";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { startAndAwait } from "../src/sandbox/started-process.ts";
import { cgroupMemory, proxySupervisors } from "../src/sandbox/proc-memory.ts";
import { namespacePrefix } from "../src/sandbox/runs.ts";
import type { TailnetDevice } from "../src/sandbox/tailnet-device.ts";
import type { SandboxHost } from "../src/sandbox/network.ts";
import { systemClock, waitFor } from "../src/shared/clock.ts";
import { ClusterEnv } from "../test/helpers/cluster-env.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    "latency-rounds": { type: "string", default: "3" },
    "hold-s": { type: "string", default: "0" },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const latencyRounds = Number(values["latency-rounds"]);
const IPERF_PORT = 5201;

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const bench = (name: string, value: number, unit: string, baseline?: number): void => {
  const extra = baseline === undefined ? {} : { baseline: Number(baseline.toFixed(3)), ratio: Number((value / baseline).toFixed(3)) };
  process.stdout.write(`BENCH ${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra })}\n`);
};

async function iperfServer(sandbox: Sandbox, host: SandboxHost, name: string): Promise<void> {
  const proc = await startAndAwait(
    { name: `iperf3 server (${name})`, logFile: join(sandbox.run.dir, `iperf3-${name}.log`), argv: host.namespace.exec(["iperf3", "--server", "--port", String(IPERF_PORT)]) },
    async () => {
      const { stdout } = await sandbox.runner.run(host.namespace.exec(["ss", "-Hltn", `sport = :${IPERF_PORT}`]));
      return stdout.includes(String(IPERF_PORT));
    },
    15_000,
  );
  sandbox.track(proc);
}

/** Gbit/s received in one --seconds run from the laptop to target. */
async function throughputOnce(sandbox: Sandbox, laptop: TailnetDevice, target: string): Promise<number> {
  const { stdout } = await sandbox.runner.run(laptop.exec(["iperf3", "--client", target, "--port", String(IPERF_PORT), "--time", String(seconds), "--json"]), { timeoutMs: (seconds + 30) * 1000 });
  return (JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
}

const sandbox = await Sandbox.start();
try {
  const env = new ClusterEnv(sandbox);
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  // One after the other: both would create the same Headscale user at once.
  const laptop = await sandbox.addDevice("laptop");
  const server = await sandbox.addDevice("iperf-server");
  await iperfServer(sandbox, server.host, "direct");
  const backendHost = await sandbox.network.addHost("iperf");
  sandbox.track({ stop: () => sandbox.network.removeHost(backendHost) });
  await iperfServer(sandbox, backendHost, "backend");

  // The Service through the proxy: no selector, one endpoint, the backend host.
  await env.ensureNamespace("bench");
  await env.core.createNamespacedService({
    namespace: "bench",
    body: { metadata: { name: "iperf" }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ports: [{ name: "iperf", port: IPERF_PORT, protocol: "TCP" }] } },
  });
  await env.objects.create({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "iperf-1", namespace: "bench", labels: { "kubernetes.io/service-name": "iperf" } },
    addressType: "IPv4",
    ports: [{ name: "iperf", port: IPERF_PORT, protocol: "TCP" }],
    endpoints: [{ addresses: [backendHost.address] }],
  } as never);
  const svc = await env.waitForService("bench", "iperf", "EXTERNAL-IP", (s: V1Service) => Boolean(s.status?.loadBalancer?.ingress?.[0]?.hostname));
  const proxyFqdn = svc.status?.loadBalancer?.ingress?.[0]?.hostname ?? "";
  const proxyIp = await waitFor("the proxy's tailnet IP", async () => {
    const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["resolve", proxyFqdn])));
    return stdout.trim().split("\n")[0] || undefined;
  }, { timeoutMs: 60_000 });
  const serverIp = (await server.status()).tailscaleIps.find((ip) => !ip.includes(":")) ?? "";
  // A first short run each, so neither side is measured while its path is still being set up.
  await waitFor("iperf3 through the proxy", async () => {
    await sandbox.runner.run(laptop.exec(["iperf3", "--client", proxyIp, "--port", String(IPERF_PORT), "--time", "1"]), { timeoutMs: 20_000 });
    return true;
  }, { timeoutMs: 60_000, intervalMs: 1_000 });
  await sandbox.runner.run(laptop.exec(["iperf3", "--client", serverIp, "--port", String(IPERF_PORT), "--time", "1"]), { timeoutMs: 20_000 });

  // The pod's eth0 as the proxy leaves it, then with what Tailscale recommends for forwarding
  // nodes (rx-udp-gro-forwarding on, rx-gro-list off: what the proxy's LocalAPI call asks
  // tailscaled to set, which fails in the sandbox, see docs/proxy.md), then also GRO on the veth
  // (NAPI). Set from outside with the host's ethtool in the pod's network namespace, for the
  // figure only. Alternating with direct runs, so that load from other processes on the machine
  // hits both alike.
  const proxyPid = proxySupervisors(`/${namespacePrefix(sandbox.run.id)}`).get("bench-iperf");
  if (proxyPid === undefined) throw new Error("the proxy pod's supervisor process was not found");
  const ethtool = async (args: string[]): Promise<string> => (await sandbox.runner.run(["nsenter", "-n", "-t", String(proxyPid), "ethtool", ...args])).stdout;
  const feature = async (name: string): Promise<string> => new RegExp(`^${name}: (\\S+)`, "m").exec(await ethtool(["-k", "eth0"]))?.[1] ?? "?";
  const configs = [
    { name: "as deployed", ethtool: [] },
    { name: "udp-gro-forwarding", ethtool: ["-K", "eth0", "rx-udp-gro-forwarding", "on", "rx-gro-list", "off"] },
    { name: "udp-gro-forwarding+gro", ethtool: ["-K", "eth0", "gro", "on"] },
  ];
  // Which way the WireGuard packets go: a direct UDP path or a DERP relay.
  const pathTo = async (ip: string): Promise<string> => (await laptop.cli(["ping", "--c", "3", ip]).catch((error: unknown) => String(error))).trim().split("\n").slice(-1)[0] ?? "";
  process.stderr.write(`laptop -> proxy: ${await pathTo(proxyIp)}\nlaptop -> direct target: ${await pathTo(serverIp)}\n`);
  const direct: number[] = [];
  const proxied: Record<string, number[]> = {};
  const features: Record<string, string> = {};
  for (const config of configs) {
    if (config.ethtool.length > 0) await ethtool(config.ethtool);
    features[config.name] = `gro ${await feature("generic-receive-offload")}, rx-udp-gro-forwarding ${await feature("rx-udp-gro-forwarding")}, rx-gro-list ${await feature("rx-gro-list")}`;
    const runs: number[] = (proxied[config.name] = []);
    for (let round = 0; round < rounds; round++) {
      direct.push(await throughputOnce(sandbox, laptop, serverIp));
      runs.push(await throughputOnce(sandbox, laptop, proxyIp));
    }
    process.stderr.write(`throughput (Gbit/s, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}): direct ${direct.slice(-rounds).map((x) => x.toFixed(2)).join(" ")}; through the proxy, eth0 ${config.name} (${features[config.name]}) ${runs.map((x) => x.toFixed(2)).join(" ")}\n`);
  }

  // What carrying that traffic cost the proxy pod (the figure its memory request comes from).
  const loaded = cgroupMemory(proxyPid);

  // Latency: nginx pods first, then the Service, timed from its creation.
  const toStatus: number[] = [];
  const toTraffic: number[] = [];
  for (let round = 0; round < latencyRounds; round++) {
    const name = `latency-${round}`;
    await env.webService("bench", `${name}-pods`, { type: "ClusterIP" });
    await waitFor(`${name} pods ready`, async () => ((await env.apps.readNamespacedDeployment({ namespace: "bench", name: `${name}-pods` })).status?.readyReplicas === 1 ? true : undefined), { timeoutMs: 120_000 });
    const start = performance.now();
    await env.core.createNamespacedService({
      namespace: "bench",
      body: { metadata: { name }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ports: [{ port: 80 }], selector: { app: `${name}-pods` } } },
    });
    const ready = await env.waitForService("bench", name, "EXTERNAL-IP", (s: V1Service) => Boolean(s.status?.loadBalancer?.ingress?.[0]?.hostname));
    const statusMs = performance.now() - start;
    const host = ready.status?.loadBalancer?.ingress?.[0]?.hostname ?? "";
    // Each failed attempt is kept (time after EXTERNAL-IP, what failed): the gap's cause.
    const attempts: string[] = [];
    const statusAt = performance.now();
    // Generous timeouts: on a loaded machine starting the client alone can take seconds.
    await waitFor("first request", async () => {
      try {
        const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", `http://${host}/`, "--timeout-ms", "2000"])), { timeoutMs: 15_000 });
        if (stdout.startsWith("HTTP/1.1 200")) return true;
        attempts.push(`${((performance.now() - statusAt) / 1000).toFixed(2)}s ${stdout.split("\n")[0] ?? ""}`);
      } catch (error) {
        attempts.push(`${((performance.now() - statusAt) / 1000).toFixed(2)}s ${(error as Error).message.split("\n").slice(-1)[0]?.slice(0, 160) ?? ""}`);
      }
      return undefined;
    }, { timeoutMs: 120_000, intervalMs: 50 }).finally(() => {
      if (attempts.length > 0) process.stderr.write(`  failed attempts after EXTERNAL-IP:\n${attempts.map((a) => `    ${a}`).join("\n")}\n`);
    });
    const trafficMs = performance.now() - start;
    toStatus.push(statusMs / 1000);
    toTraffic.push(trafficMs / 1000);
    process.stderr.write(`latency round ${round + 1}/${latencyRounds}: EXTERNAL-IP ${(statusMs / 1000).toFixed(2)} s, first request ${(trafficMs / 1000).toFixed(2)} s\n`);
  }

  const directMedian = median(direct);
  const proxiedMedian = median(proxied["as deployed"] ?? []);
  const gaps = toTraffic.map((t, i) => t - (toStatus[i] ?? 0));
  bench("tailnet_direct_throughput", directMedian, "Gbit/s");
  bench("tailnet_via_proxy_throughput", proxiedMedian, "Gbit/s", directMedian);
  bench("tailnet_via_proxy_udp_gro_forwarding_throughput", median(proxied["udp-gro-forwarding"] ?? []), "Gbit/s", directMedian);
  bench("tailnet_via_proxy_udp_gro_forwarding_gro_throughput", median(proxied["udp-gro-forwarding+gro"] ?? []), "Gbit/s", directMedian);
  bench("proxy_datapath_load_average_1m", loadavg()[0] ?? 0, "load");
  bench("proxy_pod_cgroup_working_set_after_iperf", loaded.workingSet, "MiB");
  bench("proxy_pod_cgroup_peak_after_iperf", loaded.peak, "MiB");
  bench("service_create_to_external_ip", median(toStatus), "s");
  bench("service_create_to_first_request", median(toTraffic), "s");
  bench("external_ip_to_first_request", median(gaps), "s");
  process.stdout.write(`\nProxy data path (iperf3 TCP, ${rounds} x ${seconds} s per setting, alternating with direct; Gbit/s; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}):\n`);
  process.stdout.write(`  direct, laptop -> tailnet device              ${direct.map((x) => x.toFixed(2)).join(" ")}  median ${directMedian.toFixed(2)}\n`);
  for (const config of configs) {
    const runs = proxied[config.name] ?? [];
    process.stdout.write(`  laptop -> proxy pod -> backend, ${config.name.padEnd(23)} ${runs.map((x) => x.toFixed(2)).join(" ")}  median ${median(runs).toFixed(2)} (${(median(runs) / directMedian).toFixed(2)}x direct; ${features[config.name] ?? ""})\n`);
  }
  process.stdout.write(`  proxy pod cgroup after the runs: working set ${loaded.workingSet.toFixed(1)} MiB, peak ${loaded.peak.toFixed(1)} MiB\n`);
  process.stdout.write(`Service created (pods running) -> EXTERNAL-IP ${median(toStatus).toFixed(2)} s -> first request ${median(toTraffic).toFixed(2)} s (gap ${median(gaps).toFixed(2)} s; rounds: ${gaps.map((g) => g.toFixed(2)).join(" ")})\n`);
  const holdMs = Number(values["hold-s"]) * 1000;
  if (holdMs > 0) {
    process.stderr.write(`holding the sandbox ${sandbox.run.id} for ${holdMs / 1000} s\n`);
    await systemClock.sleep(holdMs);
  }
} finally {
  await sandbox.stop();
}
