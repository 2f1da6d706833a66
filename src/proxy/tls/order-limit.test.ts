import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_ORDER_LIMITS, decideOrder, describeLimit } from "./order-limit.ts";

const HOUR = 3_600_000;
const now = 100 * HOUR;

describe("decideOrder", () => {
  it("allows orders under every limit and prunes what has aged out of the longest window", () => {
    const decision = decideOrder([now - 200 * HOUR, now - 2 * HOUR, now - 1], now, [{ maxOrders: 3, windowMs: HOUR }]);
    assert.deepEqual(decision, { allowed: true, history: [now - 1] });
  });

  it("refuses at the limit until the oldest order in the window ages out", () => {
    const history = [now - 50 * 60_000, now - 30 * 60_000, now - 10 * 60_000];
    const decision = decideOrder(history, now, [{ maxOrders: 3, windowMs: HOUR }]);
    assert.equal(decision.allowed, false);
    assert.ok(!decision.allowed);
    assert.equal(decision.retryAt, now + 10 * 60_000);
  });

  it("with several limits, the one that binds longest decides", () => {
    const week = 7 * 24 * HOUR;
    const history = [now - 6 * 24 * HOUR, now - 5 * 24 * HOUR, now - 4 * 24 * HOUR, now - 3 * 24 * HOUR, now - 2 * HOUR];
    const decision = decideOrder(history, now, DEFAULT_ORDER_LIMITS);
    assert.ok(!decision.allowed);
    assert.equal(decision.limit.windowMs, week);
    assert.equal(decision.retryAt, now - 6 * 24 * HOUR + week);
    assert.ok(decideOrder(history.slice(1), now, DEFAULT_ORDER_LIMITS).allowed);
  });

  it("ignores timestamps from the future (a clock that jumped back must not block forever)", () => {
    assert.ok(decideOrder([now + HOUR, now + HOUR, now + HOUR], now, [{ maxOrders: 1, windowMs: HOUR }]).allowed);
  });

  it("describes limits in words", () => {
    assert.equal(describeLimit({ maxOrders: 3, windowMs: HOUR }), "3 orders per 1 hour(s)");
    assert.equal(describeLimit({ maxOrders: 5, windowMs: 7 * 24 * HOUR }), "5 orders per 7 day(s)");
  });
});
