// The sandbox's Kubernetes cluster beyond the API server: kube-controller-manager and
// kube-scheduler in the hub, real nodes (containerd + kubelet + kube-proxy) in namespaces of
// their own on the bridge, the locally built images imported into every node, and CoreDNS.
import { join } from "node:path";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { CommandRunner } from "../../shared/exec.ts";
import { waitFor } from "../../shared/clock.ts";
import type { NodeBinaries } from "../binaries.ts";
import type { ApiserverPki } from "../pki.ts";
import { POD_CIDR, POD_CIDR6, SERVICE_CIDR, SERVICE_CIDR6, type SandboxNetwork } from "../network.ts";
import { namespacePrefix, type RunInfo } from "../runs.ts";
import { KubeControllers } from "./kube-controllers.ts";
import { KubeNode, type KubeNodeSpec } from "./kube-node.ts";
import { imagesFor, readImageIndex, requireImage } from "./image-import.ts";
import { awaitClusterDns, deployClusterDns } from "./cluster-dns.ts";

export const CLUSTER_DOMAIN = "cluster.local";
export const CLUSTER_DNS_IP = "10.96.0.10";
/** What pods may reach instead of a default route: the bridge, Services and other pods. */
const POD_ROUTES = ["10.77.0.0/16", SERVICE_CIDR, POD_CIDR, "fd77::/64", SERVICE_CIDR6, POD_CIDR6];
/** Both families, as kube-proxy and the controller-manager take them. */
const CLUSTER_CIDR = `${POD_CIDR},${POD_CIDR6}`;
const EARLY_IMAGES = ["pause", "coredns"];
export const DEFAULT_NODES: readonly KubeNodeSpec[] = [{ name: "node-1" }];

/** Written to sandbox.json: where attaching processes find each node's state. */
export interface ClusterState {
  readonly nodes: readonly { readonly name: string; readonly dir: string }[];
}

export interface ClusterStartOptions {
  readonly runner: CommandRunner;
  readonly run: RunInfo;
  readonly network: SandboxNetwork;
  readonly bins: NodeBinaries;
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  readonly pki: ApiserverPki;
  readonly serviceClusterIpRange: string;
  readonly nodes: readonly KubeNodeSpec[];
  readonly controllers?: readonly string[];
}

export function progress(message: string): void {
  process.stderr.write(`[sandbox] ${message}\n`);
}

