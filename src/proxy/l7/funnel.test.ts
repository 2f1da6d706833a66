import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FUNNEL_FORWARD, funnelServeConfig, funnelUnavailable, reconcileFunnel, servesAnything, type FunnelLocalApi } from "./funnel.ts";

const FUNNEL_PORTS = "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000";

describe("funnelUnavailable", () => {
  it("allows a device with https, funnel and 443 among the Funnel ports (Tailscale's default grant)", () => {
    assert.equal(funnelUnavailable({ https: null, funnel: null, [FUNNEL_PORTS]: null }, 443), undefined);
    assert.equal(funnelUnavailable({ https: null, funnel: null, "https://tailscale.com/cap/funnel-ports?ports=400-500": null }, 443), undefined, "a range");
  });

  it("names what is missing, in the order tailscaled checks it", () => {
    assert.equal(funnelUnavailable({}, 443), "HTTPS is not enabled for the tailnet (Funnel needs it)");
    assert.equal(funnelUnavailable(null, 443), "HTTPS is not enabled for the tailnet (Funnel needs it)", "Headscale sends no capabilities for it");
    assert.match(funnelUnavailable({ https: null }, 443) ?? "", /"funnel" node attribute/);
    assert.equal(funnelUnavailable({ https: null, funnel: null }, 443), "port 443 is not among the tailnet's Funnel ports (none)");
    assert.equal(funnelUnavailable({ https: null, funnel: null, "https://tailscale.com/cap/funnel-ports?ports=8443,10000": null }, 443), "port 443 is not among the tailnet's Funnel ports (8443,10000)");
  });
});

describe("funnelServeConfig", () => {
  it("forwards 443 as raw TCP with a PROXY v2 header to the loopback listener, and funnels only that name and port", () => {
    assert.deepEqual(funnelServeConfig("web.tail1234.ts.net"), {
      TCP: { "443": { TCPForward: `127.0.0.1:${FUNNEL_FORWARD.port}`, ProxyProtocol: 2 } },
      AllowFunnel: { "web.tail1234.ts.net:443": true },
    });
  });
});

describe("servesAnything", () => {
  it("tells an empty serve config from one that serves", () => {
    assert.equal(servesAnything(null), false);
    assert.equal(servesAnything({}), false);
    assert.equal(servesAnything({ TCP: {}, Web: null }), false);
    assert.equal(servesAnything(funnelServeConfig("x.ts.net")), true);
  });
});

describe("reconcileFunnel", () => {
  /** tailscaled's LocalAPI as far as Funnel uses it: capabilities and a serve config it keeps. */
  function localApi(capMap: Record<string, unknown> | null, serving: object = {}): FunnelLocalApi & { serving: object; writes: number } {
    const api = {
      serving,
      writes: 0,
      status: () => Promise.resolve({ Self: { CapMap: capMap } }),
      serveConfig: () => Promise.resolve(api.serving),
      setServeConfig: (config: object) => {
        api.serving = config;
        api.writes++;
        return Promise.resolve();
      },
    };
    return api;
  }
  const allowed = { https: null, funnel: null, [FUNNEL_PORTS]: null };

  it("listens on loopback, then funnels 443 into it, and reports On", async () => {
    const api = localApi(allowed);
    const order: string[] = [];
    const state = await reconcileFunnel({ localApi: { ...api, setServeConfig: (c) => (order.push("serve"), api.setServeConfig(c)) }, wanted: true, fqdn: "web.tail1234.ts.net", listen: () => (order.push("listen"), Promise.resolve()) });
    assert.equal(state, "On");
    assert.deepEqual(order, ["listen", "serve"], "the listener is up before tailscaled forwards to it");
    assert.deepEqual(api.serving, funnelServeConfig("web.tail1234.ts.net"));
  });

  it("reports why Funnel is not possible, and serves nothing through tailscaled then", async () => {
    const api = localApi({ https: null }, funnelServeConfig("web.tail1234.ts.net"));
    let listened = false;
    const state = await reconcileFunnel({ localApi: api, wanted: true, fqdn: "web.tail1234.ts.net", listen: () => ((listened = true), Promise.resolve()) });
    assert.match(state ?? "", /"funnel" node attribute/);
    assert.equal(listened, false);
    assert.deepEqual(api.serving, {}, "a serve config left from an earlier Funnel is removed");
  });

  it("removes a serve config left from an earlier Funnel when Funnel is no longer wanted, and writes nothing when there is none", async () => {
    const left = localApi(allowed, funnelServeConfig("web.tail1234.ts.net"));
    assert.equal(await reconcileFunnel({ localApi: left, wanted: false, fqdn: "web.tail1234.ts.net", listen: () => Promise.resolve() }), null);
    assert.deepEqual(left.serving, {});
    const clean = localApi(allowed);
    await reconcileFunnel({ localApi: clean, wanted: false, fqdn: "web.tail1234.ts.net", listen: () => Promise.resolve() });
    assert.equal(clean.writes, 0);
  });
});
