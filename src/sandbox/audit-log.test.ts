import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog, breakdown, parseAuditLines, requestCountingPolicy } from "./audit-log.ts";

const event = (user: string, at: string, verb: string, resource: string, subresource?: string): string =>
  JSON.stringify({
    kind: "Event",
    stage: "ResponseComplete",
    user: { username: user },
    verb,
    objectRef: { resource, ...(subresource ? { subresource } : {}) },
    stageTimestamp: at,
    responseStatus: { code: 200 },
  });

test("the policy logs only the named users, once per request", () => {
  const policy = requestCountingPolicy(["ours"]);
  assert.deepEqual(policy["omitStages"], ["RequestReceived", "ResponseStarted"]);
  assert.deepEqual(policy["rules"], [{ level: "Metadata", users: ["ours"] }, { level: "None" }]);
});

test("a partial last line waits for the rest", () => {
  const whole = event("ours", "2026-11-28T07:00:00.000000Z", "get", "secrets");
  const { requests, consumed } = parseAuditLines(`${whole}\n${whole.slice(0, 10)}`);
  assert.equal(requests.length, 1);
  assert.equal(consumed, whole.length + 1);
  assert.equal(requests[0]?.at, Date.parse("2026-11-28T07:00:00Z"));
});

test("requests are counted by user and completion time as the log grows", () => {
  const dir = mkdtempSync(join(tmpdir(), "audit-"));
  try {
    const file = join(dir, "audit.log");
    const log = new AuditLog(file);
    assert.deepEqual(log.between("ours", 0, Date.now()), []);
    const first = event("ours", "2026-11-28T07:00:01Z", "update", "services", "status");
    appendFileSync(file, `${first}\n${event("go", "2026-11-28T07:00:02Z", "list", "secrets")}\n${first.slice(0, 20)}`);
    const from = Date.parse("2026-11-28T07:00:00Z");
    const to = Date.parse("2026-11-28T07:01:00Z");
    assert.equal(log.between("ours", from, to).length, 1);
    appendFileSync(file, `${first.slice(20)}\n${event("ours", "2026-11-28T07:02:00Z", "watch", "secrets")}\n`);
    const ours = log.between("ours", from, to);
    assert.equal(ours.length, 2);
    assert.deepEqual(breakdown(ours), [["update services/status", 2]]);
    assert.equal(log.between("ours", from, Date.parse("2026-11-28T07:03:00Z")).length, 3);
    assert.equal(log.between("go", from, to).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
