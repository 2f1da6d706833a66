// Client side of sandbox checks, run inside a device namespace: resolve a MagicDNS name through
// the device's tailscaled (100.100.100.100), and fetch a URL by that name, printing the status
// line and the body. It never uses the host's resolver.
//
//   node tailnet-client.ts resolve NAME
//   node tailnet-client.ts get URL [--timeout-ms N] [--timings]
// --timings writes how long name resolution, the TCP connect and the response took to stderr.
//   node tailnet-client.ts poll --dir DIR [--timeout-ms N] [--interval-ms N]
// poll writes DIR/ready once started, waits for the URL in DIR/url and starts then (so the
// client's own start-up is paid before the moment measured); it GETs the URL until it answers 200, then prints "ok <ms since the line> <timings>"; each failed
// attempt goes to stderr as "fail <ms> <reason>".
import { Resolver } from "node:dns/promises";
import { request } from "node:http";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const MAGICDNS = "100.100.100.100";

async function resolve(name: string): Promise<string[]> {
  const bare = name.replace(/^\[|\]$/g, "");
  if (isIP(bare)) return [bare];
  const resolver = new Resolver({ timeout: 2_000, tries: 3 });
  resolver.setServers([MAGICDNS]);
  return resolver.resolve4(name);
}

interface Fetched {
  readonly statusLine: string;
  readonly body: string;
  /** How long resolution, connect and response took, from the start. */
  readonly marks: readonly string[];
}

async function fetchOnce(url: string, timeoutMs: number): Promise<Fetched> {
  const target = new URL(url);
  const start = performance.now();
  const marks: string[] = [];
  const mark = (what: string): void => {
    marks.push(`${what} ${Math.round(performance.now() - start)} ms`);
  };
  const [address] = await resolve(target.hostname);
  mark("resolved");
  if (!address) throw new Error(`no address for ${target.hostname}`);
  return new Promise<Fetched>((done, fail) => {
    const req = request(
      { host: address, port: target.port || 80, path: target.pathname + target.search, headers: { host: target.host }, timeout: timeoutMs },
      (res) => {
        mark("response");
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          done({ statusLine: `HTTP/${res.httpVersion} ${res.statusCode ?? 0} ${res.statusMessage ?? ""}`, body, marks });
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
}

async function get(url: string, timeoutMs: number, timings: boolean): Promise<void> {
  const fetched = await fetchOnce(url, timeoutMs);
  process.stdout.write(`${fetched.statusLine}\n${fetched.body}`);
  if (timings) process.stderr.write(`timings: ${fetched.marks.join(", ")}\n`);
}

async function poll(dir: string, timeoutMs: number, intervalMs: number): Promise<void> {
  await writeFile(join(dir, "ready"), "");
  let url = "";
  while (!url) {
    url = await readFile(join(dir, "url"), "utf8").then((text) => text.trim(), () => "");
    if (!url) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const go = performance.now();
  const since = (): number => Math.round(performance.now() - go);
  for (;;) {
    try {
      const fetched = await fetchOnce(url, timeoutMs);
      if (fetched.statusLine.includes(" 200 ")) {
        process.stdout.write(`ok ${since()} ${fetched.marks.join(", ")}\n`);
        return;
      }
      process.stderr.write(`fail ${since()} ${fetched.statusLine}\n`);
    } catch (error) {
      process.stderr.write(`fail ${since()} ${(error as Error).message}\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const { positionals, values } = parseArgs({ allowPositionals: true, options: { "timeout-ms": { type: "string" }, "interval-ms": { type: "string" }, dir: { type: "string" }, timings: { type: "boolean" } } });
const [command, argument] = positionals;
try {
  if (command === "resolve" && argument) process.stdout.write(`${(await resolve(argument)).join("\n")}\n`);
  else if (command === "get" && argument) await get(argument, Number(values["timeout-ms"] ?? 5_000), values.timings === true);
  else if (command === "poll" && values.dir) await poll(values.dir, Number(values["timeout-ms"] ?? 2_000), Number(values["interval-ms"] ?? 100));
  else throw new Error("usage: tailnet-client.ts resolve NAME | get URL | poll --dir DIR");
} catch (error) {
  process.stderr.write(`tailnet-client: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
