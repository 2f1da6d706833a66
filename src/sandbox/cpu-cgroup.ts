// A cpu cgroup (v1) of its own for a sandbox process, beside the nodes' cgroups at the root of
// the cpu hierarchy, for benches that compare a path through a pod with one through a tailnet
// device (bench/proxy-datapath.ts, docs/adr/0024-proxy-data-path.md). A node is one cgroup of
// cpu.shares 1024 holding all its processes, while a device's tailscaled is a root-level process
// whose every thread weighs 1024 on its own: under load the device wins CPU the pod never gets.
// Putting the device in a group of the node's weight makes the two paths compete alike.
//
// The group is named with the run's prefix, so a run that dies before removing it is swept with
// its nodes' cgroups (removeRun).
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupHierarchies, hostCgroupFs } from "./cluster/node-mounts.ts";
import { sleep } from "./cluster/daemon.ts";

/** The cpu hierarchy's directory as the launcher sees it; throws where cpu is not a v1 controller. */
export function cpuHierarchy(): string {
  const cpu = cgroupHierarchies(readFileSync("/proc/self/cgroup", "utf8")).find((h) => h.options?.split(",").includes("cpu"));
  if (!cpu) throw new Error("no cgroup v1 cpu hierarchy on this host (cpu.shares is what this compares)");
  return join(hostCgroupFs(), cpu.dir);
}

/** The cpu cgroup a process is in, relative to the hierarchy's root ("/" for the root). */
export function cpuCgroupOf(pid: number): string {
  const path = cpuCgroupIn(readFileSync(`/proc/${String(pid)}/cgroup`, "utf8"));
  if (path === undefined) throw new Error(`process ${String(pid)} is in no cgroup v1 cpu hierarchy`);
  return path;
}

/** The cpu cgroup in a /proc/<pid>/cgroup text (the cpu line may be co-mounted: "cpu,cpuacct"). */
export function cpuCgroupIn(procCgroup: string): string | undefined {
  for (const line of procCgroup.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match?.[1]?.split(",").includes("cpu")) return match[2];
  }
  return undefined;
}

/** cpu.shares of a cgroup given relative to the hierarchy's root. */
export async function cpuShares(cgroup: string): Promise<number> {
  return Number((await readFile(join(cpuHierarchy(), cgroup, "cpu.shares"), "utf8")).trim());
}

export interface CpuCgroup {
  /** Relative to the hierarchy's root, e.g. "/tno-abc123-direct-target". */
  readonly path: string;
  /** Moves a process (all its threads) into the group. */
  enter(pid: number): Promise<void>;
  /** Moves a process back to the root cgroup. */
  leave(pid: number): Promise<void>;
  /** Moves what is still inside back to the root and removes the group. */
  remove(): Promise<void>;
}

/** Creates /<name> in the cpu hierarchy with the given cpu.shares. */
export async function createCpuCgroup(name: string, shares: number): Promise<CpuCgroup> {
  const root = cpuHierarchy();
  const dir = join(root, name);
  await mkdir(dir);
  const group: CpuCgroup = {
    path: `/${name}`,
    enter: (pid) => moveProcess(dir, pid, `/${name}`),
    leave: (pid) => moveProcess(root, pid, "/"),
    async remove() {
      for (let attempt = 0; ; attempt++) {
        const pids = (await readFile(join(dir, "cgroup.procs"), "utf8").catch(() => "")).split("\n").filter(Boolean).map(Number);
        for (const pid of pids) await writeFile(join(root, "cgroup.procs"), String(pid)).catch(() => undefined);
        try {
          await rmdir(dir);
          return;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
          if (attempt >= 20) throw error;
          await sleep(50);
        }
      }
    },
  };
  try {
    await writeFile(join(dir, "cpu.shares"), String(shares));
  } catch (error) {
    await group.remove();
    throw error;
  }
  return group;
}

async function moveProcess(dir: string, pid: number, expected: string): Promise<void> {
  // In v1, writing a PID to cgroup.procs moves every thread of its thread group.
  await writeFile(join(dir, "cgroup.procs"), String(pid));
  const now = cpuCgroupOf(pid);
  if (now !== expected) throw new Error(`process ${String(pid)} is in cpu cgroup ${now}, not ${expected}`);
}
