// Service exposure end to end: the real operator, real proxies (run by the pod runner from the
// operator's StatefulSets), real Headscale and a real tailnet device fetching through them.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import type { V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { OPERATOR_NAMESPACE, OperatorEnv, readyCondition, seedManifest } from "../helpers/operator-env.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { proxyName } from "../../src/operator/proxy-objects.ts";
import { httpGet } from "../../src/sandbox/https-probe.ts";

const sandbox = await attachSandbox();
const env = new OperatorEnv(sandbox);
let laptop: TailnetDevice;

before(async () => {
  await env.setUp();
  sandbox.track(await env.startOperator("e2e", 18090));
  laptop = await sandbox.addDevice("laptop");
});

const isReady = (svc: V1Service): boolean => readyCondition(svc)?.status === "True";

/** Creates a namespace and a Service with a backend host serving on its ClusterIP. */
async function serviceWithBackend(namespace: string, name: string, spec: V1Service["spec"], annotations: Record<string, string> = {}): Promise<V1Service> {
  await env.core.createNamespace({ body: { metadata: { name: namespace } } }).catch(() => undefined);
  const svc = await env.core.createNamespacedService({ namespace, body: { metadata: { name, annotations }, spec: { ports: [{ port: 80 }], selector: { app: name }, ...spec } } });
  await sandbox.addBackend({ name: `${namespace}/${name}`, ips: [svc.spec?.clusterIP ?? ""], ports: [80] });
  return svc;
}

