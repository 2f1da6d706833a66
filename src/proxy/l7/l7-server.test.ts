// The L7 server: the Funnel path (connections tailscaled's serve forwards to loopback, each led by
// a PROXY protocol v2 header; the caller is the header's source, not loopback), when an
// HTTP/1.1 response's headers leave, and TLS-ALPN-01 answers on the HTTPS port.
import { it } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { connect as connectTcp, type AddressInfo } from "node:net";
import { connect as connectTls } from "node:tls";
import { createProxyLogger } from "../log.ts";
import { L7Server } from "./l7-server.ts";
import type { IncomingCall } from "./upstream.ts";
import { upstreamPool } from "./upstream-pool.ts";
import { makeCertificate } from "../../../test/fakes/test-certificates.ts";
import acme from "acme-client";
import type { ChallengeResponder } from "../tls/certificate-source.ts";
import { alpnChallengeCertificate } from "../tls/acme-order.ts";

const log = createProxyLogger({ name: "test", write: () => undefined });

/** A v2 PROXY header for TCP over IPv4, laid out byte by byte as the specification says. */
function proxyHeader(source: [number, number, number, number], port: number): Buffer {
  const signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
  return Buffer.from([...signature, 0x21, 0x11, 0x00, 12, ...source, 127, 0, 0, 1, port >> 8, port & 0xff, 0x01, 0xbb]);
}

it("serves HTTPS forwarded with a PROXY v2 header, taking the caller from the header, and closes a connection without one", async () => {
  const calls: IncomingCall[] = [];
  const server = new L7Server({
    log,
    upstream: { decide: (call) => (calls.push(call), Promise.resolve({ refuse: { status: 418, message: "seen" } })) },
    httpRedirect: () => false,
    challenges: () => undefined,
  });
  const now = Date.now();
  const certificate = await makeCertificate({ dnsNames: ["web.tail1234.ts.net"], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
  server.setCertificate({ ...certificate, notAfter: new Date(now + 3_600_000) });
  const port = await server.listenProxied("127.0.0.1", 0);
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      const raw = connectTcp(port, "127.0.0.1", () => {
        raw.write(proxyHeader([100, 64, 0, 7], 50000));
        const tls = connectTls({ socket: raw, servername: "web.tail1234.ts.net", ca: certificate.certPem, ALPNProtocols: ["http/1.1"] }, () => {
          tls.end("GET /x HTTP/1.1\r\nhost: web.tail1234.ts.net\r\nconnection: close\r\n\r\n");
        });
        let text = "";
        tls.on("data", (chunk: Buffer) => (text += chunk.toString()));
        tls.on("end", () => {
          resolve(text);
        });
        tls.on("error", reject);
      });
      raw.on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.1 418 /, "served over TLS with the certificate, after the header");
    assert.deepEqual(calls.map((c) => [c.remoteAddress, c.remotePort, c.path]), [["100.64.0.7", 50000, "/x"]]);

    const closed = await new Promise<boolean>((resolve) => {
      const raw = connectTcp(port, "127.0.0.1", () => {
        raw.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
      });
      raw.on("close", () => {
        resolve(true);
      });
      raw.on("error", () => undefined);
    });
    assert.equal(closed, true);
    assert.equal(calls.length, 1, "nothing without a header reaches the upstream policy");
  } finally {
    await server.close();
  }
});

it("sends an HTTP/1.1 response's headers with its body when the body is there at once, and before a body that comes later", { timeout: 20_000 }, async () => {
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const backend = createHttpServer((req, res) => {
    if (req.url === "/now") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "3" }).end("now");
      return;
    }
    // A stream: headers first, the body once the test has seen them.
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.flushHeaders();
    void released.then(() => res.end("data: late\n\n"));
  });
  await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
  const origin = new URL(`http://127.0.0.1:${String((backend.address() as AddressInfo).port)}`);
  const pool = upstreamPool({ rejectUnauthorized: false });
  const server = new L7Server({
    log,
    upstream: { decide: (call) => Promise.resolve({ upstream: { origin, path: call.path, headers: { host: call.host }, pool, tls: { rejectUnauthorized: false } } }) },
    httpRedirect: () => false,
    challenges: () => undefined,
  });
  const now = Date.now();
  const certificate = await makeCertificate({ dnsNames: ["web.tail1234.ts.net"], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
  server.setCertificate({ ...certificate, notAfter: new Date(now + 3_600_000) });
  const port = await server.listen("127.0.0.1", 0, "https");
  /** The decrypted chunks of one request's answer, one per TLS record; resolves at the first that ends the headers. */
  const get = (path: string): { chunks: string[]; headers: Promise<void>; done: Promise<void> } => {
    const chunks: string[] = [];
    let headersSeen = (): void => undefined;
    const headers = new Promise<void>((resolve) => (headersSeen = resolve));
    const done = new Promise<void>((resolve, reject) => {
      const tls = connectTls({ port, host: "127.0.0.1", servername: "web.tail1234.ts.net", ca: certificate.certPem, ALPNProtocols: ["http/1.1"] }, () => {
        tls.write(`GET ${path} HTTP/1.1\r\nhost: web.tail1234.ts.net\r\nconnection: close\r\n\r\n`);
      });
      tls.on("data", (chunk: Buffer) => {
        chunks.push(chunk.toString());
        if (chunks.join("").includes("\r\n\r\n")) headersSeen();
      });
      tls.on("end", () => {
        resolve();
      });
      tls.on("error", reject);
    });
    return { chunks, headers, done };
  };
  try {
    const quick = get("/now");
    await quick.done;
    assert.match(quick.chunks[0] ?? "", /^HTTP\/1\.1 200 [^]*\r\n\r\nnow$/, "headers and body in one TLS record");

    const stream = get("/stream");
    await stream.headers;
    assert.match(stream.chunks.join(""), /^HTTP\/1\.1 200 [^]*text\/event-stream[^]*\r\n\r\n/, "the headers before the body exists");
    assert.doesNotMatch(stream.chunks.join(""), /late/);
    release();
    await stream.done;
    assert.match(stream.chunks.join(""), /data: late/);
  } finally {
    await pool.destroy();
    await server.close();
    await new Promise((resolve) => backend.close(resolve));
  }
});

