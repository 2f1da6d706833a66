// The one place that runs short-lived commands (ip, nft, iptables, openssl, headscale CLI).
// Everything else takes a CommandRunner so tests can substitute a fake.
import { execFile } from "node:child_process";

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Text written to the command's standard input. */
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

export interface CommandRunner {
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult>;
}

/** A command that exited non-zero, timed out or could not start; carries what it printed. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly stdout: string;

  constructor(argv: readonly string[], exitCode: number | null, stdout: string, stderr: string, cause?: unknown) {
    const detail = stderr.trim() || stdout.trim() || (cause instanceof Error ? cause.message : "");
    super(`command failed (exit ${exitCode ?? "none"}): ${argv.join(" ")}${detail ? `: ${detail}` : ""}`, { cause });
    this.argv = argv;
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** Runs commands as child processes of this one. */
export class ProcessRunner implements CommandRunner {
  run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const [file, ...args] = argv;
    if (file === undefined) return Promise.reject(new Error("empty command"));
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        {
          env: options.env ?? process.env,
          timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          maxBuffer: 64 * 1024 * 1024,
          encoding: "utf8",
        },
        (error, stdout, stderr) => {
          if (error) {
            const code = typeof error.code === "number" ? error.code : null;
            reject(new CommandError(argv, code, stdout, stderr, error));
            return;
          }
          resolve({ stdout, stderr });
        },
      );
      // A command that never reads its input closes the pipe early; that is not an error.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(options.input ?? "");
    });
  }
}
