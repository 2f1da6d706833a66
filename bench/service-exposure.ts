// Service exposure figures (a benchmark, not a test), in the sandbox:
//  1. latency: Service created -> EXTERNAL-IP set, and -> first successful request from a
//     tailnet device; median of --rounds runs, each a fresh Service with its own proxy;
//  2. throughput: --services Services created at once -> all have their TailscaleProxyReady
//     condition (the operator has provisioned every proxy; proxies are not started, since 200
//     real proxy pods would not fit this machine), and the operator's peak RSS.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CoreV1Api } from "@kubernetes/client-node";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { PodRunner } from "../src/sandbox/pod-runner.ts";
import { projectImageMap } from "../src/sandbox/images.ts";
import { startOperator } from "../src/sandbox/operator-process.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { waitFor } from "../src/shared/clock.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, services: { type: "string", default: "200" } } });
const rounds = Number(values.rounds);
const bulk = Number(values.services);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const peakRssMiB = (pid: number | undefined): number => Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid ?? 0}/status`, "utf8"))?.[1] ?? 0) / 1024;

const sandbox = await Sandbox.start();
try {
  const core = sandbox.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: "tailscale" } } });
  await core.createNamespace({ body: { metadata: { name: "bench" } } });
  const pods = sandbox.track(new PodRunner(sandbox, { images: projectImageMap(), intervalMs: 100 }).start());
  const operator = sandbox.track(await startOperator(sandbox, { id: "bench", httpPort: 18200 }));
  const laptop = await sandbox.addDevice("laptop");

  const toStatus: number[] = [];
  const toTraffic: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const name = `latency-${round}`;
    const start = performance.now();
    const svc = await core.createNamespacedService({
      namespace: "bench",
      body: { metadata: { name }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ports: [{ port: 80 }], selector: { app: name } } },
    });
    await sandbox.addBackend({ name, ips: [svc.spec?.clusterIP ?? ""], ports: [80] });
    const host = await waitFor("EXTERNAL-IP", async () => (await core.readNamespacedService({ name, namespace: "bench" })).status?.loadBalancer?.ingress?.[0]?.hostname, { timeoutMs: 60_000, intervalMs: 50 });
    const statusMs = performance.now() - start;
    toStatus.push(statusMs);
    await waitFor("first request", async () => {
      const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("tailnet-client.ts", ["get", `http://${host}/`, "--timeout-ms", "2000"])), { timeoutMs: 5_000 });
      return stdout.startsWith("HTTP/1.1 200") ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 50 });
    const trafficMs = performance.now() - start;
    toTraffic.push(trafficMs);
    process.stderr.write(`round ${round + 1}/${rounds}: EXTERNAL-IP ${(statusMs / 1000).toFixed(2)} s, first request ${(trafficMs / 1000).toFixed(2)} s\n`);
  }
  await pods.stop();

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

  process.stdout.write(`\nService exposure, median of ${rounds} rounds (warm sandbox):\n`);
  process.stdout.write(`  create -> EXTERNAL-IP set          ${(median(toStatus) / 1000).toFixed(2)} s  (target < 5 s)\n`);
  process.stdout.write(`  create -> first request over tailnet ${(median(toTraffic) / 1000).toFixed(2)} s  (target < 10 s)\n`);
  process.stdout.write(`\n${bulk} Services created at once:\n`);
  process.stdout.write(`  all provisioned, condition set     ${bulkSeconds.toFixed(1)} s (${(bulk / bulkSeconds).toFixed(1)} Services/s)\n`);
  process.stdout.write(`  operator peak RSS                  ${peakRssMiB(operator.process.pid).toFixed(0)} MiB\n`);
} finally {
  await sandbox.stop();
}
