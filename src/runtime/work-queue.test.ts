import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { WorkQueue } from "./work-queue.ts";

const timeout = (): Promise<string> =>
  new Promise((resolve) => {
    setTimeout(() => {
      resolve("nothing within 1 s");
    }, 1_000);
  });

describe("WorkQueue", () => {
  it("de-duplicates keys that are waiting", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    queue.add("a");
    queue.add("b");
    assert.equal(queue.depth, 2);
    assert.equal(await queue.get(), "a");
    assert.equal(await queue.get(), "b");
  });

  it("never hands out a key that is in flight; one added meanwhile comes back after done", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    const first = await queue.get();
    queue.add("a");
    assert.equal(queue.depth, 0, "not queued while in flight");
    queue.done(first!);
    assert.equal(queue.depth, 1);
    assert.equal(await queue.get(), "a");
  });

  it("backs off each failing key exponentially and independently, and forget resets it", () => {
    const queue = new WorkQueue({ backoff: { baseMs: 10, maxMs: 50 } });
    assert.deepEqual([queue.addRateLimited("a"), queue.addRateLimited("a"), queue.addRateLimited("a"), queue.addRateLimited("a")], [10, 20, 40, 50]);
    assert.equal(queue.addRateLimited("b"), 10);
    queue.forget("a");
    assert.equal(queue.addRateLimited("a"), 10);
    queue.shutdown();
  });

  it("delivers a delayed key after its delay, and wakes a waiting worker", async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    const started = Date.now();
    queue.addAfter("later", 30);
    assert.equal(await waiting, "later");
    assert.ok(Date.now() - started >= 25);
  });

  it("lets a short requeue win over a long backoff that is pending, and not the other way round", async () => {
    const queue = new WorkQueue({ backoff: { baseMs: 60_000, maxMs: 60_000 } });
    queue.addRateLimited("a");
    queue.addAfter("a", 20);
    const waiting = queue.get();
    const first = await Promise.race([waiting, timeout()]);
    assert.equal(first, "a", "the 20 ms requeue was not dropped behind the 60 s backoff");
    queue.done("a");
    queue.addAfter("b", 20);
    queue.addRateLimited("b");
    const next = await Promise.race([queue.get(), timeout()]);
    assert.equal(next, "b", "the later backoff did not push the earlier requeue back");
    queue.shutdown();
  });

  it("releases waiting workers on shutdown", async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutdown();
    assert.equal(await waiting, undefined);
  });
});
