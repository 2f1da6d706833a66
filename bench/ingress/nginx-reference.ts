// A reference for the Ingress proxy's engine (ADR 0035): Debian's nginx (the package the sandbox's
// nginx image is built from, out of the image cache) configured as ADR 0035 proposes, terminating
// the same TLS certificate and proxying to the same backend Service, inside the Ingress proxy pod's
// network namespace and cpu cgroup, so it is reached through the same tailscaled and competes for
// CPU with the pod's weight. Not a product path: its identity comes from a stub that names every
// caller alike, where the product would ask tailscaled's LocalAPI. It tells what the proposed data
// plane would make of the L7 figures on this machine.
import { readdirSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultPaths } from "../../scripts/images/cache.ts";
import { cpuCgroupOf, cpuHierarchy } from "../../src/sandbox/cpu-cgroup.ts";
import { childrenOf, cmdline } from "../../src/sandbox/proc-memory.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { startAndAwait } from "../../src/sandbox/started-process.ts";
import type { ProcessRunner } from "../../src/shared/exec.ts";
import { ManagedProcess } from "../../src/shared/process.ts";
import { nginxConfig } from "../../src/proxy/l7/nginx-config.ts";
import { IDENTITY_HEADERS } from "../../src/proxy/l7/identity.ts";

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

const STUB_IDENTITY = { [IDENTITY_HEADERS.login]: "alice@example.com", [IDENTITY_HEADERS.name]: "Alice", [IDENTITY_HEADERS.nodeName]: "laptop.tailnet.test" };

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
  const pemFile = join(dir, "tls.pem");
  await writeFile(pemFile, Buffer.concat([await readFile(options.certFile), await readFile(options.keyFile)]));
  // The identity stub: what the supervisor's whois endpoint would answer (a user-owned caller), from
  // a unix socket; nginx asks it once per caller address per 10 s (the configuration's cache).
  const whoisSocket = join(dir, "whois.sock");
  const started: ManagedProcess[] = [];
  const stop = (): Promise<unknown> => Promise.all(started.map((proc) => proc.stop()));
  try {
    started.push(ManagedProcess.start({
      name: "whois stub (nginx reference)",
      logFile: join(dir, "whois.log"),
      argv: [process.execPath, "-e", `require("node:http").createServer((req, res) => res.writeHead(200, ${JSON.stringify(STUB_IDENTITY)}).end()).listen(${JSON.stringify(whoisSocket)})`],
    }));
    // The product's configuration (src/proxy/l7/nginx-config.ts) for one route, the worker as
    // root: the run directory (temp files, certificate) is the launcher's alone.
    const routes = [{ pathType: "Prefix" as const, path: "/", backend: `http://${options.upstream}` }];
    await writeFile(conf, nginxConfig(routes, { runDir: dir, httpsPort: options.port, pemFile, whoisSocket, user: "root root" }));
    const inPod = (argv: readonly string[]): string[] => ["nsenter", "-n", "-t", String(options.podPid), ...argv];
    const master = await startAndAwait(
      { name: "nginx (reference, in the Ingress pod)", logFile: join(dir, "nginx.log"), argv: inPod([join(root, "usr/sbin/nginx"), "-p", dir, "-c", conf, "-e", "stderr", "-g", "daemon off;"]) },
      async () => (await runner.run(inPod(["ss", "-Hltn", `sport = :${String(options.port)}`]))).stdout.includes(String(options.port)),
      15_000,
    );
    started.push(master);
    // Besides its worker, nginx forks a cache manager and loader (the identity cache), maybe after
    // it listens: the worker is found by its title.
    const masterPid = master.pid ?? 0;
    const worker = await waitFor("nginx's worker process", () => Promise.resolve(childrenOf(masterPid).find((pid) => cmdline(pid)[0]?.startsWith("nginx: worker process"))), { timeoutMs: 10_000, intervalMs: 50 });
    // Every nginx process into the pod's cpu cgroup: in v1 a PID written moves its thread group,
    // not its children, so each is written.
    const group = join(cpuHierarchy(), cpuCgroupOf(options.podPid), "cgroup.procs");
    for (const pid of [masterPid, ...childrenOf(masterPid)]) {
      await writeFile(group, String(pid)).catch((error: unknown) => {
        // The cache loader exits by itself a minute after the start.
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
      });
    }
    return { worker, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
