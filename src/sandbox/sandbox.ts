// The local sandbox: a real Kubernetes cluster (etcd, kube-apiserver, controller-manager and
// scheduler in the hub namespace, real nodes in namespaces of their own on the hub bridge, CoreDNS)
// and a real Headscale, plus tailnet devices and backend hosts on the same bridge.
// One process starts it; other processes of the same run (test files) attach to it.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ProcessRunner, type CommandRunner } from "../shared/exec.ts";
import { resolveBinaries, resolveNodeBinaries, type Binaries } from "./binaries.ts";
import { currentRun } from "./hub.ts";
import type { RunInfo } from "./runs.ts";
import { HUB_ADDRESS, HUB_ADDRESS6, SERVICE_CIDR, SERVICE_CIDR6, SandboxNetwork } from "./network.ts";
import { KubeControlPlane, certKubeconfig, type KubeAccess } from "./kube-control-plane.ts";
import { issueClientCert } from "./pki.ts";
import { HEADSCALE_OFFLINE_TABLE, HeadscaleAdmin, HeadscaleServer, headscaleOfflineRules, type HeadscaleAccess } from "./headscale.ts";
import { TailnetDevice } from "./tailnet-device.ts";
import { BackendHost, type BackendOptions } from "./backend-host.ts";
import { DEFAULT_NODES, SandboxCluster, progress, type ClusterState } from "./cluster/cluster.ts";
import type { KubeNode, KubeNodeSpec } from "./cluster/kube-node.ts";

/** What attaching processes need; written to the run directory by the starting process. */
interface SandboxState {
  readonly kube: KubeAccess;
  readonly headscale: HeadscaleAccess;
  readonly cluster: ClusterState;
}

export interface SandboxOptions {
  /** The cluster's nodes (default: one, node-1); an empty list runs no node (and no CoreDNS). */
  readonly nodes?: readonly KubeNodeSpec[];
  /**
   * kube-controller-manager's --controllers, e.g. ["*", "-statefulset"] so that StatefulSets
   * make no pods (a scale benchmark provisions a thousand proxies it never runs).
   */
  readonly controllers?: readonly string[];
  /** An audit policy for kube-apiserver; its log is kube.auditLog. */
  readonly auditPolicy?: Readonly<Record<string, unknown>>;
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
  private readonly headscaleServer: HeadscaleServer | undefined;
  private readonly cluster: SandboxCluster;
  /** Devices, backends and pods this handle created, stopped first. */
  private readonly children: Stoppable[] = [];

  private constructor(
    run: RunInfo,
    state: SandboxState,
    bins: Binaries,
    runner: CommandRunner,
    servers: Stoppable[],
    cluster: SandboxCluster,
    controlPlane?: KubeControlPlane,
    headscaleServer?: HeadscaleServer,
  ) {
    this.controlPlane = controlPlane;
    this.headscaleServer = headscaleServer;
    this.cluster = cluster;
    this.run = run;
    this.kube = state.kube;
    this.headscale = state.headscale;
    this.bins = bins;
    this.runner = runner;
    this.servers = servers;
    this.network = new SandboxNetwork(runner, run);
    this.headscaleAdmin = new HeadscaleAdmin(runner, bins.headscale, state.headscale.configFile);
  }

