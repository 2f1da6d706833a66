// Memory of processes and cgroups as the kernel reports it, for benchmarks: RSS split into
// anonymous (private to the process) and file-backed (executable text and mapped files, shared
// through the page cache with every process mapping the same file), PSS (shared pages divided
// among their users), and a cgroup's usage and working set as the kubelet computes it.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { namespacePrefix } from "./runs.ts";

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
  /** MiB charged to the cgroup, page cache included (a file page is charged to the first cgroup that reads it). */
  readonly usage: number;
  /** usage minus inactive file pages: what the kubelet reports and evicts on. */
  readonly workingSet: number;
  readonly anon: number;
  readonly file: number;
  /** memory.peak (v2) or max_usage_in_bytes (v1), MiB; NaN where the kernel has neither. */
  readonly peak: number;
}

/**
 * The memory figures of the cgroup a process is in, read through the process's own root: a
 * container sees its cgroup at /sys/fs/cgroup (v1: the memory hierarchy; v2: unified), and the
 * sandbox's nodes mount their hierarchies where the launcher cannot see them.
 */
export function cgroupMemory(pid: number): CgroupMemory {
  const root = `/proc/${pid}/root/sys/fs/cgroup`;
  const mib = (bytes: number): number => bytes / (1024 * 1024);
  const read = (path: string): string => readFileSync(path, "utf8");
  const statValue = (stat: string, key: string): number => Number(new RegExp(`^${key} (\\d+)$`, "m").exec(stat)?.[1] ?? Number.NaN);
  if (existsSync(`${root}/memory/memory.usage_in_bytes`)) {
    const stat = read(`${root}/memory/memory.stat`);
    const usage = mib(Number(read(`${root}/memory/memory.usage_in_bytes`).trim()));
    return {
      path: `${root}/memory`,
      usage,
      workingSet: usage - mib(statValue(stat, "total_inactive_file")),
      anon: mib(statValue(stat, "total_rss")),
      file: mib(statValue(stat, "total_cache")),
      peak: mib(Number(read(`${root}/memory/memory.max_usage_in_bytes`).trim())),
    };
  }
  const stat = read(`${root}/memory.stat`);
  const usage = mib(Number(read(`${root}/memory.current`).trim()));
  const peakFile = `${root}/memory.peak`;
  return {
    path: root,
    usage,
    workingSet: usage - mib(statValue(stat, "inactive_file")),
    anon: mib(statValue(stat, "anon")),
    file: mib(statValue(stat, "file")),
    peak: existsSync(peakFile) ? mib(Number(read(peakFile).trim())) : Number.NaN,
  };
}

/** Processes of one sandbox run (its cgroup paths hold cgroupMarker) whose command line matches. */
export function runProcesses(cgroupMarker: string, match: (argv: readonly string[]) => boolean): number[] {
  return findProcesses(match).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(cgroupMarker);
    } catch {
      return false;
    }
  });
}

/**
 * The tailnet-proxy supervisors (not their init containers) running in this sandbox run's nodes,
 * by the tailnet hostname they serve (TS_HOSTNAME): other sandboxes may share the machine.
 */
export function proxySupervisors(cgroupMarker: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const pid of runProcesses(cgroupMarker, (argv) => argv.includes("/app/bin/tailnet-proxy.js") && !argv.includes("init"))) {
    try {
      const hostname = /(?:^|\0)TS_HOSTNAME=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, "utf8"))?.[1];
      if (hostname !== undefined) found.set(hostname, pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** A figure summed over processes (a pod's). */
export const sumOf = (items: readonly ProcessMemory[], key: keyof Omit<ProcessMemory, "pid" | "name">): number => items.reduce((total, item) => total + item[key], 0);

/**
 * One proxy pod's processes in a sandbox run, by the proxy's tailnet hostname: its supervisor, its
 * tailscaled(s), and an Ingress proxy's nginx master and worker (their titles name them; the
 * cache manager and loader are left out, the loader being gone a minute after the start).
 */
export function proxyPids(runId: string, hostname: string): { supervisor: number; tailscaled: number[]; nginxMaster?: number; nginxWorkers: number[] } {
  const supervisor = proxySupervisors(`/${namespacePrefix(runId)}`).get(hostname);
  if (supervisor === undefined) throw new Error(`no tailnet-proxy for ${hostname} in sandbox ${runId}`);
  const children = childrenOf(supervisor);
  const nginxMaster = children.find((pid) => cmdline(pid)[0]?.startsWith("nginx: master process"));
  return {
    supervisor,
    tailscaled: children.filter((pid) => cmdline(pid)[0]?.endsWith("tailscaled")),
    ...(nginxMaster === undefined ? {} : { nginxMaster }),
    nginxWorkers: nginxMaster === undefined ? [] : childrenOf(nginxMaster).filter((pid) => cmdline(pid)[0]?.startsWith("nginx: worker process")),
  };
}

/** One proxy pod's processes in a sandbox run, by the proxy's tailnet hostname (proxyPids). */
export function proxyProcesses(runId: string, hostname: string): ProcessMemory[] {
  const { supervisor, tailscaled, nginxMaster, nginxWorkers } = proxyPids(runId, hostname);
  return [
    processMemory(supervisor, "tailnet-proxy"),
    ...tailscaled.map((pid) => processMemory(pid, "tailscaled")),
    ...(nginxMaster === undefined ? [] : [processMemory(nginxMaster, "nginx master")]),
    ...nginxWorkers.map((pid) => processMemory(pid, "nginx worker")),
  ];
}

/** Each figure's median over samples of the same processes (Go's and V8's heaps move between GCs). */
export function medianOf(samples: readonly ProcessMemory[][]): ProcessMemory[] {
  const first = samples[0] ?? [];
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  return first.map((proc, i) => {
    const column = samples.map((sample) => sample[i] ?? proc);
    return {
      pid: proc.pid,
      name: proc.name,
      rss: med(column.map((p) => p.rss)),
      rssAnon: med(column.map((p) => p.rssAnon)),
      rssFile: med(column.map((p) => p.rssFile)),
      pss: med(column.map((p) => p.pss)),
      peakRss: Math.max(...column.map((p) => p.peakRss)),
    };
  });
}
