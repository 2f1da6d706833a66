// The product as a user gets it: `helm install` on a real node (kubelet, containerd, kube-proxy,
// CoreDNS), the operator in-cluster from its image with the chart's RBAC, the seed manifest's
// nginx pods behind a proxy pod, reached from a laptop on the tailnet. Then what users hit:
// restarts of every kind, least privilege shown by the API server's own 403s, upgrade, uninstall.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import type { V1Secret } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, OPERATOR_NAMESPACE, pidsOf, processEnvironment, processesContaining, readyCondition, seedManifest } from "../helpers/cluster-env.ts";
import { installOperator, RELEASE, SandboxHelm } from "../../src/sandbox/operator-install.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { proxyName, stateSecretName, configSecretName, type ProxyParent } from "../../src/operator/proxy-objects.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
const LEASE_SECONDS = 4;
const CHART_VALUES = { replicaCount: 2, leaderElection: { leaseDurationSeconds: LEASE_SECONDS, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 } };
const seed: ProxyParent = { namespace: "tailscaletest", name: "nginx-tailscale", type: "svc" };
const SEED_HOST = "tailscaletest-nginx-tailscale";
let laptop: TailnetDevice;

before(async () => {
  await installOperator(sandbox, { values: CHART_VALUES });
  laptop = await sandbox.addDevice("laptop");
});

const isReady = (svc: { status?: { conditions?: { type: string; status: string }[] } }): boolean =>
  svc.status?.conditions?.some((c) => c.type === "TailscaleProxyReady" && c.status === "True") ?? false;

async function expectForbidden(what: string, call: () => Promise<unknown>): Promise<void> {
  await assert.rejects(call, (error: { code?: number }) => error.code === 403, `${what}: expected the API server's 403`);
}

async function proxyPod(parent: ProxyParent) {
  const name = `${proxyName(parent)}-0`;
  try {
    return await waitFor(`the proxy pod of ${parent.namespace}/${parent.name} to be ready`, async () => {
      const pod = await env.pod(OPERATOR_NAMESPACE, name);
      return pod?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") && !pod.metadata?.deletionTimestamp ? pod : undefined;
    }, { timeoutMs: 120_000, intervalMs: 250 });
  } catch (error) {
    // What the pod and the operators were doing, for whoever reads the failure.
    const pod = await env.pod(OPERATOR_NAMESPACE, name);
    const detail = [`pod: ${JSON.stringify({ uid: pod?.metadata?.uid, deleting: pod?.metadata?.deletionTimestamp, status: pod?.status?.containerStatuses })}`, `proxy log:\n${await env.podLogTail(OPERATOR_NAMESPACE, name, 15)}`, await env.operatorLogTails(15)];
    throw new Error(`${(error as Error).message}\n${detail.join("\n")}`, { cause: error });
  }
}

