// Client side of sandbox checks, run inside a device namespace: resolve a MagicDNS name through
// the device's tailscaled (100.100.100.100), and fetch a URL by that name, printing the status
// line and the body. It never uses the host's resolver.
//
//   node tailnet-client.ts resolve NAME
//   node tailnet-client.ts get URL [--timeout-ms N]
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

async function get(url: string, timeoutMs: number): Promise<void> {
  const target = new URL(url);
  const [address] = await resolve(target.hostname);
  if (!address) throw new Error(`no address for ${target.hostname}`);
  await new Promise<void>((done, fail) => {
    const req = request(
      { host: address, port: target.port || 80, path: target.pathname + target.search, headers: { host: target.host }, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          process.stdout.write(`HTTP/${res.httpVersion} ${res.statusCode ?? 0} ${res.statusMessage ?? ""}\n${body}`);
          done();
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out after ${timeoutMs} ms`)));
    req.on("error", fail);
    req.end();
  });
}

const { positionals, values } = parseArgs({ allowPositionals: true, options: { "timeout-ms": { type: "string" } } });
const [command, argument] = positionals;
try {
  if (command === "resolve" && argument) process.stdout.write(`${(await resolve(argument)).join("\n")}\n`);
  else if (command === "get" && argument) await get(argument, Number(values["timeout-ms"] ?? 5_000));
  else throw new Error("usage: tailnet-client.ts resolve NAME | get URL");
} catch (error) {
  process.stderr.write(`tailnet-client: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
