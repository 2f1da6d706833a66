// The control plane failing the operator, end to end on the real node with a real Headscale:
// Headscale unreachable while a Service is exposed (the Service says so, nothing is half-made,
// it recovers when Headscale is back), and a proxy whose key Headscale refuses (the Service says
// why, the operator mints a new key and restarts the pod). Each scenario ends with the key audit:
// no usable key that no config Secret names.
import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Watch, type V1Pod, type V1Secret, type V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, readyCondition } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const NS = "cp-faults";
const AUTH_KEY_ID = "tailscale.com/auth-key-id";
const NGINX = /^HTTP\/1\.1 200 OK[\s\S]*nginx/i;
let laptop: TailnetDevice;

before(async () => {
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  await env.ensureNamespace(NS);
  // One nginx Deployment serves every Service of the file (they all select app=web).
  await env.webService(NS, "web", {}, { "tailscale.com/expose": "true", "tailscale.com/hostname": "cpf-web" });
  laptop = await sandbox.addDevice("cpf-laptop");
});

after(async () => {
  await env.deleteServiceAndWait(NS, "web");
  await env.core.deleteNamespace({ name: NS });
});

afterEach(async () => {
  assert.deepEqual(await unnamedUsableKeys(), [], "no usable key on the control plane that no config Secret names");
});

const isReady = (svc: V1Service): boolean => readyCondition(svc)?.status === "True";

/** Another Service for the same nginx pods, exposed under its own name. */
async function exposed(name: string): Promise<void> {
  await env.core.createNamespacedService({
    namespace: NS,
    body: { metadata: { name, annotations: { "tailscale.com/expose": "true", "tailscale.com/hostname": name } }, spec: { ports: [{ port: 80 }], selector: { app: "web" } } },
  });
}

async function configSecrets(): Promise<V1Secret[]> {
  return (await env.core.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE, labelSelector: "tailscale.com/secret-type=config" })).items;
}

async function configSecretOf(name: string): Promise<V1Secret | undefined> {
  return (await configSecrets()).find((s) => s.metadata?.labels?.["tailscale.com/parent-resource"] === name && s.metadata.labels["tailscale.com/parent-resource-ns"] === NS);
}

async function proxyPods(name: string): Promise<V1Pod[]> {
  const pods = await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: `tailscale.com/parent-resource=${name},tailscale.com/parent-resource-ns=${NS}` });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** What a failed wait needs to be understood: the condition, Events, the proxy's report and log. */
async function diagnose(name: string): Promise<string> {
  const state = (await env.core.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE, labelSelector: `tailscale.com/parent-resource=${name},tailscale.com/parent-resource-ns=${NS},tailscale.com/secret-type=state` })).items[0];
  const report = Object.fromEntries(Object.entries(state?.data ?? {}).filter(([k]) => k.startsWith("tailnet_") || k.startsWith("device")).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
  const pod = (await proxyPods(name))[0]?.metadata?.name ?? "";
  const svc = await env.service(NS, name);
  const events = (await env.events(NS, name)).map((e) => `${e.type ?? ""} ${e.reason ?? ""}: ${e.message ?? ""}`);
  return `condition: ${JSON.stringify(svc && readyCondition(svc))}; events: ${JSON.stringify(events)}; report: ${JSON.stringify(report)}; proxy log: ${await env.podLogTail(OPERATOR_NAMESPACE, pod, 40)}`;
}

