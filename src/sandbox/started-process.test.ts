import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { startAndAwait, ExitedEarlyError } from "./started-process.ts";
import { nodeToolArgv } from "./tools.ts";
import { httpGet } from "./https-probe.ts";

const dir = mkdtempSync(join(tmpdir(), "started-process-"));
process.on("exit", () => {
  rmSync(dir, { recursive: true, force: true });
});

describe("startAndAwait", () => {
  it("reports a binary that exits early with its exit code and the end of its log", async () => {
    await assert.rejects(
      startAndAwait({ name: "broken", logFile: join(dir, "broken.log"), argv: ["sh", "-c", "echo 'flag provided but not defined: -x' >&2; exit 3"] }, () => Promise.resolve(false), 10_000),
      (error: unknown) => error instanceof ExitedEarlyError && /broken exited early \(code 3\)/.test(error.message) && /flag provided but not defined/.test(error.message),
    );
  });

  it("reports a port already in use as the server's own error, and leaves nothing running", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      await assert.rejects(
        startAndAwait(
          { name: "web", logFile: join(dir, "web.log"), argv: nodeToolArgv("http-server.ts", ["--listen", `127.0.0.1:${port}`]) },
          async () => (await httpGet(`http://127.0.0.1:${port}/`)).body.includes("hello from"),
          10_000,
        ),
        (error: unknown) => error instanceof ExitedEarlyError && /EADDRINUSE/.test(error.message),
      );
    } finally {
      blocker.close();
    }
  });

  it("stops a process that never becomes ready and says where its log is", async () => {
    await assert.rejects(
      startAndAwait({ name: "sleepy", logFile: join(dir, "sleepy.log"), argv: ["sleep", "30"] }, () => Promise.resolve(false), 300),
      /sleepy did not become ready in 300 ms; log .*sleepy\.log/,
    );
  });
});
