// CPU time of sandbox processes and of the machine's softirq work, from /proc, for benches that
// say where a data path's CPU goes (bench/proxy-datapath.ts). Linux only, like the sandbox.
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { findProcesses } from "./proc-memory.ts";

/** USER_HZ: /proc reports CPU time in these ticks (100 on every Linux the sandbox runs on). */
const TICKS_PER_SECOND = 100;

/** utime + stime of a process (all its threads), in seconds; 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name's closing parenthesis: state is [0], utime [11], stime [12].
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** The machine's total CPU ticks by state, from /proc/stat's first line (user nice system idle iowait irq softirq steal ...). */
function cpuTicks(): number[] {
  return readFileSync("/proc/stat", "utf8").split("\n").find((line) => line.startsWith("cpu "))?.trim().split(/\s+/).slice(1).map(Number) ?? [];
}

/** Seconds all CPUs spent in softirq (packet processing that no process is charged for). */
export function softirqSeconds(): number {
  return (cpuTicks()[6] ?? 0) / TICKS_PER_SECOND;
}

/**
 * Seconds all CPUs were busy here: user, system, irq and softirq. Not idle or iowait, and not steal
 * (time the hypervisor gave to other guests).
 */
export function machineBusySeconds(): number {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = cpuTicks();
  return (user + nice + system + irq + softirq) / TICKS_PER_SECOND;
}

/** The tailscaled processes running in the named network namespace (`ip netns` name). */
export function tailscaledIn(netnsName: string): number[] {
  const inode = statSync(`/run/netns/${netnsName}`).ino;
  return findProcesses((argv) => (argv[0] ?? "").endsWith("tailscaled")).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/ns/net`) === `net:[${inode}]`;
    } catch {
      return false;
    }
  });
}

/** CPU seconds each named process, softirq and the whole machine ("machine") used while work ran. */
export async function cpuDuring<T>(pids: Readonly<Record<string, number>>, work: () => Promise<T>): Promise<{ result: T; cpu: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid)]));
  const softirqBefore = softirqSeconds();
  const machineBefore = machineBusySeconds();
  const result = await work();
  const cpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid) - (before[name] ?? 0)]));
  cpu["softirq"] = softirqSeconds() - softirqBefore;
  cpu["machine"] = machineBusySeconds() - machineBefore;
  return { result, cpu };
}
