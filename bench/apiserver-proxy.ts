// API server proxy figures on the sandbox's real node (a benchmark, not a test): from a tailnet
// laptop (user alice, granted group tailnet-readers by the sandbox policy), the same requests
// against the API server directly (admin token, the cluster's CA) and through the API server
// proxy in auth mode (HTTPS with a sandbox CA certificate; whois + impersonation on every
// request), in alternating rounds:
//  - GET of a small list (pods of an empty namespace) over one keep-alive connection: median, p90;
//  - LIST of --objects ConfigMaps: median time;
//  - `kubectl get pods` wall time (process start, discovery cache cold each time): median.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from "@kubernetes/client-node";
import { Sandbox, TAILNET_DOMAIN } from "../src/sandbox/sandbox.ts";
import { installOperator, OPERATOR_NAMESPACE } from "../src/sandbox/operator-install.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { resolveKubectl } from "../src/sandbox/binaries.ts";
import { waitFor } from "../src/shared/clock.ts";

const { values } = parseArgs({ options: { objects: { type: "string", default: "1000" }, rounds: { type: "string", default: "2" }, kubectl: { type: "string", default: "10" } } });
const OBJECTS = Number(values.objects);
const HOSTNAME = "bench-k8s-api";
const FQDN = `${HOSTNAME}.${TAILNET_DOMAIN}`;
const NS = "bench";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const bench = (name: string, value: number, unit: string): void => {
  process.stdout.write(`BENCH ${JSON.stringify({ name, value: Number(value.toFixed(3)), unit })}\n`);
};
const progress = (message: string): void => {
  process.stderr.write(`[bench apiserver-proxy] ${message}\n`);
};

interface Latency { getMedianMs: number; getP90Ms: number; listMedianMs: number; listBytes: number; listItems: number }

