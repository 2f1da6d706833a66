// What the proxy wants from the firewall, stated as intent. Backends render it into their own
// table or chains; none of them touches rules it does not own.

/** Traffic to tailnetIp arriving on the tailnet interface goes to destination (a ClusterIP). */
export interface IngressMapping {
  readonly tailnetIp: string;
  readonly destination: string;
}

/** One port of an egress mapping: cluster traffic to matchPort goes to the target's targetPort. */
export interface PortMapping {
  readonly protocol: "tcp" | "udp";
  readonly matchPort: number;
  readonly targetPort: number;
}

/**
 * Cluster traffic (arriving on any interface but the tailnet's) goes to a tailnet target, with
 * the proxy's own tailnet IP as source so the target can answer. Without ports, everything is
 * forwarded; with ports, only those (the shared-proxy case).
 */
export interface EgressMapping {
  readonly target: string;
  readonly source: string;
  readonly ports?: readonly PortMapping[];
}

export interface ForwardingRules {
  /** The tailscaled TUN interface, normally tailscale0. */
  readonly tunInterface: string;
  readonly ingress: readonly IngressMapping[];
  readonly egress?: readonly EgressMapping[];
}

/** Marks packets that entered from the tailnet, so they are masqueraded on the way out. */
export const FROM_TAILNET_MARK = 0x40000;

export type IpFamily = 4 | 6;

export function familyOf(ip: string): IpFamily {
  return ip.includes(":") ? 6 : 4;
}

/** A firewall backend: apply replaces our rules atomically per family; clear removes them. */
export interface Firewall {
  readonly mode: FirewallMode;
  apply(rules: ForwardingRules): Promise<void>;
  clear(): Promise<void>;
}

export type FirewallMode = "nftables" | "iptables-nft" | "iptables-legacy";

/** Only mappings within one address family can be NATed. */
export function sameFamilyMappings(rules: ForwardingRules, family: IpFamily): IngressMapping[] {
  return rules.ingress.filter((m) => familyOf(m.tailnetIp) === family && familyOf(m.destination) === family);
}

export function sameFamilyEgress(rules: ForwardingRules, family: IpFamily): EgressMapping[] {
  return (rules.egress ?? []).filter((m) => familyOf(m.target) === family && familyOf(m.source) === family);
}

/** "ip:port", with brackets for IPv6 as both nft and iptables want it. */
export function hostPort(ip: string, port: number): string {
  return familyOf(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
