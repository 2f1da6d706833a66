// The cluster's DNS domain: an egress Service's ExternalName must be fully qualified, and the
// domain is a kubelet setting the API does not expose. The kubelet writes it into every pod's
// resolv.conf search list as "svc.<domain>", which is where the operator reads it.
import { readFileSync } from "node:fs";

const DEFAULT_DOMAIN = "cluster.local";

/** The domain from resolv.conf's search line ("<ns>.svc.<domain> svc.<domain> <domain>"). */
export function domainFromResolvConf(text: string): string | undefined {
  const search = text.split("\n").map((line) => line.trim().split(/\s+/)).find((words) => words[0] === "search");
  const svc = search?.slice(1).find((name) => name.startsWith("svc."));
  return svc?.slice("svc.".length).replace(/\.$/, "") || undefined;
}

export function clusterDomain(configured: string | undefined, resolvConf = "/etc/resolv.conf"): string {
  if (configured) return configured;
  try {
    return domainFromResolvConf(readFileSync(resolvConf, "utf8")) ?? DEFAULT_DOMAIN;
  } catch {
    return DEFAULT_DOMAIN;
  }
}
