// What a replica does around its work when leader election is on (ADR 0014): wait for the Lease;
// act only while holding it; on SIGTERM keep renewing while the work drains and release the
// Lease only after it stopped; on a lost Lease stop acting at once and exit; on a fatal error
// after winning, stop, release and exit non-zero, so no process holds the Lease without working.
import type { Logger } from "../shared/log.ts";
import type { LeaderElector } from "./leader-election.ts";

export interface LeadershipOptions {
  /** Absent: no election, this replica always acts. */
  readonly elector: LeaderElector | undefined;
  /** Aborted on SIGTERM: the work drains, then the Lease is released. */
  readonly stopping: AbortSignal;
  readonly log: Logger;
  /** Called with true once acting, false the moment it stops acting (before any release). */
  readonly setActing: (acting: boolean) => void;
  /** Ends the process (process.exit in production). */
  readonly exit: (code: number) => void;
}

/** Waits to lead, then runs work(signal) until it returns; the signal aborts when work must stop. */
export async function runWhileLeading(options: LeadershipOptions, work: (acting: AbortSignal) => Promise<void>): Promise<void> {
  const { elector, stopping, log, setActing, exit } = options;
  if (elector && !(await elector.acquire(stopping))) return;
  const acting = new AbortController();
  let isActing = true;
  const stopActing = (): void => {
    acting.abort();
    if (!isActing) return;
    isActing = false;
    setActing(false);
  };
  stopping.addEventListener("abort", () => {
    // Draining: workers take no new work, but the Lease is still renewed until they are done.
    acting.abort();
  }, { once: true });
  const stopRenewing = new AbortController();
  const renewing = elector?.renew(stopRenewing.signal).then((outcome) => {
    if (outcome === "stopped") return;
    stopActing();
    log.error("lost the leader Lease; exiting so that only the new leader acts");
    exit(1);
  });
  setActing(true);
  let failure: unknown;
  try {
    await work(acting.signal);
  } catch (error) {
    failure = error;
  }
  stopActing();
  stopRenewing.abort();
  await renewing;
  if (failure !== undefined) log.error({ err: failure }, "failed after winning the leader Lease; releasing it and exiting");
  await elector?.release();
  if (failure !== undefined) exit(1);
}
