// Egress on the real node: Services annotated tailscale.com/tailnet-ip or tailnet-fqdn get an
// egress proxy (installed by Helm, real pods, a real Headscale) and become ExternalName
// Services; client pods in the cluster reach HTTP and UDP servers on a tailnet device through
// the Service's own DNS name, and the Service gets its spec back when egress ends.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, readyCondition } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import { startAndAwait } from "../../src/sandbox/started-process.ts";
import { readImageIndex, requireImage } from "../../src/sandbox/cluster/image-import.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const NS = "egress";
const TARGET = "egress-target";
const TARGET_FQDN = `${TARGET}.${TAILNET_DOMAIN}`;
const clientImage = requireImage(readImageIndex(), "operator").ref;
let target: TailnetDevice;

/** A tailnet device named egress-target serving HTTP on :8080 and UDP echo on :5300. */
async function startTarget(serverName: string): Promise<TailnetDevice> {
  const device = await sandbox.addDevice(TARGET);
  const logs = join(sandbox.run.dir, "devices");
  const http = await startAndAwait(
    { name: `http ${serverName}`, logFile: join(logs, `${serverName}-http.log`), argv: device.exec(nodeToolArgv("http-server.ts", ["--name", serverName, "--listen", "0.0.0.0:8080"])) },
    async () => (await sandbox.runner.run(device.exec(nodeToolArgv("tailnet-client.ts", ["get", "http://127.0.0.1:8080/"])))).stdout.includes(serverName),
    20_000,
  );
  const udp = await startAndAwait(
    { name: `udp ${serverName}`, logFile: join(logs, `${serverName}-udp.log`), argv: device.exec(nodeToolArgv("udp-echo.ts", ["--name", serverName, "--port", "5300"])) },
    () => Promise.resolve(true),
    20_000,
  );
  sandbox.track({ stop: async () => { await udp.stop(); await http.stop(); } });
  return device;
}

/** Runs a client pod (Node, from the operator image) that retries until it sees `expect`. */
const CLIENT_SCRIPT = `
import { createSocket } from "node:dgram";
const { MODE, URL: url, HOST, PORT, EXPECT } = process.env;
const deadline = Date.now() + 150_000;
let last = "";
async function once() {
  if (MODE === "http") {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return res.status + " " + (await res.text());
  }
  const socket = createSocket("udp4");
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no UDP answer")), 2000);
      socket.on("message", (m) => { clearTimeout(timer); resolve(m.toString()); });
      socket.on("error", reject);
      socket.send("ping", Number(PORT), HOST);
    });
  } finally { socket.close(); }
}
while (Date.now() < deadline) {
  try { last = await once(); if (last.includes(EXPECT)) { console.log("RESULT " + JSON.stringify({ ok: true, last })); process.exit(0); } }
  catch (error) { last = String(error?.cause ?? error); }
  await new Promise((r) => setTimeout(r, 500));
}
console.log("RESULT " + JSON.stringify({ ok: false, last }));
process.exit(1);
`;

let clients = 0;
async function client(vars: Record<string, string>): Promise<string> {
  const name = `client-${++clients}`;
  await env.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name },
      spec: {
        restartPolicy: "Never",
        containers: [{ name, image: clientImage, imagePullPolicy: "IfNotPresent", command: ["/usr/local/bin/node", "--input-type=module", "-e", CLIENT_SCRIPT], env: Object.entries(vars).map(([k, v]) => ({ name: k, value: v })) }],
      },
    },
  });
  const phase = await waitFor(`${name} to finish`, async () => {
    const pod = await env.pod(NS, name);
    return ["Succeeded", "Failed"].includes(pod?.status?.phase ?? "") ? pod?.status?.phase : undefined;
  }, { timeoutMs: 300_000, intervalMs: 500 });
  const log = await env.core.readNamespacedPodLog({ name, namespace: NS });
  assert.equal(phase, "Succeeded", `${name} ${JSON.stringify(vars)}: ${log}`);
  return log;
}
const httpGet = (url: string, expect: string): Promise<string> => client({ MODE: "http", URL: url, EXPECT: expect });
const udpPing = (host: string, port: number, expect: string): Promise<string> => client({ MODE: "udp", HOST: host, PORT: String(port), EXPECT: expect });
const dnsName = (name: string): string => `${name}.${NS}.svc.cluster.local`;

