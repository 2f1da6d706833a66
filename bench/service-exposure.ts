// Service exposure figures on the sandbox's real node (a benchmark, not a test):
//  1. `helm install` -> operator Ready;
//  2. latency: manifest applied (nginx Deployment + LoadBalancer Service) -> EXTERNAL-IP set, and
//     -> first successful request from a tailnet laptop through the proxy pod and kube-proxy;
//     median of --rounds runs, each a fresh Service with its own proxy pod;
//  3. throughput: --services Services created at once -> all have their TailscaleProxyReady
//     condition, with the node cordoned (the operator provisions every proxy; 200 real proxy
//     pods would not fit this machine), and the operator container's peak RSS.
import { readFileSync, readdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { waitFor } from "../src/shared/clock.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, services: { type: "string", default: "200" } } });
const rounds = Number(values.rounds);
const bulk = Number(values.services);
/** Recorded by the pod runner (the kubelet stand-in this node replaced) in its last bench run. */
const POD_RUNNER = { externalIp: 4.62, firstRequest: 10.24 };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const bench = (name: string, value: number, unit: string, extra: Record<string, number> = {}): void => {
  process.stdout.write(`BENCH ${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra })}\n`);
};

/** Peak RSS of the operator's container process (found by its command line, read by PID). */
function operatorPeakRssMiB(): number {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("/app/bin/tailnet-operator.js")) continue;
      return Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
    } catch {
      // Gone.
    }
  }
  return Number.NaN;
}

const sandbox = await Sandbox.start();
try {
  const kc = sandbox.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const installStart = performance.now();
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  const installSeconds = (performance.now() - installStart) / 1000;
  await core.createNamespace({ body: { metadata: { name: "bench" } } });
  const laptop = await sandbox.addDevice("laptop");

  const toStatus: number[] = [];
  const toTraffic: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const name = `latency-${round}`;
    const labels = { app: name };
    const start = performance.now();
    await apps.createNamespacedDeployment({
      namespace: "bench",
      body: { metadata: { name }, spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "nginx", image: "nginx:1.20-alpine" }] } } } },
    });
    await core.createNamespacedService({
      namespace: "bench",
      body: { metadata: { name }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ports: [{ port: 80 }], selector: labels } },
    });
    const host = await waitFor("EXTERNAL-IP", async () => (await core.readNamespacedService({ name, namespace: "bench" })).status?.loadBalancer?.ingress?.[0]?.hostname, { timeoutMs: 120_000, intervalMs: 50 });
    const statusMs = performance.now() - start;
    toStatus.push(statusMs);
    await waitFor("first request", async () => {
      const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", `http://${host}/`, "--timeout-ms", "2000"])), { timeoutMs: 5_000 });
      return stdout.startsWith("HTTP/1.1 200") ? true : undefined;
    }, { timeoutMs: 120_000, intervalMs: 50 });
    const trafficMs = performance.now() - start;
    toTraffic.push(trafficMs);
    process.stderr.write(`round ${round + 1}/${rounds}: EXTERNAL-IP ${(statusMs / 1000).toFixed(2)} s, first request ${(trafficMs / 1000).toFixed(2)} s\n`);
  }

  // Cordoned: the operator still provisions every proxy, but no proxy pod starts.
  for (const node of sandbox.nodes) await core.patchNode({ name: node.name, body: { spec: { unschedulable: true } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
  const start = performance.now();
  await Promise.all(
    Array.from({ length: bulk }, (_, i) =>
      core.createNamespacedService({ namespace: "bench", body: { metadata: { name: `bulk-${i}` }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ports: [{ port: 80 }] } } }),
    ),
  );
  await waitFor(`${bulk} Services to have status`, async () => {
    const list = await core.listNamespacedService({ namespace: "bench" });
    const done = list.items.filter((s) => s.metadata?.name?.startsWith("bulk-") && s.status?.conditions?.some((c) => c.type === "TailscaleProxyReady")).length;
    return done === bulk ? true : undefined;
  }, { timeoutMs: 600_000, intervalMs: 250 });
  const bulkSeconds = (performance.now() - start) / 1000;
  const rss = operatorPeakRssMiB();

  const externalIp = median(toStatus) / 1000;
  const firstRequest = median(toTraffic) / 1000;
  bench("helm_install_to_operator_ready", installSeconds, "s");
  bench("service_create_to_external_ip_real_node", externalIp, "s", { baseline: POD_RUNNER.externalIp, ratio: Number((externalIp / POD_RUNNER.externalIp).toFixed(2)) });
  bench("service_create_to_first_request_real_node", firstRequest, "s", { baseline: POD_RUNNER.firstRequest, ratio: Number((firstRequest / POD_RUNNER.firstRequest).toFixed(2)) });
  bench(`services_${bulk}_provisioned`, bulkSeconds, "s");
  bench("operator_peak_rss_in_cluster", rss, "MiB");
  process.stdout.write(`\nService exposure on the real node, median of ${rounds} rounds (warm sandbox):\n`);
  process.stdout.write(`  helm install -> operator Ready                 ${installSeconds.toFixed(1)} s\n`);
  process.stdout.write(`  manifest -> EXTERNAL-IP                        ${externalIp.toFixed(2)} s  (pod runner, recorded: ${POD_RUNNER.externalIp} s)\n`);
  process.stdout.write(`  manifest -> first request through real pods    ${firstRequest.toFixed(2)} s  (pod runner, recorded: ${POD_RUNNER.firstRequest} s)\n`);
  process.stdout.write(`\n${bulk} Services created at once (node cordoned):\n`);
  process.stdout.write(`  all provisioned, condition set     ${bulkSeconds.toFixed(1)} s (${(bulk / bulkSeconds).toFixed(1)} Services/s)\n`);
  process.stdout.write(`  operator peak RSS                  ${rss.toFixed(0)} MiB\n`);
} finally {
  await sandbox.stop();
}
