import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { apiServerProxySource, type ApiServerProxySettings } from "./apiserver-proxy-reconciler.ts";

const base: ApiServerProxySettings = { mode: "auth", hostname: "k8s", tags: ["tag:k8s"], tlsSecret: undefined, http: false, serviceAccount: "sa", controlPlane: "headscale", acmeConfigured: false };

describe("apiServerProxySource", () => {
  it("serves plain HTTP when asked, else the named Secret, else ACME, else the control plane's certificate on Tailscale", () => {
    assert.equal(apiServerProxySource({ ...base, http: true }), "none");
    assert.equal(apiServerProxySource({ ...base, tlsSecret: "k8s-tls" }), "secret");
    assert.equal(apiServerProxySource({ ...base, acmeConfigured: true }), "acme");
    assert.equal(apiServerProxySource({ ...base, controlPlane: "tailscale" }), "control-plane");
  });

  it("on Headscale without a Secret, ACME or HTTP says which setting to use", () => {
    const source = apiServerProxySource(base);
    assert.ok(typeof source !== "string");
    assert.match(source.unavailable, /apiServerProxy\.tls\.secretName/);
    assert.match(source.unavailable, /apiServerProxy\.http=true/);
  });
});
