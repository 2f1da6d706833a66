// The private mount namespace a node's daemons share. `ip netns exec` mounts a fresh sysfs for
// the node's network namespace but thereby hides the cgroup hierarchies, which the kubelet and
// runc need; a holder process mounts them again (as this host has them), puts tmpfs over /run,
// /var/lib and /var/log (so containerd's fixed shim socket directory, the kubelet's root and
// its volume mounts, CNI's IPAM state and the pod logs stay off the host and vanish with the
// namespace) and then just waits. Every daemon of the node enters it with nsenter.
//
// Cgroups are the one thing a node leaves on the host: the kubelet makes its pod cgroups under
// /<run prefix><node>/ in every hierarchy. removeRunCgroups() kills what runs in them (the
// containers live in network namespaces of their own, so killing a node's network namespace
// does not reach them) and removes the directories.
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile, rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../../shared/exec.ts";
import { HOST_MOUNT_NAMESPACE_ENV } from "../netns.ts";
import { awaitDaemon, sleep, startDaemon, type DaemonRecord } from "./daemon.ts";

/** One cgroup hierarchy as /proc/self/cgroup lists it, and where and how to mount it. */
export interface CgroupHierarchy {
  /** Directory under /sys/fs/cgroup. */
  readonly dir: string;
  /** cgroup v1 mount options (controllers, or none,name=X); undefined for cgroup2. */
  readonly options: string | undefined;
  /** Controllers that get a symlink to a co-mounted hierarchy (cpu -> cpu,cpuacct). */
  readonly aliases: readonly string[];
}

/** Parses /proc/self/cgroup into the hierarchies to mount; cgroup2 goes on `unified` in hybrid mode. */
export function cgroupHierarchies(procSelfCgroup: string): CgroupHierarchy[] {
  const v1: CgroupHierarchy[] = [];
  let v2 = false;
  for (const line of procSelfCgroup.split("\n")) {
    const [id, controllers] = line.split(":");
    if (id === undefined || controllers === undefined || id === "") continue;
    if (id === "0" && controllers === "") {
      v2 = true;
      continue;
    }
    if (controllers.startsWith("name=")) {
      v1.push({ dir: controllers.slice("name=".length), options: `none,${controllers}`, aliases: [] });
    } else if (controllers !== "") {
      const list = controllers.split(",");
      v1.push({ dir: controllers, options: controllers, aliases: list.length > 1 ? list : [] });
    }
  }
  if (v2) v1.push({ dir: v1.length > 0 ? "unified" : "", options: undefined, aliases: [] });
  return v1;
}

/**
 * Global kernel settings the kubelet writes when they differ from what it wants (its
 * protectKernelDefaults=true instead refuses to start). They are the host's, not the node's:
 * the holder covers them with files that already hold the kubelet's values, so the host's
 * kernel.panic, panic_on_oops and overcommit policy stay as they are.
 */
export const KUBELET_KERNEL_TUNABLES: Readonly<Record<string, string>> = {
  "vm/overcommit_memory": "1",
  "vm/panic_on_oom": "0",
  "kernel/panic": "10",
  "kernel/panic_on_oops": "1",
  "kernel/keys/root_maxkeys": "1000000",
  "kernel/keys/root_maxbytes": "25000000",
};

