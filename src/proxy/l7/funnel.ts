// Funnel for an Ingress proxy whose control plane offers it (Tailscale). Funnel connections reach a
// node only through tailscaled's serve config, never its TUN: port 443 is handed to tailscaled's
// serve as a raw TCP forward to a loopback listener of ours, with a PROXY protocol v2 header
// carrying the caller's address, so TLS, routing and identity stay this proxy's own (ADR 0028).
// tailscaled then takes port 443 for tailnet callers too, so with Funnel on, every HTTPS
// connection takes that path (one more copy through tailscaled) and whois still sees the caller.
import { FUNNEL_ON } from "../../shared/state-keys.ts";

/** Where tailscaled's serve forwards port 443 to (the pod's own loopback). */
export const FUNNEL_FORWARD = { host: "127.0.0.1", port: 8443 } as const;

const FUNNEL_PORTS_CAP = "https://tailscale.com/cap/funnel-ports";

/** Why this device may not be funnelled, judged as tailscaled does before it funnels (ipn.CheckFunnelAccess). */
export function funnelUnavailable(capMap: Readonly<Record<string, unknown>> | null | undefined, port: number): string | undefined {
  const caps = Object.keys(capMap ?? {});
  if (!caps.includes("https")) return "HTTPS is not enabled for the tailnet (Funnel needs it)";
  if (!caps.includes("funnel")) return 'the tailnet policy does not give this device the "funnel" node attribute (nodeAttrs for its tags)';
  const portsCap = caps.find((cap) => cap.startsWith(`${FUNNEL_PORTS_CAP}?`));
  const ports = portsCap ? new URL(portsCap).searchParams.get("ports") ?? "" : "";
  const allowed = ports.split(",").some((range) => {
    const [low, high] = range.split("-").map(Number);
    return low !== undefined && port >= low && port <= (high ?? low);
  });
  return allowed ? undefined : `port ${port} is not among the tailnet's Funnel ports (${ports || "none"})`;
}

/** The serve config that funnels fqdn:443 into our loopback listener (ipn.ServeConfig's JSON). */
export function funnelServeConfig(fqdn: string): object {
  return {
    TCP: { "443": { TCPForward: `${FUNNEL_FORWARD.host}:${FUNNEL_FORWARD.port}`, ProxyProtocol: 2 } },
    AllowFunnel: { [`${fqdn}:443`]: true },
  };
}

/** True when tailscaled serves something (a serve config left by an earlier Funnel). */
export function servesAnything(config: unknown): boolean {
  if (config === null || typeof config !== "object") return false;
  return Object.values(config as Record<string, unknown>).some((value) => value !== null && typeof value === "object" && Object.keys(value).length > 0);
}

/** The LocalAPI calls Funnel needs (src/proxy/local-api.ts). */
export interface FunnelLocalApi {
  status(): Promise<{ Self?: { CapMap?: Record<string, unknown> | null } }>;
  serveConfig(): Promise<unknown>;
  setServeConfig(config: object): Promise<void>;
}

/**
 * Makes tailscaled's serve config match what the Ingress asks for: Funnel on 443 through our
 * loopback listener when wanted and allowed, nothing otherwise (a serve config outlives the pod in
 * tailscaled's state, so one left from an earlier Funnel is removed). Returns the state to report:
 * FUNNEL_ON, why Funnel is not possible, or null when it is not wanted.
 */
export async function reconcileFunnel(options: { readonly localApi: FunnelLocalApi; readonly wanted: boolean; readonly fqdn: string; readonly listen: () => Promise<void> }): Promise<string | null> {
  const { localApi, wanted, fqdn } = options;
  const unavailable = wanted ? funnelUnavailable((await localApi.status()).Self?.CapMap, 443) : undefined;
  if (wanted && unavailable === undefined) {
    await options.listen();
    await localApi.setServeConfig(funnelServeConfig(fqdn));
    return FUNNEL_ON;
  }
  if (servesAnything(await localApi.serveConfig())) await localApi.setServeConfig({});
  return unavailable ?? null;
}
