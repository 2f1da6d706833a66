// Ingress (L7) figures on the sandbox's real node (a benchmark, not a test). One backend (Node's
// HTTP server in a pod, behind a ClusterIP Service) reached from a tailnet laptop four ways:
//   l7:    our Ingress proxy, HTTPS (certificate from a sandbox CA in a TLS Secret), HTTP/1.1,
//          nginx carrying the bytes (ADR 0035);
//   l3:    our LoadBalancer Service proxy (the L3 path), plain HTTP to the same pods;
//   serve: tailscaled's `tailscale serve` as Tailscale's operator configures an Ingress proxy
//          (userspace tailscaled in a pod, a Web handler proxying to the Service's ClusterIP),
//          on the same tailscaled version. Over plain HTTP (port 80): tailscaled serves HTTPS
//          only for the control plane's CertDomains and Headscale sends none, so it refuses even a
//          certificate placed in its cert directory (ipnlocal resolveCertDomain). serve is thus
//          spared the TLS work our proxy does.
// Each round measures, per path: throughput (one connection, --mib MiB bodies back to back, for
// --seconds), with the CPU each process on the path and the whole machine spent per MiB in the
// middle of that run (bench/ingress/cpu-per-mib.ts), and requests/s (--connections keep-alive
// connections, 13-byte bodies), the paths alternating so that load from elsewhere on the machine
// hits all alike. Plus the Ingress proxy pod's memory (supervisor, nginx, and with its tailscaled)
// right after the load.
// Then, per certificate source, the time from Ingress create to Ready (with its MagicDNS name in
// the status) and to the first HTTPS 200 that the laptop verifies: --rounds fresh Ingresses per
// source, the sources alternating, each deleted once measured. "secret": a TLS Secret (present
// beforehand) from a sandbox CA; "acme": no secretName, so the proxy orders its certificate from
// Pebble on the tailnet (HTTP-01 validated over the tailnet; Pebble's random pre-validation sleep
// off, so this is the proxy's and the CA's own work). The operator carries both settings at once,
// as a user's can. Last, the last ACME Ingress's proxy pod is deleted: the time until the new pod
// answers HTTPS, and how many certificates Pebble issued meanwhile (none: the proxy keeps its
// certificate in its state Secret).
//
//   node bench/ingress.ts [--rounds 3] [--seconds 5] [--mib 8] [--connections 8] [--proxy-cpu 10m]
// --proxy-cpu gives every proxy (L7, L3, serve) that CPU request instead of the default 10m: on a
// contended machine a pod's CPU weight decides how much of it the pod gets (ADR 0030). Four
// proxies run at once, with the operator and CoreDNS, on a node of 2 CPUs: above 250m the
// timing part's Ingress cannot be scheduled and times out.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PatchStrategy, type KubernetesObject, type V1Ingress, type V1Service } from "@kubernetes/client-node";
import { Sandbox, TAILNET_DOMAIN } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { readImageIndex, requireImage } from "../src/sandbox/cluster/image-import.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { acmeChartValues, startTailnetAcmeCa } from "../src/sandbox/tailnet-acme-ca.ts";
import { httpsFromDevice, type DeviceHttpsAnswer } from "../src/sandbox/device-https.ts";
import { OFFLINE_TAILSCALED_KNOBS } from "../src/sandbox/tailscaled-env.ts";
import { systemClock, waitFor } from "../src/shared/clock.ts";
import { medianOf, proxyPids, proxyProcesses, runProcesses, sumOf, type ProcessMemory } from "../src/sandbox/proc-memory.ts";
import { tailscaledIn } from "../src/sandbox/proc-cpu.ts";
import { namespacePrefix } from "../src/sandbox/runs.ts";
import { cpuTable, isBackend, isServeTailscaled, measureCpuPerMib, medianCpu, type CpuPerMib, type PathPids } from "./ingress/cpu-per-mib.ts";
import { ClusterEnv, ingressCondition, OPERATOR_NAMESPACE } from "../test/helpers/cluster-env.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    mib: { type: "string", default: "8" },
    connections: { type: "string", default: "8" },
    /** Every proxy's CPU request (ours through the chart, the serve pod's alike); the default is the operator's. */
    "proxy-cpu": { type: "string", default: "10m" },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
