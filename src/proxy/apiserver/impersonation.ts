// Who a tailnet caller is to the Kubernetes API: the user (their login name; a tagged device's
// MagicDNS name) and groups from the tailnet policy's grants with the capability
// tailscale.com/cap/kubernetes ({"impersonate": {"groups": [...]}}), as Tailscale's operator
// does, so that policies written for it keep their meaning. A tagged device with no such grant
// acts with its tags as groups.
import type { WhoIs } from "../l7/local-api.ts";

export const KUBERNETES_CAPABILITIES = ["tailscale.com/cap/kubernetes", "https://tailscale.com/cap/kubernetes"] as const;

export interface Impersonation {
  readonly user: string;
  readonly groups: readonly string[];
}

function grantedGroups(capMap: WhoIs["CapMap"]): string[] {
  const groups: string[] = [];
  for (const capability of KUBERNETES_CAPABILITIES) {
    for (const rule of capMap?.[capability] ?? []) {
      // Rules are the policy author's JSON: take what has the documented shape, ignore the rest.
      const listed = (rule as { impersonate?: { groups?: unknown } } | null)?.impersonate?.groups;
      if (!Array.isArray(listed)) continue;
      for (const group of listed) if (typeof group === "string" && group && !groups.includes(group)) groups.push(group);
    }
  }
  return groups;
}

/** The identity to impersonate, or why there is none (an unknown caller is refused, never passed). */
export function impersonationFor(whois: WhoIs | undefined): Impersonation | { readonly refused: string } {
  if (!whois?.Node) return { refused: "the tailnet does not know this caller's address" };
  const groups = grantedGroups(whois.CapMap);
  const tags = whois.Node.Tags ?? [];
  if (tags.length > 0) {
    const name = whois.Node.Name?.replace(/\.$/, "");
    if (!name) return { refused: "the tailnet gave no name for this tagged device" };
    return { user: name, groups: groups.length > 0 ? groups : [...tags] };
  }
  const login = whois.UserProfile?.LoginName;
  if (!login) return { refused: "the tailnet gave no login name for this caller" };
  return { user: login, groups };
}

/** Headers a caller may not send to the API server through the proxy in auth mode. */
export function isCallerCredential(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === "authorization" || lower.startsWith("impersonate-");
}
