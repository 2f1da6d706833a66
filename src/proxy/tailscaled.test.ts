import { it } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { ProcessRunner } from "../shared/exec.ts";
import { loadProxyConfig } from "./config.ts";
import { Tailscaled, findOnPath, requireTailscaleBinaries, type StartRestart } from "./tailscaled.ts";

it("finds tailscaled and tailscale on the PATH, and names whichever is missing", () => {
  const root = mkdtempSync(join(tmpdir(), "tailnet-proxy-path-"));
  try {
    const [a, b] = [join(root, "a"), join(root, "b")];
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, "tailscale"), "", { mode: 0o644 }); // not executable: skipped
    writeFileSync(join(b, "tailscale"), "");
    chmodSync(join(b, "tailscale"), 0o755);
    mkdirSync(join(a, "tailscaled")); // a directory is not a program
    const path = `${a}::${b}`;
    assert.equal(findOnPath("tailscale", path), join(b, "tailscale"));
    assert.equal(findOnPath("tailscaled", path), undefined);
    assert.throws(() => {
      requireTailscaleBinaries(path);
    }, (error: Error) => error.message === `tailscaled not found on PATH (${path}): this image lacks it; run the tailnet-operator proxy image (docs/images.md)`);
    assert.throws(() => {
      requireTailscaleBinaries("");
    }, /^Error: tailscaled and tailscale not found on PATH \(empty\): this image lacks them/);
    writeFileSync(join(b, "tailscaled"), "");
    chmodSync(join(b, "tailscaled"), 0o755);
    assert.doesNotThrow(() => {
      requireTailscaleBinaries(path);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * Runs body with a Tailscaled whose `tailscaled` is a stand-in Node script (its source from
 * script, given the temporary root it may keep markers in), first on the PATH.
 */
async function withStandIn(prefix: string, script: (root: string) => string, body: (tailscaled: Tailscaled) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const savedPath = process.env["PATH"];
  const tailscaled = new Tailscaled(new ProcessRunner(), loadProxyConfig({
    TS_KUBE_SECRET: "ts-x-0",
    TS_HOSTNAME: "x",
    TS_DEST_IP: "10.96.0.10",
    TS_SOCKET: join(root, "tailscaled.sock"),
    TS_STATE_DIR: join(root, "state"),
  }));
  try {
    const bin = join(root, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "tailscaled"), `#!${process.execPath}\n${script(root)}`);
    chmodSync(join(bin, "tailscaled"), 0o755);
    process.env["PATH"] = `${bin}${delimiter}${savedPath ?? ""}`;
    await body(tailscaled);
  } finally {
    process.env["PATH"] = savedPath;
    await tailscaled.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

it("starts tailscaled again when it exits during start-up, until its LocalAPI answers", async () => {
  // A stand-in tailscaled: the first run exits 1 (as tailscaled does when its kube state store
  // cannot reach the API server), the second serves the LocalAPI's status on its socket.
  await withStandIn("tailnet-proxy-start-", (root) => `const { existsSync, writeFileSync } = require("node:fs");
const marker = ${JSON.stringify(join(root, "ran-once"))};
if (!existsSync(marker)) { writeFileSync(marker, ""); process.exit(1); }
const socket = process.argv.find((a) => a.startsWith("--socket=")).slice("--socket=".length);
require("node:http").createServer((req, res) => res.end(JSON.stringify({ BackendState: "NeedsLogin" }))).listen(socket);
process.on("SIGTERM", () => process.exit(0));
`, async (tailscaled) => {
    const restarts: StartRestart[] = [];
    await tailscaled.start((restart) => restarts.push(restart));
    assert.deepEqual(restarts, [{ attempt: 1, exit: "exit code 1", delayMs: 1_000 }]);
    assert.equal((await tailscaled.loginProgress()).backendState, "NeedsLogin");
  });
});

it("starts tailscaled again when it came up without its state store (in-memory fallback)", async () => {
  // A stand-in tailscaled: the first run answers with the state-store health warning tailscaled
  // raises when it could not read its Secret, the second answers normally.
  await withStandIn("tailnet-proxy-store-", (root) => `const { existsSync, rmSync, writeFileSync } = require("node:fs");
const marker = ${JSON.stringify(join(root, "ran-once"))};
const first = !existsSync(marker);
writeFileSync(marker, "");
const socket = process.argv.find((a) => a.startsWith("--socket=")).slice("--socket=".length);
rmSync(socket, { force: true });
const health = first ? ["State store failed to initialize, Tailscale will not work until this is resolved. See https://tailscale.com/s/state-store-init-error. Error: Get \\"https://10.96.0.1:443/api/v1/namespaces/tailscale/secrets/ts-x-0\\": connection refused"] : [];
require("node:http").createServer((req, res) => res.end(JSON.stringify({ BackendState: "NeedsLogin", Health: health }))).listen(socket);
process.on("SIGTERM", () => process.exit(0));
`, async (tailscaled) => {
    const restarts: StartRestart[] = [];
    await tailscaled.start((restart) => restarts.push(restart));
    assert.equal(restarts.length, 1, JSON.stringify(restarts));
    assert.match(restarts[0]?.exit ?? "", /^started without its state \(State store failed to initialize.*connection refused\)$/);
    assert.deepEqual((await tailscaled.loginProgress()).health, [], "the second tailscaled has its state");
  });
});
