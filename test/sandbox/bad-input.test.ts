// Bad input on the real node, as users get it wrong: a proxy image that does not exist, an image
// without tailscaled, control-plane credentials that are missing, wrong or empty, a namespace
// that is not there. Each gives a clear condition, Event or error naming the problem (never a
// silent crash loop), leaves nothing half-made, and recovers once fixed. The operator is left
// installed and healthy for the files that follow in this sandbox.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, readyCondition } from "../helpers/cluster-env.ts";
import { CHART_DIR, installOperator, RELEASE, SandboxHelm, sandboxValues, type Values } from "../../src/sandbox/operator-install.ts";
import { readImageIndex, requireImage } from "../../src/sandbox/cluster/image-import.ts";
import { proxyName, type ProxyParent } from "../../src/operator/proxy-objects.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const helm = new SandboxHelm(sandbox);
const images = readImageIndex();
const PROXY_IMAGE = requireImage(images, "proxy").ref;
const NORMAL: Values = { replicaCount: 1 };
/** The Headscale key from a Secret of the user's instead of from values (exactly one source). */
const fromSecret = (name: string): Values => ({ ...NORMAL, controlPlane: { headscale: { apiKey: "" }, existingSecret: name } });

before(async () => {
  await installOperator(sandbox, { values: NORMAL });
});

const EXPOSED: readonly ProxyParent[] = [
  { namespace: "bad-image", name: "web", type: "svc" },
  { namespace: "no-tailscaled", name: "web", type: "svc" },
  { namespace: "bad-key", name: "web", type: "svc" },
];

after(async () => {
  await installOperator(sandbox, { values: NORMAL });
  // Whatever a failed case left exposed goes, so the next files start clean.
  for (const parent of EXPOSED) if (await env.service(parent.namespace, parent.name)) await remove(parent);
});

const isReady = (svc: V1Service): boolean => readyCondition(svc)?.status === "True";

async function expose(parent: ProxyParent): Promise<void> {
  await env.webService(parent.namespace, parent.name, { type: "ClusterIP" }, { "tailscale.com/expose": "true" });
}

async function waitForReason(parent: ProxyParent, reason: string, timeoutMs = 120_000): Promise<{ message: string }> {
  const svc = await env.waitForService(parent.namespace, parent.name, `condition reason ${reason}`, (s) => readyCondition(s)?.reason === reason, timeoutMs);
  return { message: readyCondition(svc)?.message ?? "" };
}

async function waitReady(parent: ProxyParent, timeoutMs = 240_000): Promise<void> {
  await env.waitForService(parent.namespace, parent.name, "ready", isReady, timeoutMs).catch(async (error: unknown) => {
    const svc = await env.service(parent.namespace, parent.name);
    const name = proxyName(parent);
    const sts = await env.apps.readNamespacedStatefulSet({ namespace: OPERATOR_NAMESPACE, name }).catch(() => undefined);
    const pod = await env.pod(OPERATOR_NAMESPACE, `${name}-0`);
    // A StatefulSet (OrderedReady) does not replace a pod that never became ready, even after
    // its template is fixed (Kubernetes' "forced rollback" caveat): show both sides.
    const sides = { statefulSet: sts?.spec?.template.spec?.containers[0]?.image, updateRevision: sts?.status?.updateRevision, pod: pod?.spec?.containers[0]?.image, podRevision: pod?.metadata?.labels?.["controller-revision-hash"] };
    throw new Error(`${(error as Error).message}; condition: ${JSON.stringify(svc && readyCondition(svc))}; ${JSON.stringify(sides)}`);
  });
}

async function warningEvent(parent: ProxyParent, reason: string): Promise<string> {
  const event = await waitFor(`a Warning Event ${reason} on ${parent.namespace}/${parent.name}`, async () => (await env.events(parent.namespace, parent.name)).find((e) => e.reason === reason && e.type === "Warning"), { timeoutMs: 30_000 });
  return event.message ?? "";
}

/** Deletes the Service and waits until the operator let it go (device and proxy removed). */
async function remove(parent: ProxyParent): Promise<void> {
  await env.core.deleteNamespacedService({ namespace: parent.namespace, name: parent.name });
  await waitFor(`${parent.namespace}/${parent.name} to be deleted`, async () => ((await env.service(parent.namespace, parent.name)) ? undefined : true), { timeoutMs: 120_000 });
  assert.deepEqual(await env.children(parent.namespace, parent.name), []);
}

async function releaseRevision(): Promise<number> {
  const { stdout } = await helm.run(["status", RELEASE, "-n", OPERATOR_NAMESPACE, "-o", "json"]);
  return (JSON.parse(stdout) as { version: number }).version;
}

/** `kubectl rollout restart`: a new pod template annotation, so the Deployment replaces its pods. */
async function restartOperator(): Promise<void> {
  const template = { metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": new Date().toISOString() } } };
  await env.objects.patch({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: RELEASE, namespace: OPERATOR_NAMESPACE }, spec: { template } } as never, undefined, undefined, undefined, undefined, "application/merge-patch+json");
}

async function putSecret(name: string, apiKey: string): Promise<void> {
  const body = { metadata: { name, namespace: OPERATOR_NAMESPACE }, stringData: { "api-key": apiKey } };
  await env.core.createNamespacedSecret({ namespace: OPERATOR_NAMESPACE, body }).catch(() => env.core.replaceNamespacedSecret({ name, namespace: OPERATOR_NAMESPACE, body }));
}

