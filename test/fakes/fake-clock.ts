// A manual clock for tests of time-driven code: sleeps resolve only when advance() passes them.
import type { Clock } from "../../src/shared/clock.ts";

interface Sleeper {
  readonly at: number;
  readonly resolve: () => void;
}

export class FakeClock implements Clock {
  private time: number;
  private sleepers: Sleeper[] = [];

  constructor(start = Date.parse("2026-01-01T00:00:00Z")) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new Error("aborted"));
        return;
      }
      const sleeper: Sleeper = { at: this.time + Math.max(0, ms), resolve };
      this.sleepers.push(sleeper);
      signal?.addEventListener("abort", () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(new Error("aborted"));
      }, { once: true });
    });
  }

  /** Moves time forward in steps, waking sleepers in order and letting their work run. */
  async advance(ms: number, stepMs = 50): Promise<void> {
    const end = this.time + ms;
    while (this.time < end) {
      this.time = Math.min(end, this.time + stepMs);
      await this.settle();
    }
  }

  /** Lets pending promise chains run and wakes every sleeper that is due. */
  async settle(): Promise<void> {
    for (let round = 0; round < 20; round++) {
      const due = this.sleepers.filter((s) => s.at <= this.time);
      this.sleepers = this.sleepers.filter((s) => s.at > this.time);
      for (const sleeper of due) sleeper.resolve();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
