// A controller: keys from its sources go into a work queue; N workers reconcile them, at most
// one worker per key. Errors retry with per-key backoff; a TerminalError is not retried until
// the object changes (its watch queues it), or after a long delay.
import type { Logger } from "../shared/log.ts";
import { WorkQueue } from "./work-queue.ts";
import { TerminalError, type Reconcile } from "./reconciler.ts";
import type { RuntimeMetrics } from "./metrics.ts";

/** Outside changes (a fixed policy, a renewed credential) are picked up this late at worst. */
export const TERMINAL_RETRY_MS = 10 * 60_000;

export interface ControllerOptions {
  readonly name: string;
  readonly reconcile: Reconcile;
  readonly workers: number;
  readonly log: Logger;
  readonly metrics: RuntimeMetrics;
}

export class Controller {
  readonly name: string;
  private readonly queue = new WorkQueue();
  private readonly options: ControllerOptions;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.options = options;
  }

  enqueue(key: string): void {
    this.queue.add(key);
    this.options.metrics.queueDepth.set({ controller: this.name }, this.queue.depth);
  }

  /** Runs the workers until the signal aborts; resolves when they have all stopped. */
  async run(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => {
      this.queue.shutdown();
    }, { once: true });
    await Promise.all(Array.from({ length: this.options.workers }, () => this.worker(signal)));
  }

  private async worker(signal: AbortSignal): Promise<void> {
    const { metrics, log } = this.options;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      metrics.queueDepth.set({ controller: this.name }, this.queue.depth);
      const stopTimer = metrics.reconcileSeconds.startTimer({ controller: this.name });
      const keyLog = log.child({ controller: this.name, key });
      try {
        const result = await this.options.reconcile(key, { log: keyLog, signal });
        this.queue.forget(key);
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        metrics.reconciles.inc({ controller: this.name, result: result.requeueAfterMs === undefined ? "success" : "requeue" });
      } catch (error) {
        if (error instanceof TerminalError) {
          this.queue.forget(key);
          this.queue.addAfter(key, TERMINAL_RETRY_MS);
          keyLog.error({ err: error, retryInMs: TERMINAL_RETRY_MS }, "reconcile failed; not retrying until the object changes");
          metrics.reconciles.inc({ controller: this.name, result: "terminal" });
        } else {
          const delayMs = this.queue.addRateLimited(key);
          keyLog.warn({ err: error, retryInMs: delayMs }, "reconcile failed; retrying");
          metrics.reconciles.inc({ controller: this.name, result: "error" });
        }
      } finally {
        stopTimer();
        this.queue.done(key);
      }
    }
  }
}