const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`;

export class SandboxCluster {
  readonly nodes: readonly KubeNode[];
  private readonly controllers: KubeControllers | undefined;

  private constructor(nodes: readonly KubeNode[], controllers?: KubeControllers) {
    this.nodes = nodes;
    this.controllers = controllers;
  }

  get state(): ClusterState {
    return { nodes: this.nodes.map((node) => ({ name: node.name, dir: node.state.dir })) };
  }

  static async start(options: ClusterStartOptions): Promise<SandboxCluster> {
    const started = Date.now();
    const images = options.nodes.length > 0 ? readImageIndex() : {};
    const nodes: KubeNode[] = [];
    let controllers: KubeControllers | undefined;
    try {
      const controllersStarted = KubeControllers.start({
        runner: options.runner,
        dir: join(options.run.dir, "kube", "controllers"),
        server: options.server,
        pki: options.pki,
        controllerManagerBinary: options.bins.kubeControllerManager,
        schedulerBinary: options.bins.kubeScheduler,
        serviceClusterIpRange: options.serviceClusterIpRange,
        clusterCidr: CLUSTER_CIDR,
        ...(options.controllers ? { controllers: options.controllers } : {}),
      }).then((started) => {
        controllers = started;
      });
      // CoreDNS's objects need only the API server; its pod waits for a node.
      const dnsDeployed =
        options.nodes.length === 0
          ? Promise.resolve()
          : deployClusterDns(options.kubeConfig, { image: requireImage(images, "coredns").ref, clusterIp: CLUSTER_DNS_IP, clusterDomain: CLUSTER_DOMAIN });
      const nodesStarted = options.nodes.map(async (spec, i) => {
        const node = await KubeNode.create(
          {
            runner: options.runner,
            bins: options.bins,
            server: options.server,
            pki: options.pki,
            clusterCidr: CLUSTER_CIDR,
            podRoutes: POD_ROUTES,
            pauseImage: requireImage(images, "pause").ref,
            clusterDns: CLUSTER_DNS_IP,
            clusterDomain: CLUSTER_DOMAIN,
          },
          options.network,
          {
            spec,
            dir: join(options.run.dir, "nodes", spec.name),
            podCidrs: [`10.244.${String(i + 1)}.0/24`, `fd44:0:0:${(i + 1).toString(16)}::/64`],
            cgroupRoot: `${namespacePrefix(options.run.id)}${spec.name}`,
          },
        );
        nodes.push(node);
        const importing = Date.now();
        // What the node needs to run its first pods comes first; the rest (the big operator
        // and proxy images) is imported while the kubelet registers and CoreDNS starts.
        const all = imagesFor(images);
        const first = all.filter((image) => EARLY_IMAGES.includes(image.name));
        await Promise.all(first.map((image) => node.importImage(image.tar, image.ref)));
        await node.startKubelet();
        await node.startKubeProxy();
        const ready = awaitNodeReady(options.kubeConfig, spec.name, 120_000).then(() => {
          progress(`node ${spec.name} Ready in ${seconds(started)}`);
        });
        await Promise.all(all.filter((image) => !first.includes(image)).map((image) => node.importImage(image.tar, image.ref)));
        progress(`node ${spec.name}: ${String(all.length)} images imported in ${seconds(importing)}`);
        await ready;
      });
      // Settled, not raced: a failure must not leave a half-made node running unseen.
      const failed = (await Promise.allSettled([controllersStarted, dnsDeployed, ...nodesStarted])).find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const order = options.nodes.map((spec) => spec.name);
      nodes.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
      const cluster = new SandboxCluster(nodes, controllers);
      if (nodes.length === 0) return cluster;
      await awaitClusterDns(options.kubeConfig, 120_000);
      progress(`CoreDNS available in ${seconds(started)}`);
      return cluster;
    } catch (error) {
      for (const node of nodes) await node.stop().catch(() => undefined);
      await controllers?.stop();
      throw error;
    }
  }

  /** The cluster as another process of the run started it (no controllers to stop). */
  static async load(runner: CommandRunner, bins: NodeBinaries, state: ClusterState): Promise<SandboxCluster> {
    return new SandboxCluster(await Promise.all(state.nodes.map((node) => KubeNode.load(runner, bins, node.dir))));
  }

  node(name: string): KubeNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (!node) throw new Error(`no sandbox node ${name} (nodes: ${this.nodes.map((n) => n.name).join(", ")})`);
    return node;
  }

  /** Kills the node's kubelet and containerd and starts them again; resolves once it is Ready. */
  async restartNode(kc: KubeConfig, name: string): Promise<void> {
    const started = Date.now();
    await this.node(name).restart();
    await awaitNodeReady(kc, name, 120_000, started);
    progress(`node ${name} restarted, Ready in ${seconds(started)}`);
  }

  /** Imports an OCI archive into every node's containerd. */
  async importImage(tar: string, ref?: string): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.importImage(tar, ref)));
  }

  async stop(): Promise<void> {
    const errors: unknown[] = [];
    for (const node of this.nodes) await node.stop().catch((error: unknown) => errors.push(error));
    await this.controllers?.stop().catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw new AggregateError(errors, "sandbox cluster: some parts did not stop cleanly");
  }
}

/** Waits for the node's Ready condition, as the kubelet reported it after since when given. */
export async function awaitNodeReady(kc: KubeConfig, name: string, timeoutMs: number, since?: number): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await waitFor(
    `node ${name} to be Ready`,
    async () => {
      const node = await core.readNode({ name });
      const ready = node.status?.conditions?.find((c) => c.type === "Ready");
      if (ready?.status !== "True") return undefined;
      // A restarted kubelet may find the node still Ready: its first heartbeat is the sign.
      const at = ready.lastHeartbeatTime ? new Date(ready.lastHeartbeatTime).getTime() : 0;
      return since === undefined || at >= Math.floor(since / 1000) * 1000 ? true : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}
