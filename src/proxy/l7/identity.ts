// The caller's tailnet identity as request headers for the backend. Headers a client sends under
// the same names are removed first (every Tailscale-* header), so a backend can trust them.
import type { LocalApi, WhoIs } from "./local-api.ts";

export const IDENTITY_HEADERS = {
  login: "tailscale-user-login",
  name: "tailscale-user-name",
  profilePic: "tailscale-user-profile-pic",
  nodeName: "tailscale-node-name",
  nodeTags: "tailscale-node-tags",
} as const;

/** Every header a client may not set itself. */
export function isReservedHeader(name: string): boolean {
  return name.toLowerCase().startsWith("tailscale-");
}

/** RFC 2047 for values that are not printable ASCII (display names often are not). */
function headerValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?utf-8?b?${Buffer.from(value, "utf8").toString("base64")}?=`;
}

export function identityHeaders(whois: WhoIs | undefined): Record<string, string> {
  if (!whois) return {};
  const headers: Record<string, string> = {};
  const nodeName = whois.Node?.Name?.replace(/\.$/, "");
  if (nodeName) headers[IDENTITY_HEADERS.nodeName] = headerValue(nodeName);
  const tags = whois.Node?.Tags ?? [];
  if (tags.length > 0) {
    // A tagged device acts for its tags, not for the user who created it.
    headers[IDENTITY_HEADERS.nodeTags] = tags.join(",");
    return headers;
  }
  const profile = whois.UserProfile;
  if (profile?.LoginName) headers[IDENTITY_HEADERS.login] = headerValue(profile.LoginName);
  if (profile?.DisplayName) headers[IDENTITY_HEADERS.name] = headerValue(profile.DisplayName);
  if (profile?.ProfilePicURL) headers[IDENTITY_HEADERS.profilePic] = headerValue(profile.ProfilePicURL);
  return headers;
}

/**
 * Whois per caller address, cached briefly: a browser or kubectl opens many connections in a
 * burst. An address whois cannot name is asked again next time (it may have just joined).
 */
export class WhoisCache {
  private readonly localApi: LocalApi;
  private readonly ttlMs: number;
  private readonly entries = new Map<string, { at: number; whois: Promise<WhoIs | undefined> }>();

  constructor(localApi: LocalApi, ttlMs = 10_000) {
    this.localApi = localApi;
    this.ttlMs = ttlMs;
  }

  whois(address: string, port: number): Promise<WhoIs | undefined> {
    const now = Date.now();
    const cached = this.entries.get(address);
    if (cached && now - cached.at < this.ttlMs) return cached.whois;
    const addrPort = address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
    const whois = this.localApi.whois(addrPort).catch(() => undefined);
    if (this.entries.size > 10_000) this.entries.clear();
    this.entries.set(address, { at: now, whois });
    void whois.then((answer) => {
      if (!answer && this.entries.get(address)?.whois === whois) this.entries.delete(address);
    });
    return whois;
  }

  /** The caller's identity as headers for an Ingress backend; {} when unknown. */
  headersFor(address: string, port: number): Promise<Record<string, string>> {
    return this.whois(address, port).then(identityHeaders);
  }
}
