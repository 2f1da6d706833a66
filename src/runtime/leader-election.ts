// Leader election on a coordination.k8s.io Lease with client-go's semantics (ADR 0014):
// - a candidate takes the Lease over only after it has seen the record unchanged for the
//   record's lease duration, measured by its own clock from the moment it observed the change
//   (the holder's renewTime is never compared with the local clock: clocks differ between nodes);
// - the leader renews every retry period and gives up at its renew deadline, counted from the
//   start of its last successful renewal, which is strictly before any standby may take over
//   (renew deadline < lease duration, and a standby starts counting only after the write);
// - writes carry the resourceVersion, so two candidates racing for one expired Lease cannot both
//   win; a release writes an empty holder so a standby takes over at once.
// Every API call is bounded (half the renew deadline, or the time left): a cut connection hangs
// rather than fails.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import { KubeApiError } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

interface Lease extends KubernetesObject {
  spec?: LeaseSpec;
}

export interface LeaderElectionTiming {
  /** How long a candidate waits, from seeing the record change, before it may take over. */
  readonly leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it stops acting; < leaseDurationMs. */
  readonly renewDeadlineMs: number;
  /** Time between attempts to acquire or renew; < renewDeadlineMs. */
  readonly retryPeriodMs: number;
}

/** client-go's defaults. */
export const DEFAULT_TIMING: LeaderElectionTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export function validateTiming(timing: LeaderElectionTiming): string | undefined {
  if (timing.renewDeadlineMs >= timing.leaseDurationMs) return "the renew deadline must be shorter than the lease duration";
  if (timing.retryPeriodMs >= timing.renewDeadlineMs) return "the retry period must be shorter than the renew deadline";
  if (timing.leaseDurationMs < 1000 || timing.leaseDurationMs % 1000 !== 0) return "the lease duration must be a whole number of seconds";
  return undefined;
}

export interface LeaderElectionOptions {
  readonly kube: KubeClient;
  readonly clock: Clock;
  readonly log: Logger;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly timing: LeaderElectionTiming;
}

/** client-go jitters the acquire period by up to 1.2 x, so candidates do not move in lockstep. */
const JITTER_FACTOR = 1.2;

class TimedOut extends Error {
  override readonly name = "TimedOut";
}

