// Pure parts of egress: finding the target among the tailnet's peers (never through the pod's
// DNS, which knows nothing of MagicDNS) and turning it into firewall intent.
import { BlockList, isIP } from "node:net";
import type { EgressPort, EgressTargetReport } from "../shared/egress.ts";
import type { PeerStatus } from "./tailscaled.ts";
import { familyOf, type EgressMapping, type ForwardingRules } from "./firewall/rules.ts";

export type ConfiguredTarget = { readonly ip: string } | { readonly fqdn: string };

export function targetName(target: ConfiguredTarget): string {
  return "ip" in target ? target.ip : target.fqdn;
}

const bareName = (dnsName: string | undefined): string => (dnsName ?? "").toLowerCase().replace(/\.$/, "");

/** Whether a CIDR such as 10.1.0.0/24 contains ip (both of one family). */
function routeContains(route: string, ip: string): boolean {
  const [network = "", prefix = ""] = route.split("/");
  const family = isIP(network);
  if (family === 0 || family !== isIP(ip)) return false;
  const list = new BlockList();
  const type = family === 6 ? "ipv6" : "ipv4";
  list.addSubnet(network, Number(prefix), type);
  return list.check(ip, type);
}

/**
 * What the target is now: a peer's tailnet IPs for a name; the IP itself when a peer has it
 * or a peer's subnet route covers it. Otherwise an error saying what was looked for.
 */
export function resolveTarget(target: ConfiguredTarget, peers: readonly PeerStatus[]): EgressTargetReport {
  if ("fqdn" in target) {
    const peer = peers.find((p) => bareName(p.DNSName) === target.fqdn);
    const ips = [...(peer?.TailscaleIPs ?? [])];
    if (ips.length > 0) return { target: target.fqdn, ips };
    return { target: target.fqdn, ips: [], error: `no device named ${target.fqdn} on the tailnet (${peers.length} peers visible)` };
  }
  const known = peers.some((p) => (p.TailscaleIPs ?? []).includes(target.ip) || (p.PrimaryRoutes ?? []).some((route) => routeContains(route, target.ip)));
  if (known) return { target: target.ip, ips: [target.ip] };
  return { target: target.ip, ips: [], error: `${target.ip} is no device's tailnet address and no subnet router serves it` };
}

/** One mapping per family the target has and this device can send from (its own tailnet IP). */
export function egressRules(tunInterface: string, resolved: readonly string[], ownIps: readonly string[], ports: readonly EgressPort[]): ForwardingRules {
  const egress: EgressMapping[] = [];
  for (const family of [4, 6] as const) {
    const target = resolved.find((ip) => familyOf(ip) === family);
    const source = ownIps.find((ip) => familyOf(ip) === family);
    if (target && source) egress.push({ target, source, ports });
  }
  return { tunInterface, ingress: [], egress };
}
