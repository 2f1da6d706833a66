// forward() between real node servers: request bodies up (HTTP/1.1 with a length or chunked,
// HTTP/2 with neither), large answers back with backpressure, a dead backend, a client that leaves.
import { it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { connect as connectH2, createServer as createH2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { createProxyLogger } from "../log.ts";
import { forward } from "./forward.ts";
import { upstreamPool } from "./upstream-pool.ts";
import { forwardedHeaders } from "./upstream.ts";

const log = createProxyLogger({ name: "forward-test", level: "error" });
const port = (server: { address(): AddressInfo | string | null }): number => (server.address() as AddressInfo).port;
const sha = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

/** A backend that answers with what it received: method, framing, length and digest of the body; /big?bytes=N answers N bytes. */
async function backend(): Promise<{ origin: URL; closed: Promise<void>; stop: () => Promise<void> }> {
  let closedBeforeEnd: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (closedBeforeEnd = resolve));
  const server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://backend");
    if (url.pathname === "/big") {
      const left = { n: Number(url.searchParams.get("bytes")) };
      const chunk = Buffer.alloc(64 * 1024, 7);
      res.writeHead(200, { "content-length": left.n, "set-cookie": ["a=1", "b=2"], connection: "x-hop", "x-hop": "for the next hop only" });
      res.on("close", () => {
        if (!res.writableFinished) closedBeforeEnd();
      });
      const write = (): void => {
        while (left.n > 0) {
          const part = chunk.subarray(0, Math.min(chunk.length, left.n));
          left.n -= part.length;
          if (!res.write(part)) {
            res.once("drain", write);
            return;
          }
        }
        res.end();
      };
      write();
      return;
    }
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      res.end(JSON.stringify({ method: req.method, chunked: req.headers["transfer-encoding"] === "chunked", length: body.length, sha: sha(body), forwardedFor: req.headers["x-test"] }));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { origin: new URL(`http://127.0.0.1:${String(port(server))}`), closed, stop: () => new Promise((resolve) => server.close(() => { resolve(); })) };
}

/** A front server (HTTP/1.1 and h2c) that forwards everything to origin. */
async function front(origin: URL): Promise<{ h1: number; h2: number; stop: () => Promise<void> }> {
  const pool = upstreamPool({ rejectUnauthorized: false });
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const call = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, host: "front", remoteAddress: "100.64.0.9", remotePort: 1, secure: false };
    forward({ origin, path: call.path, headers: forwardedHeaders(call, () => false, { "x-test": "added" }), pool, tls: { rejectUnauthorized: false } }, req, res, log);
  };
  const h1 = createHttpServer(handle);
  const h2 = createH2Server((req, res) => {
    handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  h1.listen(0, "127.0.0.1");
  h2.listen(0, "127.0.0.1");
  await Promise.all([once(h1, "listening"), once(h2, "listening")]);
  return {
    h1: port(h1),
    h2: port(h2),
    stop: async () => {
      h1.closeAllConnections();
      await Promise.all([new Promise((r) => h1.close(r)), new Promise((r) => h2.close(r)), pool.destroy()]);
    },
  };
}

function h1Call(portNumber: number, method: string, path: string, body?: Buffer, chunked = false): Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: portNumber, method, path, headers: body && !chunked ? { "content-length": body.length } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }); });
    });
    req.on("error", reject);
    if (body && chunked) {
      req.write(body.subarray(0, 1000));
      req.write(body.subarray(1000));
    } else if (body) req.write(body);
    req.end();
  });
}

it("sends request bodies on and answers back, over HTTP/1.1 and HTTP/2", async () => {
  const back = await backend();
  const proxy = await front(back.origin);
  try {
    const body = Buffer.alloc(3 * 1024 * 1024 + 17, 1);
    for (const chunked of [false, true]) {
      const answer = await h1Call(proxy.h1, "POST", "/echo", body, chunked);
      assert.equal(answer.status, 200);
      assert.deepEqual(JSON.parse(answer.body.toString()), { method: "POST", chunked, length: body.length, sha: sha(body), forwardedFor: "added" });
    }
    const get = JSON.parse((await h1Call(proxy.h1, "GET", "/echo")).body.toString()) as { chunked: boolean; length: number };
    assert.deepEqual([get.chunked, get.length], [false, 0], "a GET without a body goes without one");

    const big = await h1Call(proxy.h1, "GET", `/big?bytes=${String(8 * 1024 * 1024)}`);
    assert.equal(big.body.length, 8 * 1024 * 1024);
    assert.deepEqual(big.headers["set-cookie"], ["a=1", "b=2"], "repeated headers stay repeated");
    assert.equal(big.headers["x-hop"], undefined, "headers the upstream's Connection names stay behind");

    const session = connectH2(`http://127.0.0.1:${String(proxy.h2)}`);
    try {
      const h2Call = (method: string, data?: Buffer): Promise<string> => new Promise((resolve, reject) => {
        // No content-length: an HTTP/2 body is framed by the stream alone.
        const stream = session.request({ ":method": method, ":path": "/echo" }, { endStream: data === undefined });
        const parts: Buffer[] = [];
        stream.on("data", (c: Buffer) => parts.push(c));
        stream.on("end", () => { resolve(Buffer.concat(parts).toString()); });
        stream.on("error", reject);
        if (data) stream.end(data);
      });
      assert.deepEqual(JSON.parse(await h2Call("PUT", body)), { method: "PUT", chunked: true, length: body.length, sha: sha(body), forwardedFor: "added" });
      const h2Get = JSON.parse(await h2Call("GET")) as { chunked: boolean; length: number };
      assert.deepEqual([h2Get.chunked, h2Get.length], [false, 0]);
    } finally {
      session.close();
    }
  } finally {
    await proxy.stop();
    await back.stop();
  }
});

it("answers 502 when the backend is down, and closes the upstream when the client leaves", async () => {
  const back = await backend();
  const dead = await front(new URL("http://127.0.0.1:1"));
  const proxy = await front(back.origin);
  try {
    const refused = await h1Call(dead.h1, "GET", "/");
    assert.equal(refused.status, 502);
    assert.match(refused.body.toString(), /backend unavailable/);

    // A client that reads a little of a large answer and leaves: the backend's response is cut.
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: proxy.h1, path: `/big?bytes=${String(512 * 1024 * 1024)}` }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => undefined);
      req.end();
      setTimeout(() => { reject(new Error("no body")); }, 10_000).unref();
    });
    await back.closed;
  } finally {
    await dead.stop();
    await proxy.stop();
    await back.stop();
  }
});