describe("install on a real node", () => {
  it("installs with Helm: two operator replicas from the image, in-cluster, one of them leading", async () => {
    const pods = await env.operatorPods();
    assert.equal(pods.length, 2);
    for (const pod of pods) {
      const container = pod.spec?.containers[0];
      assert.equal(container?.image, "ghcr.io/tailnet-operator/operator:0.1.0");
      assert.equal(container.securityContext?.runAsNonRoot, true);
      assert.equal(pod.status?.phase, "Running");
    }
    const leader = await waitFor("a leader", () => env.leader(), { timeoutMs: 30_000 });
    assert.ok(pods.some((p) => p.metadata?.name === leader), `the Lease holder ${leader} is one of the pods`);
  });

  it("puts the seed manifest on the tailnet: nginx pods behind kube-proxy, fetched from a laptop", async () => {
    await env.apply(seedManifest("l3-service.yaml"));
    await waitFor("nginx's two pods", async () => {
      const deployment = await env.apps.readNamespacedDeployment({ name: "nginx-tailscale", namespace: "tailscaletest" });
      return (deployment.status?.availableReplicas ?? 0) === 2 ? true : undefined;
    }, { timeoutMs: 120_000 });
    const svc = await env.waitForService(seed.namespace, seed.name, "EXTERNAL-IP set", (s) => Boolean(s.status?.loadBalancer?.ingress?.length));
    const hostname = `${SEED_HOST}.${TAILNET_DOMAIN}`;
    assert.equal(svc.status?.loadBalancer?.ingress?.[0]?.hostname, hostname);
    assert.match(svc.status.loadBalancer.ingress[1]?.ip ?? "", /^100\./);
    assert.deepEqual((await env.devices(SEED_HOST)).map((d) => d.tags), [["tag:k8s"]]);
    assert.match(await env.fetch(laptop, `http://${hostname}/`), /^HTTP\/1\.1 200 OK[\s\S]*nginx/i);
    const ready = await env.waitForEvent(seed.namespace, seed.name, "ProxyReady", (e) => e.reason === "ProxyReady");
    assert.match(ready.message ?? "", /proxy firewall: (nftables|iptables-nft|iptables-legacy) \(/);
  });

  it("lets each proxy reach only its own state Secret, and the operator nothing outside its grants (API server 403s)", async () => {
    const other: ProxyParent = { namespace: "rbac", name: "other", type: "svc" };
    await env.webService(other.namespace, other.name, { type: "ClusterIP" }, { "tailscale.com/expose": "true" });
    await env.waitForService(other.namespace, other.name, "ready", isReady);

    const proxy = await env.clientAs(OPERATOR_NAMESPACE, proxyName(seed));
    const own = await proxy.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: stateSecretName(seed) });
    assert.ok(own.data?.["device_id"], "reads its own state");
    await proxy.patchNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: stateSecretName(seed), body: [{ op: "test", path: "/metadata/name", value: stateSecretName(seed) }] });
    await expectForbidden("its own config Secret (the kubelet mounts it)", () => proxy.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: configSecretName(seed) }));
    await expectForbidden("another proxy's state", () => proxy.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: stateSecretName(other) }));
    await expectForbidden("the operator's credentials", () => proxy.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: `${RELEASE}-credentials` }));
    await expectForbidden("listing Secrets", () => proxy.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE }));
    await expectForbidden("Secrets elsewhere", () => proxy.listNamespacedSecret({ namespace: "kube-system" }));

    const operator = await env.clientAs(OPERATOR_NAMESPACE, RELEASE);
    assert.ok((await operator.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE })).items.length > 0, "the operator manages Secrets in its namespace");
    // It may read Secrets anywhere (the TLS Secrets Ingresses name, ADR 0011), but write none there.
    await expectForbidden("the operator writing Secrets in kube-system", () => operator.createNamespacedSecret({ namespace: "kube-system", body: { metadata: { name: "planted" }, stringData: { k: "v" } } }));
    await expectForbidden("the operator deleting a user's pods", () => operator.deleteCollectionNamespacedPod({ namespace: "tailscaletest" }));
  });

  it("never puts the auth key on a command line or in an environment", async () => {
    const config = await env.core.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: configSecretName(seed) });
    const key = Buffer.from(config.data?.["authkey"] ?? "", "base64").toString();
    assert.ok(key.length > 10, "the config Secret holds the key");
    assert.ok(pidsOf("tailscaled", `--state=kube:${stateSecretName(seed)}`).length === 1, "the proxy's tailscaled runs (so the scan can see it)");
    assert.deepEqual(processesContaining(key), []);
  });

  it("comes back as the same device when the proxy pod is deleted and when its container is killed", async () => {
    const before = await env.devices(SEED_HOST);
    const url = `http://${SEED_HOST}.${TAILNET_DOMAIN}/`;
    const first = await proxyPod(seed);
    await env.core.deleteNamespacedPod({ namespace: OPERATOR_NAMESPACE, name: first.metadata?.name ?? "" });
    const second = await waitFor("a new proxy pod", async () => {
      const pod = await proxyPod(seed);
      return pod.metadata?.uid !== first.metadata?.uid ? pod : undefined;
    }, { timeoutMs: 120_000 });
    assert.match(await env.fetch(laptop, url), /nginx/i);
    assert.deepEqual(await env.devices(SEED_HOST), before, "same device after the pod was replaced");

    const [pid] = pidsOf("/app/bin/tailnet-proxy.js").filter((p) => processEnvironment(p).includes(`POD_NAME=${second.metadata?.name ?? ""}`));
    assert.ok(pid, "the proxy's main process");
    process.kill(pid, "SIGKILL");
    await waitFor("the container to restart", async () => {
      const pod = await env.pod(OPERATOR_NAMESPACE, second.metadata?.name ?? "");
      const restarts = pod?.status?.containerStatuses?.[0]?.restartCount ?? 0;
      return restarts > 0 && pod?.status?.containerStatuses?.[0]?.ready ? true : undefined;
    }, { timeoutMs: 120_000, intervalMs: 500 });
    assert.match(await env.fetch(laptop, url), /nginx/i);
    assert.deepEqual(await env.devices(SEED_HOST), before, "same device after the container was killed");
  });

  it("converges without duplicates when the leader's pod is deleted in the middle of provisioning", async () => {
    const parent: ProxyParent = { namespace: "crash", name: "web", type: "svc" };
    await env.webService(parent.namespace, parent.name, { type: "LoadBalancer", loadBalancerClass: "tailscale" });
    await waitFor("the key to be minted", async () => ((await env.children(parent.namespace, parent.name)).includes(`Secret/${configSecretName(parent)}`) ? true : undefined), { timeoutMs: 60_000, intervalMs: 20 });
    const leader = await env.leader();
    assert.ok(leader);
    await env.core.deleteNamespacedPod({ namespace: OPERATOR_NAMESPACE, name: leader, gracePeriodSeconds: 0 });
    const svc = await env.waitForService(parent.namespace, parent.name, "ready after the leader was replaced", isReady, 180_000);
    assert.equal(svc.status?.loadBalancer?.ingress?.[0]?.hostname, `crash-web.${TAILNET_DOMAIN}`);
    const name = proxyName(parent);
    assert.deepEqual(await env.children(parent.namespace, parent.name), [
      `Role/${name}`,
      `RoleBinding/${name}`,
      `Secret/${name}-0`,
      `Secret/${name}-config`,
      `ServiceAccount/${name}`,
      `StatefulSet/${name}`,
    ]);
    assert.equal((await env.devices("crash-web")).length, 1, "one device on the tailnet");
    assert.notEqual(await env.leader(), leader, "another replica leads");
  });

  it("brings the proxies back as the same devices after a node reboot (kubelet and containerd killed and restarted)", async () => {
    const before = await env.devices(SEED_HOST);
    for (const node of sandbox.nodes) await sandbox.restartNode(node.name);
    await proxyPod(seed);
    assert.match(await env.fetch(laptop, `http://${SEED_HOST}.${TAILNET_DOMAIN}/`, 120_000), /nginx/i);
    assert.deepEqual(await env.devices(SEED_HOST), before, "same device, no duplicate");
  });

  it("rolls the proxies when a Helm upgrade changes their settings, keeping their devices", async () => {
    const before = await env.devices(SEED_HOST);
    const old = await proxyPod(seed);
    await installOperator(sandbox, { values: { ...CHART_VALUES, proxy: { env: { TNO_UPGRADE_MARK: "2" } } } });
    const rolled = await waitFor("the proxy to roll", async () => {
      const pod = await proxyPod(seed);
      return pod.metadata?.uid !== old.metadata?.uid ? pod : undefined;
    }, { timeoutMs: 180_000 });
    assert.ok(rolled.spec?.containers[0]?.env?.some((e) => e.name === "TNO_UPGRADE_MARK" && e.value === "2"));
    assert.match(await env.fetch(laptop, `http://${SEED_HOST}.${TAILNET_DOMAIN}/`), /nginx/i);
    assert.deepEqual(await env.devices(SEED_HOST), before);
  });

  it("uninstalls cleanly with Services still exposed: the hook deletes devices and releases Services, nothing is left", async () => {
    // One Service goes the ordinary way first; the other two are still exposed at uninstall.
    await env.core.deleteNamespacedService({ namespace: "crash", name: "web" });
    // Generous: on a loaded machine the proxy pod's graceful stop alone can take a minute.
    await waitFor("crash/web to be deleted", async () => ((await env.service("crash", "web")) ? undefined : true), { timeoutMs: 300_000 });
    assert.equal((await env.devices(SEED_HOST)).length, 1, "the seed Service is still exposed");

    await new SandboxHelm(sandbox).run(["uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", "--timeout", "5m"]);
    for (const [namespace, name] of [["tailscaletest", "nginx-tailscale"], ["rbac", "other"]] as const) {
      const svc = await env.service(namespace, name);
      assert.ok(svc, `${namespace}/${name} is the user's and stays`);
      assert.deepEqual(svc.metadata?.finalizers ?? [], [], `${namespace}/${name} is let go`);
      assert.equal(readyCondition(svc), undefined, `${namespace}/${name} has no condition of ours`);
      assert.equal(svc.spec?.loadBalancerClass ?? svc.metadata?.annotations?.["tailscale.com/expose"], namespace === "rbac" ? "true" : "tailscale", "the user's spec is left as written");
    }
    // Every proxy this file made, by its MagicDNS name (other files' devices share the tailnet).
    const proxies = new Set([SEED_HOST, "rbac-other", "crash-web"]);
    const left = (await sandbox.headscaleAdmin.listNodes()).filter((n) => proxies.has(n.given_name ?? ""));
    assert.deepEqual(left.map((n) => n.given_name), [], "no proxy device is left on the tailnet");
    await waitFor("every pod in the operator namespace to be gone", async () => ((await env.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE })).items.length === 0 ? true : undefined), { timeoutMs: 120_000 });
    const managed = await env.objects.list("v1", "Secret", OPERATOR_NAMESPACE, undefined, undefined, undefined, undefined, "tailscale.com/managed=true");
    assert.deepEqual(managed.items.map((s: V1Secret) => s.metadata?.name), []);
    const accounts = await env.core.listNamespacedServiceAccount({ namespace: OPERATOR_NAMESPACE });
    assert.deepEqual(accounts.items.map((sa) => sa.metadata?.name), ["default"], "only the namespace's default ServiceAccount is left");
    const jobs = await env.objects.list("batch/v1", "Job", OPERATOR_NAMESPACE);
    assert.deepEqual(jobs.items.map((j) => j.metadata?.name), [], "the hook's Job is removed once it succeeded");
  });
});
