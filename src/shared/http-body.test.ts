import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, get, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { readBody } from "./http-body.ts";

describe("readBody", () => {
  const server = createServer((_req, res) => res.end("x".repeat(200_000) + "é"));
  after(() => server.close());

  const response = async (): Promise<IncomingMessage> => {
    if (!server.listening) await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return new Promise((resolve, reject) => get(`http://127.0.0.1:${String(port)}/`, resolve).on("error", reject));
  };

  it("reads the whole body as UTF-8 and leaves no listener behind to hold it", async () => {
    const res = await response();
    const events = ["data", "end", "error", "close"] as const;
    const before = new Map(events.map((event) => [event, res.listeners(event)]));
    const body = await readBody(res);
    assert.equal(body.length, 200_001);
    assert.ok(body.endsWith("é"));
    // A listener's closure would keep the promise, and so the body, alive with the response.
    for (const event of events) assert.deepEqual(res.listeners(event), before.get(event), `no ${event} listener added`);
  });
});
