// Ingress (L7) on the real node: the operator installed by Helm, an Ingress proxy pod serving
// HTTPS on its tailnet IPs with a certificate from a sandbox CA (a TLS Secret), backends in real
// pods behind kube-proxy, and tailnet devices (a user's laptop, a tagged bot) as clients.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PatchStrategy, type KubernetesObject, type V1Ingress, type V1Secret } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, ingressCondition as condition, seedManifest } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { readImageIndex, requireImage } from "../../src/sandbox/cluster/image-import.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const PROXY_IMAGE = requireImage(readImageIndex(), "proxy").ref;
const ECHO_SCRIPT = readFileSync(new URL("../fixtures/echo-backend.cjs", import.meta.url), "utf8");
const NS = "l7";
const dir = join(sandbox.run.dir, "ingress-test");
const caCert = join(dir, "ca.crt");
let laptop: TailnetDevice;
let bot: TailnetDevice;

async function openssl(args: string[]): Promise<void> {
  await sandbox.runner.run(["openssl", ...args]);
}

/** A serving certificate for name from the test CA, with a random serial; returns the PEMs. */
async function issue(name: string, file: string): Promise<{ cert: string; key: string }> {
  const base = join(dir, file);
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${base}.key`]);
  await openssl(["req", "-new", "-key", `${base}.key`, "-subj", `/CN=${name}`, "-out", `${base}.csr`]);
  await writeFile(`${base}.ext`, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${name}\n`);
  await openssl(["x509", "-req", "-in", `${base}.csr`, "-CA", caCert, "-CAkey", join(dir, "ca.key"), "-set_serial", `0x${Date.now().toString(16)}`, "-days", "2", "-extfile", `${base}.ext`, "-out", `${base}.crt`]);
  return { cert: await readFile(`${base}.crt`, "utf8"), key: await readFile(`${base}.key`, "utf8") };
}

function tlsSecret(name: string, pair: { cert: string; key: string }): V1Secret {
  return { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name, namespace: NS }, data: { "tls.crt": Buffer.from(pair.cert).toString("base64"), "tls.key": Buffer.from(pair.key).toString("base64") } };
}

async function applyObject(object: KubernetesObject): Promise<void> {
  await env.objects.patch(object, undefined, undefined, "ingress-test", true, PatchStrategy.ServerSideApply);
}

/** An echo backend: a Deployment of the proxy image running test/fixtures/echo-backend.cjs, and its Service. */
async function echoBackend(name: string): Promise<void> {
  const labels = { app: name };
  await applyObject({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "echo", image: PROXY_IMAGE, imagePullPolicy: "IfNotPresent", command: ["/usr/local/bin/node", "-e", ECHO_SCRIPT], env: [{ name: "NAME", value: name }] }] } } },
  } as KubernetesObject);
  await applyObject({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: NS }, spec: { selector: labels, ports: [{ name: "http", port: 80, targetPort: 8080 }] } } as KubernetesObject);
}

function ingress(name: string, spec: V1Ingress["spec"], annotations: Record<string, string> = {}): V1Ingress {
  return { apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name, namespace: NS, annotations }, spec: { ingressClassName: "tailscale", ...spec } };
}

function waitForIngress(namespace: string, name: string, what: string, check: (i: V1Ingress) => boolean, timeoutMs = 240_000): Promise<V1Ingress> {
  return env.waitForIngress(namespace, name, what, check, timeoutMs, 300);
}

interface Fetched { status: number; body: string; serial?: string; reused?: boolean; alpn?: string }

async function https(device: TailnetDevice, url: string, args: string[] = []): Promise<Fetched> {
  const { stdout } = await sandbox.runner.run(device.exec(nodeToolArgv("https-client.ts", ["get", url, "--ca", caCert, ...args])), { timeoutMs: 20_000 });
  return JSON.parse(stdout) as Fetched;
}

const echoed = (fetched: Fetched): { name: string; path: string; headers: Record<string, string> } => JSON.parse(fetched.body) as never;
const WEB = `web.${TAILNET_DOMAIN}`;