describe("Service exposure", () => {
  it("puts the seed manifest's LoadBalancer Service on the tailnet, unchanged, and removes it on delete", async () => {
    await env.apply(seedManifest("l3-service.yaml"));
    const created = await env.service("tailscaletest", "nginx-tailscale");
    await sandbox.addBackend({ name: "nginx-tailscale", ips: [created?.spec?.clusterIP ?? ""], ports: [80] });

    const hostname = `tailscaletest-nginx-tailscale.${TAILNET_DOMAIN}`;
    const svc = await env.waitForService("tailscaletest", "nginx-tailscale", "EXTERNAL-IP set", (s) => Boolean(s.status?.loadBalancer?.ingress?.length));
    const ingress = svc.status?.loadBalancer?.ingress ?? [];
    assert.equal(ingress[0]?.hostname, hostname, "kubectl shows the MagicDNS name as EXTERNAL-IP");
    const [node] = await env.nodes("tailscaletest-nginx-tailscale");
    assert.deepEqual(node?.tags, ["tag:k8s"]);
    assert.match(ingress[1]?.ip ?? "", /^100\./, "the tailnet IPv4 of the proxy");
    assert.deepEqual(readyCondition(svc), { status: "True", reason: "ProxyReady", message: `exposed on the tailnet as ${hostname}` });
    assert.ok(svc.metadata?.finalizers?.includes("tailscale.com/finalizer"));

    const page = await env.fetch(laptop, `http://${hostname}/`);
    assert.match(page, /^HTTP\/1\.1 200 OK\nhello from nginx-tailscale\n/);
    const ready = (await env.events("tailscaletest", "nginx-tailscale")).find((e) => e.reason === "ProxyReady");
    assert.match(ready?.message ?? "", /proxy firewall: nftables \(auto: no rules yet; nftables is the first backend that works/, "the firewall choice is shown on the Service");

    await env.core.deleteNamespacedService({ name: "nginx-tailscale", namespace: "tailscaletest" });
    await waitFor("the Service to be deleted", async () => ((await env.service("tailscaletest", "nginx-tailscale")) ? undefined : true), { timeoutMs: 30_000 });
    assert.deepEqual(await env.nodes("tailscaletest-nginx-tailscale"), [], "the device is gone from Headscale");
    assert.deepEqual(await env.children("tailscaletest", "nginx-tailscale"), [], "nothing is left in the operator namespace");
  });

  it("exposes an annotated ClusterIP Service with custom hostname and tags, with a condition but no LB status", async () => {
    await serviceWithBackend("annotated", "api", { type: "ClusterIP" }, { "tailscale.com/expose": "true", "tailscale.com/hostname": "my-api", "tailscale.com/tags": "tag:k8s,tag:test" });
    const svc = await env.waitForService("annotated", "api", "ready", isReady);
    assert.equal(svc.status?.loadBalancer?.ingress, undefined);
    const [node] = await env.nodes("my-api");
    assert.deepEqual([...(node?.tags ?? [])].sort(), ["tag:k8s", "tag:test"]);
    assert.match(await env.fetch(laptop, `http://my-api.${TAILNET_DOMAIN}/`), /hello from annotated\/api/);
  });

  it("reports bad input with a condition and a Warning Event, creates nothing, and recovers when fixed", async () => {
    await serviceWithBackend("bad", "web", { type: "LoadBalancer", loadBalancerClass: "tailscale" }, { "tailscale.com/hostname": "Not_A_DNS_Label" });
    const svc = await env.waitForService("bad", "web", "marked invalid", (s) => readyCondition(s)?.reason === "ProxyInvalid");
    assert.match(readyCondition(svc)?.message ?? "", /"Not_A_DNS_Label" is not a valid DNS label/);
    const warning = (await env.events("bad", "web")).find((e) => e.reason === "ProxyInvalid");
    assert.equal(warning?.type, "Warning");
    assert.deepEqual(await env.children("bad", "web"), []);
    assert.equal(svc.metadata?.finalizers, undefined, "no finalizer on a Service that got nothing");

    await env.objects.patch({ apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "bad", annotations: { "tailscale.com/hostname": "fixed-web" } } }, undefined, undefined, undefined, undefined, "application/merge-patch+json");
    const fixed = await env.waitForService("bad", "web", "ready after the fix", isReady);
    assert.equal(fixed.status?.loadBalancer?.ingress?.[0]?.hostname, `fixed-web.${TAILNET_DOMAIN}`);
  });

  it("follows a hostname change with a new device and drops the old one", async () => {
    const before = (await env.nodes("fixed-web"))[0];
    assert.ok(before);
    await env.objects.patch({ apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "bad", annotations: { "tailscale.com/hostname": "renamed-web" } } }, undefined, undefined, undefined, undefined, "application/merge-patch+json");
    await env.waitForService("bad", "web", "the new name in status", (s) => s.status?.loadBalancer?.ingress?.[0]?.hostname === `renamed-web.${TAILNET_DOMAIN}` && isReady(s));
    assert.deepEqual(await env.nodes("fixed-web"), []);
    assert.equal((await env.nodes("renamed-web")).length, 1);
    assert.match(await env.fetch(laptop, `http://renamed-web.${TAILNET_DOMAIN}/`), /hello from bad\/web/);
  });

  it("keeps the same device when the proxy restarts", async () => {
    const [before] = await env.nodes("my-api");
    const podName = `${proxyName({ namespace: "annotated", name: "api", type: "svc" })}-0`;
    const pod = await waitFor("the proxy pod", () => env.pods.pod(OPERATOR_NAMESPACE, podName), { timeoutMs: 5_000 });
    const pid = pod.containerPid("tailscale");
    assert.ok(pid);
    process.kill(pid, "SIGKILL");
    await waitFor("the proxy to restart", () => {
      const now = pod.containerPid("tailscale");
      return now !== undefined && now !== pid ? true : undefined;
    }, { timeoutMs: 15_000 });
    assert.match(await env.fetch(laptop, `http://my-api.${TAILNET_DOMAIN}/`), /hello from annotated\/api/);
    const after = await env.nodes("my-api");
    assert.deepEqual(after, [before], "same device, same id, no -1 duplicate");
    const health = await httpGet(`http://${pod.address}:9002/healthz`);
    assert.equal(health.status, 200, "the proxy reports healthy on its health endpoint");
  });

  it("forwards both families of a dual-stack Service, and shows both tailnet IPs", async () => {
    await env.core.createNamespace({ body: { metadata: { name: "dual" } } });
    const created = await env.core.createNamespacedService({
      namespace: "dual",
      body: {
        metadata: { name: "web" },
        spec: { type: "LoadBalancer", loadBalancerClass: "tailscale", ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"], ports: [{ port: 80 }], selector: { app: "web" } },
      },
    });
    const clusterIps = created.spec?.clusterIPs ?? [];
    assert.equal(clusterIps.length, 2);
    await sandbox.addBackend({ name: "dual/web", ips: clusterIps, ports: [80] });
    const svc = await env.waitForService("dual", "web", "ready", isReady);
    const ips = (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : []));
    const v6 = ips.find((ip) => ip.includes(":"));
    assert.ok(ips.some((ip) => !ip.includes(":")) && v6, `both families in status: ${ips.join(", ")}`);
    const overV6 = await env.fetch(laptop, `http://[${v6}]/`);
    assert.match(overV6, /hello from dual\/web\npath=\/\nremote=fd77::/, "reached over IPv6, masqueraded to the proxy's IPv6 address");
    assert.match(await env.fetch(laptop, `http://dual-web.${TAILNET_DOMAIN}/`), /hello from dual\/web/);
  });

  for (const [name, flavour] of [["legacy-node", "iptables-legacy"], ["nft-node", "iptables-nft"]] as const) {
    it(`a proxy on a node whose kube-proxy uses ${flavour} picks ${flavour} and forwards`, async () => {
      await serviceWithBackend("flavours", name, { type: "LoadBalancer", loadBalancerClass: "tailscale" });
      await env.waitForService("flavours", name, "ready", isReady);
      const ready = (await env.events("flavours", name)).find((e) => e.reason === "ProxyReady");
      assert.match(ready?.message ?? "", new RegExp(`proxy firewall: ${flavour} \\(auto: only ${flavour} holds rules`));
      assert.match(await env.fetch(laptop, `http://flavours-${name}.${TAILNET_DOMAIN}/`), new RegExp(`hello from flavours/${name}`));
    });
  }

  it("removes the proxy and the device when the Service stops asking, and clears its status", async () => {
    const annotations = { "tailscale.com/expose": null, "tailscale.com/hostname": null, "tailscale.com/tags": null };
    await env.objects.patch({ apiVersion: "v1", kind: "Service", metadata: { name: "api", namespace: "annotated", annotations } } as never, undefined, undefined, undefined, undefined, "application/merge-patch+json");
    const svc = await env.waitForService("annotated", "api", "finalizer removed", (s) => !s.metadata?.finalizers?.length);
    assert.equal(readyCondition(svc), undefined, "our condition is gone");
    assert.deepEqual(await env.nodes("my-api"), []);
    assert.deepEqual(await env.children("annotated", "api"), []);
  });
});