async function egressService(name: string, annotations: Record<string, string>, ports: NonNullable<V1Service["spec"]>["ports"] = [{ name: "http", port: 80, targetPort: 8080 }]): Promise<void> {
  await env.ensureNamespace(NS);
  await env.core.createNamespacedService({ namespace: NS, body: { metadata: { name, annotations }, spec: { type: "ClusterIP", ports } } });
}

const isReady = (svc: V1Service): boolean => readyCondition(svc)?.status === "True";

/** Waits for the Service; on a timeout says what its condition and its proxy's pod were. */
async function waitForService(name: string, what: string, check: (svc: V1Service) => boolean, timeoutMs = 300_000): Promise<V1Service> {
  try {
    return await env.waitForService(NS, name, what, check, timeoutMs);
  } catch (error) {
    const svc = await env.service(NS, name);
    const pods = (await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: `tailscale.com/parent-resource=${name}` })).items;
    const details = await Promise.all(pods.map(async (pod) => `${pod.metadata?.name ?? ""} ${JSON.stringify(pod.status?.containerStatuses?.map((c) => [c.ready, c.restartCount, c.state]))}\n${await env.podLogTail(OPERATOR_NAMESPACE, pod.metadata?.name ?? "", 15)}\nprevious:\n${await env.core.readNamespacedPodLog({ namespace: OPERATOR_NAMESPACE, name: pod.metadata?.name ?? "", container: "tailscale", previous: true, tailLines: 15 }).catch(() => "")}`));
    throw new Error(`${(error as Error).message}; condition ${JSON.stringify(svc && readyCondition(svc))}; proxy pods:\n${details.join("\n")}`, { cause: error });
  }
}

/** Events are recorded just after the condition is written: wait for them too. */
async function eventType(name: string, reason: string): Promise<string | undefined> {
  return waitFor(`${NS}/${name}: a ${reason} Event`, async () => (await env.events(NS, name)).find((e) => e.reason === reason)?.type, { timeoutMs: 30_000, intervalMs: 250 });
}
const mergePatch = (name: string, annotations: Record<string, string | null>): Promise<unknown> =>
  env.objects.patch({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: NS, annotations } } as never, undefined, undefined, undefined, undefined, "application/merge-patch+json");

before(async () => {
  await Promise.all([installOperator(sandbox, { values: { replicaCount: 1 } }), startTarget("target-1").then((d) => (target = d))]);
});

