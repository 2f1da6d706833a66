import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../shared/log.ts";
import { LeaderElector, validateTiming, DEFAULT_TIMING, type LeaderElectionTiming } from "./leader-election.ts";
import { FakeClock } from "../../test/fakes/fake-clock.ts";
import { FakeLeaseApi } from "../../test/fakes/fake-lease-api.ts";
import { Latch } from "../../test/fakes/latch.ts";

const TIMING: LeaderElectionTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };
const log = createLogger({ name: "test", level: "silent" });

function elector(api: FakeLeaseApi, clock: FakeClock, identity: string, failure?: () => "forbidden" | "hang" | undefined): LeaderElector {
  return new LeaderElector({ kube: api.client(identity, failure), clock, log, namespace: "ns", name: "lease", identity, timing: TIMING });
}

/** Runs acquire() on the fake clock; resolves with whether it won, and when (fake time). */
function acquiring(candidate: LeaderElector, clock: FakeClock, signal = new AbortController().signal): { result: Promise<{ won: boolean; at: number }> } {
  return { result: candidate.acquire(signal).then((won) => ({ won, at: clock.now() })) };
}

describe("LeaderElector", () => {
  it("takes a missing Lease at once and renews it every retry period", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const a = elector(api, clock, "a");
    const { result } = acquiring(a, clock);
    await clock.settle();
    assert.deepEqual(await result, { won: true, at: clock.now() });
    const stop = new AbortController();
    const renewing = a.renew(stop.signal);
    await clock.advance(9_000);
    assert.equal(api.writes.length, 5, "create + a renewal every 2 s");
    stop.abort();
    assert.equal(await renewing, "stopped");
  });

  it("a standby takes over only after seeing the record unchanged for a lease duration by its own clock, whatever the holder's timestamps say", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    // The holder's clock is a year behind: renewTime looks long expired to anyone comparing it
    // with their own clock. It is still renewing, so it must keep the Lease.
    const stale = "2025-01-01T00:00:00.000000Z";
    api.put({ holderIdentity: "old", leaseDurationSeconds: 15, acquireTime: stale, renewTime: stale, leaseTransitions: 3 });
    const b = elector(api, clock, "b");
    const stop = new AbortController();
    const { result } = acquiring(b, clock, stop.signal);
    const state = new Latch<{ won: boolean; at: number }>();
    void result.then(state.set);
    for (let i = 0; i < 20; i++) {
      await clock.advance(2_000);
      const beat = `2025-01-01T00:00:${String(i + 1).padStart(2, "0")}.000000Z`;
      api.put({ holderIdentity: "old", leaseDurationSeconds: 15, acquireTime: stale, renewTime: beat, leaseTransitions: 3 });
    }
    assert.equal(state.get(), undefined, "never took over a Lease that keeps changing");
    // Now the holder dies, with a renewTime a year in the future: only b's own clock counts.
    api.put({ holderIdentity: "old", leaseDurationSeconds: 15, acquireTime: stale, renewTime: "2027-06-01T00:00:00.000000Z", leaseTransitions: 3 });
    const died = clock.now();
    let won = state.get();
    while (!won) {
      await clock.advance(500);
      won = state.get();
    }
    assert.ok(won.won);
    assert.ok(won.at - died >= 15_000, `took over ${won.at - died} ms after the last change, not before the lease duration`);
    // b sees the last change at its next (jittered) attempt, and tries again at most one more
    // jittered retry period after the lease duration has passed from there.
    assert.ok(won.at - died <= 15_000 + 2 * TIMING.retryPeriodMs * 1.2 + 500, `took over within a jittered retry period after expiry as b saw it (${won.at - died} ms)`);
    assert.equal(api.field("holderIdentity"), "b");
    assert.equal(api.field("leaseTransitions"), 4);
  });

  it("lets exactly one of two candidates win an expired Lease (resourceVersion conflicts)", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    api.put({ holderIdentity: "gone", leaseDurationSeconds: 15, renewTime: "2026-01-01T00:00:00.000000Z" });
    const b = elector(api, clock, "b");
    const c = elector(api, clock, "c");
    // Both observe the record now, so both consider it expired at the same moment.
    assert.equal(await b.tryAcquireOrRenew(), false);
    assert.equal(await c.tryAcquireOrRenew(), false);
    await clock.advance(15_000);
    const results = await Promise.all([b.tryAcquireOrRenew(), c.tryAcquireOrRenew()]);
    assert.deepEqual(results.filter(Boolean).length, 1, `one winner: ${JSON.stringify(results)}`);
    assert.equal(api.writes.filter((w) => w.spec["holderIdentity"] !== "gone").length, 1);
  });

  for (const failure of ["hang", "forbidden"] as const) {
    it(`a leader whose API calls ${failure === "hang" ? "never answer" : "get 403"} stops before its renew deadline, before any standby may take over`, async () => {
      const api = new FakeLeaseApi();
      const clock = new FakeClock();
      let cut = false;
      const a = elector(api, clock, "a", () => (cut ? failure : undefined));
      const { result } = acquiring(a, clock);
      await clock.settle();
      assert.ok((await result).won);
      const renewing = a.renew(new AbortController().signal);
      const outcome = new Latch<string>();
      void renewing.then(outcome.set);
      await clock.advance(4_000);
      const lastWrite = api.writes.length;
      const lastWriteAt = clock.now() - (clock.now() % 2_000);
      cut = true;
      // A standby that starts watching right now sees the last record change no earlier than this.
      const b = elector(api, clock, "b");
      const standby = acquiring(b, clock);
      const standbyWon = new Latch<number>();
      void standby.result.then((r) => {
        standbyWon.set(r.at);
      });
      while (outcome.get() === undefined) await clock.advance(100);
      const stoppedAt = clock.now();
      assert.equal(outcome.get(), "lost");
      assert.equal(a.isLeader, false);
      assert.equal(api.writes.length, lastWrite, "no renewal got through");
      assert.ok(stoppedAt - lastWriteAt <= TIMING.renewDeadlineMs, `stopped ${stoppedAt - lastWriteAt} ms after its last renewal`);
      assert.equal(standbyWon.get(), undefined, "the standby had not taken over when the leader stopped");
      let wonAt = standbyWon.get();
      while (wonAt === undefined) {
        await clock.advance(500);
        wonAt = standbyWon.get();
      }
      assert.ok(wonAt - stoppedAt >= TIMING.leaseDurationMs - TIMING.renewDeadlineMs, "a margin of lease duration minus renew deadline");
    });
  }

  it("rides out failed renewals within the renew deadline", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    let failing = false;
    const a = elector(api, clock, "a", () => (failing ? "hang" : undefined));
    await a.acquire(new AbortController().signal);
    const stop = new AbortController();
    const renewing = a.renew(stop.signal);
    await clock.advance(2_100);
    failing = true;
    await clock.advance(6_000);
    failing = false;
    await clock.advance(4_000);
    assert.equal(a.isLeader, true);
    assert.ok(a.healthy());
    stop.abort();
    assert.equal(await renewing, "stopped");
  });

  it("releases the Lease so a standby takes over at its next attempt, not a lease duration later", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const a = elector(api, clock, "a");
    await a.acquire(new AbortController().signal);
    const b = elector(api, clock, "b");
    const standby = acquiring(b, clock);
    const won = new Latch<number>();
    void standby.result.then((r) => {
      won.set(r.at);
    });
    await clock.advance(3_000);
    await a.release();
    const releasedAt = clock.now();
    assert.equal(api.field("holderIdentity"), "");
    let wonAt = won.get();
    while (wonAt === undefined) {
      await clock.advance(100);
      wonAt = won.get();
    }
    assert.ok(wonAt - releasedAt <= TIMING.retryPeriodMs * 1.2 + 100, `took over ${wonAt - releasedAt} ms after the release`);
  });

  it("reports unhealthy when it believes it leads but has not renewed within the renew deadline", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const a = elector(api, clock, "a");
    assert.ok(a.healthy(), "a standby is healthy");
    await a.acquire(new AbortController().signal);
    assert.ok(a.healthy());
    await clock.advance(TIMING.renewDeadlineMs + 1);
    assert.equal(a.healthy(), false, "no renew loop ran");
  });

  it("validates the timing as client-go does", () => {
    assert.equal(validateTiming(DEFAULT_TIMING), undefined);
    assert.match(validateTiming({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }) ?? "", /renew deadline/);
    assert.match(validateTiming({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }) ?? "", /retry period/);
  });
});