  /**
   * Starts the cluster (control plane, controllers, nodes with the built images, CoreDNS) and
   * Headscale in the current run's hub; resolves once every node is Ready and CoreDNS available.
   */
  static async start(options: SandboxOptions = {}): Promise<Sandbox> {
    const started = Date.now();
    const run = currentRun();
    const bins = resolveBinaries();
    const nodeSpecs = options.nodes ?? DEFAULT_NODES;
    const nodeBins = resolveNodeBinaries();
    const runner = new ProcessRunner();
    const network = new SandboxNetwork(runner, run);
    await network.createBridge();
    const servers: Stoppable[] = [];
    try {
      const serviceClusterIpRange = `${SERVICE_CIDR},${SERVICE_CIDR6}`;
      const [kube, headscale] = await Promise.all([
        KubeControlPlane.start({
          runner,
          dir: join(run.dir, "kube"),
          etcdBinary: bins.etcd,
          apiserverBinary: bins.kubeApiserver,
          advertiseAddress: HUB_ADDRESS,
          serviceClusterIpRange,
          ...(options.auditPolicy ? { auditPolicy: options.auditPolicy } : {}),
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
      progress(`kube-apiserver and Headscale ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      const cluster = await SandboxCluster.start({
        runner,
        run,
        network,
        bins: nodeBins,
        kubeConfig: adminKubeConfig(kube.access, kube.access.adminToken),
        server: kube.access.server,
        pki: kube.pki,
        serviceClusterIpRange,
        nodes: nodeSpecs,
        ...(options.controllers ? { controllers: options.controllers } : {}),
      });
      // Nodes and controllers stop before the API server they report to.
      servers.unshift(cluster);
      const state: SandboxState = { kube: kube.access, headscale: headscale.access, cluster: cluster.state };
      await writeFile(join(run.dir, STATE_FILE), JSON.stringify(state, null, 2), { mode: 0o600 });
      progress(`sandbox ${run.id} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return new Sandbox(run, state, bins, runner, servers, cluster, kube, headscale);
    } catch (error) {
      for (const server of servers) await server.stop();
      throw error;
    }
  }

  /** Attaches to the sandbox another process of this run started. */
  static async attach(): Promise<Sandbox> {
    const run = currentRun();
    const state = JSON.parse(await readFile(join(run.dir, STATE_FILE), "utf8")) as SandboxState;
    const runner = new ProcessRunner();
    const cluster = await SandboxCluster.load(runner, resolveNodeBinaries(), state.cluster);
    return new Sandbox(run, state, resolveBinaries(), runner, [], cluster);
  }

  /** The cluster's nodes: name, address (state), exec() inside the node, ctr(), importImage(). */
  get nodes(): readonly KubeNode[] {
    return this.cluster.nodes;
  }

  node(name: string): KubeNode {
    return this.cluster.node(name);
  }

  /** An admin kubeconfig file (for kubectl --kubeconfig, helm). */
  get kubeconfigPath(): string {
    return this.kube.adminKubeconfig;
  }

  /**
   * A node reboot: kills its kubelet and containerd (by PID) and starts them again; running
   * containers keep running under their shims, as with a real containerd restart. Resolves once
   * the restarted kubelet has reported the node Ready. Works from attached handles too.
   */
  async restartNode(name: string): Promise<void> {
    await this.cluster.restartNode(this.kubeConfig(), name);
  }

  /** Imports an OCI archive (one platform) into every node's containerd, under ref if given. */
  async importImage(tar: string, ref?: string): Promise<void> {
    await this.cluster.importImage(tar, ref);
  }

  /**
   * A kubeconfig file with a client certificate for the given user and groups (the identity an
   * audit log or RBAC sees); only the process that started the sandbox holds the CA key.
   */
  async userKubeconfig(user: string, groups: readonly string[] = []): Promise<string> {
    if (!this.controlPlane) throw new Error("userKubeconfig: this sandbox handle is attached, not the owner");
    const dir = join(this.run.dir, "kube", "users");
    await mkdir(dir, { recursive: true });
    const name = user.replaceAll(/[^a-zA-Z0-9-]/g, "_");
    const cert = await issueClientCert(this.runner, this.controlPlane.pki, dir, name, { commonName: user, organizations: groups });
    const file = join(dir, `${name}.kubeconfig`);
    await writeFile(file, certKubeconfig(this.kube.server, this.kube.caFile, cert), { mode: 0o600 });
    return file;
  }

  /** Restarts kube-apiserver; only the process that started the sandbox can. */
  async restartKubeApiserver(): Promise<void> {
    if (!this.controlPlane) throw new Error("restartKubeApiserver: this sandbox handle is attached, not the owner");
    await this.controlPlane.restartApiserver();
  }

  /** Restarts Headscale on its state (hard: SIGKILL, a crash); only the process that started the sandbox can. */
  async restartHeadscale(options: { hard?: boolean } = {}): Promise<void> {
    if (!this.headscaleServer) throw new Error("restartHeadscale: this sandbox handle is attached, not the owner");
    await this.headscaleServer.restart(options);
  }

  /**
   * Takes Headscale off the network, as a stopped server is to its clients: new connections and
   * established ones (the operator's API calls, tailscaled's control sessions, DERP) are reset,
   * STUN is refused. Its CLI still answers on the unix socket, so a test can audit keys meanwhile.
   * An nftables table in the hub, so attached handles can do it too (restartHeadscale needs the
   * owner, and a server started by a test file would not outlive it).
   */
  async takeHeadscaleOffline(): Promise<void> {
    await this.runner.run(["nft", "-f", "-"], { input: headscaleOfflineRules() });
  }

  /** Undoes takeHeadscaleOffline; clients reconnect with their own backoff. */
  async bringHeadscaleOnline(): Promise<void> {
    await this.runner.run(["nft", "delete", "table", "inet", HEADSCALE_OFFLINE_TABLE]);
  }

  /** A client-node KubeConfig for the admin identity (or another token). */
  kubeConfig(token = this.kube.adminToken): KubeConfig {
    return adminKubeConfig(this.kube, token);
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

function adminKubeConfig(kube: KubeAccess, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "sandbox", server: kube.server, caFile: kube.caFile, skipTLSVerify: false }],
    users: [{ name: "sandbox-user", token }],
    contexts: [{ name: "sandbox", cluster: "sandbox", user: "sandbox-user" }],
    currentContext: "sandbox",
  });
  return kc;
}
