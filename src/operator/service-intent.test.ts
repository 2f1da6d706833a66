import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Service } from "@kubernetes/client-node";
import { serviceIntent } from "./service-intent.ts";

const options = { defaultTags: ["tag:k8s"], defaultLoadBalancer: false };

function service(spec: V1Service["spec"], annotations: Record<string, string> = {}, name = "nginx-tailscale"): V1Service {
  return { metadata: { name, namespace: "tailscaletest", annotations }, spec: { clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"], ...spec } };
}

describe("serviceIntent", () => {
  it("exposes the seed manifest's LoadBalancer Service with the default hostname and tags", () => {
    assert.deepEqual(serviceIntent(service({ type: "LoadBalancer", loadBalancerClass: "tailscale" }), options), {
      kind: "expose",
      hostname: "tailscaletest-nginx-tailscale",
      tags: ["tag:k8s"],
      destinations: ["10.96.0.10"],
      loadBalancer: true,
    });
  });

  it("exposes an annotated ClusterIP Service, with custom hostname and tags, without LB status", () => {
    const intent = serviceIntent(service({ type: "ClusterIP" }, { "tailscale.com/expose": "true", "tailscale.com/hostname": "web", "tailscale.com/tags": "tag:a, tag:b-2" }), options);
    assert.deepEqual(intent, { kind: "expose", hostname: "web", tags: ["tag:a", "tag:b-2"], destinations: ["10.96.0.10"], loadBalancer: false });
  });

  it("quotes a huge value cut short, so the condition and Event stay readable", () => {
    const intent = serviceIntent(service({ type: "ClusterIP" }, { "tailscale.com/expose": "true", "tailscale.com/hostname": "a".repeat(102_400) }), options);
    assert.ok(intent.kind === "invalid");
    const { message } = intent;
    assert.match(message, /^tailscale\.com\/hostname "a{100}…" \(102400 characters\) is not a valid DNS label/);
    assert.ok(message.length < 300, `${message.length} characters`);
  });

  it("leaves other Services alone: other classes, plain ClusterIP, ProxyGroup ones, expose=false", () => {
    for (const s of [
      service({ type: "LoadBalancer", loadBalancerClass: "metallb" }),
      service({ type: "LoadBalancer" }),
      service({ type: "ClusterIP" }),
      service({ type: "ClusterIP" }, { "tailscale.com/expose": "false" }),
      service({ type: "LoadBalancer", loadBalancerClass: "tailscale" }, { "tailscale.com/proxy-group": "pg" }),
    ]) {
      assert.deepEqual(serviceIntent(s, options), { kind: "ignore" });
    }
    assert.equal(serviceIntent(service({ type: "LoadBalancer" }), { ...options, defaultLoadBalancer: true }).kind, "expose");
  });

  it("names the problem for each kind of bad input", () => {
    const expose = { "tailscale.com/expose": "true" };
    const cases: [V1Service, RegExp][] = [
      [service({ type: "ClusterIP", clusterIP: "None", clusterIPs: ["None"] }, expose), /headless/],
      [service({ type: "ClusterIP" }, { ...expose, "tailscale.com/hostname": "Not_A_Label" }), /hostname "Not_A_Label" is not a valid DNS label/],
      [service({ type: "ClusterIP" }, expose, "x".repeat(60)), /default hostname .* is not a valid DNS label/],
      [service({ type: "ClusterIP" }, { ...expose, "tailscale.com/tags": "k8s" }), /"k8s" is not one/],
      [service({ type: "ClusterIP" }, { ...expose, "tailscale.com/tags": "tag:ok,tag:no spaces" }), /"tag:no spaces" is not one/],
      [service({ type: "ClusterIP" }, { ...expose, "tailscale.com/tailnet-ip": "100.64.0.9" }), /cannot be combined/],
    ];
    for (const [s, message] of cases) {
      const intent = serviceIntent(s, options);
      assert.equal(intent.kind, "invalid");
      assert.match(intent.message, message);
    }
  });

  it("waits for a ClusterIP, and forwards both families of a dual-stack Service", () => {
    assert.equal(serviceIntent(service({ type: "LoadBalancer", loadBalancerClass: "tailscale", clusterIP: "", clusterIPs: [] }), options).kind, "waiting");
    const dual = serviceIntent(service({ type: "LoadBalancer", loadBalancerClass: "tailscale", clusterIPs: ["10.96.0.10", "fd00::10"] }), options);
    assert.deepEqual(dual.kind === "expose" ? dual.destinations : [], ["10.96.0.10", "fd00::10"]);
  });
});
