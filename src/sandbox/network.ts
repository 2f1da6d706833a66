// The sandbox network: a bridge in the hub namespace and hosts (network namespaces) attached to
// it by veth pairs. The hub routes Service ClusterIPs to the backend hosts that own them, the
// way kube-proxy would make them reachable. No namespace gets a default route, and nothing is
// linked to the host's root namespace, so sandbox traffic cannot leave the sandbox.
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import { NetworkNamespace } from "./netns.ts";
import { namespacePrefix, type RunInfo } from "./runs.ts";

export const BRIDGE = "br0";
export const HUB_ADDRESS = "10.77.0.1";
const SANDBOX_PREFIX_LENGTH = 16;
export const HUB_ADDRESS6 = "fd77::1";
const SANDBOX_PREFIX6_LENGTH = 64;
export const SERVICE_CIDR = "10.96.0.0/16";
/** The API server allocates at most 2^20 addresses per family, hence a /108. */
export const SERVICE_CIDR6 = "fd96::/108";
/** Pod addresses of every node: 10.244.<node>.0/24 and fd44:0:0:<node>::/64 (pods are dual-stack). */
export const POD_CIDR = "10.244.0.0/16";
export const POD_CIDR6 = "fd44::/56";
const MAX_HOSTS = 250 * 250;

/** A sandbox host: its own network namespace with one interface on the bridge. */
export interface SandboxHost {
  readonly namespace: NetworkNamespace;
  readonly address: string;
  readonly address6: string;
  readonly index: number;
}

export class SandboxNetwork {
  private readonly runner: CommandRunner;
  private readonly run: RunInfo;
  private nextIndex = 1;

  constructor(runner: CommandRunner, run: RunInfo) {
    this.runner = runner;
    this.run = run;
  }

  /** Creates the bridge in the hub (the namespace this process runs in). */
  async createBridge(): Promise<void> {
    const ip = (...args: string[]): Promise<unknown> => this.runner.run(["ip", ...args]);
    // A fixed MAC: otherwise the bridge takes the lowest MAC of its ports, so every new host
    // could change it and leave the others sending to a stale neighbour entry for the hub.
    await ip("link", "add", BRIDGE, "address", "02:77:00:00:00:01", "type", "bridge");
    await ip("addr", "add", `${HUB_ADDRESS}/${SANDBOX_PREFIX_LENGTH}`, "dev", BRIDGE);
    // nodad: duplicate address detection would keep the address unusable for a second or two.
    await ip("-6", "addr", "add", `${HUB_ADDRESS6}/${SANDBOX_PREFIX6_LENGTH}`, "dev", BRIDGE, "nodad");
    await ip("link", "set", BRIDGE, "up");
    // The hub forwards between hosts on the bridge when it routes a ClusterIP to its backend.
    await this.runner.run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    // Hosts share one subnet, so the hub would otherwise answer routed packets with redirects.
    await this.runner.run(["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0", `net.ipv4.conf.${BRIDGE}.send_redirects=0`]);
  }

  /** Creates a host namespace named tno-<run>-<role><n> with an address on the bridge. */
  async addHost(role: string): Promise<SandboxHost> {
    const index = await this.allocateIndex();
    const address = hostAddress(index);
    const address6 = hostAddress6(index);
    const hubSide = `vh${index}`;
    let namespace: NetworkNamespace | undefined;
    try {
      const ns = await NetworkNamespace.create(this.runner, `${namespacePrefix(this.run.id)}${role}${index}`);
      namespace = ns;
      const inNs = (...args: string[]): Promise<unknown> => this.runner.run(ns.exec(["ip", ...args]));
      await this.runner.run(["ip", "link", "add", hubSide, "type", "veth", "peer", "name", "eth0", "netns", ns.name]);
      await this.runner.run(["ip", "link", "set", hubSide, "master", BRIDGE, "up"]);
      await inNs("addr", "add", `${address}/${SANDBOX_PREFIX_LENGTH}`, "dev", "eth0");
      await inNs("-6", "addr", "add", `${address6}/${SANDBOX_PREFIX6_LENGTH}`, "dev", "eth0", "nodad");
      await inNs("link", "set", "eth0", "up");
      // Service ClusterIPs are routed by the hub; there is deliberately no default route.
      await inNs("route", "add", SERVICE_CIDR, "via", HUB_ADDRESS);
      await inNs("-6", "route", "add", SERVICE_CIDR6, "via", HUB_ADDRESS6);
      // Pod IPs are routed by the hub to their node, so tailnet peers reach pods directly.
      await inNs("route", "add", POD_CIDR, "via", HUB_ADDRESS);
      await inNs("-6", "route", "add", POD_CIDR6, "via", HUB_ADDRESS6);
      return { namespace: ns, address, address6, index };
    } catch (error) {
      await namespace?.delete();
      throw error;
    }
  }

  /** Deletes the host's namespace (its veth goes with it). */
  async removeHost(host: SandboxHost): Promise<void> {
    await host.namespace.delete();
  }

  /** Makes the hub send traffic for ip (a ClusterIP) to the host that owns it. */
  async routeToHost(ip: string, host: SandboxHost): Promise<void> {
    if (ip.includes(":")) await this.runner.run(["ip", "-6", "route", "replace", `${ip}/128`, "via", host.address6]);
    else await this.runner.run(["ip", "route", "replace", `${ip}/32`, "via", host.address]);
  }

  /** Makes the hub send traffic for a node's pod range (either family) to that node. */
  async routePodCidr(cidr: string, node: SandboxHost): Promise<void> {
    if (cidr.includes(":")) await this.runner.run(["ip", "-6", "route", "replace", cidr, "via", node.address6]);
    else await this.runner.run(["ip", "route", "replace", cidr, "via", node.address]);
  }

  async removeRoute(ip: string): Promise<void> {
    await this.runner.run(["ip", "route", "del", ip.includes(":") ? `${ip}/128` : `${ip}/32`]).catch(() => undefined);
  }

  /**
   * Host indexes are claimed by creating a marker file exclusively, so several processes of
   * one run (test files, the pod runner) never hand out the same address. Addresses are never
   * reused within a run: peers keep a dead host's MAC in their neighbour cache for a while, and
   * a new host on the same IP would be unreachable until it expires.
   */
  private async allocateIndex(): Promise<number> {
    const dir = join(this.run.dir, "hosts");
    await mkdir(dir, { recursive: true });
    for (let index = this.nextIndex; index < MAX_HOSTS; index++) {
      try {
        await (await open(join(dir, String(index)), "wx")).close();
        this.nextIndex = index + 1;
        return index;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    }
    throw new Error("sandbox network: no free host addresses");
  }

}

/** 10.77.<n / 250>.<n % 250 + 2>: index 0 would collide with the hub's 10.77.0.1. */
export function hostAddress(index: number): string {
  return `10.77.${Math.floor(index / 250)}.${(index % 250) + 2}`;
}

/** fd77::<n + 2 in hex>, the IPv6 twin of hostAddress. */
export function hostAddress6(index: number): string {
  return `fd77::${(index + 2).toString(16)}`;
}
