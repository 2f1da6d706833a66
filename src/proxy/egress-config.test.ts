import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadProxyConfig } from "./config.ts";

const base = { TS_KUBE_SECRET: "ts-x-0", TS_HOSTNAME: "x" };

describe("proxy configuration: ingress or egress", () => {
  it("reads an egress target and its ports", () => {
    const config = loadProxyConfig({ ...base, TS_TAILNET_TARGET_FQDN: "NAS.Tailnet.Test.", TS_EGRESS_PORTS: '[{"protocol":"udp","matchPort":53,"targetPort":53}]' });
    assert.equal(config.TS_TAILNET_TARGET_FQDN, "nas.tailnet.test");
    assert.deepEqual(config.TS_EGRESS_PORTS, [{ protocol: "udp", matchPort: 53, targetPort: 53 }]);
    assert.deepEqual(config.TS_DEST_IP, []);
  });

  it("wants exactly one of TS_DEST_IP, a target IP and a target name, and ports for egress", () => {
    assert.throws(() => loadProxyConfig(base), /set exactly one of TS_DEST_IP/);
    assert.throws(() => loadProxyConfig({ ...base, TS_DEST_IP: "10.96.0.1", TS_TAILNET_TARGET_IP: "100.64.0.1", TS_EGRESS_PORTS: "[]" }), /set exactly one/);
    assert.throws(() => loadProxyConfig({ ...base, TS_TAILNET_TARGET_IP: "100.64.0.1" }), /needs the ports/);
    assert.throws(() => loadProxyConfig({ ...base, TS_TAILNET_TARGET_IP: "nas", TS_EGRESS_PORTS: '[{"protocol":"tcp","matchPort":80,"targetPort":80}]' }), /TS_TAILNET_TARGET_IP/);
    assert.throws(() => loadProxyConfig({ ...base, TS_TAILNET_TARGET_IP: "100.64.0.1", TS_EGRESS_PORTS: "not json" }), /must be JSON/);
    assert.equal(loadProxyConfig({ ...base, TS_DEST_IP: "10.96.0.1" }).TS_DEST_IP[0], "10.96.0.1");
  });
});