/** Lease timestamps are MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  /** The record as last seen, and when (by our clock) we saw it change. */
  private observedRecord: string | undefined;
  private observedTime = 0;
  private leading = false;
  /** When the last successful acquire or renew started (by our clock). */
  private lastRenewStart = 0;

  constructor(options: LeaderElectionOptions) {
    const problem = validateTiming(options.timing);
    if (problem) throw new Error(`leader election: ${problem}`);
    this.options = options;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Healthy unless this replica believes it leads while its last renewal is older than the
   * renew deadline (the renew loop is wedged: the kubelet should restart the process).
   */
  healthy(): boolean {
    return !this.leading || this.options.clock.now() - this.lastRenewStart <= this.options.timing.renewDeadlineMs;
  }

  /**
   * After a lost Lease: how long until another replica may act. A standby counts the lease
   * duration from when it saw our last renewal, which started no earlier than lastRenewStart.
   */
  get standDownGraceMs(): number {
    return Math.max(0, this.lastRenewStart + this.options.timing.leaseDurationMs - this.options.clock.now());
  }

  /** One hung request must not use the whole renew deadline (client-go's clients time out too). */
  private requestTimeoutMs(): number {
    return this.options.timing.renewDeadlineMs / 2;
  }

  private ref(): { apiVersion: string; kind: string; namespace: string; name: string } {
    return { apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: this.options.namespace, name: this.options.name };
  }

  private observe(spec: LeaseSpec): void {
    const record = JSON.stringify([spec.holderIdentity ?? "", spec.leaseDurationSeconds ?? 0, spec.acquireTime ?? "", spec.renewTime ?? "", spec.leaseTransitions ?? 0]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedTime = this.options.clock.now();
    }
  }

  /**
   * One attempt to acquire or renew; true if this replica holds the Lease afterwards. A
   * conflict (another replica wrote first) is a plain false; other API errors throw.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, clock, identity, timing, log } = this.options;
    const start = clock.now();
    const durationSeconds = timing.leaseDurationMs / 1000;
    const lease = await kube.get<Lease>(this.ref());
    try {
      if (!lease) {
        const spec: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(start), renewTime: microTime(start), leaseTransitions: 0 };
        const created = await kube.create<Lease>({ ...this.ref(), metadata: { name: this.options.name, namespace: this.options.namespace }, spec });
        if (created === "exists") return false;
        this.observe(spec);
        this.lastRenewStart = start;
        return true;
      }
      const old = lease.spec ?? {};
      this.observe(old);
      const holder = old.holderIdentity ?? "";
      const recordDurationMs = (old.leaseDurationSeconds ?? 0) > 0 ? (old.leaseDurationSeconds ?? 0) * 1000 : timing.leaseDurationMs;
      const observedForMs = clock.now() - this.observedTime;
      if (holder !== "" && holder !== identity && observedForMs < recordDurationMs) return false;
      const renewing = holder === identity;
      const spec: LeaseSpec = {
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: microTime(start),
        acquireTime: renewing ? (old.acquireTime ?? microTime(start)) : microTime(start),
        leaseTransitions: renewing ? (old.leaseTransitions ?? 0) : (old.leaseTransitions ?? 0) + 1,
      };
      await kube.mergePatch(this.ref(), { metadata: { resourceVersion: lease.metadata?.resourceVersion }, spec });
      if (!renewing) log.info({ identity, previousHolder: holder, observedForMs, leaseDurationMs: recordDurationMs }, holder ? "took over the leader Lease after it expired" : "took the free leader Lease");
      this.observe(spec);
      this.lastRenewStart = start;
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.isConflict) return false;
      throw error;
    }
  }

  /** tryAcquireOrRenew, abandoned (as a failure) once the budget is spent. */
  private async attempt(budgetMs: number): Promise<boolean> {
    const stop = new AbortController();
    const timeout = this.options.clock.sleep(budgetMs, stop.signal).then(
      () => {
        throw new TimedOut(`no answer from the API server within ${budgetMs} ms`);
      },
      () => false,
    );
    try {
      return await Promise.race([this.tryAcquireOrRenew(), timeout]);
    } finally {
      stop.abort();
    }
  }

  /** Tries every retry period (jittered) until this replica leads; false if the signal aborts first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    const { clock, timing, log, identity } = this.options;
    log.info({ identity, lease: this.options.name, ...timing }, "waiting to lead");
    while (!signal.aborted) {
      const won = await this.attempt(this.requestTimeoutMs()).catch((error: unknown) => {
        log.warn({ err: error }, "leader election: could not read or take the Lease");
        return false;
      });
      if (won) {
        this.leading = true;
        log.info({ identity }, "became leader");
        return true;
      }
      const delay = timing.retryPeriodMs * (1 + Math.random() * (JITTER_FACTOR - 1));
      await clock.sleep(delay, signal).catch(() => undefined);
    }
    return false;
  }

  /**
   * Renews every retry period until `until` aborts ("stopped"), or until the renew deadline
   * passes without a successful renewal ("lost"). On "lost" the caller must stop acting at once.
   */
  async renew(until: AbortSignal): Promise<"stopped" | "lost"> {
    const { clock, timing, log, identity } = this.options;
    const msLeft = (): number => this.lastRenewStart + timing.renewDeadlineMs - clock.now();
    const stopped = (): boolean => until.aborted;
    for (;;) {
      await clock.sleep(timing.retryPeriodMs, until).catch(() => undefined);
      if (until.aborted) return "stopped";
      let renewed = false;
      while (!renewed && msLeft() > 0) {
        renewed = await this.attempt(Math.min(msLeft(), this.requestTimeoutMs())).catch((error: unknown) => {
          log.warn({ err: error, msLeft: Math.max(0, msLeft()) }, "leader election: could not renew the Lease");
          return false;
        });
        // Someone else holds it now (we were too late once): retrying cannot help.
        if (!renewed && this.observedHolder() !== identity) break;
        if (!renewed) {
          await clock.sleep(Math.max(0, Math.min(timing.retryPeriodMs, msLeft())), until).catch(() => undefined);
          if (stopped()) return "stopped";
        }
      }
      if (!renewed) {
        this.leading = false;
        log.error({ identity, sinceLastRenewMs: clock.now() - this.lastRenewStart, renewDeadlineMs: timing.renewDeadlineMs, holder: this.observedHolder() }, "stopped leading: could not renew the Lease in time");
        return "lost";
      }
    }
  }

  private observedHolder(): string {
    if (this.observedRecord === undefined) return "";
    const [holder] = JSON.parse(this.observedRecord) as [string];
    return holder;
  }

  /**
   * Gives the Lease up (empty holder, 1 s duration, as client-go does) so a standby takes over
   * at once. Call only after this replica stopped acting. Bounded by the renew deadline.
   */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    const { kube, log, identity, clock, timing } = this.options;
    const write = async (): Promise<void> => {
      const lease = await kube.get<Lease>(this.ref());
      if (lease?.spec?.holderIdentity !== identity) return;
      const now = microTime(clock.now());
      await kube.mergePatch(this.ref(), {
        metadata: { resourceVersion: lease.metadata?.resourceVersion },
        spec: { holderIdentity: "", leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: lease.spec.leaseTransitions ?? 0 },
      });
      log.info({ identity }, "released the leader Lease");
    };
    const stop = new AbortController();
    await Promise.race([write(), clock.sleep(timing.renewDeadlineMs, stop.signal).then(
        () => {
          log.warn("leader election: release timed out");
        },
        () => undefined,
      )])
      .catch((error: unknown) => {
        log.warn({ err: error }, "leader election: could not release the Lease");
      })
      .finally(() => {
        stop.abort();
      });
  }
}
