import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { funnelCondition, proxyFunnels } from "./ingress-funnel.ts";

const tailscale = { controlPlane: "tailscale", certificateSource: "control-plane", reported: undefined, fqdn: undefined } as const;

describe("Funnel for an Ingress", () => {
  it("is configured by the proxy only where the control plane has Funnel and the Ingress serves HTTPS", () => {
    assert.equal(proxyFunnels(true, "tailscale", "control-plane"), true);
    assert.equal(proxyFunnels(true, "tailscale", "secret"), true);
    assert.equal(proxyFunnels(true, "headscale", "secret"), false);
    assert.equal(proxyFunnels(true, "tailscale", "none"), false);
    assert.equal(proxyFunnels(false, "tailscale", "control-plane"), false);
  });

  it("has no condition when not asked for", () => {
    assert.equal(funnelCondition(false, tailscale), undefined);
  });

  it("says why not on Headscale and for plain HTTP", () => {
    assert.match(funnelCondition(true, { ...tailscale, controlPlane: "headscale" })?.message ?? "", /Headscale does not offer Funnel/);
    const plain = funnelCondition(true, { ...tailscale, certificateSource: "none" });
    assert.deepEqual([plain?.status, plain?.reason], ["False", "FunnelUnavailable"]);
    assert.match(plain?.message ?? "", /plain HTTP/);
  });

  it("follows the proxy's report on Tailscale: pending, on, or the policy's refusal in its words", () => {
    const pending = funnelCondition(true, tailscale);
    assert.deepEqual([pending?.status, pending?.reason], ["False", "FunnelPending"]);
    const on = funnelCondition(true, { ...tailscale, reported: "On", fqdn: "web.tail1234.ts.net" });
    assert.deepEqual(on, { type: "TailscaleFunnel", status: "True", reason: "FunnelEnabled", message: "tailscale.com/funnel: published on the internet at https://web.tail1234.ts.net/ through Funnel" });
    const refused = funnelCondition(true, { ...tailscale, reported: 'the tailnet policy does not give this device the "funnel" node attribute (nodeAttrs for its tags)' });
    assert.deepEqual([refused?.status, refused?.reason], ["False", "FunnelUnavailable"]);
    assert.match(refused?.message ?? "", /does not allow Funnel for this proxy: .*nodeAttrs/);
  });
});
