import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonLines, awaitReachable, peersCanReach, selfReachability } from "./reachable.ts";

// SelfNode as Headscale sent it to a new proxy, message by message (read from a sandbox proxy's
// IPN bus): Running with neither, then the home DERP, then the endpoints.
const FIRST = { NetMap: { SelfNode: {} } };
const DERP_ONLY = { NetMap: { SelfNode: { HomeDERP: 999, Endpoints: null } } };
const BOTH = { NetMap: { SelfNode: { HomeDERP: 999, Endpoints: ["10.77.0.3:54147", "10.244.1.12:54147"] } } };

describe("reachability from the control plane's view", () => {
  it("needs a home DERP region or an endpoint in the netmap's SelfNode", () => {
    assert.equal(peersCanReach({}), false);
    assert.equal(peersCanReach({ NetMap: null }), false);
    assert.equal(peersCanReach(FIRST), false);
    assert.equal(peersCanReach(DERP_ONLY), true);
    assert.equal(peersCanReach({ NetMap: { SelfNode: { Endpoints: ["10.77.0.3:1"] } } }), true);
    assert.equal(peersCanReach({ NetMap: { SelfNode: { DERP: "127.3.3.40:1" } } }), true);
    assert.deepEqual(selfReachability(BOTH), { homeDerp: 999, endpoints: 2 });
    assert.equal(selfReachability({ NetMap: {} }), undefined);
  });

  it("splits newline-delimited JSON across chunk boundaries", () => {
    const lines = new JsonLines();
    assert.deepEqual(lines.push('{"a":1}\n{"b":'), [{ a: 1 }]);
    assert.deepEqual(lines.push('2}\n\n{"c":3}'), [{ b: 2 }]);
    assert.deepEqual(lines.push("\n"), [{ c: 3 }]);
  });
});

/** A LocalAPI stand-in on a unix socket that streams the given messages, then keeps the stream open. */
async function withBus(messages: readonly object[], test: (socket: string, paths: string[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "reachable-"));
  const socket = join(dir, "tailscaled.sock");
  const paths: string[] = [];
  const open: ServerResponse[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? "");
    res.writeHead(200, { "content-type": "application/json" });
    open.push(res);
    messages.forEach((message, i) => setTimeout(() => res.write(`${JSON.stringify(message)}\n`), 20 * i));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    await test(socket, paths);
  } finally {
    for (const res of open) res.destroy();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

describe("awaitReachable", () => {
  it("resolves on the first netmap whose SelfNode peers can reach, asking for the initial netmap", async () => {
    await withBus([{ State: 6 }, FIRST, DERP_ONLY, BOTH], async (socket, paths) => {
      const outcome = await awaitReachable(socket, 5_000);
      assert.equal(outcome.reachable, true);
      assert.equal(outcome.homeDerp, 999);
      assert.equal(outcome.endpoints, 0);
      assert.deepEqual(paths, ["/localapi/v0/watch-ipn-bus?mask=8"]);
    });
  });

  it("gives up after the timeout when the control plane never shows either", async () => {
    await withBus([FIRST], async (socket) => {
      const outcome = await awaitReachable(socket, 200);
      assert.equal(outcome.reachable, false);
      assert.deepEqual({ homeDerp: outcome.homeDerp, endpoints: outcome.endpoints }, { homeDerp: 0, endpoints: 0 });
    });
  });

  it("does not wait out the timeout when tailscaled's socket is not there", async () => {
    const outcome = await awaitReachable("/nonexistent/tailscaled.sock", 60_000);
    assert.equal(outcome.reachable, false);
    assert.ok(outcome.waitedMs < 60_000);
  });
});
