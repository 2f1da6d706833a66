import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CommandError, ProcessRunner, redactArgv } from "./exec.ts";

describe("ProcessRunner", () => {
  it("returns output, and fails with the exit code and stderr", async () => {
    const runner = new ProcessRunner();
    assert.equal((await runner.run(["sh", "-c", "cat"], { input: "piped" })).stdout, "piped");
    await assert.rejects(runner.run(["sh", "-c", "echo nope >&2; exit 4"]), (error: unknown) => {
      return error instanceof CommandError && error.exitCode === 4 && /nope/.test(error.message);
    });
  });

  it("never puts a credential flag's value in an error", async () => {
    const runner = new ProcessRunner();
    const error = await runner.run(["sh", "-c", "exit 1", "--auth-key=tskey-secret-123"]).catch((e: unknown) => e);
    assert.ok(error instanceof CommandError);
    assert.doesNotMatch(JSON.stringify({ ...error, message: error.message, stack: error.stack }), /tskey-secret-123/);
    assert.deepEqual(redactArgv(["up", "--authkey=k", "--client-secret=s", "--hostname=h"]), ["up", "--authkey=[redacted]", "--client-secret=[redacted]", "--hostname=h"]);
  });
});
