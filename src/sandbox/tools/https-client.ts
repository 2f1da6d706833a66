// HTTPS client for Ingress checks, run inside a device namespace: names resolve through the
// device's MagicDNS (100.100.100.100) and certificates are verified against the given CA.
// Prints JSON lines, so tests read status, body, the served certificate's serial and whether a
// connection was reused.
//
//   node https-client.ts get URL --ca FILE [--header 'Name: value' ...] [--http2]
//   node https-client.ts hold URL --ca FILE --until FILE   GET, wait for FILE, GET on the same connection
//   node https-client.ts ws URL --ca FILE --message TEXT  WebSocket echo: prints what came back
import { readFileSync, existsSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { Agent, request } from "node:https";
import { connect as http2Connect } from "node:http2";
import { parseArgs } from "node:util";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { randomBytes } from "node:crypto";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { ca: { type: "string" }, header: { type: "string", multiple: true }, until: { type: "string" }, message: { type: "string" }, http2: { type: "boolean" } },
});
const [command, url] = positionals;
const ca = values.ca ? readFileSync(values.ca) : undefined;

async function resolve(name: string): Promise<string> {
  const resolver = new Resolver({ timeout: 2_000, tries: 3 });
  resolver.setServers(["100.100.100.100"]);
  const [address] = await resolver.resolve4(name);
  if (!address) throw new Error(`no address for ${name}`);
  return address;
}

const headers = Object.fromEntries((values.header ?? []).map((h) => [h.slice(0, h.indexOf(":")).trim(), h.slice(h.indexOf(":") + 1).trim()]));

function get(target: URL, address: string, agent: Agent): Promise<Record<string, unknown>> {
  return new Promise((done, fail) => {
    const req = request(
      { host: address, servername: target.hostname, port: target.port || 443, path: target.pathname + target.search, headers: { host: target.host, ...headers }, ca, agent, timeout: 10_000 },
      (res) => {
        let body = "";
        // Read now: a keep-alive agent takes the socket back once the body has ended.
        const socket = res.socket as TLSSocket;
        const peer = { serial: socket.getPeerCertificate().serialNumber, alpn: socket.alpnProtocol };
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          done({ status: res.statusCode, body, ...peer, reused: (req as unknown as { reusedSocket: boolean }).reusedSocket });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", fail);
    req.end();
  });
}

async function getHttp2(target: URL, address: string): Promise<Record<string, unknown>> {
  const port = Number(target.port || 443);
  const session = http2Connect(`https://${target.host}`, { createConnection: () => tlsConnect({ host: address, port, servername: target.hostname, ca, ALPNProtocols: ["h2"] }) });
  return new Promise((done, fail) => {
    session.on("error", fail);
    const stream = session.request({ ":path": target.pathname + target.search, ...headers });
    let status = 0;
    let body = "";
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (body += chunk));
    stream.on("end", () => {
      done({ status, body, alpn: session.alpnProtocol });
      session.close();
    });
    stream.on("error", fail);
  });
}

/** One masked text frame out, one frame back (RFC 6455; short messages only: a test tool). */
function webSocketEcho(target: URL, address: string, message: string): Promise<string> {
  return new Promise((done, fail) => {
    const req = request({
      host: address, servername: target.hostname, port: target.port || 443, path: target.pathname, ca, timeout: 10_000,
      headers: { host: target.host, connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": randomBytes(16).toString("base64") },
    });
    req.on("upgrade", (res, socket) => {
      if (res.statusCode !== 101) fail(new Error(`upgrade refused: ${res.statusCode ?? 0}`));
      const payload = Buffer.from(message, "utf8");
      const mask = randomBytes(4);
      const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] ?? 0)));
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      socket.once("data", (frame: Buffer) => {
        done(frame.subarray(2, 2 + ((frame[1] ?? 0) & 0x7f)).toString("utf8"));
        socket.destroy();
      });
    });
    req.on("response", (res) => { fail(new Error(`upgrade refused: ${res.statusCode ?? 0}`)); });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", fail);
    req.end();
  });
}

try {
  if (!url) throw new Error("usage: https-client.ts get|hold|ws URL --ca FILE");
  const target = new URL(url);
  const address = await resolve(target.hostname);
  if (command === "get") {
    const result = values.http2 ? await getHttp2(target, address) : await get(target, address, new Agent({ keepAlive: false }));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else if (command === "hold") {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1_000 });
    process.stdout.write(`${JSON.stringify(await get(target, address, agent))}\n`);
    while (!existsSync(values.until ?? "")) {
      await new Promise((r) => setTimeout(r, 200));
      // Keep the connection in use so that no idle timeout closes it while the test waits.
      await get(target, address, agent);
    }
    process.stdout.write(`${JSON.stringify(await get(target, address, agent))}\n`);
    agent.destroy();
  } else if (command === "ws") {
    process.stdout.write(`${JSON.stringify({ echoed: await webSocketEcho(target, address, values.message ?? "ping") })}\n`);
  } else throw new Error(`unknown command ${command ?? ""}`);
} catch (error) {
  process.stderr.write(`https-client: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
