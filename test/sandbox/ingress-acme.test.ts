// Ingress certificates from an ACME CA, end to end: the operator installed by the chart with
// acme.* pointing at Pebble (running as a tailnet device), an Ingress without a secretName, its
// proxy pod ordering a certificate and answering HTTP-01 on its tailnet port 80 (or TLS-ALPN-01
// on 443), and a tailnet laptop verifying the served certificate against Pebble's root. Certificates live 150 s so a
// renewal happens inside the test.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PatchStrategy, type KubernetesObject, type V1Ingress } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, ingressCondition as condition } from "../helpers/cluster-env.ts";
import { installOperator, OPERATOR_NAMESPACE, type Values } from "../../src/sandbox/operator-install.ts";
import { readImageIndex, requireImage } from "../../src/sandbox/cluster/image-import.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import { resolveKubectl } from "../../src/sandbox/binaries.ts";
import { stringify } from "yaml";
import { PEBBLE_ACME_PORT, type PebbleCa } from "../../src/sandbox/pebble.ts";
import { acmeChartValues, startTailnetAcmeCa } from "../../src/sandbox/tailnet-acme-ca.ts";
import { httpsFromDevice, type DeviceHttpsAnswer } from "../../src/sandbox/device-https.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const PROXY_IMAGE = requireImage(readImageIndex(), "proxy").ref;
const ECHO_SCRIPT = readFileSync(new URL("../fixtures/echo-backend.cjs", import.meta.url), "utf8");
const NS = "l7-acme";
const dir = join(sandbox.run.dir, "ingress-acme-test");
// Names of their own: MagicDNS names stay with the first device that had them in the shared tailnet.
const WEB = "ing-acme-web";
const LATE = "ing-acme-late";
const ALPN = "ing-acme-alpn";
let laptop: TailnetDevice;
let pebble: PebbleCa;
let ca: TailnetDevice;
let rootFile: string;

async function applyObject(object: KubernetesObject): Promise<void> {
  await env.objects.patch(object, undefined, undefined, "ingress-acme-test", true, PatchStrategy.ServerSideApply);
}

function ingress(name: string): V1Ingress {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: { name, namespace: NS },
    // A TLS host names the device; no secretName, so the certificate comes from ACME.
    spec: { ingressClassName: "tailscale", tls: [{ hosts: [name] }], defaultBackend: { service: { name: "echo", port: { number: 80 } } } },
  };
}

async function waitForIngress(name: string, what: string, check: (i: V1Ingress) => boolean, timeoutMs = 300_000): Promise<V1Ingress> {
  return env.waitForIngress(NS, name, what, check, timeoutMs);
}

async function https(name: string): Promise<DeviceHttpsAnswer> {
  return httpsFromDevice(sandbox.runner, laptop, `https://${name}.${TAILNET_DOMAIN}/`, rootFile);
}

function acmeValues(directoryUrl: string, challenge: "http-01" | "tls-alpn-01" = "http-01"): Values {
  return { replicaCount: 1, acme: acmeChartValues(pebble, { directoryUrl, challenge, profile: "shortlived", maxOrdersPerHour: 20, maxOrdersPerWeek: 50 }) };
}

async function proxyPod(name: string): Promise<{ name: string; uid: string } | undefined> {
  return env.runningProxyPod(NS, name);
}

before(async () => {
  const [acmeCa, laptopDevice] = await Promise.all([
    startTailnetAcmeCa(sandbox, { hostname: "ing-acme-ca", dir, profiles: { default: 90 * 24 * 3600, shortlived: 150 } }),
    sandbox.addDevice("ing-acme-laptop", { user: "alice" }),
  ]);
  laptop = laptopDevice;
  ({ device: ca, pebble, rootFile } = acmeCa);
  await installOperator(sandbox, { values: acmeValues(pebble.directoryUrl) });
  await env.ensureNamespace(NS);
  const labels = { app: "echo" };
  await applyObject({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "echo", namespace: NS },
    spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "echo", image: PROXY_IMAGE, imagePullPolicy: "IfNotPresent", command: ["/usr/local/bin/node", "-e", ECHO_SCRIPT], env: [{ name: "NAME", value: "echo" }] }] } } },
  } as KubernetesObject);
  await applyObject({ apiVersion: "v1", kind: "Service", metadata: { name: "echo", namespace: NS }, spec: { selector: labels, ports: [{ name: "http", port: 80, targetPort: 8080 }] } } as KubernetesObject);
});

after(async () => {
  // The devices and proxies go with the namespace (the operator removes them on Ingress deletion).
  await env.core.deleteNamespace({ name: NS }).catch(() => undefined);
  await waitFor(`namespace ${NS} to be gone`, async () => (await env.core.readNamespace({ name: NS }).then(() => undefined, () => true)), { timeoutMs: 180_000 }).catch(() => undefined);
});

