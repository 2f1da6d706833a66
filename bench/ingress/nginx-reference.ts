// A reference for the Ingress proxy's engine (ADR 0030): Debian's nginx (the package the sandbox's
// nginx image is built from, out of the image cache) terminating the same TLS certificate and
// proxying to the same backend Service, inside the Ingress proxy pod's network namespace and cpu
// cgroup, so it is reached through the same tailscaled and competes for CPU with the pod's weight.
// Not a product path: no identity headers (nginx cannot ask tailscaled's LocalAPI), HTTP/1.1 only.
// It tells what a well-kept native proxy would make of the L7 figures on this machine.
import { readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultPaths } from "../../scripts/images/cache.ts";
import { cpuCgroupOf, cpuHierarchy } from "../../src/sandbox/cpu-cgroup.ts";
import { childrenOf } from "../../src/sandbox/proc-memory.ts";
import { startAndAwait } from "../../src/sandbox/started-process.ts";
import type { ProcessRunner } from "../../src/shared/exec.ts";

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
  await writeFile(conf, [
    // Its worker as root: the run directory (temp files, certificate) is the launcher's alone.
    "user root root;",
    "worker_processes 1;",
    `pid ${join(dir, "nginx.pid")};`,
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    // Bodies stream through memory in 64 KiB buffers (Node's read size), never through a temp file.
    "  proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k; proxy_max_temp_file_size 0;",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `  ${kind}_temp_path ${join(dir, "tmp", kind)};`),
    `  upstream backend { server ${options.upstream}; keepalive 16; }`,
    "  server {",
    `    listen ${String(options.port)} ssl;`,
    `    ssl_certificate ${options.certFile};`,
    `    ssl_certificate_key ${options.keyFile};`,
    // What our proxy does to each request, but for the identity headers.
    "    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host;",
    "      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto https; proxy_set_header X-Forwarded-Host $host; }",
    "  }",
    "}",
    "",
  ].join("\n"));
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
    return { worker, stop: () => master.stop() };
  } catch (error) {
    await master.stop();
    throw error;
  }
}
