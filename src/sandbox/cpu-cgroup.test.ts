import { strict as assert } from "node:assert";
import { test } from "node:test";
import { cpuCgroupIn } from "./cpu-cgroup.ts";

test("cpuCgroupIn finds the cpu line, separate or co-mounted with cpuacct", () => {
  assert.equal(cpuCgroupIn("4:memory:/x\n2:cpuacct:/\n1:cpu:/tno-ab-node-1/kubepods/burstable/pod1/c1\n0::/\n"), "/tno-ab-node-1/kubepods/burstable/pod1/c1");
  assert.equal(cpuCgroupIn("3:cpu,cpuacct:/tno-ab-direct-target\n0::/\n"), "/tno-ab-direct-target");
  // cpuacct alone and cpuset are not cpu; a v2-only host has no cpu line.
  assert.equal(cpuCgroupIn("2:cpuacct:/a\n3:cpuset:/b\n0::/\n"), undefined);
});
