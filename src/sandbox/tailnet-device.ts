// A tailnet device in the sandbox: its own host namespace running a real tailscaled that has
// joined the sandbox's Headscale. Tests use it as the "laptop" that reaches exposed Services.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { waitFor } from "../shared/clock.ts";
import { startAndAwait } from "./started-process.ts";
import type { SandboxHost } from "./network.ts";
import { tailscaledEnvironment } from "./tailscaled-env.ts";

export interface TailnetDeviceOptions {
  readonly runner: CommandRunner;
  readonly host: SandboxHost;
  readonly dir: string;
  readonly tailscaled: string;
  readonly tailscale: string;
  readonly loginServer: string;
  readonly authKey: string;
  readonly hostname: string;
}

/** What `tailscale status --json` says about this device. */
export interface DeviceStatus {
  readonly id: string;
  readonly dnsName: string;
  readonly tailscaleIps: readonly string[];
  readonly backendState: string;
}

interface StatusJson {
  BackendState: string;
  Self?: { ID: string; DNSName: string; TailscaleIPs?: string[] | null };
}

export class TailnetDevice {
  readonly host: SandboxHost;
  readonly hostname: string;
  private readonly runner: CommandRunner;
  private readonly tailscaleBinary: string;
  /** tailscaled's LocalAPI socket: a file, so reachable from the test's own namespace. */
  readonly socket: string;
  private readonly daemon: ManagedProcess;

  private constructor(options: TailnetDeviceOptions, socket: string, daemon: ManagedProcess) {
    this.host = options.host;
    this.hostname = options.hostname;
    this.runner = options.runner;
    this.tailscaleBinary = options.tailscale;
    this.socket = socket;
    this.daemon = daemon;
  }

  static async start(options: TailnetDeviceOptions): Promise<TailnetDevice> {
    await mkdir(options.dir, { recursive: true });
    const socket = join(options.dir, "tailscaled.sock");
    const ns = options.host.namespace;
    const daemon = await startAndAwait(
      {
        name: `tailscaled (${options.hostname})`,
        logFile: join(options.dir, "tailscaled.log"),
        env: tailscaledEnvironment(),
        argv: ns.exec([
          options.tailscaled,
          "--tun=tailscale0",
          `--statedir=${options.dir}`,
          `--state=${join(options.dir, "tailscaled.state")}`,
          `--socket=${socket}`,
          "--port=41641",
          "--no-logs-no-support",
        ]),
      },
      async () => {
        await options.runner.run([options.tailscale, `--socket=${socket}`, "status", "--json"]);
        return true;
      },
      30_000,
    );
    const device = new TailnetDevice(options, socket, daemon);
    try {
      await device.cli(
        [
          "up",
          `--login-server=${options.loginServer}`,
          `--auth-key=${options.authKey}`,
          `--hostname=${options.hostname}`,
          "--accept-dns=false",
          "--netfilter-mode=off",
          "--timeout=60s",
        ],
        90_000,
      );
      await waitFor("a tailnet address", async () => ((await device.status()).tailscaleIps.length > 0 ? true : undefined), {
        timeoutMs: 30_000,
      });
      return device;
    } catch (error) {
      await daemon.stop();
      throw new Error(`tailnet device ${options.hostname} did not join: ${(error as Error).message}\n${daemon.logTail()}`, {
        cause: error,
      });
    }
  }

  /** Runs the tailscale CLI against this device's daemon. */
  async cli(args: readonly string[], timeoutMs = 30_000): Promise<string> {
    const { stdout } = await this.runner.run([this.tailscaleBinary, `--socket=${this.socket}`, ...args], { timeoutMs });
    return stdout;
  }

  async status(): Promise<DeviceStatus> {
    const json = JSON.parse(await this.cli(["status", "--json"])) as StatusJson;
    return {
      id: json.Self?.ID ?? "",
      dnsName: json.Self?.DNSName ?? "",
      tailscaleIps: json.Self?.TailscaleIPs ?? [],
      backendState: json.BackendState,
    };
  }

  /** argv that runs a command in this device's namespace. */
  exec(argv: readonly string[]): string[] {
    return this.host.namespace.exec(argv);
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
  }
}
