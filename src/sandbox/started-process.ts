// Starting a server process and waiting until it answers, failing fast (with its log) if it
// exits first, so a bad flag or a port in use gives one clear error instead of a long timeout.
import { ManagedProcess, type SpawnOptions } from "../shared/process.ts";
import { waitFor } from "../shared/clock.ts";

export async function startAndAwait(
  options: SpawnOptions & { readonly logFile: string },
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<ManagedProcess> {
  const proc = ManagedProcess.start(options);
  try {
    await waitFor(
      `${options.name} to become ready`,
      async () => {
        if (!proc.running) {
          const status = await proc.exited;
          throw new ExitedEarlyError(options.name, status.code, proc.logTail());
        }
        return (await ready().catch(() => false)) ? true : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
    return proc;
  } catch (error) {
    await proc.stop(1_000);
    if (error instanceof ExitedEarlyError) throw error;
    throw new Error(`${options.name} did not become ready in ${timeoutMs} ms; log ${options.logFile}:\n${proc.logTail()}`, {
      cause: error,
    });
  }
}

export class ExitedEarlyError extends Error {
  override readonly name = "ExitedEarlyError";
  constructor(name: string, code: number | null, logTail: string) {
    super(`${name} exited early (code ${code ?? "signal"}); last log lines:\n${logTail}`);
  }
}
