// The local sandbox: a real kube-apiserver + etcd and a real Headscale in the hub namespace,
// plus tailnet devices, backend hosts and pods in namespaces of their own on the hub bridge.
// One process starts it; other processes of the same run (test files) attach to it.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ProcessRunner, type CommandRunner } from "../shared/exec.ts";
import { resolveBinaries, type Binaries } from "./binaries.ts";
import { currentRun } from "./hub.ts";
import type { RunInfo } from "./runs.ts";
import { HUB_ADDRESS, HUB_ADDRESS6, SERVICE_CIDR, SERVICE_CIDR6, SandboxNetwork } from "./network.ts";
import { KubeControlPlane, type KubeAccess } from "./kube-control-plane.ts";
import { HeadscaleAdmin, HeadscaleServer, type HeadscaleAccess } from "./headscale.ts";
import { TailnetDevice } from "./tailnet-device.ts";
import { BackendHost, type BackendOptions } from "./backend-host.ts";

/** What attaching processes need; written to the run directory by the starting process. */
interface SandboxState {
  readonly kube: KubeAccess;
  readonly headscale: HeadscaleAccess;
}

export const TAILNET_DOMAIN = "tailnet.test";
const STATE_FILE = "sandbox.json";

interface Stoppable {
  stop(): Promise<unknown>;
}

export class Sandbox {
  readonly run: RunInfo;
  readonly kube: KubeAccess;
  readonly headscale: HeadscaleAccess;
  readonly headscaleAdmin: HeadscaleAdmin;
  readonly network: SandboxNetwork;
  readonly bins: Binaries;
  readonly runner: CommandRunner;
  /** Servers this handle started (empty when attached), stopped last. */
  private readonly servers: Stoppable[];
  private readonly controlPlane: KubeControlPlane | undefined;
  /** Devices, backends and pods this handle created, stopped first. */
  private readonly children: Stoppable[] = [];

  private constructor(run: RunInfo, state: SandboxState, bins: Binaries, runner: CommandRunner, servers: Stoppable[], controlPlane?: KubeControlPlane) {
    this.controlPlane = controlPlane;
    this.run = run;
    this.kube = state.kube;
    this.headscale = state.headscale;
    this.bins = bins;
    this.runner = runner;
    this.servers = servers;
    this.network = new SandboxNetwork(runner, run);
    this.headscaleAdmin = new HeadscaleAdmin(runner, bins.headscale, state.headscale.configFile);
  }

  /** Starts the control plane and Headscale in the current run's hub. */
  static async start(): Promise<Sandbox> {
    const run = currentRun();
    const bins = resolveBinaries();
    const runner = new ProcessRunner();
    await new SandboxNetwork(runner, run).createBridge();
    const servers: Stoppable[] = [];
    try {
      const [kube, headscale] = await Promise.all([
        KubeControlPlane.start({
          runner,
          dir: join(run.dir, "kube"),
          etcdBinary: bins.etcd,
          apiserverBinary: bins.kubeApiserver,
          advertiseAddress: HUB_ADDRESS,
          serviceClusterIpRange: `${SERVICE_CIDR},${SERVICE_CIDR6}`,
        }).then((started) => (servers.push(started), started)),
        HeadscaleServer.start({
          runner,
          binary: bins.headscale,
          dir: join(run.dir, "headscale"),
          address: HUB_ADDRESS,
          address6: HUB_ADDRESS6,
          baseDomain: TAILNET_DOMAIN,
        }).then((started) => (servers.push(started), started)),
      ]);
      const state: SandboxState = { kube: kube.access, headscale: headscale.access };
      await writeFile(join(run.dir, STATE_FILE), JSON.stringify(state, null, 2), { mode: 0o600 });
      return new Sandbox(run, state, bins, runner, servers, kube);
    } catch (error) {
      for (const server of servers) await server.stop();
      throw error;
    }
  }

  /** Attaches to the sandbox another process of this run started. */
  static async attach(): Promise<Sandbox> {
    const run = currentRun();
    const state = JSON.parse(await readFile(join(run.dir, STATE_FILE), "utf8")) as SandboxState;
    return new Sandbox(run, state, resolveBinaries(), new ProcessRunner(), []);
  }

  /** Restarts kube-apiserver; only the process that started the sandbox can. */
  async restartKubeApiserver(): Promise<void> {
    if (!this.controlPlane) throw new Error("restartKubeApiserver: this sandbox handle is attached, not the owner");
    await this.controlPlane.restartApiserver();
  }

  /** A client-node KubeConfig for the admin identity (or another token). */
  kubeConfig(token = this.kube.adminToken): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "sandbox", server: this.kube.server, caFile: this.kube.caFile, skipTLSVerify: false }],
      users: [{ name: "sandbox-user", token }],
      contexts: [{ name: "sandbox", cluster: "sandbox", user: "sandbox-user" }],
      currentContext: "sandbox",
    });
    return kc;
  }

  /** Joins a new device to the tailnet with the given key, or a fresh one (tagged, or a user's). */
  async addDevice(hostname: string, options: { tags?: readonly string[]; user?: string; authKey?: string } = {}): Promise<TailnetDevice> {
    const authKey = options.authKey ?? (await this.freshKey(options));
    const host = await this.network.addHost("dev");
    try {
      const device = await TailnetDevice.start({
        runner: this.runner,
        host,
        dir: join(this.run.dir, "devices", `${hostname}-${host.index}`),
        tailscaled: this.bins.tailscaled,
        tailscale: this.bins.tailscale,
        loginServer: this.headscale.url,
        authKey,
        hostname,
      });
      this.track({
        stop: async () => {
          await device.stop();
          await this.network.removeHost(host);
        },
      });
      return device;
    } catch (error) {
      await this.network.removeHost(host);
      throw error;
    }
  }

  private async freshKey(options: { tags?: readonly string[]; user?: string }): Promise<string> {
    const user = options.tags?.length ? undefined : await this.headscaleAdmin.ensureUser(options.user ?? "tester");
    return this.headscaleAdmin.createPreAuthKey({
      ...(user === undefined ? {} : { user }),
      ...(options.tags ? { tags: options.tags } : {}),
    });
  }

  /** A host that owns the given IPs (e.g. a ClusterIP) and serves HTTP on them. */
  async addBackend(options: BackendOptions): Promise<BackendHost> {
    const dir = join(this.run.dir, "backends");
    await mkdir(dir, { recursive: true });
    return this.track(await BackendHost.start(this.runner, this.network, dir, options));
  }

  /** Registers something to be stopped with this handle. */
  track<T extends Stoppable>(child: T): T {
    this.children.push(child);
    return child;
  }

  /** Stops what this handle created, newest first, then the servers it started. */
  async stop(): Promise<void> {
    const errors: unknown[] = [];
    for (const item of [...this.children.splice(0).reverse(), ...this.servers.splice(0)]) {
      await item.stop().catch((error: unknown) => errors.push(error));
    }
    if (errors.length > 0) throw new AggregateError(errors, "sandbox: some parts did not stop cleanly");
  }
}
