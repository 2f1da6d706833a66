// The operator's watches survive an API server restart: work created afterwards is still done.
// Runs in a sandbox of its own, through a nested launcher, since it restarts kube-apiserver.
import { it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ProcessRunner } from "../../src/shared/exec.ts";

it("keeps reconciling after kube-apiserver restarts", async () => {
  const launcher = fileURLToPath(new URL("../../src/sandbox/launch.ts", import.meta.url));
  const fixture = fileURLToPath(new URL("../fixtures/apiserver-restart.ts", import.meta.url));
  const { stdout } = await new ProcessRunner().run([process.execPath, launcher, "--", process.execPath, fixture], { timeoutMs: 480_000 });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  assert.ok(line, `no result in:\n${stdout}`);
  assert.deepEqual(JSON.parse(line.slice(7)), { before: "app-before.tailnet.test", after: "app-after.tailnet.test", operatorRestarts: [0] });
});
