import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FakeClock } from "../../test/fakes/fake-clock.ts";
import { TokenBucket, perResource, unlimited } from "./rate-limiter.ts";

/** Starts n waits and records, for each, the fake time at which it was let through. */
function start(limiter: TokenBucket, clock: FakeClock, n: number, signal?: AbortSignal): { passed: (number | undefined)[]; all: Promise<unknown> } {
  const t0 = clock.now();
  const passed: (number | undefined)[] = [];
  const all = Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      limiter.wait(signal).then(() => {
        passed[i] = clock.now() - t0;
      }),
    ),
  );
  return { passed, all };
}

describe("TokenBucket", () => {
  it("lets a burst through at once, then one request per 1/qps seconds, in arrival order", async () => {
    const clock = new FakeClock();
    const limiter = new TokenBucket({ qps: 10, burst: 3 }, clock);
    const { passed, all } = start(limiter, clock, 6);
    await clock.settle();
    assert.deepEqual(passed.filter((t) => t !== undefined), [0, 0, 0]);
    await clock.advance(300, 10);
    await all;
    assert.deepEqual(passed, [0, 0, 0, 100, 200, 300]);
  });

  it("refills while idle, but never beyond the burst", async () => {
    const clock = new FakeClock();
    const limiter = new TokenBucket({ qps: 2, burst: 2 }, clock);
    await limiter.wait();
    await limiter.wait();
    await clock.advance(60_000);
    const { passed, all } = start(limiter, clock, 3);
    await clock.settle();
    await clock.advance(500, 10);
    await all;
    assert.deepEqual(passed, [0, 0, 500]);
  });

  it("counts partial tokens: half a period idle halves the next wait", async () => {
    const clock = new FakeClock();
    const limiter = new TokenBucket({ qps: 1, burst: 1 }, clock);
    await limiter.wait();
    await clock.advance(500);
    const { passed, all } = start(limiter, clock, 1);
    await clock.advance(500, 10);
    await all;
    assert.deepEqual(passed, [500]);
  });

  it("gives an aborted caller's token back, so the next caller does not wait for it", async () => {
    const clock = new FakeClock();
    const limiter = new TokenBucket({ qps: 1, burst: 1 }, clock);
    await limiter.wait();
    const aborting = new AbortController();
    const abandoned = limiter.wait(aborting.signal);
    aborting.abort();
    await assert.rejects(abandoned);
    const { passed, all } = start(limiter, clock, 1);
    await clock.advance(1_000, 10);
    await all;
    assert.deepEqual(passed, [1_000]);
  });

  it("rejects a limit it cannot honour", () => {
    const clock = new FakeClock();
    assert.throws(() => new TokenBucket({ qps: 0, burst: 1 }, clock), /qps/);
    assert.throws(() => new TokenBucket({ qps: 5, burst: 0 }, clock), /burst/);
    assert.throws(() => new TokenBucket({ qps: 5, burst: 1.5 }, clock), /burst/);
  });

  it("qps 0 means no limit", async () => {
    const limiter = perResource({ qps: 0, burst: 1 }, new FakeClock())("secrets");
    assert.equal(limiter, unlimited);
    for (let i = 0; i < 1_000; i++) await limiter.wait();
  });

  it("gives each resource a bucket of its own, the same one each time", async () => {
    const clock = new FakeClock();
    const limiters = perResource({ qps: 1, burst: 1 }, clock);
    assert.equal(limiters("secrets"), limiters("secrets"));
    await limiters("secrets").wait();
    // The Secrets' bucket is empty; a Lease write does not wait behind it.
    let leaseDone = false;
    await limiters("leases.coordination.k8s.io").wait().then(() => (leaseDone = true));
    assert.equal(leaseDone, true);
    let secretDone = false;
    const secret = limiters("secrets").wait().then(() => (secretDone = true));
    await clock.advance(999);
    assert.equal(secretDone, false);
    await clock.advance(1);
    await secret;
    assert.equal(secretDone, true);
  });
});
