// Node daemons (containerd, kubelet, kube-proxy, the namespace holder) run detached from the
// process that starts them and are known by PID alone: a test file attached to the sandbox can
// restart a node's kubelet and exit, and the daemon it started must outlive it. A short shell
// backgrounds the daemon under setsid (so a terminal's Ctrl-C reaches only the launcher) and
// prints its PID; nothing keeps a handle on it, so no Node event loop waits for it.
import { readFileSync } from "node:fs";
import type { CommandRunner } from "../../shared/exec.ts";

/** A running daemon: its PID and start time (so a reused PID is never taken for it). */
export interface DaemonRecord {
  readonly name: string;
  readonly pid: number;
  readonly startTime: string;
  readonly logFile: string;
}

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // A zombie has exited already; its parent just has not reaped it.
    if (fields[0] === "Z") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

export function isAlive(record: DaemonRecord): boolean {
  return processStartTime(record.pid) === record.startTime;
}

export function logTail(logFile: string, lines = 25): string {
  try {
    return readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Starts argv detached, output appended to logFile, and returns once it has a PID. */
export async function startDaemon(runner: CommandRunner, name: string, argv: readonly string[], logFile: string): Promise<DaemonRecord> {
  // setsid execs the program itself (a background job is no group leader), so $! is its PID.
  const { stdout } = await runner.run(["sh", "-c", 'log=$1; shift; setsid "$@" </dev/null >>"$log" 2>&1 & echo $!', "sh", logFile, ...argv]);
  const pid = Number(stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${name}: could not start (${stdout.trim()})`);
  const startTime = processStartTime(pid);
  if (startTime === undefined) throw new Error(`${name} exited at once; log ${logFile}:\n${logTail(logFile)}`);
  return { name, pid, startTime, logFile };
}

/** Waits until ready() holds, failing at once (with the log) when the daemon exits first. */
export async function awaitDaemon(record: DaemonRecord, what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (!isAlive(record)) throw new DaemonExited(record);
    try {
      if (await ready()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? ` (${lastError.message})` : "";
      throw new Error(`${record.name} not ${what} after ${timeoutMs} ms${reason}; log ${record.logFile}:\n${logTail(record.logFile)}`);
    }
    await sleep(100);
  }
}

export class DaemonExited extends Error {
  override readonly name = "DaemonExited";
  constructor(record: DaemonRecord) {
    super(`${record.name} (pid ${record.pid}) exited; log ${record.logFile}:\n${logTail(record.logFile)}`);
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopDaemon(record: DaemonRecord, graceMs = 5_000): Promise<void> {
  if (!signalIfAlive(record, "SIGTERM")) return;
  const deadline = Date.now() + graceMs;
  while (isAlive(record) && Date.now() < deadline) await sleep(50);
  signalIfAlive(record, "SIGKILL");
  while (isAlive(record)) await sleep(20);
}

function signalIfAlive(record: DaemonRecord, signal: NodeJS.Signals): boolean {
  if (!isAlive(record)) return false;
  try {
    process.kill(record.pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
