// What the proxy tells the state Secret about its login, and how the words are classified.
import { it } from "node:test";
import assert from "node:assert/strict";
import { joinTailnet, refusal } from "./login-report.ts";
import { classifyLoginError } from "../shared/login-report.ts";
import { CommandError } from "../shared/exec.ts";
import { createProxyLogger } from "./log.ts";

const log = createProxyLogger({ name: "test", write: () => undefined });
const device = { id: "7", fqdn: "web.tailnet.test", ips: ["100.64.0.7"] };

function recorder(): { writes: Record<string, string | null>[]; write: (values: Readonly<Record<string, string | null>>) => Promise<void> } {
  const writes: Record<string, string | null>[] = [];
  return { writes, write: (values) => (writes.push({ ...values }), Promise.resolve()) };
}

it("reports Running (and clears an old error) once the device runs", async () => {
  const secret = recorder();
  const joined = await joinTailnet({ ensureLoggedIn: () => Promise.resolve("new"), device: () => Promise.resolve(device), loginProgress: () => Promise.resolve({ backendState: "Running", health: [] }), authKeyFingerprint: () => Promise.resolve("f1") }, secret, log);
  assert.deepEqual(joined, { login: "new", device });
  assert.deepEqual(secret.writes, [{ tailnet_login_state: "Running", tailnet_login_error: null, tailnet_login_key: null }]);
});

it("reports a refused login with the control plane's words, then fails", async () => {
  const secret = recorder();
  const refused = new CommandError(["tailscale", "up", "--auth-key=file:/k"], 1, "", "some progress\nbackend error: invalid key: authkey expired\n");
  await assert.rejects(
    joinTailnet({ ensureLoggedIn: () => Promise.reject(refused), device: () => Promise.resolve(device), loginProgress: () => Promise.resolve({ backendState: "NeedsLogin", health: [] }), authKeyFingerprint: () => Promise.resolve("f1") }, secret, log),
    refused,
  );
  assert.deepEqual(secret.writes, [{ tailnet_login_state: "Failed", tailnet_login_error: "some progress | backend error: invalid key: authkey expired", tailnet_login_key: "f1" }], "names the key it used");
});

it("quotes the end of stderr, never the command line with the key file", () => {
  const text = refusal(new CommandError(["tailscale", "up", "--auth-key=file:/secret"], 1, "", "backend error: requested tags [tag:x] are invalid or not permitted\n"));
  assert.equal(text, "backend error: requested tags [tag:x] are invalid or not permitted");
});

it("classifies refusals users can act on", () => {
  assert.equal(classifyLoginError("requested tags [tag:x] are invalid or not permitted"), "tags");
  assert.equal(classifyLoginError("backend error: invalid key: authkey expired"), "key");
  assert.equal(classifyLoginError("AuthKey has been used already"), "key");
  assert.equal(classifyLoginError("timeout waiting for Tailscale service to enter a Running state"), "unreachable");
  // Both seen in the chaos run, once called refusals: Headscale killed mid-login, tailscaled killed mid-login.
  assert.equal(classifyLoginError("unexpected EOF"), "unreachable");
  assert.equal(classifyLoginError("failed to connect to local tailscaled; it doesn't appear to be running"), "interrupted");
  // The CLI's other wording for the same (chaos run, session 7): its socket refused the connection.
  assert.equal(classifyLoginError("Failed to connect to local Tailscale daemon for /localapi/v0/prefs; not running? Error: dial unix /tmp/tailnet-proxy/tailscaled.sock: connect: connection refused"), "interrupted");
  assert.equal(classifyLoginError("something else entirely"), "other");
});
