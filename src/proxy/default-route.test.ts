import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { hasDefaultRoute, hasDefaultRouteV4, hasDefaultRouteV6 } from "./default-route.ts";

const HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";
// A sandbox pod: routes to the cluster's ranges only (read from a proxy pod).
const SANDBOX_POD = `${HEADER}
eth0\t00004D0A\t0101F40A\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t0000F40A\t0101F40A\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;
const CLUSTER_POD = `${HEADER}
eth0\t00000000\t0101F40A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;
const V6_DEFAULT = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n";
const V6_LO_UNREACHABLE = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";

describe("default route", () => {
  it("finds an IPv4 default route, and none among routes to the cluster's ranges", () => {
    assert.equal(hasDefaultRouteV4(CLUSTER_POD), true);
    assert.equal(hasDefaultRouteV4(SANDBOX_POD), false);
  });

  it("finds an IPv6 default route, not the unreachable route on lo", () => {
    assert.equal(hasDefaultRouteV6(V6_DEFAULT), true);
    assert.equal(hasDefaultRouteV6(V6_LO_UNREACHABLE), false);
  });

  it("is false when neither table can be read", async () => {
    assert.equal(await hasDefaultRoute(() => Promise.reject(new Error("ENOENT"))), false);
    assert.equal(await hasDefaultRoute((path) => Promise.resolve(path.endsWith("ipv6_route") ? V6_DEFAULT : SANDBOX_POD)), true);
  });
});
