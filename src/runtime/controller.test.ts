import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../shared/log.ts";
import { Controller } from "./controller.ts";
import { RuntimeMetrics } from "./metrics.ts";
import { TerminalError, type Reconcile } from "./reconciler.ts";

const log = createLogger({ name: "test", level: "silent" });

/** Runs a controller on one key for a while; returns how many times the key was reconciled. */
async function attempts(reconcile: Reconcile, forMs: number, change?: { afterMs: number }): Promise<number> {
  let calls = 0;
  const controller = new Controller({
    name: "test",
    workers: 1,
    log,
    metrics: new RuntimeMetrics(),
    reconcile: async (key, ctx) => {
      calls++;
      return reconcile(key, ctx);
    },
  });
  const stop = new AbortController();
  const running = controller.run(stop.signal);
  controller.enqueue("ns/a");
  if (change) {
    setTimeout(() => {
      controller.enqueue("ns/a");
    }, change.afterMs);
  }
  await new Promise((resolve) => setTimeout(resolve, forMs));
  stop.abort();
  await running;
  return calls;
}

describe("Controller", () => {
  it("retries a failing key with backoff", async () => {
    assert.ok((await attempts(() => Promise.reject(new Error("transient")), 700)) >= 3);
  });

  it("does not retry a TerminalError until the object changes", async () => {
    const terminal = (): Promise<never> => Promise.reject(new TerminalError("HTTP 403: tags not owned"));
    assert.equal(await attempts(terminal, 700), 1, "no hot retry loop");
    assert.equal(await attempts(terminal, 700, { afterMs: 300 }), 2, "a change of the object queues it again");
  });
});
