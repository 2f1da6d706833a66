// ClientHellos as Node's TLS client really sends them (captured from a loopback connection),
// whole, cut short, and damaged.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { connect, type ConnectionOptions } from "node:tls";
import { parseClientHello } from "./client-hello.ts";

/** The first TLS record a client sends with these options. */
async function capturedHello(options: ConnectionOptions): Promise<Buffer> {
  const server = createServer();
  const hello = new Promise<Buffer>((resolve) => {
    server.on("connection", (socket) => {
      let data = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
          resolve(data.subarray(0, 5 + data.readUInt16BE(3)));
          socket.destroy();
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = connect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, ...options });
  client.on("error", () => undefined);
  try {
    return await hello;
  } finally {
    client.destroy();
    server.close();
  }
}

describe("parseClientHello", () => {
  it("reads the server name and the ALPN protocols of a validator's hello", async () => {
    const data = await capturedHello({ servername: "Web.Tailnet.Test", ALPNProtocols: ["acme-tls/1"] });
    assert.deepEqual(parseClientHello(data), { kind: "hello", serverName: "web.tailnet.test", alpn: ["acme-tls/1"] });
  });

  it("reads a browser-like hello with several protocols, and one without SNI or ALPN", async () => {
    const browser = await capturedHello({ servername: "web.tailnet.test", ALPNProtocols: ["h2", "http/1.1"] });
    assert.deepEqual(parseClientHello(browser), { kind: "hello", serverName: "web.tailnet.test", alpn: ["h2", "http/1.1"] });
    // Node sends no SNI for an IP address.
    const bare = await capturedHello({});
    assert.deepEqual(parseClientHello(bare), { kind: "hello", serverName: undefined, alpn: [] });
  });

  it("waits for the rest of the record, byte by byte", async () => {
    const data = await capturedHello({ servername: "web.tailnet.test", ALPNProtocols: ["acme-tls/1"] });
    for (const length of [0, 1, 4, 5, 6, 100, data.length - 1]) {
      assert.deepEqual(parseClientHello(data.subarray(0, length)), { kind: "incomplete" }, `${length} of ${data.length} bytes`);
    }
  });

  it("takes plain HTTP, a non-hello record and a damaged hello for what they are, without throwing", async () => {
    assert.deepEqual(parseClientHello(Buffer.from("GET / HTTP/1.1\r\n\r\n")), { kind: "not-a-hello" });
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, 0x02])), { kind: "not-a-hello" }, "a handshake record that is not a ClientHello");
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff])), { kind: "not-a-hello" }, "a record longer than TLS allows");
    const data = await capturedHello({ servername: "web.tailnet.test", ALPNProtocols: ["acme-tls/1"] });
    // The extensions' total length claims more than the record holds (offsets: record header,
    // handshake header, version, random, then the length-prefixed session ID, suites, compression).
    const damaged = Buffer.from(data);
    const sessionIdAt = 5 + 4 + 2 + 32;
    const suitesAt = sessionIdAt + 1 + (damaged[sessionIdAt] ?? 0);
    const compressionAt = suitesAt + 2 + damaged.readUInt16BE(suitesAt);
    const extensionsLengthAt = compressionAt + 1 + (damaged[compressionAt] ?? 0);
    damaged.writeUInt16BE(0xfff0, extensionsLengthAt);
    assert.deepEqual(parseClientHello(damaged), { kind: "not-a-hello" });
  });
});