describe("Egress to tailnet devices", () => {
  it("forwards a Service annotated with a tailnet IP to that device and rewrites it to an ExternalName", async () => {
    const [ipv4] = (await target.status()).tailscaleIps;
    assert.ok(ipv4);
    await egressService("by-ip", { "tailscale.com/tailnet-ip": ipv4 });
    const svc = await waitForService("by-ip", "ready", isReady);
    assert.match(readyCondition(svc)?.message ?? "", new RegExp(`egress to ${ipv4.replaceAll(".", "\\.")}`));
    assert.equal(svc.spec?.type, "ExternalName");
    assert.match(svc.spec.externalName ?? "", new RegExp(`^ts-by-ip-[0-9a-f]{6}\\.${OPERATOR_NAMESPACE}\\.svc\\.cluster\\.local$`));
    assert.ok(svc.metadata?.annotations?.["tailscale.com/egress-original-spec"]);
    const [proxy] = await env.devices("egress-by-ip");
    assert.ok(proxy, "the egress proxy is a device on the tailnet");
    const log = await httpGet(`http://${dnsName("by-ip")}/`, "hello from target-1");
    assert.match(log, /remote=100\.64\./, "the device sees the proxy's tailnet address");
  });

  it("forwards by MagicDNS name (Headscale's base domain), TCP and UDP, and says what the name resolved to", async () => {
    const [ipv4] = (await target.status()).tailscaleIps;
    await egressService("by-name", { "tailscale.com/tailnet-fqdn": TARGET_FQDN }, [
      { name: "http", port: 80, targetPort: 8080, protocol: "TCP" },
      { name: "echo", port: 5300, protocol: "UDP" },
    ]);
    const svc = await waitForService("by-name", "ready", isReady);
    assert.match(readyCondition(svc)?.message ?? "", new RegExp(`egress to ${TARGET_FQDN} \\(${(ipv4 ?? "").replaceAll(".", "\\.")}`));
    await httpGet(`http://${dnsName("by-name")}/`, "hello from target-1");
    await udpPing(dnsName("by-name"), 5300, "echo from target-1: ping");
  });

  it("follows the name when the device is re-created with a new address", async () => {
    const old = await env.devices(TARGET);
    const oldIp = (await target.status()).tailscaleIps[0] ?? "";
    for (const node of old) await sandbox.headscaleAdmin.cli(["nodes", "delete", "--identifier", node.id, "--force"]);
    target = await startTarget("target-2");
    const newIp = (await target.status()).tailscaleIps[0] ?? "";
    assert.notEqual(newIp, oldIp);
    const svc = await waitForService("by-name", `re-resolved to ${newIp}`, (s) => isReady(s) && (readyCondition(s)?.message ?? "").includes(`(${newIp}`));
    assert.ok(isReady(svc));
    await httpGet(`http://${dnsName("by-name")}/`, "hello from target-2");
    // The IP-addressed Service now points at an address no device has: it says so.
    const byIp = await waitForService("by-ip", "target not found", (s) => readyCondition(s)?.reason === "EgressTargetNotFound");
    assert.match(readyCondition(byIp)?.message ?? "", new RegExp(`${oldIp.replaceAll(".", "\\.")} is no device's tailnet address`));
  });

  it("rejects both annotations at once and malformed targets: condition, Warning Event, nothing made, spec untouched", async () => {
    await egressService("both", { "tailscale.com/tailnet-ip": "100.64.0.1", "tailscale.com/tailnet-fqdn": TARGET_FQDN });
    await egressService("bad-ip", { "tailscale.com/tailnet-ip": "not-an-ip" });
    await egressService("bad-name", { "tailscale.com/tailnet-fqdn": "under_score..example" });
    for (const [name, message] of [["both", /not both/], ["bad-ip", /"not-an-ip" is not an IPv4 or IPv6 address/], ["bad-name", /is not a full DNS name/]] as const) {
      const svc = await waitForService(name, "marked invalid", (s) => readyCondition(s)?.reason === "ProxyInvalid");
      assert.match(readyCondition(svc)?.message ?? "", message);
      assert.equal(await eventType(name, "ProxyInvalid"), "Warning");
      assert.deepEqual(await env.children(NS, name), []);
      assert.equal(svc.spec?.type, "ClusterIP");
      assert.equal(svc.metadata?.finalizers, undefined);
    }
  });

  it("reports a name no device has, keeps looking, and picks the device up when it joins", async () => {
    await egressService("later", { "tailscale.com/tailnet-fqdn": `late-device.${TAILNET_DOMAIN}` });
    const svc = await waitForService("later", "target not found", (s) => readyCondition(s)?.reason === "EgressTargetNotFound");
    assert.match(readyCondition(svc)?.message ?? "", /no device named late-device\.tailnet\.test on the tailnet/);
    assert.equal(await eventType("later", "EgressTargetNotFound"), "Warning");
    await sandbox.addDevice("late-device");
    await waitForService("later", "ready once the device joined", isReady);
    const [pod] = (await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: "tailscale.com/parent-resource=later" })).items;
    // Waiting is not failing: the proxy never exits for a missing target (a liveness restart on
    // an overloaded machine is possible, a crash loop is not).
    assert.notEqual(pod?.status?.containerStatuses?.[0]?.state?.waiting?.reason, "CrashLoopBackOff");
  });

  it("puts the user's spec back and removes the proxy and its device when the annotation goes", async () => {
    await mergePatch("by-ip", { "tailscale.com/tailnet-ip": null });
    const svc = await waitForService("by-ip", "finalizer removed", (s) => !s.metadata?.finalizers?.length);
    assert.equal(svc.spec?.type, "ClusterIP");
    assert.equal(svc.spec.externalName, undefined);
    assert.match(svc.spec.clusterIP ?? "", /^10\./, "a ClusterIP again");
    assert.deepEqual(svc.spec.ports?.map((p) => [p.port, p.targetPort]), [[80, 8080]]);
    assert.equal(svc.metadata?.annotations?.["tailscale.com/egress-original-spec"], undefined);
    assert.equal(readyCondition(svc), undefined);
    assert.deepEqual(await env.devices("egress-by-ip"), []);
    assert.deepEqual(await env.children(NS, "by-ip"), []);
  });

  it("removes the proxy and its device when an egress Service is deleted", async () => {
    for (const name of ["by-name", "later"]) await env.core.deleteNamespacedService({ namespace: NS, name });
    for (const name of ["by-name", "later"]) {
      await waitFor(`${NS}/${name} to be deleted`, async () => ((await env.service(NS, name)) ? undefined : true), { timeoutMs: 120_000 });
      assert.deepEqual(await env.children(NS, name), []);
      assert.deepEqual(await env.devices(`egress-${name}`), []);
    }
  });
});
