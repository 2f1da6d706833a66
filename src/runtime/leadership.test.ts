import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../shared/log.ts";
import { LeaderElector } from "./leader-election.ts";
import { runWhileLeading } from "./leadership.ts";
import { FakeClock } from "../../test/fakes/fake-clock.ts";
import { FakeLeaseApi } from "../../test/fakes/fake-lease-api.ts";

const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };
const log = createLogger({ name: "test", level: "silent" });

function setup(failure?: () => "hang" | "forbidden" | undefined) {
  const api = new FakeLeaseApi();
  const clock = new FakeClock();
  const elector = new LeaderElector({ kube: api.client("a", failure), clock, log, namespace: "ns", name: "lease", identity: "a", timing: TIMING });
  const events: string[] = [];
  const stopping = new AbortController();
  const options = {
    elector,
    stopping: stopping.signal,
    log,
    clock,
    setActing: (acting: boolean) => events.push(acting ? "acting" : "stopped acting"),
    exit: (code: number) => events.push(`exit ${code}`),
  };
  return { api, clock, events, stopping, options };
}

describe("runWhileLeading", () => {
  it("on SIGTERM keeps renewing while the work drains, and releases the Lease only after it stopped", async () => {
    const { api, clock, events, stopping, options } = setup();
    let drained: () => void = () => undefined;
    const done = runWhileLeading(options, async ({ acting }) => {
      await new Promise<void>((resolve) => {
        acting.addEventListener("abort", () => {
          resolve();
        }, { once: true });
      });
      events.push("draining");
      await new Promise<void>((resolve) => (drained = resolve));
      events.push("drained");
    });
    await clock.settle();
    stopping.abort();
    await clock.settle();
    const before = api.writes.length;
    await clock.advance(6_000);
    assert.ok(api.writes.length >= before + 2, "renewed during the drain");
    assert.equal(api.field("holderIdentity"), "a", "still held while draining");
    drained();
    await done;
    assert.equal(api.field("holderIdentity"), "", "released after");
    assert.deepEqual(events, ["acting", "draining", "drained", "stopped acting"]);
  });

  it("stops acting before the renew deadline when the Lease cannot be renewed, stands by, and leads again once it can", async () => {
    let cut = false;
    const { api, clock, events, options } = setup(() => (cut ? "hang" : undefined));
    const terms: { started: number; stopped?: number }[] = [];
    void runWhileLeading(options, async ({ acting }) => {
      const term: { started: number; stopped?: number } = { started: clock.now() };
      terms.push(term);
      await new Promise<void>((resolve) => {
        acting.addEventListener("abort", () => {
          resolve();
        }, { once: true });
      });
      term.stopped = clock.now();
    });
    await clock.advance(2_000);
    const lastRenewal = api.writes.length;
    const lastWriteAt = clock.now();
    cut = true;
    await clock.advance(TIMING.renewDeadlineMs + 2_000);
    assert.equal(api.writes.length, lastRenewal);
    assert.deepEqual(events, ["acting", "stopped acting"], "stood down without exiting");
    const stoppedAt = terms[0]?.stopped;
    assert.ok(stoppedAt !== undefined && stoppedAt - lastWriteAt <= TIMING.renewDeadlineMs, `work told to stop at ${String(stoppedAt)}, last renewal ${lastWriteAt}`);
    cut = false;
    await clock.advance(TIMING.retryPeriodMs * 2);
    assert.deepEqual(events, ["acting", "stopped acting", "acting"], "leads again in the same process");
    assert.equal(terms.length, 2, "the work started afresh for the new term");
    assert.equal(api.field("holderIdentity"), "a");
  });

  it("exits when the Lease is lost and the work does not stop before another replica may act", async () => {
    let cut = false;
    const { clock, events, options } = setup(() => (cut ? "hang" : undefined));
    void runWhileLeading(options, () => new Promise<void>(() => undefined));
    await clock.advance(2_000);
    cut = true;
    await clock.advance(TIMING.renewDeadlineMs + 2_000);
    assert.deepEqual(events, ["acting", "stopped acting"]);
    await clock.advance(TIMING.leaseDurationMs - TIMING.renewDeadlineMs);
    assert.deepEqual(events, ["acting", "stopped acting", "exit 1"]);
  });

  it("on a lost Lease tells the work to cut what it has in flight, so work stuck on a hung request ends in time and it stands by", async () => {
    let cut = false;
    const { clock, events, options } = setup(() => (cut ? "hang" : undefined));
    // The work's request hangs on the cut connection: only the lost signal (on which the
    // operator closes the term's API client) fails it.
    void runWhileLeading(options, async ({ lost }) => {
      await new Promise<void>((resolve) => {
        lost.addEventListener("abort", () => {
          events.push("cut in flight");
          resolve();
        }, { once: true });
      });
    });
    await clock.advance(2_000);
    cut = true;
    await clock.advance(TIMING.renewDeadlineMs + 2_000);
    await clock.advance(TIMING.leaseDurationMs);
    assert.deepEqual(events.slice(0, 3), ["acting", "stopped acting", "cut in flight"]);
    assert.ok(!events.includes("exit 1"), `stood by instead of exiting: ${events.join(", ")}`);
  });

  it("exits non-zero and releases the Lease when the work fails after winning", async () => {
    const { api, clock, events, options } = setup();
    const done = runWhileLeading(options, () => Promise.reject(new Error("setup failed: forbidden")));
    await clock.settle();
    await done;
    assert.deepEqual(events, ["acting", "stopped acting", "exit 1"]);
    assert.equal(api.field("holderIdentity"), "", "released for a standby");
  });

  it("never acts when SIGTERM comes before it leads", async () => {
    const { api, clock, events, stopping, options } = setup();
    api.put({ holderIdentity: "other", leaseDurationSeconds: 15, renewTime: "2026-01-01T00:00:00.000000Z" });
    const done = runWhileLeading(options, () => Promise.resolve());
    await clock.advance(3_000);
    stopping.abort();
    await clock.settle();
    await done;
    assert.deepEqual(events, []);
    assert.equal(api.field("holderIdentity"), "other");
  });
});
