// Egress throughput on the sandbox's real node (a benchmark, not a test): a pod downloads from an
// HTTP server on a tailnet device (1) through an egress proxy, by the egress Service's DNS name,
// and (2) the sidecar way, through a tailscaled (kernel TUN) running in the pod itself. Median of
// --rounds downloads of --mib MiB each, the two alternating in one pod; the sidecar figure is the
// baseline.
import { join } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { CoreV1Api } from "@kubernetes/client-node";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { startAndAwait } from "../src/sandbox/started-process.ts";
import { OFFLINE_TAILSCALED_KNOBS } from "../src/sandbox/tailscaled-env.ts";
import { readImageIndex, requireImage } from "../src/sandbox/cluster/image-import.ts";
import { TAILNET_DOMAIN } from "../src/sandbox/sandbox.ts";
import { waitFor } from "../src/shared/clock.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" }, mib: { type: "string", default: "64" } } });
const rounds = Number(values.rounds);
const bytes = Number(values.mib) * 1024 * 1024;
const NS = "bench-egress";

/**
 * One pod does both, alternating round by round so that load from elsewhere on the machine hits
 * both paths alike: tailscaled runs in the pod (kernel TUN, the sidecar way) and the pod
 * downloads from the device's tailnet IP through it, and from the egress Service's DNS name,
 * which resolves to the egress proxy's pod IP (the cluster network, not the pod's tailscale0).
 * Prints "RESULT {proxy:[...], sidecar:[...]}" (Mbit/s).
 */
