// What the proxy wants from the firewall, stated as intent. Backends render it into their own
// table or chains; none of them touches rules it does not own.

/** Traffic to tailnetIp arriving on the tailnet interface goes to destination (a ClusterIP). */
export interface IngressMapping {
  readonly tailnetIp: string;
  readonly destination: string;
}

export interface ForwardingRules {
  /** The tailscaled TUN interface, normally tailscale0. */
  readonly tunInterface: string;
  readonly ingress: readonly IngressMapping[];
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

/** Only mappings within one address family can be NATed; others are dropped with a reason. */
export function sameFamilyMappings(rules: ForwardingRules, family: IpFamily): IngressMapping[] {
  return rules.ingress.filter((m) => familyOf(m.tailnetIp) === family && familyOf(m.destination) === family);
}