/** The shell script the holder runs: mounts, the kubelet's cgroup root, then wait forever. */
export function holderScript(hierarchies: readonly CgroupHierarchy[], cgroupRoot: string, dir: string, readyFile: string): string {
  const lines = ["set -eu"];
  const base = "/sys/fs/cgroup";
  const pureV2 = hierarchies.length === 1 && hierarchies[0]?.options === undefined;
  if (!pureV2) lines.push(`mount -t tmpfs -o mode=755 tno-cgroup ${base}`);
  for (const h of hierarchies) {
    const dir = h.dir === "" ? base : `${base}/${h.dir}`;
    lines.push(`mkdir -p '${dir}'`);
    lines.push(h.options === undefined ? `mount -t cgroup2 cgroup2 '${dir}'` : `mount -t cgroup -o '${h.options}' cgroup '${dir}'`);
    for (const alias of h.aliases) lines.push(`ln -s '${h.dir}' '${base}/${alias}'`);
  }
  for (const tmp of ["/run", "/var/lib", "/var/log"]) lines.push(`mount -t tmpfs -o mode=755 tno-node ${tmp}`);
  lines.push(`mkdir -p '${dir}/sysctl'`);
  for (const [key, value] of Object.entries(KUBELET_KERNEL_TUNABLES)) {
    const file = `${dir}/sysctl/${key.replaceAll("/", ".")}`;
    lines.push(`echo ${value} > '${file}'`, `mount --bind '${file}' /proc/sys/${key}`);
  }
  // The kubelet insists that its cgroup root exists in every hierarchy it uses.
  for (const h of hierarchies) lines.push(`mkdir -p '${h.dir === "" ? base : `${base}/${h.dir}`}/${cgroupRoot}'`);
  // A new v1 cpuset cgroup has no CPUs or memory nodes, so nothing could join its children.
  const cpuset = hierarchies.find((h) => h.options?.split(",").includes("cpuset"));
  if (cpuset) {
    const dir = `${base}/${cpuset.dir}`;
    lines.push(`cat '${dir}/cpuset.cpus' > '${dir}/${cgroupRoot}/cpuset.cpus'`);
    lines.push(`cat '${dir}/cpuset.mems' > '${dir}/${cgroupRoot}/cpuset.mems'`);
  }
  lines.push(`touch '${readyFile}'`, "exec sleep infinity");
  return lines.join("\n");
}

/**
 * Starts the holder: inside the node's network namespace (`ip netns exec` also gives it the
 * namespace's own resolv.conf and hosts), in a new private mount namespace.
 */
export async function startHolder(
  runner: CommandRunner,
  options: { netnsExec: (argv: readonly string[]) => string[]; cgroupRoot: string; dir: string },
): Promise<DaemonRecord> {
  const readyFile = join(options.dir, "mounts-ready");
  const script = holderScript(cgroupHierarchies(readFileSync("/proc/self/cgroup", "utf8")), options.cgroupRoot, options.dir, readyFile);
  const argv = options.netnsExec(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]);
  const holder = await startDaemon(runner, "node namespace holder", argv, join(options.dir, "holder.log"));
  await awaitDaemon(holder, "mounted", () => Promise.resolve(existsSync(readyFile)), 10_000);
  return holder;
}

/** argv that runs a command in the node: the holder's mount and network namespaces. */
export function inNode(holderPid: number, argv: readonly string[]): string[] {
  return ["nsenter", `--target=${String(holderPid)}`, "--mount", "--net", "--", ...argv];
}

/** /sys/fs/cgroup as the launcher sees it (the hub's own /sys shows no cgroups). */
export function hostCgroupFs(): string {
  const match = /^\/proc\/(\d+)\/ns\/mnt$/.exec(process.env[HOST_MOUNT_NAMESPACE_ENV] ?? "");
  return match?.[1] ? `/proc/${match[1]}/root/sys/fs/cgroup` : "/sys/fs/cgroup";
}

/**
 * Kills every process in the top-level cgroups named name (or starting with it, with prefix
 * true) in every hierarchy, and removes those cgroups.
 */
export async function removeCgroups(name: string, options: { prefix?: boolean; timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const base = hostCgroupFs();
  const roots: string[] = [];
  for (const hierarchy of await readdir(base).catch(() => [])) {
    for (const entry of await readdir(join(base, hierarchy)).catch(() => [])) {
      if (options.prefix ? entry.startsWith(name) : entry === name) roots.push(join(base, hierarchy, entry));
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dirs = (await Promise.all(roots.map(cgroupTree))).flat().sort((a, b) => b.length - a.length);
    if (dirs.length === 0) return;
    for (const dir of dirs) {
      for (const pid of await cgroupPids(dir)) {
        if (pid === process.pid) continue;
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
    }
    for (const dir of dirs) await rmdir(dir).catch(() => undefined);
    if (Date.now() > deadline) throw new Error(`could not remove cgroups: ${dirs.join(", ")}`);
    await sleep(50);
  }
}

async function cgroupTree(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const children = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => cgroupTree(join(dir, e.name))));
  return [dir, ...children.flat()];
}

async function cgroupPids(dir: string): Promise<number[]> {
  try {
    return (await readFile(join(dir, "cgroup.procs"), "utf8")).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