before(async () => {
  await mkdir(dir, { recursive: true });
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(dir, "ca.key")]);
  await openssl(["req", "-x509", "-new", "-key", join(dir, "ca.key"), "-subj", "/CN=ingress-test-ca", "-days", "2", "-out", caCert]);
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  [laptop, bot] = await Promise.all([sandbox.addDevice("laptop"), sandbox.addDevice("bot", { tags: ["tag:k8s"] })]);
  await env.ensureNamespace(NS);
  await echoBackend("echo-a");
  await echoBackend("echo-b");
  await applyObject(tlsSecret("web-tls", await issue(WEB, "web-1")));
});

describe("Ingress (L7)", () => {
  it("serves HTTPS from a TLS Secret on the tailnet, routing paths to two backends and the rest to the default backend", async () => {
    await applyObject(ingress("web", {
      tls: [{ hosts: ["web"], secretName: "web-tls" }],
      defaultBackend: { service: { name: "echo-b", port: { number: 80 } } },
      rules: [{ http: { paths: [
        { path: "/a", pathType: "Prefix", backend: { service: { name: "echo-a", port: { number: 80 } } } },
        { path: "/exact", pathType: "Exact", backend: { service: { name: "echo-a", port: { name: "http" } } } },
      ] } }],
    }, { "tailscale.com/funnel": "true" }));
    const ready = await waitForIngress(NS, "web", "ready with its MagicDNS name", (i) => condition(i)?.status === "True" && i.status?.loadBalancer?.ingress?.[0]?.hostname === WEB);
    assert.deepEqual(ready.status?.loadBalancer?.ingress?.[0]?.ports?.map((p) => p.port), [443]);
    // Headscale has no Funnel: said so, and tailnet serving goes on.
    assert.equal(condition(ready, "TailscaleFunnel")?.reason, "FunnelUnavailable");
    assert.equal((await env.waitForEvent(NS, "web", "FunnelUnavailable", (e) => e.reason === "FunnelUnavailable")).type, "Warning");

    const first = await waitFor("the first HTTPS answer", () => https(laptop, `https://${WEB}/a/x?q=1`).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 500 });
    assert.equal(first.status, 200);
    assert.equal(echoed(first).name, "echo-a");
    assert.equal(echoed(first).path, "/a/x?q=1");
    assert.equal(echoed(await https(laptop, `https://${WEB}/exact`)).name, "echo-a");
    assert.equal(echoed(await https(laptop, `https://${WEB}/exact/more`)).name, "echo-b", "Exact does not match below it");
    assert.equal(echoed(await https(laptop, `https://${WEB}/ab`)).name, "echo-b", "/a is not a prefix of /ab");
    // Routed on the path as a backend reads it (decoded, dot segments resolved), so an escape
    // cannot reach a backend another rule's path names; the backend gets the path as sent.
    const escaped = echoed(await https(laptop, `https://${WEB}/%61/x`));
    assert.deepEqual([escaped.name, escaped.path], ["echo-a", "/%61/x"]);
    const h2 = await https(laptop, `https://${WEB}/a/h2`, ["--http2"]);
    assert.equal(h2.alpn, "h2");
    assert.equal(echoed(h2).name, "echo-a");
    const streamed = await https(laptop, `https://${WEB}/stream`);
    assert.equal(streamed.body, "chunk 0\nchunk 1\nchunk 2\n");
  });

  it("passes the caller's tailnet identity to backends and strips spoofed identity headers", async () => {
    const spoof = ["--header", "Tailscale-User-Login: mallory@example.com", "--header", "Tailscale-Node-Tags: tag:admin", "--header", "Tailscale-App-Capabilities: {}", "--header", "X-Forwarded-For: 1.2.3.4"];
    const fromLaptop = echoed(await https(laptop, `https://${WEB}/a/me`, spoof)).headers;
    const laptopIp = (await laptop.status()).tailscaleIps.find((ip) => !ip.includes(":"));
    assert.match(fromLaptop["tailscale-user-login"] ?? "", /tester/);
    assert.ok(fromLaptop["tailscale-user-name"]);
    assert.equal(fromLaptop["tailscale-node-tags"], undefined);
    assert.equal(fromLaptop["tailscale-app-capabilities"], undefined, "every Tailscale-* header a client sends is removed");
    assert.equal(fromLaptop["x-forwarded-for"], laptopIp);
    assert.equal(fromLaptop["x-forwarded-proto"], "https");
    assert.equal(fromLaptop["x-forwarded-host"], WEB);
    const fromBot = echoed(await https(bot, `https://${WEB}/a/me`, spoof)).headers;
    assert.equal(fromBot["tailscale-node-tags"], "tag:k8s");
    assert.equal(fromBot["tailscale-user-login"], undefined, "a tagged device acts for its tags, and the spoofed login is gone");
  });

  it("passes WebSockets through", async () => {
    const { stdout } = await sandbox.runner.run(laptop.exec(nodeToolArgv("https-client.ts", ["ws", `https://${WEB}/a/ws`, "--ca", caCert, "--message", "hello"])), { timeoutMs: 20_000 });
    assert.deepEqual(JSON.parse(stdout), { echoed: "echo-a:hello" });
  });

  it("serves a rotated certificate to new connections while an open connection keeps working", async () => {
    const until = join(dir, "rotated");
    const argv = laptop.exec(nodeToolArgv("https-client.ts", ["hold", `https://${WEB}/a/hold`, "--ca", caCert, "--until", until]));
    const child = spawn(argv[0] ?? "", argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const before = await waitFor("the held connection's first answer", () => {
      if (err) throw new Error(`https-client hold: ${err}`);
      return Promise.resolve(out.includes("\n") ? (JSON.parse(out.split("\n")[0] ?? "") as Fetched) : undefined);
    }, { timeoutMs: 20_000, intervalMs: 100 });
    assert.equal(before.status, 200);

    await applyObject(tlsSecret("web-tls", await issue(WEB, "web-2")));
    const rotated = await waitFor("a new connection to get the new certificate", async () => {
      const fresh = await https(laptop, `https://${WEB}/a/new`);
      return fresh.serial !== before.serial ? fresh : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    assert.equal(rotated.status, 200);
    await writeFile(until, "");
    assert.equal(await exited, 0, `${out}${err}`);
    const lines = out.trim().split("\n");
    const last = JSON.parse(lines[lines.length - 1] ?? "") as Fetched;
    assert.equal(last.status, 200);
    assert.equal(last.reused, true, "the same connection");
    assert.equal(last.serial, before.serial, "the open connection keeps the certificate it started with");
  });

  it("reports bad input with a condition and a Warning Event, creates nothing, and recovers when fixed", async () => {
    // The same hostname as web: the older Ingress keeps it.
    await applyObject(ingress("dup", { tls: [{ hosts: [`web.${TAILNET_DOMAIN}`], secretName: "web-tls" }], defaultBackend: { service: { name: "echo-a", port: { number: 80 } } } }));
    const dup = await waitForIngress(NS, "dup", "hostname in use", (i) => condition(i)?.reason === "HostnameInUse");
    assert.match(condition(dup)?.message ?? "", /already used by Ingress l7\/web/);
    // A backend that does not exist, then a certificate for another name.
    await applyObject(tlsSecret("other-tls", await issue(`elsewhere.${TAILNET_DOMAIN}`, "other")));
    await applyObject(ingress("late", { tls: [{ hosts: ["late"], secretName: "web-tls" }], defaultBackend: { service: { name: "echo-c", port: { number: 80 } } } }));
    const missing = await waitForIngress(NS, "late", "missing backend", (i) => condition(i)?.reason === "InvalidIngressBackend");
    assert.match(condition(missing)?.message ?? "", /echo-c .* does not exist/);
    await applyObject(ingress("late", { tls: [{ hosts: ["late"], secretName: "other-tls" }], defaultBackend: { service: { name: "echo-a", port: { number: 80 } } } }));
    const wrongName = await waitForIngress(NS, "late", "certificate for another name", (i) => condition(i)?.reason === "InvalidTLSSecret");
    assert.match(condition(wrongName)?.message ?? "", /elsewhere.* not for late/);
    await applyObject(ingress("late", { tls: [{ hosts: ["late"], secretName: "missing-tls" }], defaultBackend: { service: { name: "echo-a", port: { number: 80 } } } }));
    await waitForIngress(NS, "late", "missing Secret", (i) => /missing-tls does not exist/.test(condition(i)?.message ?? ""));
    for (const name of ["dup", "late"]) {
      assert.deepEqual(await env.children(NS, name), [], `nothing made for ${name}`);
      await env.waitForEvent(NS, name, "a Warning", (e) => e.type === "Warning");
    }
    // Fixed: the certificate now exists, for the right name.
    await applyObject(tlsSecret("missing-tls", await issue(`late.${TAILNET_DOMAIN}`, "late")));
    // A new proxy joins the tailnet: as slow as the first one on a loaded machine.
    await waitForIngress(NS, "late", "ready after the fix", (i) => condition(i)?.status === "True", 300_000);
    assert.equal(echoed(await https(laptop, `https://late.${TAILNET_DOMAIN}/`)).name, "echo-a");
  });

  it("gives the seed's Ingress manifests, applied unchanged, the Headscale conditions", async () => {
    await env.apply(seedManifest("l7-ingress.yaml"));
    const plain = await waitForIngress("tailscaletest", "nginx-tailscale", "no certificate source", (i) => condition(i)?.reason === "CertificateUnavailable");
    assert.match(condition(plain)?.message ?? "", /secretName.*ACME/s);
    for (const object of seedManifest("l7-ingress-funnel.yaml")) await applyObject(object);
    const funnel = await waitForIngress("tailscaletest", "nginx-tailscale", "Funnel unavailable", (i) => condition(i, "TailscaleFunnel")?.reason === "FunnelUnavailable");
    assert.equal(condition(funnel)?.reason, "CertificateUnavailable");
    await env.waitForEvent("tailscaletest", "nginx-tailscale", "Warning CertificateUnavailable", (e) => e.type === "Warning" && e.reason === "CertificateUnavailable");
    assert.deepEqual(await env.children("tailscaletest", "nginx-tailscale"), []);
    // The seed's namespace is shared with the L3 seed manifest other files apply: leave none of it.
    await env.core.deleteNamespace({ name: "tailscaletest" });
    await waitFor("namespace tailscaletest to be gone", async () => (await env.core.readNamespace({ name: "tailscaletest" }).then(() => undefined, () => true)), { timeoutMs: 180_000 });
  });

  it("an Ingress asking for a hostname another tailnet device holds is told whose it is (HostnameTaken), and leaves nothing when deleted", async () => {
    // The laptop holds its name: the proxy's device gets a suffix, which the certificate for the
    // asked-for name cannot cover.
    const name = laptop.hostname;
    await applyObject(tlsSecret("squat-tls", await issue(`${name}.${TAILNET_DOMAIN}`, "squat")));
    await applyObject(ingress("squat", { tls: [{ hosts: [name], secretName: "squat-tls" }], defaultBackend: { service: { name: "echo-a", port: { number: 80 } } } }));
    const squat = await waitForIngress(NS, "squat", "hostname taken", (i) => condition(i)?.reason === "HostnameTaken", 300_000);
    assert.equal(condition(squat)?.status, "False");
    assert.match(condition(squat)?.message ?? "", new RegExp(`hostname "${name}" is taken by another device of the tailnet.*${name}-\\d+\\.`));
    await env.waitForEvent(NS, "squat", "Warning HostnameTaken", (e) => e.type === "Warning" && e.reason === "HostnameTaken");
    await env.objects.delete({ apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name: "squat", namespace: NS } });
    await waitFor("l7/squat to be deleted", async () => ((await env.ingress(NS, "squat")) ? undefined : true), { timeoutMs: 120_000 });
    assert.deepEqual(await env.children(NS, "squat"), []);
    assert.equal((await env.devices(name)).length, 1, "the laptop keeps its name and device");
  });

  it("removes the proxy and the device when the Ingress is deleted", async () => {
    assert.equal((await env.devices("web")).length, 1);
    await env.objects.delete({ apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name: "web", namespace: NS } });
    await waitFor("l7/web to be deleted", async () => ((await env.ingress(NS, "web")) ? undefined : true), { timeoutMs: 120_000 });
    assert.deepEqual(await env.devices("web"), []);
    assert.deepEqual(await env.children(NS, "web"), []);
  });
});
