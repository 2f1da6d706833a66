// The Tailscale operator's proxy, for benchmarks only: `containerboot` (built from the pinned
// tailscale.com module by scripts/build-bins.sh) starting tailscaled with kernel TUN in a sandbox
// host namespace and forwarding its tailnet IP to TS_DEST_IP, as it does in the Tailscale
// operator's proxy pods (there with TS_KUBE_SECRET; here state on disk, since the host is no pod).
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { startAndAwait } from "./started-process.ts";
import { binCacheDir, readPins } from "./binaries.ts";
import type { SandboxHost } from "./network.ts";
import { OFFLINE_TAILSCALED_KNOBS } from "./tailscaled-env.ts";

export function containerbootBinary(): string {
  const path = join(binCacheDir(), `containerboot-${readPins()["TAILSCALE_VERSION"] ?? ""}`, "containerboot");
  if (!existsSync(path)) throw new Error(`${path} is missing; build it with BUILD_ONLY=containerboot scripts/build-bins.sh`);
  return path;
}

export interface AnchorProxyOptions {
  readonly runner: CommandRunner;
  readonly host: SandboxHost;
  readonly dir: string;
  readonly tailscaled: string;
  readonly loginServer: string;
  readonly authKey: string;
  readonly hostname: string;
  readonly destination: string;
}

export class AnchorProxy {
  readonly process: ManagedProcess;
  readonly socket: string;
  private readonly runner: CommandRunner;
  private readonly tailscale: string;

  private constructor(proc: ManagedProcess, socket: string, runner: CommandRunner, tailscale: string) {
    this.process = proc;
    this.socket = socket;
    this.runner = runner;
    this.tailscale = tailscale;
  }

  static async start(options: AnchorProxyOptions): Promise<AnchorProxy> {
    await mkdir(options.dir, { recursive: true });
    const socket = join(options.dir, "tailscaled.sock");
    const tailscale = join(dirname(options.tailscaled), "tailscale");
    const env = {
      // containerboot runs `tailscaled` and `tailscale` from the PATH; iptables/nft from the host.
      PATH: `${dirname(options.tailscaled)}:/usr/sbin:/usr/bin:/sbin:/bin`,
      ...OFFLINE_TAILSCALED_KNOBS,
      TS_AUTHKEY: options.authKey,
      TS_HOSTNAME: options.hostname,
      TS_DEST_IP: options.destination,
      TS_USERSPACE: "false",
      TS_AUTH_ONCE: "true",
      TS_STATE_DIR: options.dir,
      TS_SOCKET: socket,
      TS_EXTRA_ARGS: `--login-server=${options.loginServer} --accept-dns=false`,
      TS_LOCAL_ADDR_PORT: "127.0.0.1:9002",
    };
    const runner = options.runner;
    const proc = await startAndAwait(
      {
        name: `containerboot (${options.hostname})`,
        logFile: join(options.dir, "containerboot.log"),
        // The key in the environment, as in the Tailscale operator's pods; never on a command line.
        argv: options.host.namespace.exec([containerbootBinary()]),
        env,
      },
      async () => {
        const { stdout } = await runner.run([tailscale, `--socket=${socket}`, "status", "--json"]);
        return (JSON.parse(stdout) as { BackendState: string }).BackendState === "Running";
      },
      120_000,
    );
    return new AnchorProxy(proc, socket, runner, tailscale);
  }

  async tailnetIp(): Promise<string> {
    const { stdout } = await this.runner.run([this.tailscale, `--socket=${this.socket}`, "ip", "-4"]);
    return stdout.trim();
  }

  async stop(): Promise<void> {
    await this.process.stop();
  }
}
