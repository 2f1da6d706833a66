// Client side of sandbox checks, run inside a device namespace: resolve a MagicDNS name through
// the device's tailscaled (100.100.100.100), and fetch a URL by that name, printing the status
// line and the body. It never uses the host's resolver.
//
//   node tailnet-client.ts resolve NAME
//   node tailnet-client.ts get URL [--timeout-ms N] [--timings]
// --timings writes how long name resolution, the TCP connect and the response took to stderr.
import { Resolver } from "node:dns/promises";
import { request } from "node:http";
import { isIP } from "node:net";
import { parseArgs } from "node:util";

const MAGICDNS = "100.100.100.100";

async function resolve(name: string): Promise<string[]> {
  const bare = name.replace(/^\[|\]$/g, "");
  if (isIP(bare)) return [bare];
  const resolver = new Resolver({ timeout: 2_000, tries: 3 });
  resolver.setServers([MAGICDNS]);
  return resolver.resolve4(name);
}

async function get(url: string, timeoutMs: number, timings: boolean): Promise<void> {
  const target = new URL(url);
  const start = performance.now();
  const marks: string[] = [];
  const mark = (what: string): void => {
    marks.push(`${what} ${Math.round(performance.now() - start)} ms`);
  };
  const [address] = await resolve(target.hostname);
  mark("resolved");
  if (!address) throw new Error(`no address for ${target.hostname}`);
  await new Promise<void>((done, fail) => {
    const req = request(
      { host: address, port: target.port || 80, path: target.pathname + target.search, headers: { host: target.host }, timeout: timeoutMs },
      (res) => {
        mark("response");
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          process.stdout.write(`HTTP/${res.httpVersion} ${res.statusCode ?? 0} ${res.statusMessage ?? ""}\n${body}`);
          done();
        });
      },
    );
    req.on("socket", (socket) => socket.once("connect", () => {
      mark("connected");
    }));
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out after ${timeoutMs} ms (${marks.join(", ") || "not resolved"})`)));
    req.on("error", fail);
    req.end();
  });
  if (timings) process.stderr.write(`timings: ${marks.join(", ")}\n`);
}

const { positionals, values } = parseArgs({ allowPositionals: true, options: { "timeout-ms": { type: "string" }, timings: { type: "boolean" } } });
const [command, argument] = positionals;
try {
  if (command === "resolve" && argument) process.stdout.write(`${(await resolve(argument)).join("\n")}\n`);
  else if (command === "get" && argument) await get(argument, Number(values["timeout-ms"] ?? 5_000), values.timings === true);
  else throw new Error("usage: tailnet-client.ts resolve NAME | get URL");
} catch (error) {
  process.stderr.write(`tailnet-client: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
