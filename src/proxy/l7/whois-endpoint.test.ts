import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WhoisEndpoint, type HeadersFor } from "./whois-endpoint.ts";

const dir = mkdtempSync(join(tmpdir(), "whois-endpoint-"));
after(() => { rmSync(dir, { recursive: true, force: true }); });

function ask(socketPath: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path: "/whois", headers }, (response) => {
      response.resume();
      response.on("end", () => { resolve({ status: response.statusCode ?? 0, headers: response.headers }); });
    }).on("error", reject).end();
  });
}

async function endpoint(name: string, headersFor: HeadersFor): Promise<{ socket: string; close: () => Promise<void> }> {
  const socket = join(dir, name);
  const server = new WhoisEndpoint(headersFor, { warn: () => undefined });
  await server.listen(socket);
  return { socket, close: () => server.close() };
}

describe("WhoisEndpoint", () => {
  it("answers the caller's identity headers, asked for with the caller's address and port", async () => {
    const asked: string[] = [];
    const { socket, close } = await endpoint("known.sock", (address, port) => {
      asked.push(`${address} ${String(port)}`);
      return Promise.resolve({ "tailscale-user-login": "alice@example.com", "tailscale-node-name": "laptop" });
    });
    const answer = await ask(socket, { "x-caller": "100.64.0.9", "x-caller-port": "40123" });
    await close();
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["tailscale-user-login"], "alice@example.com");
    assert.equal(answer.headers["x-accel-expires"], undefined, "a known caller's answer may be cached");
    assert.deepEqual(asked, ["100.64.0.9 40123"]);
  });

  it("lets nginx serve an unknown or failed caller without identity, and not cache it", async () => {
    let fail = false;
    const { socket, close } = await endpoint("unknown.sock", () => (fail ? Promise.reject(new Error("LocalAPI down")) : Promise.resolve({})));
    const unknown = await ask(socket, { "x-caller": "fd7a:115c:a1e0::9", "x-caller-port": "1" });
    fail = true;
    const failed = await ask(socket, { "x-caller": "100.64.0.9", "x-caller-port": "1" });
    await close();
    for (const answer of [unknown, failed]) {
      assert.equal(answer.status, 200);
      assert.equal(answer.headers["x-accel-expires"], "0");
      assert.equal(answer.headers["tailscale-user-login"], undefined);
    }
  });

  it("refuses a request without a caller address and port (400: nginx then fails the request)", async () => {
    const { socket, close } = await endpoint("bad.sock", () => Promise.resolve({ "tailscale-user-login": "x" }));
    const answers = await Promise.all([ask(socket, {}), ask(socket, { "x-caller": "not-an-ip", "x-caller-port": "1" }), ask(socket, { "x-caller": "100.64.0.9" })]);
    await close();
    assert.deepEqual(answers.map((a) => a.status), [400, 400, 400]);
  });
});
