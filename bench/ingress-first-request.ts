// Where an Ingress's first request goes after Ready (a diagnostic, not a figure of `make bench`):
// fresh Ingresses with a TLS Secret, one after another; right after each is Ready, a tailnet laptop
// resolves the name, connects (TCP) and handshakes (TLS) with timings, then fetches over HTTPS.
// Then a route change: the time until the new path answers (nginx reloaded), and the proxy pod's
// log lines from nginx or at warn and above. ADR 0035 ("Result") has what it found.
//
//   node bench/ingress-first-request.ts [--ingresses 6]
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PatchStrategy, type KubernetesObject, type V1Ingress } from "@kubernetes/client-node";
import { Sandbox, TAILNET_DOMAIN } from "../src/sandbox/sandbox.ts";
import { installOperator } from "../src/sandbox/operator-install.ts";
import { readImageIndex, requireImage } from "../src/sandbox/cluster/image-import.ts";
import { nodeToolArgv } from "../src/sandbox/tools.ts";
import { createCa, issueServingCert } from "../src/sandbox/pki.ts";
import { waitFor } from "../src/shared/clock.ts";
import { ClusterEnv, ingressCondition, OPERATOR_NAMESPACE } from "../test/helpers/cluster-env.ts";

const { values } = parseArgs({ options: { ingresses: { type: "string", default: "6" } } });
const NS = "first-request";

/** From inside the laptop: DNS, TCP connect and TLS handshake times to host:443, in ms. */
const PROBE = (host: string): string => `
const { Resolver } = require("node:dns").promises;
const resolver = new Resolver({ timeout: 2000, tries: 3 });
resolver.setServers(["100.100.100.100"]);
const t0 = Date.now();
resolver.resolve4(${JSON.stringify(host)}).then(([address]) => {
  const t1 = Date.now();
  const socket = require("node:net").connect(443, address, () => {
    const t2 = Date.now();
    require("node:tls").connect({ socket, servername: ${JSON.stringify(host)}, rejectUnauthorized: false }, () => {
      console.log(JSON.stringify({ dnsMs: t1 - t0, tcpMs: t2 - t1, tlsMs: Date.now() - t2 }));
      process.exit(0);
    });
  });
  socket.on("error", (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(0); });
}, (e) => console.log(JSON.stringify({ error: "dns: " + e.message })));
`;

const sandbox = await Sandbox.start();
try {
  const env = new ClusterEnv(sandbox);
  const image = requireImage(readImageIndex(), "proxy").ref;
  const dir = join(sandbox.run.dir, "first-request");
  await mkdir(dir, { recursive: true });
  const ca = await createCa(sandbox.runner, dir, "first-request");
  const web = await issueServingCert(sandbox.runner, ca, dir, "web", { ips: [], dns: [`*.${TAILNET_DOMAIN}`] });
  const laptop = await sandbox.addDevice("laptop");
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  await env.ensureNamespace(NS);
  const apply = (object: KubernetesObject): Promise<unknown> => env.objects.patch(object, undefined, undefined, "first-request", true, PatchStrategy.ServerSideApply);
  const labels = { app: "echo" };
  await apply({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "echo", namespace: NS }, spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "echo", image, imagePullPolicy: "IfNotPresent", command: ["/usr/local/bin/node", "-e", "require('node:http').createServer((q, s) => s.end('ok')).listen(8080)"] }] } } } } as KubernetesObject);
  await apply({ apiVersion: "v1", kind: "Service", metadata: { name: "echo", namespace: NS }, spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] } } as KubernetesObject);
  await apply({ apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name: "tls", namespace: NS }, data: { "tls.crt": (await readFile(web.cert)).toString("base64"), "tls.key": (await readFile(web.key)).toString("base64") } } as KubernetesObject);
  const fetch = (url: string): Promise<string> =>
    sandbox.runner.run(laptop.exec(nodeToolArgv("https-client.ts", ["get", url, "--ca", ca.cert])), { timeoutMs: 20_000 }).then((r) => r.stdout, (e: unknown) => `error: ${String(e).slice(-160)}`);

  const count = Number(values.ingresses);
  for (let i = 1; i <= count; i++) {
    const name = `first-${String(i)}`;
    const host = `${name}.${TAILNET_DOMAIN}`;
    const ingress: V1Ingress = { apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name, namespace: NS }, spec: { ingressClassName: "tailscale", tls: [{ hosts: [name], secretName: "tls" }], defaultBackend: { service: { name: "echo", port: { number: 80 } } } } };
    const created = performance.now();
    const at = (): string => ((performance.now() - created) / 1000).toFixed(2);
    await apply(ingress);
    await env.waitForIngress(NS, name, "Ready", (x) => ingressCondition(x)?.status === "True" && Boolean(x.status?.loadBalancer?.ingress?.[0]?.hostname), 300_000, 100);
    const ready = at();
    const probe = await sandbox.runner.run(laptop.exec([process.execPath, "-e", PROBE(host)]), { timeoutMs: 20_000 }).then((r) => r.stdout.trim(), (e: unknown) => `error: ${String(e).slice(-120)}`);
    const probed = at();
    const first = await fetch(`https://${host}/`);
    process.stdout.write(`${name}: Ready ${ready} s; probe until ${probed} s ${probe}; HTTPS until ${at()} s: ${first.includes('"status":200') ? "200" : first.slice(0, 160)}\n`);
    if (i === count) {
      const changed = performance.now();
      await apply({ ...ingress, spec: { ...ingress.spec, rules: [{ http: { paths: [{ path: "/new", pathType: "Prefix", backend: { service: { name: "echo", port: { number: 80 } } } }] } }] } } as KubernetesObject);
      await waitFor("the new route", async () => ((await fetch(`https://${host}/new/x`)).includes('"status":200') ? true : undefined), { timeoutMs: 60_000, intervalMs: 200 });
      process.stdout.write(`${name}: a route change answers after ${((performance.now() - changed) / 1000).toFixed(2)} s\n`);
      const pod = await env.runningProxyPod(NS, name);
      if (!pod) throw new Error(`${name}: no running proxy pod`);
      const log = await env.core.readNamespacedPodLog({ name: pod.name, namespace: OPERATOR_NAMESPACE });
      process.stdout.write(`${name}: proxy log lines from nginx or at warn and above:\n${log.split("\n").filter((line) => /"component":"nginx"|"msg":"nginx|"level":"(warn|error)"/.test(line)).join("\n")}\n`);
    }
    await env.objects.delete(ingress);
  }
} finally {
  await sandbox.stop();
}