// The CPU window is the run's middle: 1.5 s after its start to 0.5 s before its end.
if (!(seconds >= 3)) throw new Error("--seconds must be at least 3");
const largeBytes = Number(values.mib) * 1024 * 1024;
const NS = "bench-l7";
const HOST = `bulk.${TAILNET_DOMAIN}`;
const SERVE_HOST = `serve-bench.${TAILNET_DOMAIN}`;
const MEMORY_SAMPLES = 5;

/** ?bytes=N answers N bytes (default 13), with a content-length, from one shared buffer. */
const BACKEND = `
const http = require("node:http");
const chunk = Buffer.alloc(256 * 1024, 120);
http.createServer((req, res) => {
  const n = Number(new URL(req.url, "http://x").searchParams.get("bytes") ?? "13");
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n });
  let left = n;
  const write = () => {
    while (left > 0) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      if (!res.write(part)) { res.once("drain", write); return; }
    }
    res.end();
  };
  write();
}).listen(8080);
`;

/** tailscaled in userspace mode (as Tailscale's operator runs Ingress proxies), logged in, serving SERVE_CONFIG. */
const SERVE_POD = `
const { spawn, execFileSync } = require("node:child_process");
const { mkdirSync } = require("node:fs");
mkdirSync("/tmp/ts", { recursive: true });
const sock = "--socket=/tmp/ts/sock";
spawn("tailscaled", ["--tun=userspace-networking", "--state=mem:", "--statedir=/tmp/ts", sock], { stdio: ["ignore", "ignore", "inherit"] });
(async () => {
  for (let i = 0; i < 100; i++) { try { execFileSync("tailscale", [sock, "status", "--json"]); break; } catch { await new Promise((r) => setTimeout(r, 200)); } }
  execFileSync("tailscale", [sock, "up", "--auth-key=" + process.env.AUTH_KEY, "--login-server=" + process.env.LOGIN_SERVER, "--hostname=serve-bench", "--accept-dns=false", "--timeout=120s"], { stdio: "inherit" });
  execFileSync("tailscale", [sock, "serve", "set-raw"], { input: process.env.SERVE_CONFIG, stdio: ["pipe", "inherit", "inherit"] });
  console.log("serving");
})();
`;

/** A proxy container's resources: the operator's default (PROXY_RESOURCES) unless --proxy-cpu says otherwise. */
const PROXY_POD_RESOURCES = { requests: { cpu: values["proxy-cpu"], memory: "64Mi" } };

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(" ");
const bench = (name: string, value: number, unit: string, baseline?: number): void => {
  const extra = {
    ...(baseline === undefined ? {} : { baseline: Number(baseline.toFixed(3)), ratio: Number((value / baseline).toFixed(3)) }),
    // Figures taken with another CPU request are not comparable with the default's.
    ...(values["proxy-cpu"] === "10m" ? {} : { proxyCpu: values["proxy-cpu"] }),
  };
  process.stdout.write(`BENCH ${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra })}\n`);
};

