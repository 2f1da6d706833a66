// nginx as an Ingress proxy's HTTPS data plane (ADR 0035). The supervisor stays the control plane:
// it writes nginx's configuration (nginx-config.ts) and the certificate, answers the identity
// subrequests (whois-endpoint.ts), and runs nginx as its child, reloading it (SIGHUP) when the
// routes change. A certificate needs no reload: nginx reads the PEM file at each handshake.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import type { CommandRunner } from "../../shared/exec.ts";
import { ManagedProcess, type ExitStatus } from "../../shared/process.ts";
import type { ServedCertificate } from "../tls/certificate-source.ts";
import type { Logger } from "../log.ts";

const NGINX = "nginx";
/** Where Debian's nginx module packages put their modules (the proxy image: images/proxy/image.yaml). */
export const HEADERS_MORE_MODULE = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so";
/** nginx opens its listeners before it writes its pid file; this bounds the wait for either. */
const START_TIMEOUT_MS = 15_000;
/** Within a pod's default termination grace period (30 s), with the supervisor's own shutdown. */
const STOP_GRACE_MS = 10_000;

export interface NginxFiles {
  readonly dir: string;
  readonly conf: string;
  readonly pem: string;
  readonly whoisSocket: string;
}

export function nginxFiles(dir: string): NginxFiles {
  return { dir, conf: join(dir, "nginx.conf"), pem: join(dir, "tls.pem"), whoisSocket: join(dir, "whois.sock") };
}

/** True once something accepts TCP connections on host:port. */
function accepting(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => { resolve(false); });
  });
}

type Level = "debug" | "info" | "warn" | "error";
const LEVELS: Readonly<Record<string, Level>> = { emerg: "error", alert: "error", crit: "error", error: "error", warn: "warn", notice: "info", info: "info", debug: "debug" };

/**
 * One line of nginx's error log as a structured log line. The pod runs nginx as root without
 * CAP_SETGID, so each worker's initgroups fails ("[emerg]", though the worker carries on, as
 * the same root): known and harmless, so at debug.
 */
export function nginxLogLine(line: string): { level: Level; message: string } {
  // "date [level] pid#tid: [*connection ]message", or "nginx: [level] message" before the log is open.
  const parsed = /^(?:\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*\d+ )?|nginx: \[(\w+)\] )(.*)$/.exec(line);
  if (!parsed) return { level: "info", message: line };
  const message = parsed[3] ?? "";
  if (/^initgroups\(root, 0\) failed/.test(message)) return { level: "debug", message };
  return { level: LEVELS[parsed[1] ?? parsed[2] ?? ""] ?? "info", message };
}

export class NginxEngine {
  readonly files: NginxFiles;
  private readonly runner: CommandRunner;
  private readonly log: Logger;
  private process: ManagedProcess | undefined;
  private written: string | undefined;
  /** Every change to nginx's files and process, one at a time, in the order asked. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, runner: CommandRunner, log: Logger) {
    this.files = nginxFiles(dir);
    this.runner = runner;
    this.log = log.child({ component: "nginx" });
  }

  get exited(): Promise<ExitStatus> {
    return this.process?.exited ?? new Promise(() => undefined);
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /**
   * The chain and its key in one file, replaced whole (a rename), so no handshake sees half of it.
   * Writes run one at a time, in the order asked: the last certificate asked for is the one left.
   */
  setCertificate(certificate: ServedCertificate): Promise<void> {
    const write = async (): Promise<void> => {
      await mkdir(this.files.dir, { recursive: true });
      const next = `${this.files.pem}.next`;
      await writeFile(next, `${certificate.certPem.trimEnd()}\n${certificate.keyPem.trimEnd()}\n`, { mode: 0o600 });
      await rename(next, this.files.pem);
    };
    return this.serially(write);
  }

  private serially<T>(step: () => Promise<T>): Promise<T> {
    const done = this.queue.then(step);
    this.queue = done.catch(() => undefined);
    return done;
  }

  private argv(conf: string, ...extra: string[]): string[] {
    return [NGINX, "-p", this.files.dir, "-c", conf, "-e", "stderr", ...extra];
  }

  /** Writes the configuration if it changed, once nginx has accepted it; false when unchanged. */
  private async write(config: string): Promise<boolean> {
    if (config === this.written) return false;
    await mkdir(join(this.files.dir, "tmp"), { recursive: true });
    const next = `${this.files.conf}.next`;
    await writeFile(next, config);
    await this.runner.run(this.argv(next, "-t", "-q"));
    await rename(next, this.files.conf);
    this.written = config;
    return true;
  }

  /** Starts nginx and resolves once it accepts connections on probe (one of its listen addresses). */
  start(config: string, probe: { readonly host: string; readonly port: number }): Promise<void> {
    return this.serially(() => this.run(config, probe));
  }

  private async run(config: string, probe: { readonly host: string; readonly port: number }): Promise<void> {
    await this.write(config);
    // nginx logs warnings and errors only; they become the supervisor's structured lines.
    const child = ManagedProcess.start({
      name: "nginx",
      argv: this.argv(this.files.conf, "-g", "daemon off;"),
      onLine: (line) => {
        const { level, message } = nginxLogLine(line);
        this.log[level](message);
      },
    });
    this.process = child;
    const deadline = Date.now() + START_TIMEOUT_MS;
    let exited: ExitStatus | undefined;
    void child.exited.then((status) => (exited = status));
    while (!(await accepting(probe.host, probe.port))) {
      if (exited) throw new Error(`nginx exited at start-up (${exited.signal ?? `exit code ${String(exited.code)}`}); its errors are in the container's log`);
      if (Date.now() > deadline) {
        await child.stop();
        throw new Error(`nginx did not listen on ${probe.host}:${String(probe.port)} within ${String(START_TIMEOUT_MS / 1000)} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Applies a new configuration: SIGHUP, on which nginx starts new workers and lets the old ones
   * finish their requests (their idle keep-alive connections close). A configuration nginx
   * rejects throws and changes nothing.
   */
  update(config: string): Promise<boolean> {
    return this.serially(async () => {
      if (!(await this.write(config))) return false;
      this.process?.signal("SIGHUP");
      return true;
    });
  }

  /**
   * A graceful stop (SIGQUIT: the workers finish the requests under way) for up to STOP_GRACE_MS,
   * then a fast one: the pod's termination grace period bounds the whole.
   */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child?.running) return;
    child.signal("SIGQUIT");
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([child.exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => { resolve(false); }, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    if (!graceful) await child.stop(3_000);
  }
}