describe("Ingress certificates from an ACME CA (Pebble on the tailnet)", () => {
  let firstSerial = "";

  it("an Ingress without a secretName gets a certificate from the CA, and a tailnet client verifies it", async () => {
    const started = Date.now();
    await applyObject(ingress(WEB));
    const ready = await waitForIngress(WEB, "ready", (i) => condition(i)?.status === "True");
    assert.match(condition(ready)?.message ?? "", /certificate: acme/);
    const fetched = await waitFor("the first HTTPS answer", () => https(WEB).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 500 });
    console.log(`# figure: Ingress created to first verified HTTPS 200 with an ACME certificate: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(fetched.status, 200);
    firstSerial = fetched.serial;
    assert.deepEqual(await pebble.issuedSerials(), [firstSerial], "Pebble issued exactly the served certificate");
    // The CA validated over the tailnet against the proxy's port 80 (HTTP-01).
    assert.match(await pebble.log(), new RegExp(`validate w/ HTTP: http://${WEB}\\.`));
  });

  it("a restarted proxy pod serves its stored certificate without ordering again", async () => {
    const before = await pebble.issuedSerials();
    const pod = await proxyPod(WEB);
    assert.ok(pod, "the proxy pod runs");
    await env.core.deleteNamespacedPod({ name: pod.name, namespace: OPERATOR_NAMESPACE });
    await waitFor("a new proxy pod", async () => {
      const next = await proxyPod(WEB);
      return next && next.uid !== pod.uid ? next : undefined;
    }, { timeoutMs: 180_000, intervalMs: 500 });
    const fetched = await waitFor("HTTPS from the new pod", () => https(WEB).catch(() => undefined), { timeoutMs: 120_000, intervalMs: 500 });
    assert.equal(fetched.serial, firstSerial, "the stored certificate is served");
    assert.deepEqual(await pebble.issuedSerials(), before, "no certificate was ordered");
  });

  it("renews the short-lived certificate before it expires, naming the one it replaces (ARI)", async () => {
    const renewed = await waitFor("a renewed certificate", async () => {
      const fetched = await https(WEB).catch(() => undefined);
      return fetched && fetched.serial !== firstSerial ? fetched : undefined;
    }, { timeoutMs: 240_000, intervalMs: 2_000 });
    assert.equal(renewed.status, 200);
    assert.ok((await pebble.issuedSerials()).includes(renewed.serial), "Pebble issued the renewed certificate");
    assert.match(await pebble.log(), /ARI: order "[^"]+" is a replacement of/);
  });

  it("a renewal that fails while the certificate is still valid keeps the Ingress Ready with a Warning, until a renewal succeeds", async () => {
    // The CA goes out of reach (its ACME port refused on its own device) without any setting
    // changing, so the proxy keeps its source and its certificate and only the renewal fails.
    const rule = ["INPUT", "-p", "tcp", "--dport", String(PEBBLE_ACME_PORT), "-j", "REJECT", "--reject-with", "tcp-reset"];
    await sandbox.runner.run(ca.exec(["iptables", "-I", ...rule]));
    try {
      const failing = await waitForIngress(WEB, "renewal failing", (i) => condition(i)?.reason === "CertificateRenewalFailed");
      assert.equal(condition(failing)?.status, "True", "still serving a valid certificate");
      assert.match(condition(failing)?.message ?? "", /the certificate is not being renewed: renewal failed; serving the certificate valid until .*cannot reach the ACME CA/);
      await env.waitForEvent(NS, WEB, "Warning CertificateRenewalFailed", (e) => e.type === "Warning" && e.reason === "CertificateRenewalFailed");
    } finally {
      await sandbox.runner.run(ca.exec(["iptables", "-D", ...rule]));
    }
    await waitForIngress(WEB, "renewed and ready again", (i) => condition(i)?.reason === "ProxyReady");
    const fetched = await waitFor("HTTPS with the renewed certificate", () => https(WEB).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 500 });
    assert.ok((await pebble.issuedSerials()).includes(fetched.serial));
  });

  it("an unreachable CA gives a condition and a Warning Event naming the problem, and the Ingress recovers once it is fixed", async () => {
    const unreachable = pebble.directoryUrl.replace(`:${PEBBLE_ACME_PORT}/`, `:${PEBBLE_ACME_PORT + 1}/`);
    await installOperator(sandbox, { values: acmeValues(unreachable) });
    await applyObject(ingress(LATE));
    const failed = await waitForIngress(LATE, "certificate failure", (i) => condition(i)?.reason === "CertificateFailed");
    assert.match(condition(failed)?.message ?? "", /cannot reach the ACME CA at https:\/\/.*ECONNREFUSED.*check the directory URL/);
    await env.waitForEvent(NS, LATE, "Warning CertificateFailed", (e) => e.type === "Warning" && e.reason === "CertificateFailed" && /cannot reach the ACME CA/.test(e.message ?? ""));
    // Back to the right directory: the proxy restarts its source and gets a certificate.
    await installOperator(sandbox, { values: acmeValues(pebble.directoryUrl) });
    await waitForIngress(LATE, "ready after the fix", (i) => condition(i)?.status === "True");
    const fetched = await waitFor("HTTPS after the fix", () => https(LATE).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 500 });
    assert.equal(fetched.status, 200);
    assert.ok((await pebble.issuedSerials()).includes(fetched.serial));
    // The first Ingress also went through the bad setting and is serving again.
    await waitForIngress(WEB, "ready again", (i) => condition(i)?.status === "True");
  });

  it("with acme.challenge tls-alpn-01 the CA validates in a TLS handshake on the proxy's port 443, not on port 80", async () => {
    await installOperator(sandbox, { values: acmeValues(pebble.directoryUrl, "tls-alpn-01") });
    try {
      await applyObject(ingress(ALPN));
      const ready = await waitForIngress(ALPN, "ready", (i) => condition(i)?.status === "True");
      assert.match(condition(ready)?.message ?? "", /certificate: acme/);
      const fetched = await waitFor("HTTPS with the TLS-ALPN-01 certificate", () => https(ALPN).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 500 });
      assert.equal(fetched.status, 200);
      assert.ok((await pebble.issuedSerials()).includes(fetched.serial), "Pebble issued the served certificate");
      // Pebble logs no line for a TLS-ALPN-01 validation; the proxy logs each one it answers.
      const pod = await proxyPod(ALPN);
      assert.ok(pod, "the proxy pod runs");
      const proxyLog = await env.podLogTail(OPERATOR_NAMESPACE, pod.name, 5_000);
      assert.match(proxyLog, /answering a TLS-ALPN-01 validation/, `the CA validated on port 443:\n${proxyLog}`);
      assert.doesNotMatch(await pebble.log(), new RegExp(`validate w/ HTTP: http://${ALPN}\\.`), "and never fetched an HTTP-01 token for it");
    } finally {
      await installOperator(sandbox, { values: acmeValues(pebble.directoryUrl) });
    }
  });

  it("the API server proxy serves the Kubernetes API with a certificate from the same CA (no Secret, Headscale)", async () => {
    const hostname = "acme-k8s-api";
    await installOperator(sandbox, { values: { ...acmeValues(pebble.directoryUrl), apiServerProxy: { mode: "auth", hostname } } });
    const address = await waitFor(`${hostname} on the tailnet`, async () => (await sandbox.headscaleAdmin.listNodes()).find((n) => n.given_name === hostname && n.online)?.ip_addresses?.find((ip) => !ip.includes(":")), { timeoutMs: 240_000, intervalMs: 500 });
    const config = join(dir, "acme-k8s-api.kubeconfig");
    await writeFile(config, stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "tailnet", cluster: { server: `https://${address}`, "certificate-authority": rootFile, "tls-server-name": `${hostname}.${TAILNET_DOMAIN}` } }],
      users: [{ name: "tailnet", user: { token: "tailnet-identity" } }],
      contexts: [{ name: "tailnet", context: { cluster: "tailnet", user: "tailnet" } }],
      "current-context": "tailnet",
    }));
    // kubectl verifies the served certificate against Pebble's root; alice's grant names her group.
    const answer = await waitFor("kubectl through the API server proxy with an ACME certificate", () =>
      sandbox.runner.run(laptop.exec([resolveKubectl(), "--kubeconfig", config, "--request-timeout=15s", "auth", "whoami", "-o", "json"]), { timeoutMs: 30_000 }).then((r) => r.stdout, () => undefined),
    { timeoutMs: 240_000, intervalMs: 2_000 });
    const me = (JSON.parse(answer) as { status: { userInfo: { username: string; groups?: string[] } } }).status.userInfo;
    assert.match(me.username, /^alice/);
    assert.ok(me.groups?.includes("tailnet-readers"));
    await installOperator(sandbox, { values: acmeValues(pebble.directoryUrl) });
    await waitFor(`${hostname} removed from the tailnet`, async () => (await sandbox.headscaleAdmin.listNodes()).every((n) => n.given_name !== hostname) || undefined, { timeoutMs: 120_000, intervalMs: 500 });
  });
});
