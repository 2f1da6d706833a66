// The Service reconciler as stories against in-memory fakes: what each pass writes, and that a
// pass with nothing to do writes nothing.
import { describe, it, beforeEach } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod, V1Role, V1RoleBinding, V1Secret, V1Service, V1StatefulSet } from "@kubernetes/client-node";
import { FakeKubeClient } from "../../test/fakes/fake-kube-client.ts";
import { FakeControlPlane } from "../../test/fakes/fake-control-plane.ts";
import { SAFETY_REQUEUE_MS, ServiceReconciler } from "./service-reconciler.ts";
import { releaseAll } from "./uninstall.ts";
import { ProxyProvisioner } from "./proxy-provisioner.ts";
import { childLabels, configSecretName, proxyName, stateSecretName } from "./proxy-objects.ts";
import { keyFingerprint } from "../shared/login-report.ts";
import { ControlPlaneError, type Device } from "../control/control-plane.ts";
import { TerminalError } from "../runtime/reconciler.ts";
import { createLogger } from "../shared/log.ts";
import type { EventRecorder } from "./events.ts";

const log = createLogger({ name: "test", level: "silent" });
const ctx = { log, signal: new AbortController().signal };
const parent = { namespace: "tailscaletest", name: "nginx-tailscale", type: "svc" as const };
const KEY = "tailscaletest/nginx-tailscale";

let kube: FakeKubeClient;
let control: FakeControlPlane;
let events: { type: string; reason: string; message: string }[];
let reconciler: ServiceReconciler;
let provisioner: ProxyProvisioner;

beforeEach(() => {
  kube = new FakeKubeClient();
  control = new FakeControlPlane();
  events = [];
  const recorder: EventRecorder = {
    record: (_object, type, reason, message) => {
      events.push({ type, reason, message });
      return Promise.resolve();
    },
  };
  provisioner = new ProxyProvisioner(kube, control, {
    operatorNamespace: "tailscale",
    image: "tailnet-operator/proxy:test",
    loginServer: control.loginServer,
    firewallMode: "auto",
    forwarding: "init-container",
    resources: { requests: { cpu: "10m", memory: "200Mi" } },
    extraEnv: {},
  });
  reconciler = new ServiceReconciler({ kube, provisioner, events: recorder, clock: { now: () => 1_790_000_000_000, sleep: () => Promise.resolve() }, intent: { defaultTags: ["tag:k8s"], defaultLoadBalancer: false } });
});

function seedService(annotations: Record<string, string> = {}): void {
  kube.seed<V1Service>({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: parent.name, namespace: parent.namespace, annotations },
    spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"], ports: [{ port: 80 }] },
  });
}

/** What the proxy does once it runs: report its device in the state Secret. */
async function proxyReports(): Promise<void> {
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  await kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: stateSecretName(parent) }, {
    data: { device_id: b64("7"), device_fqdn: b64("tailscaletest-nginx-tailscale.tailnet.test"), device_ips: b64('["100.64.0.7","fd7a:115c:a1e0::7"]') },
  });
}

/** Finalizer pass, provisioning pass, the proxy reports, the ready pass. */
async function provisionToReady(): Promise<void> {
  seedService();
  await reconciler.reconcile(KEY, ctx);
  await reconciler.reconcile(KEY, ctx);
  await proxyReports();
  await reconciler.reconcile(KEY, ctx);
}

const service = (): V1Service => kube.find<V1Service>("Service", parent.namespace, parent.name)!;

