// A backend host: a sandbox namespace that owns a Service's ClusterIP and serves HTTP on it,
// standing in for the pods behind the Service (the sandbox has no kube-proxy).
import { join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { startAndAwait } from "./started-process.ts";
import type { SandboxHost, SandboxNetwork } from "./network.ts";
import { nodeToolArgv } from "./tools.ts";

export interface BackendOptions {
  readonly name: string;
  /** Addresses this host owns besides its bridge address, e.g. a ClusterIP. */
  readonly ips: readonly string[];
  readonly ports: readonly number[];
}

export class BackendHost {
  readonly host: SandboxHost;
  readonly name: string;
  private readonly network: SandboxNetwork;
  private readonly ips: readonly string[];
  private readonly server: ManagedProcess;

  private constructor(network: SandboxNetwork, host: SandboxHost, options: BackendOptions, server: ManagedProcess) {
    this.network = network;
    this.host = host;
    this.name = options.name;
    this.ips = options.ips;
    this.server = server;
  }

  static async start(runner: CommandRunner, network: SandboxNetwork, dir: string, options: BackendOptions): Promise<BackendHost> {
    const host = await network.addHost("backend");
    try {
      for (const ip of options.ips) {
        const six = ip.includes(":");
        await runner.run(host.namespace.exec(["ip", ...(six ? ["-6"] : []), "addr", "add", `${ip}/${six ? 128 : 32}`, "dev", "lo", ...(six ? ["nodad"] : [])]));
        await network.routeToHost(ip, host);
      }
      const listen = [host.address, ...options.ips].flatMap((ip) => options.ports.map((port) => (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`)));
      const server = await startAndAwait(
        {
          name: `backend ${options.name}`,
          logFile: join(dir, `backend-${host.index}.log`),
          argv: host.namespace.exec(nodeToolArgv("http-server.ts", ["--name", options.name, ...listen.flatMap((l) => ["--listen", l])])),
        },
        async () => {
          await runner.run(host.namespace.exec(["curl", "-sf", "-o", "/dev/null", `http://${listen[0] ?? ""}/`]), { timeoutMs: 2_000 });
          return true;
        },
        15_000,
      );
      return new BackendHost(network, host, options, server);
    } catch (error) {
      for (const ip of options.ips) await network.removeRoute(ip);
      await network.removeHost(host);
      throw error;
    }
  }

  async stop(): Promise<void> {
    await this.server.stop();
    for (const ip of this.ips) await this.network.removeRoute(ip);
    await this.network.removeHost(this.host);
  }
}