/** Adds diagnose(name) to a failed wait's error. */
function explained<T>(name: string, wait: Promise<T>): Promise<T> {
  return wait.catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}; ${await diagnose(name)}`, { cause: error });
  });
}

/** The leak audit: keys that could still join a device although no config Secret names them. */
async function unnamedUsableKeys(): Promise<string[]> {
  const named = new Set((await configSecrets()).flatMap((s) => s.metadata?.annotations?.[AUTH_KEY_ID] ?? []));
  return (await env.usableKeys()).filter((k) => !named.has(k.id)).map((k) => `${k.id} [${k.tags.join(",")}]`);
}

/**
 * Every TailscaleProxyReady condition a Service went through, from a watch started before the
 * Service exists: a condition that holds for one reconcile pass is seen, however short.
 */
async function recordConditions(name: string): Promise<{ seen: { reason: string; message: string }[]; stop: () => void }> {
  const seen: { reason: string; message: string }[] = [];
  const watch = new Watch(env.kc);
  const controller = await watch.watch(
    `/api/v1/namespaces/${NS}/services`,
    { fieldSelector: `metadata.name=${name}` },
    (_phase, svc: V1Service) => {
      const condition = readyCondition(svc);
      const last = seen.at(-1);
      if (condition && (last?.reason !== condition.reason || last.message !== condition.message)) seen.push({ reason: condition.reason, message: condition.message });
    },
    () => undefined,
  );
  return { seen, stop: () => { controller.abort(); } };
}

describe("control plane faults", () => {
  it("Headscale unreachable: a new Service says so with a Warning and gets nothing half-made; a Ready one keeps forwarding; both are reachable once it is back", async () => {
    await env.waitForService(NS, "web", "ready", isReady, 180_000);
    assert.match(await env.fetch(laptop, `http://cpf-web.${TAILNET_DOMAIN}/`), NGINX);

    await sandbox.takeHeadscaleOffline();
    try {
      await exposed("late");
      const svc = await explained("late", env.waitForService(NS, "late", "control plane error", (s) => readyCondition(s)?.reason === "ControlPlaneError", 120_000));
      assert.equal(readyCondition(svc)?.status, "False");
      assert.match(readyCondition(svc)?.message ?? "", /^the control plane is unreachable or failing; retrying with backoff \(POST \/api\/v1\/preauthkey: /);
      const warning = await env.waitForEvent(NS, "late", "ControlPlaneError", (e) => e.reason === "ControlPlaneError");
      assert.equal(warning.type, "Warning");
      assert.match(warning.message ?? "", /unreachable or failing; retrying with backoff/);
      // The key is minted before anything is created: no Secret, StatefulSet, Role or account.
      assert.deepEqual(await env.children(NS, "late"), []);
      // Existing peers keep their WireGuard sessions: the Ready proxy still forwards.
      assert.match(await env.fetch(laptop, `http://cpf-web.${TAILNET_DOMAIN}/`, 30_000), NGINX);
      // Still failing, still saying so (retries do not wipe the condition or make objects).
      assert.equal(readyCondition((await env.service(NS, "late"))!)?.reason, "ControlPlaneError");
      assert.deepEqual(await env.children(NS, "late"), []);
      // Headscale's CLI answers on its socket meanwhile: no key got minted without a Secret.
      assert.deepEqual(await unnamedUsableKeys(), []);
    } finally {
      await sandbox.bringHeadscaleOnline();
    }

    const ready = await explained("late", env.waitForService(NS, "late", "ready once Headscale is back", isReady, 240_000));
    assert.equal(readyCondition(ready)?.reason, "ProxyReady");
    assert.match(readyCondition(ready)?.message ?? "", new RegExp(`late\\.${TAILNET_DOMAIN.replaceAll(".", "\\.")}`));
    // The laptop learns the new peer from its own control session once that reconnects.
    assert.match(await env.fetch(laptop, `http://late.${TAILNET_DOMAIN}/`, 180_000), NGINX);
    assert.equal((await env.devices("late")).length, 1, "one device for the Service, no duplicate");
    assert.equal((await env.devices("cpf-web")).length, 1, "the Ready Service kept its one device");
    assert.deepEqual(await unnamedUsableKeys(), [], "no usable key that no Secret names");
    const events = await env.events(NS, "late");
    assert.ok(events.some((e) => e.reason === "ProxyReady" && e.type === "Normal"), "a Normal Event says it recovered");
    await env.deleteServiceAndWait(NS, "late");
    assert.deepEqual(await env.devices("late"), []);
  });

  it("a key Headscale refuses: the Service says so with a Warning, the operator mints a new key and restarts the pod, and the Service is Ready", async () => {
    const conditions = await recordConditions("stale");
    let refused = "";
    let firstPod = "";
    try {
      // The node takes no pods meanwhile: the key is expired before the proxy can use it.
      await env.cordoned(async () => {
        await exposed("stale");
        const config = await waitFor("the config Secret names its key", async () => {
          const secret = await configSecretOf("stale");
          return secret?.data?.["authkey"] ? secret : undefined;
        }, { timeoutMs: 60_000, intervalMs: 200 });
        refused = config.metadata?.annotations?.[AUTH_KEY_ID] ?? "";
        assert.ok(refused, "the config Secret names the key's id");
        await sandbox.headscaleAdmin.expirePreAuthKey(refused);
        firstPod = (await waitFor("the proxy pod (Pending)", async () => (await proxyPods("stale"))[0], { timeoutMs: 60_000, intervalMs: 200 })).metadata?.uid ?? "";
      });

      const warning = await explained("stale", env.waitForEvent(NS, "stale", "ProxyFailed for the refused key", (e) => e.reason === "ProxyFailed" && /auth key/.test(e.message ?? ""), 180_000));
      assert.equal(warning.type, "Warning");
      assert.match(warning.message ?? "", /^login failed: the proxy's auth key is expired, revoked or used up: the operator mints a new one; the control plane said: .*expired/);
      const replaced = await waitFor("a new key in the config Secret", async () => {
        const id = (await configSecretOf("stale"))?.metadata?.annotations?.[AUTH_KEY_ID];
        return id && id !== refused ? id : undefined;
      }, { timeoutMs: 60_000, intervalMs: 250 });

      const ready = await explained("stale", env.waitForService(NS, "stale", "ready with the new key", isReady, 240_000));
      assert.equal(readyCondition(ready)?.reason, "ProxyReady");
      // The condition said what the Warning says before it recovered (earlier it said that the
      // cordoned node could not take the pod: a ProxyFailed of its own). The watch delivers in
      // order, but may trail the read above: once it shows Ready, it has shown all before.
      await waitFor("the watch to deliver Ready", () => (conditions.seen.at(-1)?.reason === "ProxyReady" ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
      const failed = conditions.seen.find((c) => c.reason === "ProxyFailed" && c.message === warning.message);
      assert.ok(failed, `the condition said what the Warning says: ${JSON.stringify(conditions.seen)}`);

      assert.equal((await configSecretOf("stale"))?.metadata?.annotations?.[AUTH_KEY_ID], replaced, "one new key per refusal");
      const keys = await sandbox.headscaleAdmin.listPreAuthKeys();
      assert.equal(keys.find((k) => String(k.id) === replaced)?.used, true, "the proxy logged in with the new key");
      assert.ok(!(await env.usableKeys()).some((k) => k.id === refused), "the refused key joins nothing");
      assert.deepEqual(await unnamedUsableKeys(), [], "every usable key is one a config Secret names");
      assert.equal((await env.devices("stale")).length, 1, "one device, no duplicate");
      // Read until one pod is listed: in 1 of 3 runs the list was empty for a moment after Ready
      // (cause not found; the key, device and Ready checks above held in that run).
      const pod = await waitFor("the proxy pod", async () => {
        const pods = await proxyPods("stale");
        return pods.length === 1 ? pods[0] : undefined;
      }, { timeoutMs: 60_000, intervalMs: 500 });
      assert.notEqual(pod.metadata?.uid, firstPod, "the pod that had the refused key was replaced");
      assert.match(await env.fetch(laptop, `http://stale.${TAILNET_DOMAIN}/`, 180_000), NGINX);
    } finally {
      conditions.stop();
    }
    await env.deleteServiceAndWait(NS, "stale");
    assert.deepEqual(await env.devices("stale"), []);
  });
});
