// Whether the pod's network namespace has a default route. tailscaled applies UDP GRO forwarding
// to "the default-route interface"; without a default route (pods of a cluster with no way out,
// like the sandbox's) it names none and the kernel answers "no such device", so the proxy says
// why instead of passing that on.
import { readFile } from "node:fs/promises";

/** /proc/net/route: a line whose Destination and Mask are 00000000. */
export function hasDefaultRouteV4(procNetRoute: string): boolean {
  return procNetRoute.split("\n").slice(1).some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1] === "00000000" && fields[7] === "00000000";
  });
}

/** /proc/net/ipv6_route: destination ::, prefix length 0, not the unreachable route of lo. */
export function hasDefaultRouteV6(procNetIpv6Route: string): boolean {
  return procNetIpv6Route.split("\n").some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[0] === "0".repeat(32) && fields[1] === "00" && fields[9] !== "lo";
  });
}

export async function hasDefaultRoute(read: (path: string) => Promise<string> = (path) => readFile(path, "utf8")): Promise<boolean> {
  const [v4, v6] = await Promise.all([read("/proc/net/route").catch(() => ""), read("/proc/net/ipv6_route").catch(() => "")]);
  return hasDefaultRouteV4(v4) || hasDefaultRouteV6(v6);
}
