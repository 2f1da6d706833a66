// One Kubernetes node: a sandbox host (network namespace on the bridge) whose containerd,
// kubelet and kube-proxy share one private mount namespace (see node-mounts.ts). The daemons
// are known by PID (node.json in the node's directory), so any process of the run can restart
// them: the process that started the sandbox, or a test file attached to it.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../../shared/exec.ts";
import type { NodeBinaries } from "../binaries.ts";
import { issueClientCert, type ApiserverPki } from "../pki.ts";
import { certKubeconfig } from "../kube-control-plane.ts";
import type { SandboxHost, SandboxNetwork } from "../network.ts";
import { removeNamespace } from "../netns.ts";
import { awaitDaemon, isAlive, startDaemon, stopDaemon, type DaemonRecord } from "./daemon.ts";
import { inNode, removeCgroups, startHolder } from "./node-mounts.ts";
import { importImage } from "./image-import.ts";
import {
  NODE_RESOLV_CONF, cniConfig, containerdConfig, kubeletConfig, kubeProxyConfig, type NodeConfigInput,
} from "./node-config.ts";

export interface KubeNodeSpec {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** What any process of the run needs to use and restart the node; node.json in its directory. */
export interface NodeState {
  readonly name: string;
  readonly dir: string;
  readonly address: string;
  readonly address6: string;
  readonly netns: string;
  /** IPv4 first, then IPv6: the pods are dual-stack. */
  readonly podCidrs: readonly string[];
  readonly cgroupRoot: string;
  readonly containerdSocket: string;
  readonly labels: Readonly<Record<string, string>>;
  holder: DaemonRecord;
  daemons: Partial<Record<NodeDaemon, DaemonRecord>>;
}

type NodeDaemon = "containerd" | "kubelet" | "kube-proxy";

export interface NodeContext {
  readonly runner: CommandRunner;
  readonly bins: NodeBinaries;
  readonly server: string;
  readonly pki: ApiserverPki;
  readonly clusterCidr: string;
  readonly podRoutes: readonly string[];
  readonly pauseImage: string;
  readonly clusterDns: string;
  readonly clusterDomain: string;
}

const STATE_FILE = "node.json";
/** Host tools (mount, iptables, nft) after the pinned binaries' directories. */
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class KubeNode {
  readonly state: NodeState;
  private readonly runner: CommandRunner;
  private readonly bins: NodeBinaries;

  private constructor(state: NodeState, runner: CommandRunner, bins: NodeBinaries) {
    this.state = state;
    this.runner = runner;
    this.bins = bins;
  }

  get name(): string {
    return this.state.name;
  }

  /** Creates the node's host, configuration and namespaces and starts containerd (not the kubelet yet). */
  static async create(
    ctx: NodeContext,
    network: SandboxNetwork,
    options: { spec: KubeNodeSpec; dir: string; podCidrs: readonly string[]; cgroupRoot: string },
  ): Promise<KubeNode> {
    const { spec, dir } = options;
    await mkdir(join(dir, "cni"), { recursive: true });
    await mkdir(join(dir, "volume-plugins"), { recursive: true });
    const host: SandboxHost = await network.addHost("node");
    const state: NodeState = {
      name: spec.name,
      dir,
      address: host.address,
      address6: host.address6,
      netns: host.namespace.name,
      podCidrs: options.podCidrs,
      cgroupRoot: options.cgroupRoot,
      containerdSocket: join(dir, "containerd.sock"),
      labels: spec.labels ?? {},
      holder: { name: "holder", pid: 0, startTime: "", logFile: "" },
      daemons: {},
    };
    const node = new KubeNode(state, ctx.runner, ctx.bins);
    try {
      await node.writeConfig(ctx);
      // Pods are reached through the node; tailnet peers elsewhere on the bridge route via the hub.
      for (const cidr of options.podCidrs) await network.routePodCidr(cidr, host);
      state.holder = await startHolder(ctx.runner, { netnsExec: (argv) => host.namespace.exec(argv), cgroupRoot: options.cgroupRoot, dir });
      await node.save();
      await ctx.runner.run(node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]));
      await node.startContainerd();
      return node;
    } catch (error) {
      await node.stop().catch(() => undefined);
      throw error;
    }
  }

  /** The node as another process of the run started it. */
  static async load(runner: CommandRunner, bins: NodeBinaries, dir: string): Promise<KubeNode> {
    const state = JSON.parse(await readFile(join(dir, STATE_FILE), "utf8")) as NodeState;
    return new KubeNode(state, runner, bins);
  }

  /** argv running a command inside the node (its network and mount namespaces). */
  exec(argv: readonly string[]): string[] {
    return inNode(this.state.holder.pid, argv);
  }

  /** argv running `ctr` against the node's containerd. */
  ctr(args: readonly string[]): string[] {
    return this.exec([this.bins.ctr, "--address", this.state.containerdSocket, ...args]);
  }

  /** Imports an OCI archive into the node's containerd (k8s.io namespace), checking ref is listed. */
  async importImage(tar: string, ref?: string): Promise<void> {
    await importImage(this.runner, (args) => this.ctr(args), tar, ref);
  }

  async startKubelet(): Promise<void> {
    const labels = Object.entries(this.state.labels).map(([key, value]) => `${key}=${value}`);
    await this.startNodeDaemon("kubelet", [
      this.bins.kubelet,
      `--config=${join(this.state.dir, "kubelet.yaml")}`,
      `--kubeconfig=${join(this.state.dir, "kubelet.kubeconfig")}`,
      `--hostname-override=${this.state.name}`,
      `--node-ip=${this.state.address},${this.state.address6}`,
      ...(labels.length > 0 ? [`--node-labels=${labels.join(",")}`] : []),
      "-v=1",
    ]);
  }

  async startKubeProxy(): Promise<void> {
    await this.startNodeDaemon("kube-proxy", [this.bins.kubeProxy, `--config=${join(this.state.dir, "kube-proxy.yaml")}`, "-v=1"]);
  }

  /** A node reboot as far as Kubernetes sees it: kubelet and containerd killed and started again. */
  async restart(): Promise<void> {
    // Another process of the run may have restarted them since this handle was made.
    await this.reload();
    await this.stopNodeDaemon("kubelet", 0);
    await this.stopNodeDaemon("containerd", 0);
    await this.startContainerd();
    await this.startKubelet();
  }

  /** Stops the daemons and everything the node runs (containers included), leaving no cgroup behind. */
  async stop(): Promise<void> {
    await this.reload();
    await this.stopNodeDaemon("kube-proxy");
    // The kubelet first, so that it restarts no container while they are being killed.
    await this.stopNodeDaemon("kubelet");
    await removeCgroups(this.state.cgroupRoot);
    await this.stopNodeDaemon("containerd");
    if (this.state.holder.pid > 0) await stopDaemon(this.state.holder, 1_000);
    // The shims are left, in the node's network namespace; they go with it.
    await removeNamespace(this.runner, this.state.netns);
    await this.save();
  }

  private async startContainerd(): Promise<void> {
    const record = await this.startNodeDaemon(
      "containerd",
      // containerd finds containerd-shim-runc-v2 on its PATH; the CNI plugins need iptables.
      ["env", `PATH=${this.bins.containerdBinDir}:${SYSTEM_PATH}`, this.bins.containerd, "--config", join(this.state.dir, "containerd.toml")],
    );
    await awaitDaemon(record, "serving", async () => (await this.runner.run(this.ctr(["version"])), true), 30_000);
  }

  private async startNodeDaemon(name: NodeDaemon, argv: readonly string[]): Promise<DaemonRecord> {
    const previous = this.state.daemons[name];
    if (previous && isAlive(previous)) throw new Error(`${this.name}: ${name} already runs (pid ${String(previous.pid)})`);
    const record = await startDaemon(this.runner, `${this.name} ${name}`, this.exec(argv), join(this.state.dir, `${name}.log`));
    this.state.daemons[name] = record;
    await this.save();
    return record;
  }

  private async stopNodeDaemon(name: NodeDaemon, graceMs = 5_000): Promise<void> {
    const record = this.state.daemons[name];
    if (!record) return;
    await stopDaemon(record, graceMs);
  }

  private async reload(): Promise<void> {
    try {
      const saved = JSON.parse(await readFile(join(this.state.dir, STATE_FILE), "utf8")) as NodeState;
      this.state.holder = saved.holder;
      this.state.daemons = saved.daemons;
    } catch {
      // Not saved yet (a failed create): what this handle knows is all there is.
    }
  }

  private async save(): Promise<void> {
    await writeFile(join(this.state.dir, STATE_FILE), JSON.stringify(this.state, null, 2));
  }

  private async writeConfig(ctx: NodeContext): Promise<void> {
    const { dir, name } = this.state;
    const pki = join(dir, "pki");
    await mkdir(pki, { recursive: true });
    const [kubeletCert, proxyCert] = await Promise.all([
      // The Node authorizer and NodeRestriction know a kubelet by this name and group.
      issueClientCert(ctx.runner, ctx.pki, pki, "kubelet", { commonName: `system:node:${name}`, organizations: ["system:nodes"] }),
      // The default RBAC binds system:node-proxier to this user.
      issueClientCert(ctx.runner, ctx.pki, pki, "kube-proxy", { commonName: "system:kube-proxy" }),
    ]);
    const input: NodeConfigInput = {
      name,
      dir,
      address: this.state.address,
      podCidrs: this.state.podCidrs,
      clusterCidr: ctx.clusterCidr,
      podRoutes: ctx.podRoutes,
      cgroupRoot: this.state.cgroupRoot,
      caFile: ctx.pki.caCert,
      containerdSocket: this.state.containerdSocket,
      runc: ctx.bins.runc,
      cniBinDir: ctx.bins.cniBinDir,
      pauseImage: ctx.pauseImage,
      clusterDns: ctx.clusterDns,
      clusterDomain: ctx.clusterDomain,
    };
    const proxyKubeconfig = join(dir, "kube-proxy.kubeconfig");
    await Promise.all([
      writeFile(join(dir, "containerd.toml"), containerdConfig(input)),
      writeFile(join(dir, "cni", "10-sandbox.conflist"), cniConfig(input)),
      writeFile(join(dir, "kubelet.yaml"), kubeletConfig(input)),
      writeFile(join(dir, "kube-proxy.yaml"), kubeProxyConfig(input, proxyKubeconfig)),
      writeFile(join(dir, "resolv.conf"), NODE_RESOLV_CONF),
      writeFile(join(dir, "kubelet.kubeconfig"), certKubeconfig(ctx.server, ctx.pki.caCert, kubeletCert), { mode: 0o600 }),
      writeFile(proxyKubeconfig, certKubeconfig(ctx.server, ctx.pki.caCert, proxyCert), { mode: 0o600 }),
    ]);
  }
}