const POD_SCRIPT = `
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
const { URL_PROXY, URL_SIDECAR, ROUNDS } = process.env;
if (!existsSync("/dev/net/tun")) { mkdirSync("/dev/net", { recursive: true }); execFileSync("mknod", ["-m", "0600", "/dev/net/tun", "c", "10", "200"]); }
mkdirSync("/tmp/ts", { recursive: true });
const sock = "--socket=/tmp/ts/sock";
const daemon = spawn("tailscaled", ["--tun=tailscale0", "--state=mem:", "--statedir=/tmp/ts", sock], { stdio: ["ignore", "ignore", "inherit"] });
for (let i = 0; i < 100; i++) { try { execFileSync("tailscale", [sock, "status", "--json"]); break; } catch { await new Promise((r) => setTimeout(r, 200)); } }
execFileSync("tailscale", [sock, "up", "--auth-key=" + process.env.AUTH_KEY, "--login-server=" + process.env.LOGIN_SERVER, "--hostname=sidecar", "--accept-dns=false", "--netfilter-mode=off", "--timeout=120s"], { stdio: "inherit" });
async function once(url) {
  const start = performance.now();
  const res = await fetch(url);
  if (!res.ok) throw new Error(url + ": HTTP " + res.status);
  let n = 0;
  for await (const chunk of res.body) n += chunk.length;
  return (n * 8) / ((performance.now() - start) / 1000) / 1e6;
}
async function warm(url) {
  const deadline = Date.now() + 120_000;
  for (;;) { try { await once(url); return; } catch (e) { if (Date.now() > deadline) throw e; await new Promise((r) => setTimeout(r, 500)); } }
}
await warm(URL_PROXY);
await warm(URL_SIDECAR);
const proxy = [], sidecar = [];
for (let i = 0; i < Number(ROUNDS); i++) { proxy.push(await once(URL_PROXY)); sidecar.push(await once(URL_SIDECAR)); }
console.log("RESULT " + JSON.stringify({ proxy, sidecar }));
daemon.kill();
process.exit(0);
`;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const sandbox = await Sandbox.start();
try {
  const core = sandbox.kubeConfig().makeApiClient(CoreV1Api);
  const images = readImageIndex();
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  await core.createNamespace({ body: { metadata: { name: NS, labels: { "pod-security.kubernetes.io/enforce": "privileged" } } } });
  const target = await sandbox.addDevice("bulk-target");
  const server = await startAndAwait(
    { name: "bulk server", logFile: join(sandbox.run.dir, "bulk-server.log"), argv: target.exec(nodeToolArgv("bulk-server.ts", ["--listen", "0.0.0.0:8080"])) },
    async () => (await sandbox.runner.run(target.exec(nodeToolArgv("tailnet-client.ts", ["get", "http://127.0.0.1:8080/?bytes=1"])))).stdout.includes("200"),
    20_000,
  );
  sandbox.track({ stop: () => server.stop() });
  const targetIp = (await target.status()).tailscaleIps[0] ?? "";

  await core.createNamespacedService({
    namespace: NS,
    body: { metadata: { name: "bulk", annotations: { "tailscale.com/tailnet-fqdn": `bulk-target.${TAILNET_DOMAIN}` } }, spec: { ports: [{ port: 80, targetPort: 8080 }] } },
  });
  await waitFor("the egress Service to be ready", async () => {
    const svc = await core.readNamespacedService({ namespace: NS, name: "bulk" });
    return svc.status?.conditions?.some((c) => c.type === "TailscaleProxyReady" && c.status === "True") ? true : undefined;
  }, { timeoutMs: 300_000, intervalMs: 500 });

  async function runPod(name: string, image: string, script: string, env: Record<string, string>, privileged: boolean): Promise<{ proxy: number[]; sidecar: number[] }> {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name },
        spec: {
          restartPolicy: "Never",
          containers: [{
            name,
            image,
            imagePullPolicy: "IfNotPresent",
            command: ["/usr/local/bin/node", "--input-type=module", "-e", script],
            env: Object.entries({ ...env, ROUNDS: String(rounds) }).map(([k, v]) => ({ name: k, value: v })),
            ...(privileged ? { securityContext: { capabilities: { add: ["NET_ADMIN", "NET_RAW", "MKNOD"] } } } : {}),
            // The egress proxy pod's default resources: the sidecar's tailscaled then gets the
            // same CPU weight as the proxy's when the machine is contended (BestEffort: 2 of 10).
            resources: { requests: { cpu: "10m", memory: "64Mi" } },
          }],
        },
      },
    });
    const phase = await waitFor(`${name} to finish`, async () => {
      const pod = await core.readNamespacedPod({ namespace: NS, name });
      return ["Succeeded", "Failed"].includes(pod.status?.phase ?? "") ? pod.status?.phase : undefined;
    }, { timeoutMs: 600_000, intervalMs: 1_000 });
    const log = await core.readNamespacedPodLog({ namespace: NS, name, container: name });
    const line = log.split("\n").find((l) => l.startsWith("RESULT "));
    if (phase !== "Succeeded" || !line) throw new Error(`${name} failed:\n${log.slice(-2000)}`);
    return JSON.parse(line.slice("RESULT ".length)) as { proxy: number[]; sidecar: number[] };
  }

  const url = (host: string): string => `http://${host}/?bytes=${bytes}`;
  const authKey = await sandbox.headscaleAdmin.createPreAuthKey({ user: await sandbox.headscaleAdmin.ensureUser("bench") });
  const { proxy: viaProxy, sidecar } = await runPod("egress-bench", requireImage(images, "proxy").ref, POD_SCRIPT, {
    URL_PROXY: url(`bulk.${NS}.svc.cluster.local`),
    URL_SIDECAR: url(`${targetIp}:8080`),
    AUTH_KEY: authKey,
    LOGIN_SERVER: sandbox.headscale.url,
    ...OFFLINE_TAILSCALED_KNOBS,
  }, true);
  const proxy = median(viaProxy);
  const baseline = median(sidecar);
  process.stdout.write(`BENCH ${JSON.stringify({ name: "egress_proxy_throughput", value: Number(proxy.toFixed(1)), unit: "Mbit/s", baseline: Number(baseline.toFixed(1)), ratio: Number((proxy / baseline).toFixed(2)) })}\n`);
  process.stdout.write(`BENCH ${JSON.stringify({ name: "egress_sidecar_throughput", value: Number(baseline.toFixed(1)), unit: "Mbit/s" })}\n`);
  process.stdout.write(`BENCH ${JSON.stringify({ name: "egress_load_average_1m", value: Number((loadavg()[0] ?? 0).toFixed(2)), unit: "load" })}\n`);
  process.stdout.write(`\nEgress, pod -> tailnet device, ${values.mib} MiB downloads, median of ${rounds}, alternating (load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}):\n`);
  process.stdout.write(`  through the egress proxy (Service DNS name)   ${proxy.toFixed(1)} Mbit/s  [${viaProxy.map((x) => x.toFixed(0)).join(", ")}]\n`);
  process.stdout.write(`  tailscaled in the pod (the sidecar way)       ${baseline.toFixed(1)} Mbit/s  [${sidecar.map((x) => x.toFixed(0)).join(", ")}]\n`);
} finally {
  await sandbox.stop();
}