it("answers a TLS-ALPN-01 validation on the HTTPS port with the challenge certificate, while other clients keep getting the served one", async () => {
  const name = "web.tail1234.ts.net";
  const keyAuthorization = "token-1.thumbprint-1";
  // The challenge certificate as the ACME order makes it (RFC 8737's acmeIdentifier).
  const alpnCertificate = await alpnChallengeCertificate({ identifier: { type: "dns", value: name } } as acme.Authorization, keyAuthorization);
  let pending = true;
  const challenges: ChallengeResponder = {
    keyAuthorization: () => undefined,
    alpnCertificate: (serverName) => (pending && serverName === name ? alpnCertificate : undefined),
    alpnPending: () => pending,
  };
  const server = new L7Server({
    log,
    upstream: { decide: () => Promise.resolve({ refuse: { status: 418, message: "served" } }) },
    httpRedirect: () => false,
    challenges: () => challenges,
  });
  const now = Date.now();
  const certificate = await makeCertificate({ dnsNames: [name], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000), serialHex: "0a0b0c" });
  server.setCertificate({ ...certificate, notAfter: new Date(now + 3_600_000) });
  const port = await server.listen("127.0.0.1", 0, "https");
  /** One handshake: what was negotiated, the certificate presented, and (for HTTP) the answer's status line. */
  const handshake = (servername: string, protocols: string[], maxVersion: "TLSv1.2" | "TLSv1.3" = "TLSv1.3"): Promise<{ alpn: string | false; certPem: string; serial: string; status: string }> =>
    new Promise((resolve, reject) => {
      const socket = connectTls({ port, host: "127.0.0.1", servername, ALPNProtocols: protocols, rejectUnauthorized: false, maxVersion }, () => {
        const peer = socket.getPeerX509Certificate();
        const result = { alpn: socket.alpnProtocol ?? false, certPem: peer?.toString() ?? "", serial: peer?.serialNumber ?? "" };
        if (socket.alpnProtocol !== "http/1.1") {
          resolve({ ...result, status: "" });
          socket.destroy();
          return;
        }
        let text = "";
        socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
        socket.on("end", () => {
          resolve({ ...result, status: text.split("\r\n")[0] ?? "" });
        });
        socket.end(`GET / HTTP/1.1\r\nhost: ${name}\r\nconnection: close\r\n\r\n`);
      });
      socket.on("error", reject);
    });
  try {
    // Validators speak TLS 1.3 (Pebble, Boulder, step-ca: Go's defaults) or, older ones, 1.2.
    for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
      const validation = await handshake(name, ["acme-tls/1"], version);
      assert.equal(validation.alpn, "acme-tls/1", `${version}: the validator's protocol was negotiated`);
      assert.ok(acme.crypto.isAlpnCertificateAuthorizationValid(validation.certPem, keyAuthorization), `${version}: the certificate carries the key authorization's digest`);
    }

    const client = await handshake(name, ["http/1.1"]);
    assert.equal(client.serial.toLowerCase(), "0a0b0c", "an ordinary client gets the served certificate meanwhile");
    assert.match(client.status, /^HTTP\/1\.1 418 /, "and is served");

    // A name without a pending challenge goes to the HTTPS server, which speaks no acme-tls/1.
    await assert.rejects(handshake("other.tail1234.ts.net", ["acme-tls/1"]), /no application protocol/);
    pending = false;
    await assert.rejects(handshake(name, ["acme-tls/1"]), /no application protocol/, "once the order is done, acme-tls/1 is not answered");
  } finally {
    await server.close();
  }
});
