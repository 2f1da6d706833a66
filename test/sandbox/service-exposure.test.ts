// Service exposure on the real node: the operator (installed by Helm), real proxy pods and real
// nginx pods behind kube-proxy, a real Headscale, and a laptop on the tailnet fetching through them.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import type { V1Service } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { ClusterEnv, readyCondition } from "../helpers/cluster-env.ts";
import { installOperator } from "../../src/sandbox/operator-install.ts";
import { TAILNET_DOMAIN } from "../../src/sandbox/sandbox.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { waitFor } from "../../src/shared/clock.ts";

const sandbox = await attachSandbox();
const env = new ClusterEnv(sandbox);
let laptop: TailnetDevice;

before(async () => {
  await installOperator(sandbox, { values: { replicaCount: 1 } });
  laptop = await sandbox.addDevice("laptop");
});

const isReady = (svc: V1Service): boolean => readyCondition(svc)?.status === "True";
const mergePatch = (namespace: string, name: string, annotations: Record<string, string | null>): Promise<unknown> =>
  env.objects.patch({ apiVersion: "v1", kind: "Service", metadata: { name, namespace, annotations } } as never, undefined, undefined, undefined, undefined, "application/merge-patch+json");

describe("Service exposure", () => {
  it("exposes an annotated ClusterIP Service with custom hostname and tags, with a condition but no LB status", async () => {
    await env.webService("annotated", "api", { type: "ClusterIP" }, { "tailscale.com/expose": "true", "tailscale.com/hostname": "my-api", "tailscale.com/tags": "tag:k8s,tag:test" });
    const svc = await env.waitForService("annotated", "api", "ready", isReady);
    assert.equal(svc.status?.loadBalancer?.ingress, undefined);
    const [device] = await env.devices("my-api");
    assert.deepEqual([...(device?.tags ?? [])].sort(), ["tag:k8s", "tag:test"]);
    assert.match(await env.fetch(laptop, `http://my-api.${TAILNET_DOMAIN}/`), /^HTTP\/1\.1 200 OK[\s\S]*nginx/i);
  });

  it("forwards both families of a dual-stack Service to its pods, over the proxy's IPv4 and IPv6 tailnet addresses", async () => {
    await env.webService("dual", "web", { type: "LoadBalancer", loadBalancerClass: "tailscale", ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] });
    const svc = await env.waitForService("dual", "web", "ready", isReady);
    assert.equal(svc.spec?.clusterIPs?.length, 2, "the API server gave the Service both families");
    const ips = (svc.status?.loadBalancer?.ingress ?? []).flatMap((entry) => (entry.ip ? [entry.ip] : []));
    const ip6 = ips.find((ip) => ip.includes(":"));
    const ip4 = ips.find((ip) => !ip.includes(":"));
    assert.ok(ip4 && ip6, `status has a tailnet address of each family: ${ips.join(", ")}`);
    // Through the proxy's tailnet IPv6 address to the Service's IPv6 ClusterIP, then kube-proxy
    // to an nginx pod's IPv6 address: every hop of the second family.
    assert.match(await env.fetch(laptop, `http://[${ip6}]/`), /^HTTP\/1\.1 200 OK[\s\S]*nginx/i);
    assert.match(await env.fetch(laptop, `http://${ip4}/`), /^HTTP\/1\.1 200 OK[\s\S]*nginx/i);
    // The address went out only once the control plane held the device's home DERP or endpoints
    // (docs/adr/0024-proxy-data-path.md), not on the 15 s fallback.
    const statefulSet = (await env.children("dual", "web")).find((child) => child.startsWith("StatefulSet/"))?.slice("StatefulSet/".length);
    const proxyLog = await env.podLogTail("tailscale", `${statefulSet ?? "?"}-0`, 5_000);
    assert.match(proxyLog, /"reachable":true[^\n]*publishing its address/, `the proxy published once reachable:\n${proxyLog.split("\n").filter((l) => l.includes("tailnet-proxy")).join("\n")}`);
    await env.core.deleteNamespace({ name: "dual" });
  });

  it("reports bad input with a condition and a Warning Event, creates nothing, and recovers when fixed", async () => {
    await env.webService("bad", "web", { type: "LoadBalancer", loadBalancerClass: "tailscale" }, { "tailscale.com/hostname": "Not_A_DNS_Label" });
    const svc = await env.waitForService("bad", "web", "marked invalid", (s) => readyCondition(s)?.reason === "ProxyInvalid");
    assert.match(readyCondition(svc)?.message ?? "", /"Not_A_DNS_Label" is not a valid DNS label/);
    const warning = await env.waitForEvent("bad", "web", "ProxyInvalid", (e) => e.reason === "ProxyInvalid");
    assert.equal(warning.type, "Warning");
    assert.deepEqual(await env.children("bad", "web"), []);
    assert.equal(svc.metadata?.finalizers, undefined, "no finalizer on a Service that got nothing");

    await mergePatch("bad", "web", { "tailscale.com/hostname": "fixed-web" });
    const fixed = await env.waitForService("bad", "web", "ready after the fix", isReady);
    assert.equal(fixed.status?.loadBalancer?.ingress?.[0]?.hostname, `fixed-web.${TAILNET_DOMAIN}`);
  });

  it("follows a hostname change with a new device and drops the old one", async () => {
    assert.equal((await env.devices("fixed-web")).length, 1);
    await mergePatch("bad", "web", { "tailscale.com/hostname": "renamed-web" });
    await env.waitForService("bad", "web", "the new name in status", (s) => s.status?.loadBalancer?.ingress?.[0]?.hostname === `renamed-web.${TAILNET_DOMAIN}` && isReady(s));
    assert.deepEqual(await env.devices("fixed-web"), []);
    assert.equal((await env.devices("renamed-web")).length, 1);
    assert.match(await env.fetch(laptop, `http://renamed-web.${TAILNET_DOMAIN}/`), /nginx/i);
  });

  it("removes the proxy and the device when the Service stops asking, and clears its status", async () => {
    await mergePatch("annotated", "api", { "tailscale.com/expose": null, "tailscale.com/hostname": null, "tailscale.com/tags": null });
    const svc = await env.waitForService("annotated", "api", "finalizer removed", (s) => !s.metadata?.finalizers?.length);
    assert.equal(readyCondition(svc), undefined, "our condition is gone");
    assert.deepEqual(await env.devices("my-api"), []);
    assert.deepEqual(await env.children("annotated", "api"), []);
  });

  it("deletes the device and every child when the Service is deleted", async () => {
    await env.core.deleteNamespacedService({ namespace: "bad", name: "web" });
    await waitFor("bad/web to be deleted", async () => ((await env.service("bad", "web")) ? undefined : true), { timeoutMs: 120_000 });
    assert.deepEqual(await env.devices("renamed-web"), []);
    assert.deepEqual(await env.children("bad", "web"), []);
  });
});
