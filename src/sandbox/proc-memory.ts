// Memory of processes and cgroups as the kernel reports it, for benchmarks: RSS split into
// anonymous (private to the process) and file-backed (executable text and mapped files, shared
// through the page cache with every process mapping the same file), PSS (shared pages divided
// among their users), and a cgroup's usage and working set as the kubelet computes it.
import { readFileSync, readdirSync } from "node:fs";

export interface ProcessMemory {
  readonly pid: number;
  readonly name: string;
  /** MiB. */
  readonly rss: number;
  readonly rssAnon: number;
  readonly rssFile: number;
  readonly pss: number;
  readonly peakRss: number;
}

const MIB = 1024;
const kib = (text: string, key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);

export function processMemory(pid: number, name: string): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return {
    pid,
    name,
    rss: kib(status, "VmRSS") / MIB,
    rssAnon: kib(status, "RssAnon") / MIB,
    rssFile: kib(status, "RssFile") / MIB,
    pss: kib(rollup, "Pss") / MIB,
    peakRss: kib(status, "VmHWM") / MIB,
  };
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

export function parentPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (in parentheses) may hold spaces: fields after its closing parenthesis.
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** PIDs whose command line satisfies match. */
export function findProcesses(match: (argv: readonly string[]) => boolean): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => match(cmdline(pid)));
}

export function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((child) => {
      try {
        return parentPid(child) === pid;
      } catch {
        return false;
      }
    });
}

export interface CgroupMemory {
  readonly path: string;
  /** memory.current, MiB: everything charged, page cache included. */
  readonly usage: number;
  /** usage minus inactive file pages: what the kubelet reports and evicts on. */
  readonly workingSet: number;
  readonly anon: number;
  readonly file: number;
  /** memory.peak, MiB (NaN on kernels without it). */
  readonly peak: number;
}

/** The cgroup v2 memory figures of the cgroup a process is in. */
export function cgroupMemory(pid: number): CgroupMemory {
  const line = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.startsWith("0::"));
  if (line === undefined) throw new Error(`process ${pid}: no cgroup v2 membership`);
  const path = `/sys/fs/cgroup${line.slice(3)}`;
  const bytes = (file: string): number => Number(readFileSync(`${path}/${file}`, "utf8").trim()) / (1024 * 1024);
  const stat = readFileSync(`${path}/memory.stat`, "utf8");
  const statMiB = (key: string): number => Number(new RegExp(`^${key} (\\d+)$`, "m").exec(stat)?.[1] ?? Number.NaN) / (1024 * 1024);
  const usage = bytes("memory.current");
  let peak = Number.NaN;
  try {
    peak = bytes("memory.peak");
  } catch {
    // Older kernels.
  }
  return { path, usage, workingSet: usage - statMiB("inactive_file"), anon: statMiB("anon"), file: statMiB("file"), peak };
}
