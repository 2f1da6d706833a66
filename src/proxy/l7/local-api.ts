// What the L7 and API server proxies ask tailscaled (implemented by the proxy's one LocalAPI client,
// src/proxy/local-api.ts): who is calling, and the control plane's certificate for this device.

export interface WhoIs {
  readonly Node?: { readonly Name?: string; readonly Tags?: readonly string[] | null };
  readonly UserProfile?: { readonly LoginName?: string; readonly DisplayName?: string; readonly ProfilePicURL?: string };
  /** Capabilities the tailnet policy grants the caller towards this device (grants with `app`). */
  readonly CapMap?: Readonly<Record<string, readonly unknown[] | null>> | null;
}

export interface LocalApi {
  whois(addrPort: string): Promise<WhoIs | undefined>;
  /** PEM key and certificate (with chain) for the domain, from the control plane's ACME account. */
  certPair(domain: string): Promise<{ certPem: string; keyPem: string }>;
}
