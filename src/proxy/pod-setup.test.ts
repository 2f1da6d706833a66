import { it } from "node:test";
import assert from "node:assert/strict";
import { parseSysctls } from "./pod-setup.ts";
import { daemonEnvironment } from "./tailscaled.ts";

it("init takes only the forwarding sysctls, as 0 or 1", () => {
  assert.deepEqual(parseSysctls(["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]).map((s) => s.path), [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
  ]);
  assert.throws(() => parseSysctls(["kernel.core_pattern=|/tmp/x"]), /kernel.core_pattern=\|\/tmp\/x is not allowed/);
  assert.throws(() => parseSysctls(["net.ipv4.ip_forward=2"]), /not allowed/);
  assert.throws(() => parseSysctls([]), /usage/);
});

it("tailscaled does not inherit the auth key", () => {
  const env = daemonEnvironment({ TS_AUTHKEY: "tskey-secret", PATH: "/bin" });
  assert.deepEqual(env, { PATH: "/bin" });
});
