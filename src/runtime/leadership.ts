// What a replica does around its work when leader election is on (ADR 0014): wait for the Lease;
// act only while holding it; on SIGTERM keep renewing while the work drains and release the
// Lease only after it stopped; on a fatal error after winning, stop, release and exit non-zero,
// so no process holds the Lease without working. On a lost Lease it stops acting at once and,
// if the work has stopped before any other replica may act, stands by to lead again in-process
// (ADR 0026): a restart would cost a process start and a full relist for nothing.
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { LeaderElector } from "./leader-election.ts";

export interface LeadershipOptions {
  /** Absent: no election, this replica always acts. */
  readonly elector: LeaderElector | undefined;
  /** Aborted on SIGTERM: the work drains, then the Lease is released. */
  readonly stopping: AbortSignal;
  readonly log: Logger;
  readonly clock: Clock;
  /** Called with true once acting, false the moment it stops acting (before any release). */
  readonly setActing: (acting: boolean) => void;
  /** Ends the process (process.exit in production). */
  readonly exit: (code: number) => void;
}

/**
 * The signals a term's work gets. acting aborts when the work must stop (SIGTERM: drain what is
 * in flight; lost Lease: stop). lost aborts only on a lost Lease, at the same moment: what the work
 * has in flight must then be cut, since its requests may hang on the very connection that cost the
 * Lease and the work must end within the grace.
 */
export interface Term {
  readonly acting: AbortSignal;
  readonly lost: AbortSignal;
}

/**
 * Waits to lead, then runs work(term) until it returns. work runs once per term as leader, so it
 * must build what it needs afresh each time.
 */
export async function runWhileLeading(options: LeadershipOptions, work: (term: Term) => Promise<void>): Promise<void> {
  const { elector, stopping, log } = options;
  for (;;) {
    if (elector && !(await elector.acquire(stopping))) return;
    if ((await leadOneTerm(options, work)) === "done") return;
    log.warn("standing by to lead again");
  }
}

async function leadOneTerm(options: LeadershipOptions, work: (term: Term) => Promise<void>): Promise<"done" | "lost"> {
  const { elector, stopping, log, setActing, exit, clock } = options;
  const acting = new AbortController();
  const lost = new AbortController();
  let isActing = true;
  const stopActing = (): void => {
    acting.abort();
    if (!isActing) return;
    isActing = false;
    setActing(false);
  };
  const onStopping = (): void => {
    // Draining: workers take no new work, but the Lease is still renewed until they are done.
    acting.abort();
  };
  if (stopping.aborted) onStopping();
  else stopping.addEventListener("abort", onStopping, { once: true });
  const stopRenewing = new AbortController();
  const ended = { onLostLease: false };
  let working: Promise<unknown> = Promise.resolve();
  const renewing = elector?.renew(stopRenewing.signal).then(async (outcome) => {
    if (outcome === "stopped") return;
    ended.onLostLease = true;
    stopActing();
    lost.abort();
    // Another replica may act once the Lease expires by its clock, which started no earlier than
    // our last renewal: our work must be over before then, or the process must end.
    const graceMs = elector.standDownGraceMs;
    const timer = new AbortController();
    const inTime = await Promise.race([working.then(() => true), clock.sleep(graceMs, timer.signal).then(() => false, () => true)]);
    timer.abort();
    if (inTime) return;
    log.error({ graceMs }, "lost the leader Lease and the work did not stop in time; exiting so that only the new leader acts");
    exit(1);
  });
  setActing(true);
  let failure: unknown;
  working = work({ acting: acting.signal, lost: lost.signal }).catch((error: unknown) => {
    failure = error;
  });
  await working;
  stopActing();
  stopRenewing.abort();
  await renewing;
  stopping.removeEventListener("abort", onStopping);
  if (ended.onLostLease && failure === undefined && !stopping.aborted) return "lost";
  if (failure !== undefined) log.error({ err: failure }, "failed after winning the leader Lease; releasing it and exiting");
  await elector?.release();
  if (failure !== undefined) exit(1);
  return "done";
}