const sandbox = await Sandbox.start();
try {
  const env = new ClusterEnv(sandbox);
  const image = requireImage(readImageIndex(), "proxy").ref;
  const dir = join(sandbox.run.dir, "bench-ingress");
  await mkdir(dir, { recursive: true });
  const caCert = join(dir, "ca.crt");
  const openssl = async (args: string[]): Promise<void> => {
    await sandbox.runner.run(["openssl", ...args]);
  };
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(dir, "ca.key")]);
  await openssl(["req", "-x509", "-new", "-key", join(dir, "ca.key"), "-subj", "/CN=bench-ca", "-days", "2", "-out", caCert]);
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(dir, "web.key")]);
  await openssl(["req", "-new", "-key", join(dir, "web.key"), "-subj", `/CN=${HOST}`, "-out", join(dir, "web.csr")]);
  await writeFile(join(dir, "web.ext"), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${HOST},DNS:*.${TAILNET_DOMAIN}\n`);
  await openssl(["x509", "-req", "-in", join(dir, "web.csr"), "-CA", caCert, "-CAkey", join(dir, "ca.key"), "-set_serial", "0x1", "-days", "2", "-extfile", join(dir, "web.ext"), "-out", join(dir, "web.crt")]);

  // The operator gets an ACME CA as well: Ingresses without a secretName take certificates from it.
  const [acmeCa, laptop] = await Promise.all([startTailnetAcmeCa(sandbox, { hostname: "bench-acme-ca", dir: join(dir, "acme") }), sandbox.addDevice("laptop")]);
  await installOperator(sandbox, { values: { replicaCount: 1, acme: acmeChartValues(acmeCa.pebble), proxy: { resources: PROXY_POD_RESOURCES } } });
  await env.ensureNamespace(NS);
  const apply = async (object: KubernetesObject): Promise<void> => {
    await env.objects.patch(object, undefined, undefined, "bench", true, PatchStrategy.ServerSideApply);
  };
  const labels = { app: "bulk" };
  await apply({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "bulk", namespace: NS },
    spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "bulk", image, imagePullPolicy: "IfNotPresent", command: ["/usr/local/bin/node", "-e", BACKEND] }] } } },
  } as KubernetesObject);
  await apply({ apiVersion: "v1", kind: "Service", metadata: { name: "bulk", namespace: NS }, spec: { selector: labels, ports: [{ name: "http", port: 80, targetPort: 8080 }] } } as KubernetesObject);
  await apply({ apiVersion: "v1", kind: "Service", metadata: { name: "bulk-l3", namespace: NS }, spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", selector: labels, ports: [{ name: "http", port: 80, targetPort: 8080 }] } } as KubernetesObject);
  await apply({
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: { name: "bulk-tls", namespace: NS },
    data: { "tls.crt": (await readFile(join(dir, "web.crt"))).toString("base64"), "tls.key": (await readFile(join(dir, "web.key"))).toString("base64") },
  } as KubernetesObject);
  const clusterIp = (await env.core.readNamespacedService({ namespace: NS, name: "bulk" })).spec?.clusterIP ?? "";
  await waitFor("the backend pod", async () => ((await env.apps.readNamespacedDeployment({ namespace: NS, name: "bulk" })).status?.readyReplicas === 1 ? true : undefined), { timeoutMs: 120_000 });

  const ingressFor = (name: string, secretName: string | undefined): V1Ingress => ({
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: { name, namespace: NS },
    spec: { ingressClassName: "tailscale", tls: [{ hosts: [name], ...(secretName === undefined ? {} : { secretName }) }], defaultBackend: { service: { name: "bulk", port: { number: 80 } } } },
  });
  /** Ready, with the MagicDNS name in the status (the operator writes both at once). */
  const waitReady = (name: string): Promise<V1Ingress> =>
    env.waitForIngress(NS, name, "Ready with its MagicDNS name in the status", (i) => ingressCondition(i)?.status === "True" && i.status?.loadBalancer?.ingress?.[0]?.hostname === `${name}.${TAILNET_DOMAIN}`, 300_000, 200);
  /** The first HTTPS 200 the laptop verifies against the given root. */
  const first200 = (name: string, root: string): Promise<DeviceHttpsAnswer> =>
    waitFor(`${name}: the first verified HTTPS 200`, async () => {
      const answer = await httpsFromDevice(sandbox.runner, laptop, `https://${name}.${TAILNET_DOMAIN}/?bytes=1`, root).catch(() => undefined);
      return answer?.status === 200 ? answer : undefined;
    }, { timeoutMs: 180_000, intervalMs: 100 });
  await apply(ingressFor("bulk", "bulk-tls"));
  await waitReady("bulk");

  const l3 = await env.waitForService(NS, "bulk-l3", "EXTERNAL-IP", (s: V1Service) => Boolean(s.status?.loadBalancer?.ingress?.[0]?.hostname), 300_000);
  const l3Host = l3.status?.loadBalancer?.ingress?.[0]?.hostname ?? "";

  const authKey = await sandbox.headscaleAdmin.createPreAuthKey({ user: await sandbox.headscaleAdmin.ensureUser("bench") });
  // Tailscale's operator's Ingress serve config, with the HTTP port in place of 443 (see above).
  const serveConfig = { TCP: { "80": { HTTP: true } }, Web: { [`${SERVE_HOST}:80`]: { Handlers: { "/": { Proxy: `http://${clusterIp}:80/` } } } } };
  await env.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: "serve" },
      spec: {
        restartPolicy: "Never",
        containers: [{
          name: "serve",
          image,
          imagePullPolicy: "IfNotPresent",
          command: ["/usr/local/bin/node", "-e", SERVE_POD],
          // A proxy pod's default resources, so both proxies get the same CPU weight (QoS class
          // Burstable, cpu.shares 10) when the machine is contended; a BestEffort pod would get 2.
          resources: PROXY_POD_RESOURCES,
          env: Object.entries({ AUTH_KEY: authKey, LOGIN_SERVER: sandbox.headscale.url, SERVE_CONFIG: JSON.stringify(serveConfig), ...OFFLINE_TAILSCALED_KNOBS }).map(([name, value]) => ({ name, value })),
        }],
      },
    },
  });

  // The processes on each path, for the CPU accounts. serve's tailscaled is its proxy as well.
  const marker = `/${namespacePrefix(sandbox.run.id)}`;
  // The proxy process: the Ingress proxy's nginx worker, which carries the bytes; the L3 proxy's
  // supervisor, which carries none (the kernel forwards them).
  const ourProxy = (hostname: string): PathPids => {
    const { supervisor, tailscaled, nginxWorkers } = proxyPids(sandbox.run.id, hostname);
    return { proxy: nginxWorkers[0] ?? supervisor, proxyTailscaled: tailscaled[0] };
  };
  const shared = { laptopTailscaled: tailscaledIn(laptop.host.namespace.name)[0], backend: runProcesses(marker, isBackend(BACKEND))[0] };

  const urls = {
    l7: { url: `https://${HOST}/`, args: ["--ca", caCert] },
    l3: { url: `http://${l3Host}/`, args: [] as string[] },
    serve: { url: `http://${SERVE_HOST}/`, args: [] as string[] },
  };
  type Path = keyof typeof urls;
  const paths = Object.keys(urls) as Path[];
  const perPath = <T>(): Record<Path, T[]> => Object.fromEntries(paths.map((p) => [p, []])) as unknown as Record<Path, T[]>;
  interface Load { mbps: number; rps: number; errors: number }
  const run = async (path: Path, query: string, connections: number): Promise<Load> => {
    const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("http-load.ts", [`${urls[path].url}${query}`, ...urls[path].args, "--connections", String(connections), "--seconds", String(seconds)])), { timeoutMs: (seconds + 60) * 1000 });
    return JSON.parse(stdout) as Load;
  };
  for (const path of paths) {
    await waitFor(`${path} answering`, async () => ((await run(path, "?bytes=1", 1).catch(() => undefined))?.errors === 0 ? true : undefined), { timeoutMs: 180_000, intervalMs: 1_000 });
  }
  const pathPids: Record<Path, PathPids> = {
    l7: { ...shared, ...ourProxy(HOST.split(".")[0] ?? "") },
    l3: { ...shared, ...ourProxy(l3Host.split(".")[0] ?? "") },
    serve: { ...shared, proxyTailscaled: runProcesses(marker, isServeTailscaled)[0] },
  };
  for (const path of paths) {
    const missing = (["laptopTailscaled", "proxyTailscaled", "backend"] as const).filter((account) => pathPids[path][account] === undefined);
    if (missing.length > 0) throw new Error(`${path}: no process found for ${missing.join(", ")}`);
  }

  const throughput = perPath<number>();
  const cpuRuns = perPath<CpuPerMib>();
  const rps = perPath<number>();
  const loads: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const path of paths) {
      const query = `?bytes=${largeBytes}`;
      const measured = await measureCpuPerMib(systemClock, pathPids[path], `${urls[path].url}${query}`, 1_500, (seconds - 2) * 1000, run(path, query, 1));
      throughput[path].push(measured.mbps);
      cpuRuns[path].push(measured.cpu);
    }
    for (const path of paths) rps[path].push((await run(path, "?bytes=13", Number(values.connections))).rps);
    loads.push(load());
    process.stderr.write(`round ${round + 1}/${rounds} (load ${load()}): ${paths.map((p) => `${p} ${throughput[p].at(-1)?.toFixed(0) ?? ""} Mbit/s ${rps[p].at(-1)?.toFixed(0) ?? ""} req/s`).join("; ")}\n`);
  }
  // The Ingress proxy pod's memory right after the load (its certificate from a Secret, so no ACME
  // client loaded): the supervisor, and the pod with nginx and tailscaled.
  const memorySamples: ProcessMemory[][] = [];
  for (let i = 0; i < MEMORY_SAMPLES; i++) {
    memorySamples.push(proxyProcesses(sandbox.run.id, HOST.split(".")[0] ?? ""));
    await systemClock.sleep(1_000);
  }
  const l7Pod = medianOf(memorySamples);
  const supervisor = l7Pod.find((p) => p.name === "tailnet-proxy");
  if (!supervisor) throw new Error("the Ingress proxy's supervisor was not measured");
  const nginxProcesses = l7Pod.filter((p) => p.name.startsWith("nginx"));
  if (nginxProcesses.length < 2) throw new Error("the Ingress proxy's nginx master and worker were not measured");

  // Ingress create -> Ready -> first verified HTTPS 200, per certificate source: a fresh Ingress
  // (a fresh device and name, so a certificate is really issued) each time, the sources alternating.
  const { pebble, rootFile } = acmeCa;
  const sources = { secret: { secretName: "bulk-tls", root: caCert }, acme: { secretName: undefined, root: rootFile } };
  type Source = keyof typeof sources;
  const toReady: Record<Source, number[]> = { secret: [], acme: [] };
  const to200: Record<Source, number[]> = { secret: [], acme: [] };
  const certificateLoads: string[] = [];
  const secretSerial = (await sandbox.runner.run(["openssl", "x509", "-in", join(dir, "web.crt"), "-noout", "-serial"])).stdout.trim().split("=")[1]?.toLowerCase().replace(/^0+/, "") ?? "";
  /** One fresh Ingress timed; its served certificate must be the source's (the Secret's, or the one Pebble just issued for it). */
  const timeIngress = async (name: string, source: Source): Promise<string> => {
    const issuedBefore = await pebble.issuedSerials();
    const created = performance.now();
    await apply(ingressFor(name, sources[source].secretName));
    await waitReady(name);
    toReady[source].push((performance.now() - created) / 1000);
    const answer = await first200(name, sources[source].root);
    to200[source].push((performance.now() - created) / 1000);
    const issued = (await pebble.issuedSerials()).filter((serial) => !issuedBefore.includes(serial));
    const expected = source === "acme" ? issued : [secretSerial];
    if (issued.length !== (source === "acme" ? 1 : 0) || expected[0] !== answer.serial) {
      throw new Error(`${name}: served serial ${answer.serial} (the Secret's is ${secretSerial}); Pebble issued ${issued.join(", ") || "none"} meanwhile`);
    }
    return answer.serial;
  };
  let lastAcme = { name: "", serial: "" };
  for (let round = 1; round <= rounds; round++) {
    const order: Source[] = round % 2 === 1 ? ["secret", "acme"] : ["acme", "secret"];
    for (const source of order) {
      const name = `cert-${source}-${round}`;
      const serial = await timeIngress(name, source);
      if (source === "acme") lastAcme = { name, serial };
      process.stderr.write(`${name}: create -> Ready ${toReady[source].at(-1)?.toFixed(2) ?? ""} s -> first HTTPS 200 ${to200[source].at(-1)?.toFixed(2) ?? ""} s (serial ${serial}; load ${load()})\n`);
      // Gone before the next one, so proxies do not pile up on the node; the last ACME one stays
      // for the restart below.
      if (source === "acme" && round === rounds) continue;
      await env.objects.delete(ingressFor(name, undefined));
      await waitFor(`${name} deleted (proxy and device removed)`, async () => ((await env.ingress(NS, name)) ? undefined : true), { timeoutMs: 300_000, intervalMs: 500 });
    }
    certificateLoads.push(load());
  }

  // The ACME proxy's pod deleted: its successor serves the certificate from its state Secret.
  const oldPod = await env.runningProxyPod(NS, lastAcme.name);
  if (!oldPod) throw new Error(`${lastAcme.name}: no running proxy pod`);
  const issuedBeforeRestart = await pebble.issuedSerials();
  const deleted = performance.now();
  await env.core.deleteNamespacedPod({ name: oldPod.name, namespace: OPERATOR_NAMESPACE });
  await waitFor(`${lastAcme.name}: a new proxy pod running`, async () => {
    const next = await env.runningProxyPod(NS, lastAcme.name);
    return next && next.uid !== oldPod.uid ? next : undefined;
  }, { timeoutMs: 300_000, intervalMs: 200 });
  const restartToPod = (performance.now() - deleted) / 1000;
  const afterRestart = await first200(lastAcme.name, rootFile);
  const restartTo200 = (performance.now() - deleted) / 1000;
  const issuedOnRestart = (await pebble.issuedSerials()).length - issuedBeforeRestart.length;
  const sameCertificate = afterRestart.serial === lastAcme.serial;

  const t = Object.fromEntries(paths.map((p) => [p, median(throughput[p])])) as Record<Path, number>;
  const r = Object.fromEntries(paths.map((p) => [p, median(rps[p])])) as Record<Path, number>;
  const cpu = Object.fromEntries(paths.map((p) => [p, medianCpu(cpuRuns[p])])) as Record<Path, CpuPerMib>;
  bench("ingress_l3_throughput", t.l3, "Mbit/s");
  bench("ingress_serve_http_throughput", t.serve, "Mbit/s");
  bench("ingress_l7_https_throughput_vs_l3", t.l7, "Mbit/s", t.l3);
  bench("ingress_l7_https_throughput_vs_serve", t.l7, "Mbit/s", t.serve);
  bench("ingress_l3_cpu_per_mib", cpu.l3.machine, "ms/MiB");
  bench("ingress_serve_cpu_per_mib", cpu.serve.machine, "ms/MiB");
  bench("ingress_l7_cpu_per_mib_vs_l3", cpu.l7.machine, "ms/MiB", cpu.l3.machine);
  bench("ingress_l7_proxy_process_cpu_per_mib", cpu.l7.proxy, "ms/MiB");
  bench("ingress_l3_requests", r.l3, "req/s");
  bench("ingress_serve_http_requests", r.serve, "req/s");
  bench("ingress_l7_https_requests_vs_l3", r.l7, "req/s", r.l3);
  bench("ingress_l7_https_requests_vs_serve", r.l7, "req/s", r.serve);
  const ready = { secret: median(toReady.secret), acme: median(toReady.acme) };
  const first = { secret: median(to200.secret), acme: median(to200.acme) };
  bench("ingress_create_to_status_secret", ready.secret, "s");
  bench("ingress_create_to_first_https_200_secret", first.secret, "s");
  bench("ingress_create_to_status_acme", ready.acme, "s", ready.secret);
  bench("ingress_create_to_first_https_200_acme", first.acme, "s", first.secret);
  bench("ingress_acme_proxy_restart_to_https_200", restartTo200, "s");
  bench("ingress_acme_proxy_restart_certificates_issued", issuedOnRestart, "certificates");
  bench("ingress_l7_supervisor_rss", supervisor.rss, "MiB");
  bench("ingress_l7_supervisor_rss_anon", supervisor.rssAnon, "MiB");
  bench("ingress_l7_proxy_pod_rss", sumOf(l7Pod, "rss"), "MiB");
  bench("ingress_l7_nginx_rss", sumOf(nginxProcesses, "rss"), "MiB");
  bench("ingress_load_average_1m", loadavg()[0] ?? 0, "load");
  const row = (label: string, p: Path): string =>
    `  ${label.padEnd(44)} ${t[p].toFixed(0).padStart(6)} Mbit/s (${(t[p] / t.l3).toFixed(2)}x L3)  ${r[p].toFixed(0).padStart(6)} req/s (${(r[p] / r.l3).toFixed(2)}x L3)\n`;
  process.stdout.write(`\nIngress paths, laptop -> backend pod, median of ${rounds} rounds x ${seconds} s (${values.mib} MiB bodies on 1 connection; 13-byte bodies on ${values.connections} keep-alive connections):\n`);
  process.stdout.write(row("our Ingress proxy (HTTPS, Secret certificate)", "l7"));
  process.stdout.write(row("our L3 proxy (LoadBalancer Service, HTTP)", "l3"));
  process.stdout.write(row("tailscale serve, userspace (HTTP)", "serve"));
  process.stdout.write(`  L7 / serve: throughput ${(t.l7 / t.serve).toFixed(2)}x, requests ${(r.l7 / r.serve).toFixed(2)}x\n`);
  process.stdout.write(`\nCPU per MiB carried (ms), ${values.mib} MiB bodies, median of ${rounds} runs (the run's middle ${seconds - 2} s); serve's tailscaled is its proxy; rest = machine - named processes (softirq, the cluster):\n`);
  process.stdout.write(cpuTable([{ label: "L7 (ours)", cpu: cpu.l7 }, { label: "L3 (ours)", cpu: cpu.l3 }, { label: "serve", cpu: cpu.serve }]));
  process.stdout.write(`  L7 - L3: ${(cpu.l7.machine - cpu.l3.machine).toFixed(2)} ms/MiB, of which the proxy process ${cpu.l7.proxy.toFixed(2)}, both tailscaleds ${(cpu.l7.laptopTailscaled + cpu.l7.proxyTailscaled - cpu.l3.laptopTailscaled - cpu.l3.proxyTailscaled).toFixed(2)}, the client ${(cpu.l7.client - cpu.l3.client).toFixed(2)}\n`);
  process.stdout.write(`Ingress proxy memory after the load (median of ${MEMORY_SAMPLES} samples): supervisor ${supervisor.rss.toFixed(1)} MiB RSS (${supervisor.rssAnon.toFixed(1)} MiB private), nginx ${sumOf(nginxProcesses, "rss").toFixed(1)} MiB RSS, pod with tailscaled ${sumOf(l7Pod, "rss").toFixed(1)} MiB RSS\n`);
  process.stdout.write(`load average after each round: ${loads.join(" | ")}\n`);
  const list = (xs: readonly number[]): string => xs.map((x) => x.toFixed(1)).join(" / ");
  const certificateRow = (label: string, source: Source): string =>
    `  ${label.padEnd(44)} ${ready[source].toFixed(1).padStart(6)} s -> ${first[source].toFixed(1).padStart(6)} s   (each: ${list(toReady[source])} -> ${list(to200[source])} s)\n`;
  process.stdout.write(`\nIngress create -> Ready (MagicDNS name in status) -> first HTTPS 200 verified from the laptop, median of ${rounds} fresh Ingresses per source:\n`);
  process.stdout.write(certificateRow("TLS Secret (sandbox CA)", "secret"));
  process.stdout.write(certificateRow("ACME (Pebble on the tailnet, HTTP-01)", "acme"));
  process.stdout.write(`  ACME / Secret: first HTTPS 200 ${(first.acme / first.secret).toFixed(2)}x; Pebble issued ${(await pebble.issuedSerials()).length} certificates for ${rounds} ACME Ingresses\n`);
  process.stdout.write(`ACME proxy pod deleted -> new pod running ${restartToPod.toFixed(1)} s -> HTTPS 200 ${restartTo200.toFixed(1)} s; ${sameCertificate ? "the same certificate" : `another certificate (serial ${afterRestart.serial}, was ${lastAcme.serial})`}, ${issuedOnRestart} issued meanwhile\n`);
  process.stdout.write(`load average after each certificate round: ${certificateLoads.join(" | ")}\n`);
} finally {
  await sandbox.stop();
}