describe("ServiceReconciler", () => {
  it("1: adds the finalizer before creating anything", async () => {
    seedService();
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {}, "the Service watch brings it back with the finalizer");
    assert.deepEqual(service().metadata?.finalizers, ["tailscale.com/finalizer"]);
    assert.equal(kube.ofKind("StatefulSet").length, 0);
    assert.equal(control.keys.length, 0);
  });

  it("2: provisions the proxy with one tagged key, and waits for it", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), { requeueAfterMs: SAFETY_REQUEUE_MS });
    assert.deepEqual(control.keys, [{ tags: ["tag:k8s"] }]);
    const name = proxyName(parent);
    const config = kube.find<V1Secret>("Secret", "tailscale", `${name}-config`);
    assert.equal(Buffer.from(config?.data?.["authkey"] ?? "", "base64").toString(), "key-1");
    assert.ok(kube.find<V1Secret>("Secret", "tailscale", `${name}-0`), "the state Secret");
    // Reached over the tailnet only: no Service of its own (egress proxies have one).
    assert.equal(kube.find<V1Service>("Service", "tailscale", name), undefined);
    const sts = kube.find<V1StatefulSet>("StatefulSet", "tailscale", name);
    const env = Object.fromEntries((sts?.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env["TS_DEST_IP"], "10.96.0.10");
    assert.equal(env["TS_HOSTNAME"], "tailscaletest-nginx-tailscale");
    assert.equal(env["TS_LOGIN_SERVER"], "http://control.test");
    const pod = sts?.spec?.template.spec;
    assert.deepEqual(pod?.containers[0]?.securityContext?.capabilities, { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW", "MKNOD"] });
    // The key reaches the proxy as a mounted file, never as an environment variable.
    assert.equal(env["TS_AUTHKEY"], undefined);
    assert.equal(env["TS_AUTHKEY_FILE"], "/etc/tailnet-proxy/authkey");
    assert.equal(pod.volumes?.[0]?.secret?.secretName, `${name}-config`);
    // Forwarding: a privileged init container, and no unsafe pod sysctls.
    assert.deepEqual(pod.initContainers?.map((c) => [c.args, c.securityContext?.privileged]), [[["init", "net.ipv4.ip_forward=1"], true]]);
    assert.equal(pod.securityContext?.sysctls, undefined);
    // Its own identity, reaching only its own state Secret.
    assert.equal(pod.serviceAccountName, name);
    const role = kube.find<V1Role>("Role", "tailscale", name);
    assert.deepEqual(role?.rules, [{ apiGroups: [""], resources: ["secrets"], resourceNames: [`${name}-0`], verbs: ["get", "update", "patch"] }]);
    assert.deepEqual(kube.find<V1RoleBinding>("RoleBinding", "tailscale", name)?.subjects, [{ kind: "ServiceAccount", name, namespace: "tailscale" }]);
    assert.equal(sts?.metadata?.labels?.["tailscale.com/parent-resource-ns"], "tailscaletest");
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyPending");
  });

  it("2a: a new proxy's pass looks for each of its Secrets once (each read of a missing one is a request)", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    kube.misses.length = 0;
    await reconciler.reconcile(KEY, ctx);
    const name = proxyName(parent);
    const count = (secret: string): number => kube.misses.filter((miss) => miss === `Secret/tailscale/${secret}`).length;
    assert.equal(count(`${name}-config`), 1);
    assert.equal(count(`${name}-0`), 1);
  });

  it("3: publishes the device as EXTERNAL-IP once the proxy reports it, then a pass changes nothing", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    await proxyReports();
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(service().status?.loadBalancer?.ingress, [{ hostname: "tailscaletest-nginx-tailscale.tailnet.test" }, { ip: "100.64.0.7" }]);
    assert.equal(service().status?.conditions?.[0]?.status, "True");
    assert.deepEqual(events.map((e) => e.reason), ["ProxyPending", "ProxyReady"]);

    const writes = kube.writes.length;
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(kube.writes.slice(writes), [], "an idempotent pass writes nothing");
    assert.equal(control.keys.length, 1, "no second key");
    assert.equal(events.length, 2, "no repeated events");
  });

  it("4: rejects bad input with a Warning and creates nothing", async () => {
    seedService({ "tailscale.com/tags": "not-a-tag" });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyInvalid");
    assert.deepEqual(events.map((e) => [e.type, e.reason]), [["Warning", "ProxyInvalid"]]);
    assert.equal(service().metadata?.finalizers, undefined);
    assert.deepEqual(kube.writes.filter((w) => !w.includes("Service/tailscaletest")), []);
  });

  it("5: cleans up on deletion: StatefulSet, device, Secrets and Service, then the finalizer", async () => {
    await provisionToReady();
    // The headless Service earlier versions made for every proxy goes too.
    kube.seed<V1Service>({ apiVersion: "v1", kind: "Service", metadata: { name: proxyName(parent), namespace: "tailscale", labels: childLabels(parent) }, spec: { clusterIP: "None" } });
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { metadata: { deletionTimestamp: new Date() } });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(control.deleted, ["7"]);
    for (const kind of ["StatefulSet", "Secret", "ServiceAccount", "Role", "RoleBinding"]) assert.equal(kube.ofKind(kind).length, 0, kind);
    assert.equal(kube.ofKind("Service").filter((s) => s.metadata?.namespace === "tailscale").length, 0);
    assert.deepEqual(service().metadata?.finalizers, []);
  });

  it("5a: an egress proxy, reached by cluster pods, gets a headless Service for its name", async () => {
    const egressParent = { namespace: "apps", name: "db", type: "svc" as const };
    const target = { hostname: "apps-db-egress", tags: ["tag:k8s"], destinations: [], egress: { ip: "100.64.0.9", ports: [], families: [4 as const] } };
    await provisioner.ensure(egressParent, target, log);
    const name = proxyName(egressParent);
    const headless = kube.find<V1Service>("Service", "tailscale", name);
    assert.equal(headless?.spec?.clusterIP, "None");
    assert.deepEqual(headless.spec.selector, { app: name });
    assert.equal(kube.find<V1StatefulSet>("StatefulSet", "tailscale", name)?.spec?.serviceName, name);
  });

  it("6: surfaces a control plane that refuses the operator's credentials on the Service", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    control.failWith = new ControlPlaneError("POST /api/v1/preauthkey: HTTP 401: Unauthorized", 401);
    // Terminal: the runtime does not hot-retry it.
    await assert.rejects(reconciler.reconcile(KEY, ctx), (error: unknown) => error instanceof TerminalError && /HTTP 401/.test(error.message));
    assert.equal(service().status?.conditions?.[0]?.reason, "ControlPlaneError");
    assert.match(service().status?.conditions?.[0]?.message ?? "", /HTTP 401: Unauthorized/);
    assert.equal(events.at(-1)?.type, "Warning");
    assert.equal(kube.ofKind("StatefulSet").length, 0);
    assert.deepEqual(kube.ofKind("Secret").map((s) => s.metadata?.name), [], "no keyless Secret is left behind");
  });

  it("6a: retries a control plane that is down, throttles or times out (not terminal), saying so on the Service", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    for (const status of [0, 408, 429, 503]) {
      control.failWith = new ControlPlaneError(`POST /api/v1/preauthkey: HTTP ${status}`, status);
      await assert.rejects(reconciler.reconcile(KEY, ctx), (error: unknown) => error instanceof ControlPlaneError && !(error instanceof TerminalError), `status ${status}`);
      // Not silent while it retries: the Service says the control plane is the problem.
      assert.equal(service().status?.conditions?.[0]?.reason, "ControlPlaneError", `status ${status}`);
      assert.match(service().status?.conditions?.[0]?.message ?? "", new RegExp(`unreachable or failing; retrying with backoff \\(.*HTTP ${status}`));
      assert.equal(events.at(-1)?.type, "Warning");
    }
    assert.equal(kube.ofKind("StatefulSet").length, 0);
    for (const status of [0, 408, 429, 500, 503]) assert.equal(new ControlPlaneError("x", status).retryable, true, `status ${status}`);
    for (const status of [400, 401, 403, 404, 409, 422]) assert.equal(new ControlPlaneError("x", status).retryable, false, `status ${status}`);
  });

  it("6c: moves observedGeneration when a spec change leaves the condition as it was", async () => {
    await provisionToReady();
    const before = kube.writes.length;
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.equal(kube.writes.length, before, "nothing to write when nothing changed");
    assert.equal(service().status?.conditions?.[0]?.observedGeneration, 1);
    // The user changes the spec (a new generation) in a way that leaves the proxy as it is.
    const stored = kube.ofKind("Service").find((s) => s.metadata?.namespace === parent.namespace && s.metadata.name === parent.name);
    assert.ok(stored?.metadata);
    stored.metadata.generation = 2;
    await reconciler.reconcile(KEY, ctx);
    assert.equal(service().status?.conditions?.[0]?.observedGeneration, 2);
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyReady");
  });

  it("6b: a proxy pod that cannot start says why on the Service, with a Warning", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    kube.seed<V1Pod>({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `${proxyName(parent)}-0`, namespace: "tailscale", labels: { ...childLabels(parent), app: proxyName(parent) } },
      status: {
        containerStatuses: [
          {
            name: "tailscale",
            image: "ghcr.io/tailnet-operator/proxy:0.1.0",
            imageID: "",
            ready: false,
            restartCount: 3,
            state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s restarting failed container" } },
            lastState: { terminated: { exitCode: 1, reason: "Error", message: "line 1\nspawn tailscaled ENOENT\n" } },
          },
        ],
      },
    });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), { requeueAfterMs: SAFETY_REQUEUE_MS });
    const condition = service().status?.conditions?.[0];
    assert.equal(condition?.reason, "ProxyFailed");
    assert.match(condition.message, /container tailscale: CrashLoopBackOff: Error \(exit 1\): line 1 \| spawn tailscaled ENOENT/);
    assert.equal(events.at(-1)?.type, "Warning");
  });

  it("6c: uninstall releases a Service that still asks for a proxy: device, children, status and finalizer gone", async () => {
    await provisionToReady();
    const result = await releaseAll({ kube, release: reconciler.release, log, clock: { now: () => 0, sleep: () => Promise.resolve() }, deadlineMs: 1_000 });
    assert.deepEqual(result, { released: [KEY], failed: [] });
    assert.deepEqual(control.deleted, ["7"]);
    for (const kind of ["StatefulSet", "Secret", "ServiceAccount", "Role", "RoleBinding"]) assert.equal(kube.ofKind(kind).length, 0, kind);
    assert.deepEqual(service().metadata?.finalizers, []);
    assert.equal(service().status?.loadBalancer?.ingress, undefined);
    assert.equal(service().spec?.loadBalancerClass, "tailscale", "the user's spec is left as written");
  });

  it("6d: a stuck proxy pod with an outdated template is replaced (a StatefulSet never replaces a pod that is not Ready)", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    const name = proxyName(parent);
    await kube.mergePatch({ apiVersion: "apps/v1", kind: "StatefulSet", namespace: "tailscale", name }, { status: { updateRevision: `${name}-new` } });
    const stuck = (revision: string): V1Pod => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `${name}-0`, namespace: "tailscale", labels: { ...childLabels(parent), app: name, "controller-revision-hash": revision }, ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name, uid: "u" }] },
      status: { initContainerStatuses: [{ name: "sysctls", image: "x", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } } }] },
    });
    kube.seed(stuck(`${name}-new`));
    await reconciler.reconcile(KEY, ctx);
    assert.ok(kube.find("Pod", "tailscale", `${name}-0`), "a stuck pod of the current revision stays (deleting it would change nothing)");
    kube.seed(stuck(`${name}-old`));
    await reconciler.reconcile(KEY, ctx);
    assert.equal(kube.find("Pod", "tailscale", `${name}-0`), undefined, "the outdated stuck pod is deleted, for the StatefulSet to make it again");
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyFailed");
  });

  it("7: leaves other Services alone without writing anything", async () => {
    kube.seed<V1Service>({ apiVersion: "v1", kind: "Service", metadata: { name: "other", namespace: "default" }, spec: { type: "LoadBalancer", loadBalancerClass: "metallb", clusterIP: "10.96.0.11" } });
    assert.deepEqual(await reconciler.reconcile("default/other", ctx), {});
    assert.deepEqual(kube.writes, []);
  });

  it("8: a tags change replaces the device: old one deleted, new key with the new tags", async () => {
    await provisionToReady();
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { metadata: { annotations: { "tailscale.com/tags": "tag:prod" } } });
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(control.deleted, ["7"]);
    assert.deepEqual(control.keys.map((k) => k.tags), [["tag:k8s"], ["tag:prod"]]);
    const sts = kube.find<V1StatefulSet>("StatefulSet", "tailscale", proxyName(parent));
    assert.equal(sts?.spec?.template.metadata?.annotations?.["tailscale.com/proxy-identity"], "tailscaletest-nginx-tailscale tag:prod");
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyPending", "waiting for the new device");
  });

  it("9: a type change to ClusterIP (no annotation) removes the proxy and takes the status back", async () => {
    await provisionToReady();
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { spec: { type: "ClusterIP", loadBalancerClass: null } });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(control.deleted, ["7"]);
    assert.equal(kube.ofKind("StatefulSet").length, 0);
    assert.deepEqual(service().status, {});
    assert.deepEqual(service().metadata?.finalizers, []);
    assert.equal(events.at(-1)?.reason, "ProxyDeleted");
  });
  it("10: a Service deleted before its proxy logs in leaves no usable key: cleanup revokes it", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(control.unrevokedKeyIds(), ["id-1"]);
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { metadata: { deletionTimestamp: new Date() } });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(control.unrevokedKeyIds(), []);
    assert.equal(kube.ofKind("Secret").length, 0);
  });

  it("11: a key whose config Secret cannot be created is revoked at once, and nothing is left", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    // The create of the config Secret (which carries the new key) fails.
    const realCreate = kube.create.bind(kube);
    kube.create = ((object: Parameters<typeof kube.create>[0]) => (object.kind === "Secret" && (object.metadata?.name ?? "").endsWith("-config") ? Promise.reject(new Error("conflict")) : realCreate(object))) as typeof kube.create;
    await assert.rejects(reconciler.reconcile(KEY, ctx), /conflict/);
    assert.equal(control.keys.length, 1);
    assert.deepEqual(control.unrevokedKeyIds(), [], "the minted key was revoked");
    assert.deepEqual(kube.ofKind("Secret").map((secret) => secret.metadata?.name), [], "no keyless Secret");
    kube.create = realCreate;
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(control.unrevokedKeyIds(), ["id-2"], "the next pass mints the key the Secret holds");
  });

  it("12: a lost state Secret: the old device is deleted, a new key replaces the used one, and the pod restarts", async () => {
    await provisionToReady();
    const name = proxyName(parent);
    assert.equal(kube.find<V1Secret>("Secret", "tailscale", `${name}-config`)?.metadata?.annotations?.["tailscale.com/device-id"], "7");
    kube.seed<V1Pod>({ apiVersion: "v1", kind: "Pod", metadata: { name: `${name}-0`, namespace: "tailscale", labels: { ...childLabels(parent), app: name } } });
    await kube.delete({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: `${name}-0` });
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(control.deleted, ["7"]);
    assert.deepEqual(control.unrevokedKeyIds(), ["id-2"], "the used key revoked, a new one minted");
    assert.equal(kube.find("Pod", "tailscale", `${name}-0`), undefined, "the pod starts again from the empty state");
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyPending");
    // The proxy logs in again as a new device.
    const b64 = (v: string): string => Buffer.from(v).toString("base64");
    await kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: `${name}-0` }, {
      data: { device_id: b64("8"), device_fqdn: b64("tailscaletest-nginx-tailscale.tailnet.test"), device_ips: b64('["100.64.0.8"]') },
    });
    await reconciler.reconcile(KEY, ctx);
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyReady");
    assert.deepEqual(control.deleted, ["7"], "the new device stays");
    assert.equal(kube.find<V1Secret>("Secret", "tailscale", `${name}-config`)?.metadata?.annotations?.["tailscale.com/device-id"], "8");
  });

  it("13: cleanup deletes the device tailscaled's login profile names, when the proxy died before writing device_id", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    const profiles = JSON.stringify({ a1b2: { ID: "a1b2", Name: "x", NodeID: "42", ControlURL: "http://control.test" } });
    await kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: stateSecretName(parent) }, { data: { _profiles: Buffer.from(profiles).toString("base64") } });
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { metadata: { deletionTimestamp: new Date() } });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(control.deleted, ["42"]);
  });
  it("13a: cleanup deletes a device that joined with the proxy's key but that no Secret names (the proxy died mid-login)", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    const device = (id: string, authKeyId: string): Device => ({ id, hostname: "x", addresses: [], tags: ["tag:k8s"], authKeyId });
    control.devices.set("50", device("50", "id-1"));
    control.devices.set("51", device("51", "id-99")); // another proxy's, or a user's
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { metadata: { deletionTimestamp: new Date() } });
    assert.deepEqual(await reconciler.reconcile(KEY, ctx), {});
    assert.deepEqual(control.deleted, ["50"]);

    control.linksDevicesToKeys = false; // Tailscale: no link, no listing
    control.deleted.length = 0;
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    control.devices.set("52", device("52", "id-2"));
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name }, { metadata: { deletionTimestamp: new Date() } });
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(control.deleted, []);
  });

  it("14: a login the proxy reports as refused is a Warning with advice; a refused key is replaced once and the pod restarts", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    const name = proxyName(parent);
    const b64 = (v: string): string => Buffer.from(v).toString("base64");
    const report = (words: string): Promise<void> =>
      kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: stateSecretName(parent) }, { data: { tailnet_login_state: b64("Failed"), tailnet_login_error: b64(words) } });
    await report("requested tags [tag:x] are invalid or not permitted");
    await reconciler.reconcile(KEY, ctx);
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyFailed");
    assert.match(service().status?.conditions?.[0]?.message ?? "", /does not let the operator assign these tags.*tag:x/);
    assert.equal(events.at(-1)?.type, "Warning");
    assert.equal(control.keys.length, 1, "a tags refusal is not the key's fault");

    kube.seed<V1Pod>({ apiVersion: "v1", kind: "Pod", metadata: { name: `${name}-0`, namespace: "tailscale", labels: { ...childLabels(parent), app: name } } });
    await report("backend error: invalid key: authkey expired");
    control.devices.set("60", { id: "60", hostname: "x", addresses: [], tags: ["tag:k8s"], authKeyId: "id-1" });
    await reconciler.reconcile(KEY, ctx);
    assert.deepEqual(control.unrevokedKeyIds(), ["id-2"], "the refused key revoked, a new one minted");
    assert.deepEqual(control.deleted, ["60"], "a device an unseen login made with the refused key is deleted");
    assert.equal(kube.find("Pod", "tailscale", `${name}-0`), undefined, "the pod restarts with the new key");
    const state = kube.find<V1Secret>("Secret", "tailscale", stateSecretName(parent));
    assert.equal(state?.data?.["tailnet_login_state"], undefined, "the report is consumed");
    // The pass that consumed the report still says why (a read after the clear sees no report).
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyFailed");
    assert.match(service().status?.conditions?.[0]?.message ?? "", /^login failed: the proxy's auth key is expired, revoked or used up: the operator mints a new one; the control plane said: .*authkey expired/);
    assert.deepEqual(events.at(-1), { type: "Warning", reason: "ProxyFailed", message: service().status?.conditions?.[0]?.message });
    await reconciler.reconcile(KEY, ctx);
    assert.equal(control.keys.length, 2, "one new key per refusal");
    assert.equal(service().status?.conditions?.[0]?.reason, "ProxyPending", "then it waits for the new pod, said once");
  });

  it("14b: a refusal reported with a key the operator already replaced (a pod on its way out) replaces nothing", async () => {
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    const b64 = (v: string): string => Buffer.from(v).toString("base64");
    const keyInConfig = (): string => Buffer.from(kube.find<V1Secret>("Secret", "tailscale", configSecretName(parent))?.data?.["authkey"] ?? "", "base64").toString();
    const report = (key: string): Promise<void> =>
      kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: stateSecretName(parent) }, { data: { tailnet_login_state: b64("Failed"), tailnet_login_error: b64("AuthKey has been used already"), tailnet_login_key: b64(keyFingerprint(key)) } });
    const first = keyInConfig();
    await report(first);
    await reconciler.reconcile(KEY, ctx);
    assert.equal(control.keys.length, 2, "the refused key is replaced");
    assert.notEqual(keyInConfig(), first);
    await report(first);
    await reconciler.reconcile(KEY, ctx);
    assert.equal(control.keys.length, 2, "the old key's late report is not taken for the new key's");
    await report(keyInConfig());
    await reconciler.reconcile(KEY, ctx);
    assert.equal(control.keys.length, 3, "a refusal of the new key is");
  });

  it("15: a Tailscale refusal of the tags at key creation says what to change", async () => {
    seedService({ "tailscale.com/tags": "tag:k8s,tag:x" });
    await reconciler.reconcile(KEY, ctx);
    control.failWith = new ControlPlaneError('POST /api/v2/tailnet/-/keys: HTTP 400: {"message":"requested tags [tag:x] are invalid or not permitted"}', 400);
    await assert.rejects(reconciler.reconcile(KEY, ctx), TerminalError);
    assert.match(service().status?.conditions?.[0]?.message ?? "", /make the operator's tag an owner of each.*tag:x/);
    assert.deepEqual(control.unrevokedKeyIds(), []);
  });

  it("16: a hostname the tailnet gave a suffix names the Service that holds it, with a Warning", async () => {
    kube.seed<V1Secret>({
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "ts-first-abc123-config",
        namespace: "tailscale",
        labels: { ...childLabels({ namespace: "other", name: "first", type: "svc" }), "tailscale.com/secret-type": "config" },
        annotations: { "tailscale.com/proxy-identity": "tailscaletest-nginx-tailscale tag:k8s" },
      },
    });
    seedService();
    await reconciler.reconcile(KEY, ctx);
    await reconciler.reconcile(KEY, ctx);
    const b64 = (v: string): string => Buffer.from(v).toString("base64");
    await kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: stateSecretName(parent) }, {
      data: { device_id: b64("9"), device_fqdn: b64("tailscaletest-nginx-tailscale-1.tailnet.test"), device_ips: b64('["100.64.0.9"]') },
    });
    await reconciler.reconcile(KEY, ctx);
    const condition = service().status?.conditions?.[0];
    assert.equal(condition?.status, "True");
    assert.equal(condition.reason, "HostnameTaken");
    assert.match(condition.message, /"tailscaletest-nginx-tailscale" is taken by Service other\/first; exposed on the tailnet as tailscaletest-nginx-tailscale-1\.tailnet\.test/);
    assert.equal(events.at(-1)?.type, "Warning");
    assert.equal(service().status?.loadBalancer?.ingress?.[0]?.hostname, "tailscaletest-nginx-tailscale-1.tailnet.test");
  });
});
