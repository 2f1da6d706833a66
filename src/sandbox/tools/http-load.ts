// HTTP(S) load from inside a device namespace, for benchmarks: --connections keep-alive
// connections each send GET URL back to back for --seconds; prints one JSON line with the
// requests completed, the body bytes received in the window, and the rates. Names resolve through
// the device's MagicDNS (100.100.100.100); HTTPS certificates are verified against --ca.
//
//   node http-load.ts URL [--ca FILE] [--connections 1] [--seconds 5]
import { readFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { ca: { type: "string" }, connections: { type: "string", default: "1" }, seconds: { type: "string", default: "5" } },
});
const target = new URL(positionals[0] ?? "");
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const ca = values.ca ? readFileSync(values.ca) : undefined;
const tls = target.protocol === "https:";

async function resolve(name: string): Promise<string> {
  if (isIP(name)) return name;
  const resolver = new Resolver({ timeout: 2_000, tries: 3 });
  resolver.setServers(["100.100.100.100"]);
  const [address] = await resolver.resolve4(name);
  if (!address) throw new Error(`no address for ${name}`);
  return address;
}

const address = await resolve(target.hostname);
const agent = tls ? new HttpsAgent({ keepAlive: true, maxSockets: connections, ca }) : new HttpAgent({ keepAlive: true, maxSockets: connections });
const send = tls ? httpsRequest : httpRequest;
let requests = 0;
let bytes = 0;
let errors = 0;
let measuring = false;

/** One GET; resolves when its body has ended. */
function get(): Promise<void> {
  return new Promise((done, fail) => {
    const req = send(
      { host: address, ...(tls ? { servername: target.hostname, ca } : {}), port: target.port || (tls ? 443 : 80), path: target.pathname + target.search, headers: { host: target.host }, agent, timeout: 30_000 },
      (res) => {
        res.on("data", (chunk: Buffer) => {
          if (measuring) bytes += chunk.length;
        });
        res.on("end", () => {
          if (res.statusCode !== 200) {
            fail(new Error(`HTTP ${res.statusCode ?? 0}`));
            return;
          }
          if (measuring) requests++;
          done();
        });
        res.on("error", fail);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", fail);
    req.end();
  });
}

// One request per connection first: handshakes are not part of the window.
await Promise.all(Array.from({ length: connections }, get));
measuring = true;
const start = performance.now();
const deadline = start + seconds * 1000;
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (performance.now() < deadline) {
      await get().catch(() => {
        errors++;
      });
    }
  }),
);
const elapsed = (performance.now() - start) / 1000;
agent.destroy();
process.stdout.write(`${JSON.stringify({ requests, bytes, errors, seconds: elapsed, mbps: (bytes * 8) / elapsed / 1e6, rps: requests / elapsed })}\n`);
