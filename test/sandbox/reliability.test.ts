// Reliability on the real node with a real Headscale: no usable key outlives its purpose, the
// proxy's refusals reach the Service, a lost state Secret recovers, a taken hostname is named,
// and a proxy that died before reporting its device leaves none behind. Every scenario ends with
// the control plane's key audit: no key that could still join a device.
import { describe, it, before, afterEach } from "node:test";
import assert from "node:assert/strict";
import type { V1Secret, V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, readyCondition } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const NS = "reliability";

before(async () => {
  // Two replicas: leader election on, so a new leader's first sweep takes every orphan (ADR 0022).
  await installOperator(sandbox, { values: { replicaCount: 2, orphanKeySweep: true } });
  await env.ensureNamespace(NS);
  // Files before this one share the cluster and may leave a key minted by a leader they killed
  // mid-provisioning (their operator had no sweep): the leader installed here sweeps it, and the
  // audit after each scenario below must not count it against that scenario.
  await waitFor("the new leader's first sweep", async () => ((await env.usableKeys()).length === 0 ? true : undefined), { timeoutMs: 180_000, intervalMs: 1_000 }).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}: usable keys left ${JSON.stringify(await env.usableKeys())}`);
  });
});

afterEach(async () => {
  // Scenarios delete what they made; whatever they leave must not be a key that can still join.
  assert.deepEqual(await env.usableKeys(), [], "no unused, unexpired key on the control plane");
});

const isReady = (svc: V1Service): boolean => readyCondition(svc)?.status === "True";

/** A Service with no backends: the proxy comes up and forwards to its ClusterIP all the same. */
async function exposed(name: string, annotations: Record<string, string> = {}): Promise<void> {
  await env.core.createNamespacedService({
    namespace: NS,
    body: { metadata: { name, annotations: { "tailscale.com/expose": "true", "tailscale.com/hostname": name, ...annotations } }, spec: { ports: [{ port: 80 }] } },
  });
}

/** What a failed wait needs to be understood: the condition, Events, the proxy's report and log. */
async function diagnose(name: string): Promise<string> {
  const state = await secretOf(name, "state");
  const report = Object.fromEntries(Object.keys(state?.data ?? {}).filter((k) => k.startsWith("tailnet_") || k.startsWith("device")).map((k) => [k, decoded(state, k)]));
  const pods = await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: `tailscale.com/parent-resource=${name}` });
  const pod = pods.items[0]?.metadata?.name ?? "";
  const svc = await env.service(NS, name);
  const events = (await env.events(NS, name)).map((e) => `${e.type ?? ""} ${e.reason ?? ""}: ${e.message ?? ""}`);
  return `condition: ${JSON.stringify(svc && readyCondition(svc))}; events: ${JSON.stringify(events)}; report: ${JSON.stringify(report)}; proxy log: ${await env.podLogTail(OPERATOR_NAMESPACE, pod, 40)}`;
}

async function secretOf(name: string, type: "state" | "config"): Promise<V1Secret | undefined> {
  const list = await env.core.listNamespacedSecret({
    namespace: OPERATOR_NAMESPACE,
    labelSelector: `tailscale.com/parent-resource=${name},tailscale.com/parent-resource-ns=${NS},tailscale.com/secret-type=${type}`,
  });
  return list.items[0];
}

const decoded = (secret: V1Secret | undefined, key: string): string | undefined => {
  const value = secret?.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
};

const patchSecret = (name: string, body: { data?: object; annotations?: object }): Promise<unknown> =>
  env.objects.patch(
    { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: OPERATOR_NAMESPACE, ...(body.annotations ? { annotations: body.annotations } : {}) }, ...(body.data ? { data: body.data } : {}) } as never,
    undefined,
    undefined,
    undefined,
    undefined,
    "application/merge-patch+json",
  );

describe("reliability", () => {
  it("a Service deleted right after creation leaves no usable key and no device", async () => {
    // The node takes no pods meanwhile: the key is certainly unused when the Service goes.
    await env.cordoned(async () => {
      await exposed("blink");
      await waitFor("the config Secret holds a key", async () => ((await secretOf("blink", "config"))?.data?.["authkey"] ? true : undefined), { timeoutMs: 60_000, intervalMs: 100 });
      await env.deleteServiceAndWait(NS, "blink");
    });
    assert.deepEqual(await env.children(NS, "blink"), []);
    // A proxy that logged in before the StatefulSet went is deleted with it.
    assert.deepEqual(await env.devices("blink"), []);
  });

  it("a lost state Secret: the proxy logs in again as a new device, the Service is Ready again and the old device is deleted", async () => {
    await exposed("phoenix");
    await env.waitForService(NS, "phoenix", "ready", isReady);
    const [old] = await env.devices("phoenix");
    assert.ok(old, "the device is on the tailnet");
    const state = await secretOf("phoenix", "state");
    await env.core.deleteNamespacedSecret({ name: state?.metadata?.name ?? "", namespace: OPERATOR_NAMESPACE });
    const fresh = await waitFor("a new device replaces the old", async () => {
      const devices = await env.devices("phoenix");
      const ids = devices.map((d) => d.id);
      return ids.length === 1 && !ids.includes(old.id) ? devices[0] : undefined;
    }, { timeoutMs: 150_000, intervalMs: 500 }).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}; ${await diagnose("phoenix")}`);
    });
    const svc = await env.waitForService(NS, "phoenix", "ready again", isReady);
    assert.match(readyCondition(svc)?.message ?? "", /phoenix\./);
    assert.equal(decoded(await secretOf("phoenix", "state"), "device_id"), fresh.id);
    await env.deleteServiceAndWait(NS, "phoenix");
    assert.deepEqual(await env.devices("phoenix"), []);
  });

  it("a second Service asking for a taken hostname is exposed under a suffixed name, with a Warning naming the owner", async () => {
    await exposed("dup");
    await env.waitForService(NS, "dup", "ready", isReady);
    await env.core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: "dup-two", annotations: { "tailscale.com/expose": "true", "tailscale.com/hostname": "dup" } }, spec: { ports: [{ port: 80 }] } },
    });
    const svc = await env.waitForService(NS, "dup-two", "exposed under another name", (s) => readyCondition(s)?.reason === "HostnameTaken");
    assert.equal(readyCondition(svc)?.status, "True");
    assert.match(readyCondition(svc)?.message ?? "", new RegExp(`"dup" is taken by Service ${NS}/dup;`));
    // The Event is recorded right after the status is written: wait for it, not just read.
    const warning = await env.waitForEvent(NS, "dup-two", "HostnameTaken", (e) => e.reason === "HostnameTaken");
    assert.equal(warning.type, "Warning");
    assert.equal(readyCondition((await env.service(NS, "dup"))!)?.reason, "ProxyReady", "the owner keeps its name");
    await env.deleteServiceAndWait(NS, "dup-two");
    await env.deleteServiceAndWait(NS, "dup");
    assert.deepEqual((await sandbox.headscaleAdmin.listNodes()).filter((n) => n.name === "dup"), []);
  });

  it("a proxy that died between logging in and writing device_id leaves no device after the Service is deleted", async () => {
    await exposed("lazarus");
    await env.waitForService(NS, "lazarus", "ready", isReady);
    const [device] = await env.devices("lazarus");
    assert.ok(device);
    // What such a crash leaves: tailscaled's own state, but no device_id, and nothing recorded by
    // the operator (device_id goes first, so the operator cannot record it again meanwhile).
    const state = await secretOf("lazarus", "state");
    const config = await secretOf("lazarus", "config");
    assert.ok(decoded(state, "_profiles")?.includes(device.id), "tailscaled's login profile names the device");
    await patchSecret(state?.metadata?.name ?? "", { data: { device_id: null, device_fqdn: null, device_ips: null } });
    await patchSecret(config?.metadata?.name ?? "", { annotations: { "tailscale.com/device-id": null } });
    await env.deleteServiceAndWait(NS, "lazarus");
    assert.deepEqual(await env.devices("lazarus"), [], "the device named only by tailscaled's profile is deleted");
  });

  it("a device no Secret names, only the key it joined with (a login nobody saw through), is deleted with its Service", async () => {
    await exposed("nemo");
    await env.waitForService(NS, "nemo", "ready", isReady);
    const [device] = await env.devices("nemo");
    assert.ok(device);
    // What the proxy or Headscale dying between the registration and any report leaves: a device
    // that Headscale records as joined with the proxy's key, and no Secret naming it anywhere.
    const state = await secretOf("nemo", "state");
    const config = await secretOf("nemo", "config");
    await patchSecret(state?.metadata?.name ?? "", { data: { device_id: null, device_fqdn: null, device_ips: null, _profiles: null } });
    await patchSecret(config?.metadata?.name ?? "", { annotations: { "tailscale.com/device-id": null } });
    await env.deleteServiceAndWait(NS, "nemo");
    assert.deepEqual(await env.devices("nemo"), [], "the device that joined with the proxy's key is deleted");
    // tailscaled might have written its profile again before it stopped; the operator's log says
    // which way it found the device.
    const logs = await Promise.all((await env.operatorPods()).map((pod) => env.podLogTail(OPERATOR_NAMESPACE, pod.metadata?.name ?? "", 400)));
    assert.ok(
      logs.join("\n").split("\n").some((line) => line.includes(`"deviceId":"${device.id}"`) && line.includes("joined with the proxy's key")),
      "found through the key it joined with",
    );
  });

  it("a key minted by an operator stopped before it stored the key is revoked by the next leader; other keys are left alone", async () => {
    // What a crash between the mint and the Secret write leaves: a usable key with the proxies'
    // tags that no Secret names. A user's own key (no tags of ours) must survive the sweep.
    const orphan = await sandbox.headscaleAdmin.mintPreAuthKey({ tags: ["tag:k8s"] });
    const users = await sandbox.headscaleAdmin.mintPreAuthKey({ user: await sandbox.headscaleAdmin.ensureUser("sweep-bystander") });
    // A node bootstrap key with the proxies' tag: reusable, so never one the operator minted.
    const bootstrap = await sandbox.headscaleAdmin.mintPreAuthKey({ tags: ["tag:k8s"], reusable: true });
    try {
      assert.ok((await env.usableKeys()).some((k) => k.id === orphan.id), "the orphan is usable before the sweep");
      const leader = await waitFor("a leader", () => env.leader(), { timeoutMs: 60_000, intervalMs: 500 });
      await env.core.deleteNamespacedPod({ namespace: OPERATOR_NAMESPACE, name: leader });
      await waitFor("the next leader revokes the orphaned key", async () => ((await env.usableKeys()).some((k) => k.id === orphan.id) ? undefined : true), { timeoutMs: 180_000, intervalMs: 1_000 });
      const left = (await env.usableKeys()).map((k) => k.id);
      assert.ok(left.includes(users.id), "a key without the operator's tags is not the operator's to revoke");
      assert.ok(left.includes(bootstrap.id), "a reusable key is not one the operator mints");
    } finally {
      await sandbox.headscaleAdmin.expirePreAuthKey(users.id);
      await sandbox.headscaleAdmin.expirePreAuthKey(bootstrap.id);
    }
  });
});
