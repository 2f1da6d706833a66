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

/** Flags whose values are credentials; their values never reach an error message or a log. */
const SECRET_FLAGS = /^(--?(auth-?key|authkey|client-secret|token|password|api-key)=)(.*)$/i;

export function redactArgv(argv: readonly string[]): string[] {
  return argv.map((arg) => arg.replace(SECRET_FLAGS, "$1[redacted]"));
}

/** A command that exited non-zero, timed out or could not start; carries what it printed. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly stdout: string;

  constructor(argv: readonly string[], exitCode: number | null, stdout: string, stderr: string, cause?: unknown) {
    const shown = redactArgv(argv);
    const detail = stderr.trim() || stdout.trim() || (cause instanceof Error ? cause.message.replaceAll(argv.join(" "), shown.join(" ")) : "");
    // The cause (Node's own error) repeats the full command line, so it is not kept.
    super(`command failed (exit ${exitCode ?? "none"}): ${shown.join(" ")}${detail ? `: ${detail}` : ""}`);
    this.argv = shown;
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
