import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { egressRules, resolveTarget } from "./egress-target.ts";

const peers = [
  { DNSName: "nas.tailnet.test.", TailscaleIPs: ["100.64.0.5", "fd7a:115c:a1e0::5"] },
  { DNSName: "router.tailnet.test.", TailscaleIPs: ["100.64.0.9"], PrimaryRoutes: ["192.168.10.0/24"] },
  { DNSName: "offline.tailnet.test.", TailscaleIPs: null },
];

describe("resolveTarget", () => {
  it("finds a MagicDNS name among the peers, case and trailing dot aside", () => {
    assert.deepEqual(resolveTarget({ fqdn: "nas.tailnet.test" }, peers), { target: "nas.tailnet.test", ips: ["100.64.0.5", "fd7a:115c:a1e0::5"] });
  });

  it("reports a name no peer has, or one without addresses", () => {
    assert.match(resolveTarget({ fqdn: "ghost.tailnet.test" }, peers).error ?? "", /no device named ghost\.tailnet\.test/);
    assert.deepEqual(resolveTarget({ fqdn: "offline.tailnet.test" }, peers).ips, []);
  });

  it("accepts a peer's address or one a subnet router serves; reports any other", () => {
    assert.deepEqual(resolveTarget({ ip: "100.64.0.5" }, peers).ips, ["100.64.0.5"]);
    assert.deepEqual(resolveTarget({ ip: "192.168.10.20" }, peers).ips, ["192.168.10.20"]);
    const unknown = resolveTarget({ ip: "192.0.2.1" }, peers);
    assert.deepEqual(unknown.ips, []);
    assert.match(unknown.error ?? "", /no device's tailnet address and no subnet router serves it/);
  });
});

describe("egressRules", () => {
  it("maps each family the target and this device both have, with the device's IP as source", () => {
    const ports = [{ protocol: "tcp" as const, matchPort: 80, targetPort: 8080 }];
    const rules = egressRules("tailscale0", ["100.64.0.5", "fd7a:115c:a1e0::5"], ["100.64.0.2"], ports);
    assert.deepEqual(rules, { tunInterface: "tailscale0", ingress: [], egress: [{ target: "100.64.0.5", source: "100.64.0.2", ports }] });
  });
});
