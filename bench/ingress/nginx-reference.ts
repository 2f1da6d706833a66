// A reference for the Ingress proxy's engine (ADR 0035): Debian's nginx (the package the sandbox's
// nginx image is built from, out of the image cache) configured as ADR 0035 proposes, terminating
// the same TLS certificate and proxying to the same backend Service, inside the Ingress proxy pod's
// network namespace and cpu cgroup, so it is reached through the same tailscaled and competes for
// CPU with the pod's weight. Not a product path: its identity comes from a stub that names every
// caller alike, where the product would ask tailscaled's LocalAPI. It tells what the proposed data
// plane would make of the L7 figures on this machine.
import { readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultPaths } from "../../scripts/images/cache.ts";
import { cpuCgroupOf, cpuHierarchy } from "../../src/sandbox/cpu-cgroup.ts";
import { childrenOf } from "../../src/sandbox/proc-memory.ts";
import { startAndAwait } from "../../src/sandbox/started-process.ts";
import type { ProcessRunner } from "../../src/shared/exec.ts";
import { ManagedProcess } from "../../src/shared/process.ts";
import { nginxConfig } from "../../src/proxy/l7/nginx-config.ts";

/** The nginx .deb the image builder downloaded for the sandbox's nginx image (make sandbox-images). */
function nginxDeb(): string {
  const debian = join(defaultPaths().inputs, "debian");
  for (const set of readdirSync(debian).filter((name) => name.startsWith("amd64-"))) {
    const deb = readdirSync(join(debian, set, "debs")).find((name) => /^nginx_.*_amd64\.deb$/.test(name));
    if (deb) return join(debian, set, "debs", deb);
  }
  throw new Error(`no nginx .deb under ${debian}: build the sandbox images first (make sandbox-images)`);
}

export interface NginxReference {
  /** The worker process, where the work is (one worker, as the Node proxy is one thread). */
  readonly worker: number;
  /** Stops nginx (fast shutdown: the master takes its worker with it); again is harmless. */
  stop(): Promise<unknown>;
}

const STUB_IDENTITY = { "tailscale-user-login": "alice@example.com", "tailscale-user-name": "Alice", "tailscale-node-name": "laptop.tailnet.test" };

export async function startNginxInPod(runner: ProcessRunner, options: {
  readonly dir: string;
  /** A process of the pod (its supervisor): its network namespace and cpu cgroup are nginx's. */
  readonly podPid: number;
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  /** host:port of the backend Service. */
  readonly upstream: string;
}): Promise<NginxReference> {
  const { dir } = options;
  const root = join(dir, "root");
  await mkdir(join(dir, "tmp"), { recursive: true });
  await runner.run(["dpkg-deb", "-x", nginxDeb(), root]);
  const conf = join(dir, "nginx.conf");
  // The identity stub: what the supervisor's whois endpoint would answer (a user-owned caller), from
  // a unix socket; nginx asks it once per caller address per 10 s (the cache below).
  const whoisSocket = join(dir, "whois.sock");
  const whois = ManagedProcess.start({
    name: "whois stub (nginx reference)",
    logFile: join(dir, "whois.log"),
    argv: [process.execPath, "-e", `require("node:http").createServer((req, res) => res.writeHead(200, ${JSON.stringify(STUB_IDENTITY)}).end()).listen(${JSON.stringify(whoisSocket)})`],
  });
  // The product's configuration (src/proxy/l7/nginx-config.ts) for one route, the worker as root:
  // the run directory (temp files, certificate) is the launcher's alone.
  const routes = [{ pathType: "Prefix" as const, path: "/", backend: `http://${options.upstream}` }];
  await writeFile(conf, nginxConfig(routes, { runDir: dir, httpsPort: options.port, certFile: options.certFile, keyFile: options.keyFile, whoisSocket, user: "root root" }));
  const inPod = (argv: readonly string[]): string[] => ["nsenter", "-n", "-t", String(options.podPid), ...argv];
  const master = await startAndAwait(
    { name: "nginx (reference, in the Ingress pod)", logFile: join(dir, "nginx.log"), argv: inPod([join(root, "usr/sbin/nginx"), "-p", dir, "-c", conf, "-e", "stderr", "-g", "daemon off;"]) },
    async () => (await runner.run(inPod(["ss", "-Hltn", `sport = :${String(options.port)}`]))).stdout.includes(String(options.port)),
    15_000,
  );
  try {
    const worker = childrenOf(master.pid ?? 0)[0];
    if (worker === undefined) throw new Error("nginx started no worker");
    // Master first: in cgroup v1 writing a PID moves its whole thread group, not its children.
    const group = join(cpuHierarchy(), cpuCgroupOf(options.podPid), "cgroup.procs");
    for (const pid of [master.pid ?? 0, worker]) await writeFile(group, String(pid));
    return { worker, stop: () => Promise.all([master.stop(), whois.stop()]) };
  } catch (error) {
    await Promise.all([master.stop(), whois.stop()]);
    throw error;
  }
}
