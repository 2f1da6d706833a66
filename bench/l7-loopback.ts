// The Ingress proxy's L7 data path on loopback, without the sandbox (a benchmark for fast
// iteration, not a test; no root needed): an HTTPS load client (src/sandbox/tools/http-load.ts)
// -> L7Server (the real one, IngressUpstream with a cached whois) -> a Node backend (bench/
// ingress.ts's), each its own process. Prints, per load, the rate and what a loaded machine
// disturbs least, read from /proc: the proxy's CPU (utime+stime) per MiB carried (--mib MiB
// bodies on one connection) and per request (13-byte bodies on --connections keep-alive
// connections), its read/write system calls (exact) and minor page faults, and its RSS after the
// load (and before it, idle, and 15 s after it). Round 0 warms up and is not counted; medians of the rest. docs/adr/0030-l7-data-path.md.
//
//   node bench/l7-loopback.ts [--rounds 3] [--seconds 5] [--mib 8] [--connections 8]
//        [--only throughput|requests] [--hwm BYTES] ["--proxy-args=--max-semi-space-size=2 --cpu-prof --cpu-prof-dir=DIR"]
//        [--proxy-env=MALLOC_ARENA_MAX=2]
// --proxy-args are the proxy process's node flags, by default the image's (a 2 MiB semi-space);
// --proxy-env its extra environment, by default the image's (two malloc arenas).
// The proxy process runs this file with --role proxy; the backend with --role backend.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { ManagedProcess } from "../src/shared/process.ts";
import { ProcessRunner } from "../src/shared/exec.ts";
import { waitFor } from "../src/shared/clock.ts";

const { values } = parseArgs({
  options: {
    role: { type: "string", default: "main" },
    backend: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    mib: { type: "string", default: "8" },
    connections: { type: "string", default: "8" },
    // The proxy image's NODE_OPTIONS (images/proxy/image.yaml); "--proxy-args=" for V8's defaults.
    "proxy-args": { type: "string", default: "--max-semi-space-size=2" },
    // The proxy image's other memory setting, as NAME=value[,...]; "--proxy-env=" for glibc's defaults.
    "proxy-env": { type: "string", default: "MALLOC_ARENA_MAX=2" },
    /** Overrides the proxy's stream high-water mark (bytes), to compare against the product's. */
    hwm: { type: "string" },
    /** Measure only one of the two loads (for a profile of one). */
    only: { type: "string" },
  },
});
const self = fileURLToPath(import.meta.url);
const SETTLE_MS = 15_000;

/** Prints the port it listens on: the same backend as bench/ingress.ts (256 KiB writes). */
function backend(): void {
  const chunk = Buffer.alloc(256 * 1024, 120);
  const server = createServer((req, res) => {
    const n = Number(new URL(req.url ?? "/", "http://x").searchParams.get("bytes") ?? "13");
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n });
    let left = n;
    const write = (): void => {
      while (left > 0) {
        const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= part.length;
        if (!res.write(part)) {
          res.once("drain", write);
          return;
        }
      }
      res.end();
    };
    write();
  }).listen(0, "127.0.0.1", () => {
    const address = server.address();
    process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
  });
  process.on("SIGTERM", () => process.exit(0));
}

