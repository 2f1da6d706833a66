import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nginxLogLine } from "./nginx-engine.ts";

describe("nginxLogLine", () => {
  it("turns nginx's error log lines into levelled messages", () => {
    assert.deepEqual(nginxLogLine("2026/11/29 17:48:20 [error] 63#63: *12 connect() failed (111: Connection refused) while connecting to upstream"), { level: "error", message: "connect() failed (111: Connection refused) while connecting to upstream" });
    assert.deepEqual(nginxLogLine("2026/11/29 17:48:20 [warn] 61#61: conflicting server name"), { level: "warn", message: "conflicting server name" });
    assert.deepEqual(nginxLogLine("2026/11/29 17:48:20 [alert] 61#61: worker process 63 exited on signal 9"), { level: "error", message: "worker process 63 exited on signal 9" });
    assert.deepEqual(nginxLogLine("nginx: [emerg] unexpected end of file"), { level: "error", message: "unexpected end of file" });
    assert.deepEqual(nginxLogLine("something else"), { level: "info", message: "something else" });
  });

  it("keeps the known initgroups failure of a root nginx without CAP_SETGID at debug", () => {
    assert.equal(nginxLogLine("2026/11/29 17:48:20 [emerg] 63#63: initgroups(root, 0) failed (1: Operation not permitted)").level, "debug");
    assert.equal(nginxLogLine("2026/11/29 17:48:20 [emerg] 63#63: setuid(0) failed (1: Operation not permitted)").level, "error");
  });
});
