import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { cgroupHierarchies, holderScript } from "./node-mounts.ts";

describe("cgroupHierarchies", () => {
  it("mounts each v1 hierarchy of a hybrid host, named ones with none, and cgroup2 on unified", () => {
    const hierarchies = cgroupHierarchies("9:name=systemd:/\n4:memory:/process_api/x\n2:cpuacct:/\n1:cpu:/\n0::/\n");
    assert.deepEqual(hierarchies, [
      { dir: "systemd", options: "none,name=systemd", aliases: [] },
      { dir: "memory", options: "memory", aliases: [] },
      { dir: "cpuacct", options: "cpuacct", aliases: [] },
      { dir: "cpu", options: "cpu", aliases: [] },
      { dir: "unified", options: undefined, aliases: [] },
    ]);
  });

  it("links co-mounted controllers to their shared hierarchy", () => {
    assert.deepEqual(cgroupHierarchies("3:cpu,cpuacct:/\n"), [{ dir: "cpu,cpuacct", options: "cpu,cpuacct", aliases: ["cpu", "cpuacct"] }]);
  });

  it("mounts a pure cgroup v2 host's hierarchy on /sys/fs/cgroup itself", () => {
    const hierarchies = cgroupHierarchies("0::/user.slice\n");
    assert.deepEqual(hierarchies, [{ dir: "", options: undefined, aliases: [] }]);
    const script = holderScript(hierarchies, "tno-x-node-1", "/run/x", "/run/x/ready");
    assert.match(script, /mount -t cgroup2 cgroup2 '\/sys\/fs\/cgroup'/);
    assert.doesNotMatch(script, /tno-cgroup/);
  });
});

describe("holderScript", () => {
  it("covers the kernel settings the kubelet would change on the host, and waits last", () => {
    const script = holderScript(cgroupHierarchies("5:cpuset:/\n0::/\n"), "tno-x-node-1", "/run/x", "/run/x/ready");
    assert.match(script, /mount --bind '\/run\/x\/sysctl\/kernel.panic' \/proc\/sys\/kernel\/panic\n/);
    assert.match(script, /cat '\/sys\/fs\/cgroup\/cpuset\/cpuset.cpus' > '\/sys\/fs\/cgroup\/cpuset\/tno-x-node-1\/cpuset.cpus'/);
    assert.ok(script.endsWith("touch '/run/x/ready'\nexec sleep infinity"));
  });
});
