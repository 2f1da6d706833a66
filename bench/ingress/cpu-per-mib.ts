// Where an Ingress path's CPU goes: during a throughput run, the CPU time of each process on the
// path and of the whole machine, per MiB carried. The L7 path does the L3 path's work plus TLS and
// a second HTTP hop; this says how much of its extra cost is the proxy process's own and how much
// lands elsewhere (both tailscaleds, the client), so a ratio against L3 can be read (ADR 0030).
import { cpuDuring } from "../../src/sandbox/proc-cpu.ts";
import { findProcesses } from "../../src/sandbox/proc-memory.ts";
import type { Clock } from "../../src/shared/clock.ts";

export const ACCOUNTS = ["client", "laptopTailscaled", "proxyTailscaled", "proxy", "backend"] as const;
export type Account = (typeof ACCOUNTS)[number];
/** The processes of one path; undefined where the path has none (serve has no separate proxy process). */
export type PathPids = { readonly [A in Account]?: number | undefined };
const LABELS: Record<Account | "rest" | "machine", string> = {
  client: "client",
  laptopTailscaled: "laptop tailscaled",
  proxyTailscaled: "proxy tailscaled",
  proxy: "proxy process",
  backend: "backend",
  rest: "rest",
  machine: "machine",
};

/** ms of CPU per MiB carried, per account, plus "rest" (softirq, the cluster's own) and "machine" (all of it). */
export type CpuPerMib = Record<Account | "rest" | "machine", number>;

/**
 * CPU per MiB over the middle of a throughput run already started: from settleMs after its start
 * (connection set up, first body under way) for windowMs (bench/ingress.ts: 1.5 s to 0.5 s before
 * the end). The client is looked up by its URL then,
 * while it runs. mbps is the run's own figure, taken over its whole window.
 */
export async function measureCpuPerMib(
  clock: Clock,
  pids: PathPids,
  clientUrl: string,
  settleMs: number,
  windowMs: number,
  finished: Promise<{ mbps: number }>,
): Promise<{ mbps: number; cpu: CpuPerMib }> {
  // Handled here so that a run failing during the sleeps is not an unhandled rejection; awaited below.
  finished.catch(() => undefined);
  await clock.sleep(settleMs);
  const [client] = findProcesses((argv) => argv.some((arg) => arg.endsWith("http-load.ts")) && argv.includes(clientUrl));
  if (client === undefined) throw new Error(`the load client for ${clientUrl} was not found ${String(settleMs)} ms after its start`);
  const known = Object.fromEntries(Object.entries({ ...pids, client }).filter((entry): entry is [string, number] => entry[1] !== undefined));
  const { cpu } = await cpuDuring(known, () => clock.sleep(windowMs));
  const { mbps } = await finished;
  const mib = ((mbps * 1e6) / 8 / (1024 * 1024)) * (windowMs / 1000);
  const perMib = (seconds: number): number => (seconds * 1000) / mib;
  const accounts = Object.fromEntries(ACCOUNTS.map((account) => [account, perMib(cpu[account] ?? 0)])) as Record<Account, number>;
  const machine = perMib(cpu["machine"] ?? 0);
  const named = ACCOUNTS.reduce((sum, account) => sum + accounts[account], 0);
  return { mbps, cpu: { ...accounts, rest: Math.max(0, machine - named), machine } };
}

/** The median of each account over runs. */
export function medianCpu(runs: readonly CpuPerMib[]): CpuPerMib {
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const keys = Object.keys(LABELS) as (keyof CpuPerMib)[];
  return Object.fromEntries(keys.map((key) => [key, median(runs.map((run) => run[key]))])) as CpuPerMib;
}

export function cpuTable(rows: readonly { label: string; cpu: CpuPerMib }[]): string {
  const keys = Object.keys(LABELS) as (keyof CpuPerMib)[];
  const header = `  ${"".padEnd(12)}${keys.map((key) => LABELS[key].padStart(18)).join("")}\n`;
  return header + rows.map((row) => `  ${row.label.padEnd(12)}${keys.map((key) => row.cpu[key].toFixed(2).padStart(18)).join("")}\n`).join("");
}

/** The serve pod's tailscaled (started by its Node wrapper with the pod's own state directory). */
export const isServeTailscaled = (argv: readonly string[]): boolean => (argv[0] ?? "").endsWith("tailscaled") && argv.includes("--statedir=/tmp/ts");
/** The bench's backend: Node running the inline server script. */
export const isBackend = (script: string) => (argv: readonly string[]): boolean => argv[1] === "-e" && argv[2] === script;