async function proxy(): Promise<void> {
  if (values.hwm !== undefined) (await import("node:stream")).setDefaultHighWaterMark(false, Number(values.hwm));
  const { L7Server } = await import("../src/proxy/l7/l7-server.ts");
  const { IngressUpstream } = await import("../src/proxy/l7/ingress-upstream.ts");
  const { RoutingTable } = await import("../src/proxy/l7/routing-table.ts");
  const { WhoisCache } = await import("../src/proxy/l7/identity.ts");
  const { createProxyLogger } = await import("../src/proxy/log.ts");
  const log = createProxyLogger({ name: "l7-loopback", level: "warn" });
  // A LocalAPI answering after a macrotask, like a unix socket round trip would.
  let whoisCalls = 0;
  const identities = new WhoisCache({
    whois: () => new Promise((resolve) => setImmediate(() => {
      whoisCalls++;
      resolve({ Node: { Name: "laptop.tail.example." }, UserProfile: { LoginName: "alice@example.com", DisplayName: "Alice" } });
    })),
    certPair: () => Promise.reject(new Error("not here")),
  });
  const table = new RoutingTable([{ pathType: "Prefix", path: "/", backend: values.backend ?? "" }]);
  const server = new L7Server({
    log,
    upstream: new IngressUpstream(() => table, (address, port) => identities.headersFor(address, port)),
    httpRedirect: () => false,
    challenges: () => undefined,
  });
  server.setCertificate({ certPem: readFileSync(values.cert ?? ""), keyPem: readFileSync(values.key ?? ""), notAfter: new Date(Date.now() + 86_400_000) } as never);
  // Port 0 through the real listen(): find the port by binding a probe first.
  const probe = createServer();
  const port = await new Promise<number>((resolve) => probe.listen(0, "127.0.0.1", () => {
    const address = probe.address();
    resolve(typeof address === "object" && address ? address.port : 0);
  }));
  await new Promise((resolve) => probe.close(resolve));
  await server.listen("127.0.0.1", port, "https");
  process.stdout.write(`${port}\n`);
  process.on("SIGTERM", () => {
    process.stderr.write(`whois calls: ${String(whoisCalls)}\n`);
    void server.close();
    // Give --cpu-prof its exit.
    setTimeout(() => process.exit(0), 100);
  });
}

/** Starts a role of this file; resolves with the port it printed first in its log. */
async function started(name: string, dir: string, argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ManagedProcess; port: string }> {
  const logFile = join(dir, `${name}.log`);
  const child = ManagedProcess.start({ name, argv: [process.execPath, "--no-deprecation", ...argv], logFile, env: { ...process.env, ...env } });
  const port = await waitFor(`${name} listening`, () => {
    if (!child.running) throw new Error(`${name} exited: ${child.logTail()}`);
    const first = /^(\d+)\n/.exec(readFileSync(logFile, "utf8"))?.[1];
    return Promise.resolve(first);
  }, { timeoutMs: 60_000, intervalMs: 100 });
  return { child, port };
}

