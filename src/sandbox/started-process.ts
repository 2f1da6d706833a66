// Starting a server process and waiting until it answers, failing fast (with its log) if it
// exits first, so a bad flag or a port in use gives one clear error instead of a long timeout.
import { ManagedProcess, type SpawnOptions } from "../shared/process.ts";
import { waitFor } from "../shared/clock.ts";

export class ExitedEarlyError extends Error {
  override readonly name = "ExitedEarlyError";
  constructor(name: string, code: number | null, logTail: string) {
    super(`${name} exited early (code ${code ?? "signal"}); last log lines:\n${logTail}`);
  }
}

export async function startAndAwait(
  options: SpawnOptions & { readonly logFile: string },
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<ManagedProcess> {
  // A group of its own: a Ctrl-C in the terminal reaches the launcher, which tears the sandbox
  // down in order, instead of killing every server at once under a teardown that needs them.
  const proc = ManagedProcess.start({ ...options, group: true });
  const done = new AbortController();
  const exitedEarly = proc.exited.then((status) => {
    if (!done.signal.aborted) throw new ExitedEarlyError(options.name, status.code, proc.logTail());
  });
  try {
    await Promise.race([
      waitFor(`${options.name} to become ready`, async () => ((await ready().catch(() => false)) ? true : undefined), {
        timeoutMs,
        intervalMs: 100,
        signal: done.signal,
      }),
      exitedEarly,
    ]);
    return proc;
  } catch (error) {
    await proc.stop(1_000);
    if (error instanceof ExitedEarlyError) throw error;
    throw new Error(`${options.name} did not become ready in ${timeoutMs} ms; log ${options.logFile}:\n${proc.logTail()}`, {
      cause: error,
    });
  } finally {
    // From here on an exit is the caller's business, not a start-up failure.
    done.abort();
    exitedEarly.catch(() => undefined);
  }
}