describe("bad input on a real node", () => {
  it("a proxy image that does not exist: ProxyFailed naming the pull error and the image; ready once the tag is fixed", async () => {
    const parent = EXPOSED[0] as ProxyParent;
    await installOperator(sandbox, { values: { ...NORMAL, proxy: { image: { tag: "does-not-exist" } } } });
    await expose(parent);
    const { message } = await waitForReason(parent, "ProxyFailed");
    assert.match(message, /ErrImagePull|ImagePullBackOff/);
    assert.match(message, /ghcr\.io\/tailnet-operator\/proxy:does-not-exist/);
    // The pull failed inside the node, at once: its resolver is 127.0.0.1 and nothing answers there.
    assert.match(message, /127\.0\.0\.1:53/, "the pull never left the node");
    assert.match(await warningEvent(parent, "ProxyFailed"), /does-not-exist/);

    await installOperator(sandbox, { values: NORMAL });
    await waitReady(parent);
    const pod = await env.pod(OPERATOR_NAMESPACE, `${proxyName(parent)}-0`);
    assert.equal(pod?.spec?.containers[0]?.image, PROXY_IMAGE);
    await remove(parent);
  });

  it("an image without tailscaled: ProxyFailed naming the crash loop and the proxy's own last words", async () => {
    const parent = EXPOSED[1] as ProxyParent;
    const { ref } = requireImage(images, "proxy-test-no-tailscaled");
    await installOperator(sandbox, { values: { ...NORMAL, proxy: { image: { tag: ref.slice(ref.lastIndexOf(":") + 1) } } } });
    await expose(parent);
    const { message } = await waitForReason(parent, "ProxyFailed");
    assert.match(message, /CrashLoopBackOff/);
    assert.match(message, /proxy failed: tailscaled not found on PATH \(.*\): this image lacks it/);
    await warningEvent(parent, "ProxyFailed");

    await installOperator(sandbox, { values: NORMAL });
    await waitReady(parent);
    await remove(parent);
  });

  it("an existingSecret that does not exist fails the Helm upgrade, naming it, and changes nothing", async () => {
    const revision = await releaseRevision();
    await assert.rejects(installOperator(sandbox, { values: fromSecret("no-such-secret") }), (error: Error) => {
      assert.match(error.message, /Secret no-such-secret not found in namespace tailscale: create it first, see docs\/install\.md/);
      return true;
    });
    assert.equal(await releaseRevision(), revision, "no new release revision");
  });

  it("a wrong Headscale API key: the operator runs, the Service gets ControlPlaneError (401) and a Warning; fixed key + restart makes it ready", async () => {
    const parent = EXPOSED[2] as ProxyParent;
    const good = await sandbox.headscaleAdmin.createApiKey();
    // Same shape as a real key, but not one Headscale issued.
    const wrong = `${good.slice(0, -6)}${good.slice(-6).split("").reverse().join("")}x`;
    await putSecret("operator-credentials", wrong);
    await installOperator(sandbox, { values: fromSecret("operator-credentials") });
    await expose(parent);
    const { message } = await waitForReason(parent, "ControlPlaneError");
    assert.match(message, /401|Unauthorized/i);
    assert.match(await warningEvent(parent, "ControlPlaneError"), /401|Unauthorized/i);
    assert.deepEqual(await env.children(parent.namespace, parent.name), [], "no proxy objects without an auth key");

    await putSecret("operator-credentials", good);
    await restartOperator();
    await waitReady(parent);
    await remove(parent);
  });

  it("an empty API key: the operator exits saying so, in its pod's termination message", async () => {
    await putSecret("empty-credentials", "");
    const values = await helm.valuesFile("empty-key", await sandboxValues(sandbox, fromSecret("empty-credentials")));
    // No --wait: the new pod never becomes ready; the old one keeps serving meanwhile.
    await helm.run(["upgrade", RELEASE, CHART_DIR, "-n", OPERATOR_NAMESPACE, "-f", values]);
    const said = await waitFor("an operator container that exited with a termination message", async () => {
      for (const pod of await env.operatorPods()) {
        const status = pod.status?.containerStatuses?.[0];
        const message = status?.lastState?.terminated?.message ?? status?.state?.terminated?.message;
        if (message) return message;
      }
      return undefined;
    }, { timeoutMs: 120_000, intervalMs: 500 });
    assert.match(said, /cannot read the Headscale API key from \/etc\/tailnet-operator\/api-key: file is empty/);

    await installOperator(sandbox, { values: NORMAL });
    await waitFor("one ready operator pod", async () => {
      const pods = await env.operatorPods();
      return pods.length === 1 && pods[0]?.status?.containerStatuses?.[0]?.ready ? true : undefined;
    }, { timeoutMs: 120_000 });
    for (const name of ["operator-credentials", "empty-credentials"]) await env.core.deleteNamespacedSecret({ name, namespace: OPERATOR_NAMESPACE });
  });

  it("helm install into a namespace that does not exist fails with Helm's error, and creates nothing", async () => {
    const release = "elsewhere";
    // Another release: its own cluster-scoped names; the IngressClass belongs to the first one.
    const values = await helm.valuesFile(release, await sandboxValues(sandbox, { ...NORMAL, ingressClass: { enabled: false } }));
    await assert.rejects(helm.run(["install", release, CHART_DIR, "-n", "no-such-namespace", "-f", values, "--wait", "--timeout", "1m"]), (error: Error) => {
      assert.match(error.message, /namespaces "no-such-namespace" not found/);
      return true;
    });
    const roles = await env.objects.list("rbac.authorization.k8s.io/v1", "ClusterRole");
    assert.deepEqual(roles.items.map((r) => r.metadata?.name ?? "").filter((name) => name.startsWith(release)), [], "no cluster-scoped object of the failed release");
    await assert.rejects(helm.run(["status", release, "-n", "no-such-namespace"]), /release: not found/, "no release record of it");
  });
});