/** utime+stime of a process in ms, its minor page faults, and its read and write system calls. */
function usage(pid: number): { cpuMs: number; faults: number; syscalls: number } {
  const fields = readFileSync(`/proc/${String(pid)}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
  const io = new Map(readFileSync(`/proc/${String(pid)}/io`, "utf8").trim().split("\n").map((l) => l.split(": ") as [string, string]));
  return { cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / 100, faults: Number(fields[7]), syscalls: Number(io.get("syscr")) + Number(io.get("syscw")) };
}
const since = (pid: number, before: ReturnType<typeof usage>): ReturnType<typeof usage> => {
  const now = usage(pid);
  return { cpuMs: now.cpuMs - before.cpuMs, faults: now.faults - before.faults, syscalls: now.syscalls - before.syscalls };
};

const runner = new ProcessRunner();

async function load(url: string, ca: string, connections: number, seconds: number): Promise<{ mbps: number; rps: number; requests: number; bytes: number; errors: number }> {
  const tool = fileURLToPath(new URL("../src/sandbox/tools/http-load.ts", import.meta.url));
  const { stdout } = await runner.run([process.execPath, "--no-deprecation", tool, url, "--ca", ca, "--connections", String(connections), "--seconds", String(seconds)], { timeoutMs: (seconds + 60) * 1000 });
  return JSON.parse(stdout) as { mbps: number; rps: number; requests: number; bytes: number; errors: number };
}

/** Certificate, logs and children live in a temporary directory, removed whatever happens. */
async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "l7-loopback-"));
  try {
    await measure(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(dir: string): Promise<void> {
  const { makeCertificate } = await import("../test/fakes/test-certificates.ts");
  const now = Date.now();
  const certificate = await makeCertificate({ dnsNames: ["bulk.example"], ips: ["127.0.0.1"], notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) });
  writeFileSync(join(dir, "tls.crt"), certificate.certPem);
  writeFileSync(join(dir, "tls.key"), certificate.keyPem);
  const back = await started("backend", dir, [self, "--role", "backend"]);
  const proxyEnv = Object.fromEntries(values["proxy-env"].split(",").filter(Boolean).map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
  const proxied = await started("proxy", dir, [...values["proxy-args"].split(" ").filter(Boolean), self, "--role", "proxy", ...(values.hwm === undefined ? [] : ["--hwm", values.hwm]), "--backend", `http://127.0.0.1:${back.port}`, "--cert", join(dir, "tls.crt"), "--key", join(dir, "tls.key")], proxyEnv);
  const pid = proxied.child.pid ?? 0;
  const url = `https://127.0.0.1:${proxied.port}/`;
  process.stderr.write(`proxy pid ${String(pid)}, ${url}\n`);
  /** A memory figure of the proxy from /proc/<pid>/status (VmRSS, VmHWM), in MiB. */
  const statusMiB = (key: string): number => Number((Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(readFileSync(`/proc/${String(pid)}/status`, "utf8"))?.[1] ?? Number.NaN) / 1024).toFixed(1));
  // Started and listening, nothing served yet.
  const idleRssMiB = statusMiB("VmRSS");
  const ca = join(dir, "tls.crt");
  const seconds = Number(values.seconds);
  const bytes = Number(values.mib) * 1024 * 1024;
  const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const results: Record<string, number[]> = { mbps: [], msPerMiB: [], faultsPerMiB: [], syscallsPerMiB: [], rps: [], usPerRequest: [], syscallsPerRequest: [] };
  const push = (key: string, value: number): void => {
    (results[key] ??= []).push(value);
  };
  try {
    // Round 0 warms the JIT and the heap and is not counted.
    for (let round = 0; round <= Number(values.rounds); round++) {
      if (values.only !== "requests") {
        const before = usage(pid);
        const bulk = await load(`${url}?bytes=${String(bytes)}`, ca, 1, seconds);
        const used = since(pid, before);
        if (bulk.errors > 0) throw new Error(`${String(bulk.errors)} errors`);
        const mib = bulk.bytes / 1048576;
        if (round > 0) {
          push("mbps", bulk.mbps);
          push("msPerMiB", used.cpuMs / mib);
          push("faultsPerMiB", used.faults / mib);
          push("syscallsPerMiB", used.syscalls / mib);
        }
      }
      if (values.only !== "throughput") {
        const before = usage(pid);
        const small = await load(`${url}?bytes=13`, ca, Number(values.connections), seconds);
        const used = since(pid, before);
        if (small.errors > 0) throw new Error(`${String(small.errors)} errors`);
        if (round > 0) {
          push("rps", small.rps);
          push("usPerRequest", (used.cpuMs * 1000) / small.requests);
          push("syscallsPerRequest", used.syscalls / small.requests);
        }
      }
      if (round > 0) process.stderr.write(`round ${String(round)} (load ${loadavg()[0]?.toFixed(2) ?? ""}): ${Object.entries(results).map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2) ?? "-"}`).join(", ")}\n`);
    }
    const line = Object.fromEntries(Object.entries(results).filter(([, v]) => v.length > 0).map(([k, v]) => [k, Number(median(v).toFixed(2))]));
    // The proxy's memory right after the load, its peak, and what the collector gives back once
    // the load is over (the figure right after it is GC timing).
    const rssMiB = statusMiB("VmRSS");
    const peakRssMiB = statusMiB("VmHWM");
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const memory = { idleRssMiB, rssMiB, settledRssMiB: statusMiB("VmRSS"), peakRssMiB };
    process.stdout.write(`${JSON.stringify({ ...line, ...memory, rounds: Number(values.rounds), load: loadavg()[0]?.toFixed(2) })}\n`);
  } finally {
    await Promise.all([back.child.stop(), proxied.child.stop()]);
  }
  process.stderr.write(`${proxied.child.logTail(3)}\n`);
}

if (values.role === "backend") backend();
else if (values.role === "proxy") await proxy();
else await main();
