// Long-running child processes (etcd, kube-apiserver, headscale, tailscaled, pods): started with
// their output in a log file, stopped with SIGTERM then SIGKILL, and awaited so none outlives us.
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

export interface SpawnOptions {
  readonly name: string;
  readonly argv: readonly string[];
  /** Where stdout and stderr go; without one (or onLine) they are the parent's own. */
  readonly logFile?: string;
  /** Each line the process writes to stdout or stderr, instead of a log file. */
  readonly onLine?: (line: string) => void;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /**
   * Run in a process group of its own and signal the whole group, so children it leaves
   * behind go with it (what a container runtime does when a container's main process exits).
   */
  readonly group?: boolean;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A started process whose exit can be awaited and whose log can be read back for errors. */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string | undefined;
  readonly exited: Promise<ExitStatus>;
  private readonly child: ChildProcess;
  private readonly group: boolean;
  private exitStatus: ExitStatus | undefined;

  private constructor(options: SpawnOptions, child: ChildProcess) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.child = child;
    this.group = options.group ?? false;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
      // A spawn failure (missing binary) emits error and no exit.
      child.once("error", () => {
        this.exitStatus = { code: 127, signal: null };
        resolve(this.exitStatus);
      });
    });
  }

  static start(options: SpawnOptions): ManagedProcess {
    const [file, ...args] = options.argv;
    if (file === undefined) throw new Error(`${options.name}: empty command`);
    const fd = options.logFile === undefined ? undefined : openSync(options.logFile, "a");
    try {
      const child = spawn(file, args, {
        env: options.env ?? process.env,
        cwd: options.cwd,
        stdio: fd !== undefined ? ["ignore", fd, fd] : options.onLine ? ["ignore", "pipe", "pipe"] : "inherit",
        detached: options.group ?? false,
      });
      const onLine = options.onLine;
      if (onLine) {
        for (const stream of [child.stdout, child.stderr]) {
          if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on("line", onLine);
        }
      }
      return new ManagedProcess(options, child);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** The last lines of the process's log, for error messages. */
  logTail(lines = 20): string {
    if (this.logFile === undefined) return "";
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Sends a signal to the process (to its whole group when it has one). */
  signal(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (this.group && pid !== undefined) {
      try {
        process.kill(-pid, signal);
      } catch {
        // The group is empty.
      }
    } else if (this.running) {
      this.child.kill(signal);
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  async stop(graceMs = 5_000): Promise<ExitStatus> {
    if (this.exitStatus) {
      this.signal("SIGKILL");
      return this.exitStatus;
    }
    // SIGTERM to the main process only, as a container runtime does; the rest get SIGKILL.
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      this.signal("SIGKILL");
    }, graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      // Whatever the main process left in its group does not outlive it.
      if (this.group) this.signal("SIGKILL");
    }
  }
}
