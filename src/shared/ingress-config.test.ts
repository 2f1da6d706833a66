import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { httpsEngine, parseIngressConfig, type IngressProxyConfig } from "./ingress-config.ts";

const base: IngressProxyConfig = { version: 1, certificateSource: "secret", httpRedirect: false, funnel: false, routes: [{ pathType: "Prefix", path: "/", backend: "http://10.96.0.1:80" }] };
const acme = (challenge?: "http-01" | "tls-alpn-01"): IngressProxyConfig => ({
  ...base,
  certificateSource: "acme",
  acme: { directoryUrl: "https://ca.example/dir", maxOrdersPerHour: 3, maxOrdersPerWeek: 5, ...(challenge ? { challenge } : {}) },
});

describe("httpsEngine", () => {
  it("gives an Ingress's HTTPS port to nginx for every certificate source it can serve", () => {
    for (const config of [base, { ...base, certificateSource: "control-plane" as const }, acme(), acme("http-01"), { ...base, funnel: true, httpRedirect: true }]) {
      assert.equal(httpsEngine(config), "nginx", JSON.stringify(config));
    }
  });

  it("keeps the proxy's own stack where only it can serve: TLS-ALPN-01, the API server, plain HTTP", () => {
    assert.equal(httpsEngine(acme("tls-alpn-01")), "node");
    assert.equal(httpsEngine({ ...base, routes: [], apiServer: { mode: "auth" } }), "node");
    assert.equal(httpsEngine({ ...base, certificateSource: "none" }), "node");
  });
});

describe("parseIngressConfig", () => {
  it("names every problem of a config it refuses", () => {
    assert.throws(() => parseIngressConfig(JSON.stringify({ ...base, version: 2, routes: [{ pathType: "Regex", path: "x", backend: "nope" }] })), /version.*routes\.0\.pathType.*routes\.0\.path.*routes\.0\.backend/);
  });
});
