// The egress contract between the operator (which configures an egress proxy through its
// environment) and the proxy (which reports what the target resolved to in its state Secret).

/** Environment variables of an egress proxy (names as the Tailscale operator's containerboot). */
export const EGRESS_ENV = {
  targetIp: "TS_TAILNET_TARGET_IP",
  targetFqdn: "TS_TAILNET_TARGET_FQDN",
  /** JSON array of EgressPort: the ports cluster traffic is forwarded on. */
  ports: "TS_EGRESS_PORTS",
} as const;

/** Cluster traffic to the proxy on matchPort goes to the tailnet target's targetPort. */
export interface EgressPort {
  readonly protocol: "tcp" | "udp";
  readonly matchPort: number;
  readonly targetPort: number;
}

/** What the proxy found for its target; written as JSON under STATE_SECRET_KEYS.egressTarget. */
export interface EgressTargetReport {
  /** The target as configured (an IP or a MagicDNS name). */
  readonly target: string;
  /** The tailnet addresses traffic goes to; empty when the target was not found. */
  readonly ips: readonly string[];
  /** Why the target cannot be reached, when it cannot. */
  readonly error?: string;
}

export function parseEgressTargetReport(json: string | undefined): EgressTargetReport | undefined {
  if (!json) return undefined;
  try {
    const value = JSON.parse(json) as Partial<EgressTargetReport>;
    if (typeof value.target !== "string" || !Array.isArray(value.ips)) return undefined;
    return { target: value.target, ips: value.ips.filter((ip): ip is string => typeof ip === "string"), ...(typeof value.error === "string" ? { error: value.error } : {}) };
  } catch {
    return undefined;
  }
}
