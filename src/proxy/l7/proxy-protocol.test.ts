import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { acceptProxied, parseProxyHeader, type ProxiedSource } from "./proxy-protocol.ts";

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header built byte by byte from the specification's layout (not by the code under test). */
function header(command: number, family: number, addresses: number[], tlvs: number[] = []): Buffer {
  const block = [...addresses, ...tlvs];
  return Buffer.from([...SIGNATURE, 0x20 | command, family, block.length >> 8, block.length & 0xff, ...block]);
}

const ipv4Block = [100, 64, 0, 7, 100, 64, 0, 1, 0xc3, 0x50, 0x01, 0xbb]; // 100.64.0.7:50000 -> 100.64.0.1:443
const ipv6Block = [
  0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, // fd7a:115c:a1e0::7
  0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
  0x30, 0x39, 0x01, 0xbb, // 12345 -> 443
];

describe("parseProxyHeader", () => {
  it("reads the source of a TCP over IPv4 connection and the header's length, TLVs included", () => {
    const bytes = Buffer.concat([header(1, 0x11, ipv4Block, [0x04, 0x00, 0x01, 0x00]), Buffer.from("\x16\x03\x01")]);
    assert.deepEqual(parseProxyHeader(bytes), { kind: "parsed", length: 16 + 16, source: { address: "100.64.0.7", port: 50000 } });
  });

  it("reads IPv6 sources in their short form", () => {
    assert.deepEqual(parseProxyHeader(header(1, 0x21, ipv6Block)), { kind: "parsed", length: 16 + 36, source: { address: "fd7a:115c:a1e0::7", port: 12345 } });
  });

  it("gives no source for LOCAL and for an unspecified family", () => {
    assert.deepEqual(parseProxyHeader(header(0, 0x00, [])), { kind: "parsed", length: 16, source: undefined });
    assert.deepEqual(parseProxyHeader(header(1, 0x00, [])), { kind: "parsed", length: 16, source: undefined });
  });

  it("waits for more bytes while a valid prefix is all there is", () => {
    const full = header(1, 0x11, ipv4Block);
    for (const cut of [1, 11, 12, 15, 16, full.length - 1]) assert.deepEqual(parseProxyHeader(full.subarray(0, cut)), { kind: "incomplete" }, `after ${cut} bytes`);
  });

  it("rejects what is not a v2 header", () => {
    assert.equal(parseProxyHeader(Buffer.from("GET / HTTP/1.1\r\n")).kind, "invalid");
    assert.equal(parseProxyHeader(Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")).kind, "invalid", "version 1 (text) is not accepted");
    const v1 = header(1, 0x11, ipv4Block);
    v1.writeUInt8(0x11, 12);
    assert.deepEqual(parseProxyHeader(v1), { kind: "invalid", reason: "PROXY protocol version 1, not 2" });
    assert.deepEqual(parseProxyHeader(header(1, 0x11, [1, 2, 3])), { kind: "invalid", reason: "short IPv4 address block" });
    const huge = header(1, 0x11, ipv4Block);
    huge.writeUInt16BE(8000, 14);
    assert.equal(parseProxyHeader(huge).kind, "invalid");
  });
});

describe("acceptProxied", () => {
  async function exchange(chunks: Buffer[]): Promise<{ source?: ProxiedSource; payload?: string; invalid?: string }> {
    const result: { source?: ProxiedSource; payload?: string; invalid?: string } = {};
    const done = new Promise<void>((resolve) => {
      const server = createServer((socket: Socket) => {
        acceptProxied(socket, (ready, source) => {
          if (source) result.source = source;
          let payload = "";
          ready.on("data", (chunk: Buffer) => (payload += chunk.toString()));
          ready.on("end", () => {
            result.payload = payload;
            server.close();
            resolve();
          });
          ready.resume();
        }, (reason) => {
          result.invalid = reason;
          server.close();
          resolve();
        });
      });
      server.listen(0, "127.0.0.1", () => {
        const client = connect((server.address() as AddressInfo).port, "127.0.0.1", () => {
          // One chunk every 10 ms, so the header arrives split as the test says.
          const writeFrom = (index: number): void => {
            const chunk = chunks[index];
            if (!chunk) {
              client.end();
              return;
            }
            client.write(chunk);
            setTimeout(() => {
              writeFrom(index + 1);
            }, 10);
          };
          writeFrom(0);
        });
        client.on("error", () => undefined);
      });
    });
    await done;
    return result;
  }

  it("hands the connection on with the caller's address and every byte after the header, however it was split", async () => {
    const bytes = Buffer.concat([header(1, 0x11, ipv4Block), Buffer.from("hello, TLS")]);
    const result = await exchange([bytes.subarray(0, 5), bytes.subarray(5, 20), bytes.subarray(20)]);
    assert.deepEqual(result, { source: { address: "100.64.0.7", port: 50000 }, payload: "hello, TLS" });
  });

  it("closes a connection that does not start with a header", async () => {
    const result = await exchange([Buffer.from("GET / HTTP/1.1\r\nhost: x\r\n\r\n")]);
    assert.deepEqual(result, { invalid: "no PROXY protocol v2 signature" });
  });
});