const sandbox = await Sandbox.start();
try {
  const dir = join(sandbox.run.dir, "bench-apiserver-proxy");
  await mkdir(dir, { recursive: true });
  const openssl = async (args: string[]): Promise<void> => {
    await sandbox.runner.run(["openssl", ...args]);
  };
  const ca = join(dir, "ca.crt");
  await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "ca.key"), "-subj", "/CN=bench-ca", "-days", "2", "-out", ca]);
  await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "tls.key"), "-subj", `/CN=${FQDN}`, "-out", join(dir, "tls.csr")]);
  await writeFile(join(dir, "tls.ext"), `subjectAltName=DNS:${FQDN}\nextendedKeyUsage=serverAuth\n`);
  await openssl(["x509", "-req", "-in", join(dir, "tls.csr"), "-CA", ca, "-CAkey", join(dir, "ca.key"), "-set_serial", "0x42", "-days", "2", "-extfile", join(dir, "tls.ext"), "-out", join(dir, "tls.crt")]);

  const kc = sandbox.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const apply = async (object: KubernetesObject): Promise<void> => {
    await objects.patch(object, undefined, undefined, "bench", true, PatchStrategy.ServerSideApply);
  };
  for (const name of [OPERATOR_NAMESPACE, NS]) await apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  await apply({
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: { name: "bench-k8s-api-tls", namespace: OPERATOR_NAMESPACE },
    data: { "tls.crt": (await readFile(join(dir, "tls.crt"))).toString("base64"), "tls.key": (await readFile(join(dir, "tls.key"))).toString("base64") },
  } as KubernetesObject);
  progress("installing the operator with the API server proxy (auth)");
  await installOperator(sandbox, { values: { replicaCount: 1, apiServerProxy: { mode: "auth", hostname: HOSTNAME, tls: { secretName: "bench-k8s-api-tls" } } } });
  const rbac = "rbac.authorization.k8s.io/v1";
  await apply({ apiVersion: rbac, kind: "Role", metadata: { name: "reader", namespace: NS }, rules: [{ apiGroups: [""], resources: ["pods", "configmaps"], verbs: ["get", "list"] }] } as KubernetesObject);
  await apply({ apiVersion: rbac, kind: "RoleBinding", metadata: { name: "tailnet-readers", namespace: NS }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "reader" }, subjects: [{ kind: "Group", name: "tailnet-readers", apiGroup: "rbac.authorization.k8s.io" }] } as KubernetesObject);
  progress(`creating ${OBJECTS} ConfigMaps`);
  for (let i = 0; i < OBJECTS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, OBJECTS - i) }, (_, j) =>
      core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `cm-${i + j}` }, data: { value: "x".repeat(64) } } })));
  }
  const laptop = await sandbox.addDevice("bench-alice", { user: "alice" });

  const admin = parse(await readFile(sandbox.kubeconfigPath, "utf8")) as { clusters: { cluster: { server: string; "certificate-authority": string } }[]; users: { user: { token: string } }[] };
  const direct = { server: admin.clusters[0]?.cluster.server ?? "", ca: admin.clusters[0]?.cluster["certificate-authority"] ?? "", token: admin.users[0]?.user.token ?? "" };
  const proxyIp = await waitFor(`${HOSTNAME} on the tailnet`, async () => (await sandbox.headscaleAdmin.listNodes()).find((n) => n.given_name === HOSTNAME && n.online)?.ip_addresses?.find((ip) => !ip.includes(":")), { timeoutMs: 240_000, intervalMs: 500 });
  const viaProxy = { server: `https://${proxyIp}`, ca, token: "tailnet-identity", servername: FQDN };

  const measure = async (target: { server: string; ca: string; token: string; servername?: string }): Promise<Latency> => {
    const args = ["--server", target.server, "--ca", target.ca, "--token", target.token, "--get", `/api/v1/namespaces/${NS}/pods`, "--gets", "50", "--list", `/api/v1/namespaces/${NS}/configmaps`, "--lists", "5", ...(target.servername ? ["--servername", target.servername] : [])];
    const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("api-latency.ts", args)), { timeoutMs: 180_000 });
    return JSON.parse(stdout) as Latency;
  };
  progress("waiting for the proxy to serve");
  await waitFor("the API server proxy answering", () => measure(viaProxy).then(() => true, () => undefined), { timeoutMs: 180_000, intervalMs: 2_000 });

  const kubectl = resolveKubectl();
  const kubeconfigFor = async (name: string, target: { server: string; ca: string; token: string; servername?: string }): Promise<string> => {
    const file = join(dir, `${name}.kubeconfig`);
    await writeFile(file, stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: target.server, "certificate-authority": target.ca, ...(target.servername ? { "tls-server-name": target.servername } : {}) } }],
      users: [{ name: "u", user: { token: target.token } }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u", namespace: NS } }],
      "current-context": "c",
    }), { mode: 0o600 });
    return file;
  };
  const configs = { direct: await kubeconfigFor("direct", direct), proxy: await kubeconfigFor("proxy", viaProxy) };
  const kubectlMs = async (config: string): Promise<number> => {
    const start = performance.now();
    await sandbox.runner.run(laptop.exec([kubectl, "--kubeconfig", config, "--cache-dir", join(dir, `cache-${String(Math.random()).slice(2)}`), "get", "pods"]), { timeoutMs: 60_000 });
    return performance.now() - start;
  };

  const results = { direct: [] as Latency[], proxy: [] as Latency[] };
  const kubectlTimes = { direct: [] as number[], proxy: [] as number[] };
  for (let round = 0; round < Number(values.rounds); round++) {
    const order = round % 2 === 0 ? (["direct", "proxy"] as const) : (["proxy", "direct"] as const);
    for (const way of order) {
      progress(`round ${round + 1}: ${way}`);
      results[way].push(await measure(way === "direct" ? direct : viaProxy));
      for (let i = 0; i < Number(values.kubectl) / Number(values.rounds); i++) kubectlTimes[way].push(await kubectlMs(configs[way]));
    }
  }
  const pick = (way: "direct" | "proxy", key: keyof Latency): number => median(results[way].map((r) => r[key]));
  const rows = [
    ["GET (small list), median", "ms", pick("direct", "getMedianMs"), pick("proxy", "getMedianMs")],
    ["GET (small list), p90", "ms", pick("direct", "getP90Ms"), pick("proxy", "getP90Ms")],
    [`LIST ${OBJECTS} ConfigMaps, median`, "ms", pick("direct", "listMedianMs"), pick("proxy", "listMedianMs")],
    ["kubectl get pods (process), median", "ms", median(kubectlTimes.direct), median(kubectlTimes.proxy)],
  ] as const;
  const names = ["get_median", "get_p90", "list_median", "kubectl_get_pods"];
  rows.forEach(([, unit, directValue, proxyValue], i) => {
    bench(`apiserver_proxy_${names[i] ?? ""}_direct_ms`, directValue, unit);
    bench(`apiserver_proxy_${names[i] ?? ""}_proxy_ms`, proxyValue, unit);
    bench(`apiserver_proxy_${names[i] ?? ""}_ratio`, proxyValue / directValue, "x");
  });
  bench("apiserver_proxy_list_bytes", pick("proxy", "listBytes"), "bytes");
  process.stdout.write(`\nAPI server proxy (auth, HTTPS) vs direct, from a tailnet laptop; ${OBJECTS} ConfigMaps listed (${(pick("proxy", "listBytes") / 1024).toFixed(0)} KiB)\n`);
  process.stdout.write(`${"figure".padEnd(40)}${"direct".padStart(10)}${"proxy".padStart(10)}${"ratio".padStart(8)}\n`);
  for (const [label, unit, d, p] of rows) process.stdout.write(`${`${label} (${unit})`.padEnd(40)}${d.toFixed(1).padStart(10)}${p.toFixed(1).padStart(10)}${(p / d).toFixed(2).padStart(8)}\n`);
} finally {
  await sandbox.stop();
}
