// An Ingress proxy's upstream: the backend Service of the first matching path, with the caller's
// tailnet identity as Tailscale-* headers (client-sent copies removed first).
import type { RoutingTable } from "./routing-table.ts";
import { isReservedHeader } from "./identity.ts";
import { upstreamPool } from "./upstream-pool.ts";
import { forwardedHeaders, type Decision, type IncomingCall, type UpstreamPolicy } from "./upstream.ts";

// Backends on 443 have cluster certificates, not ours to verify (as Tailscale's operator does).
const pool = upstreamPool({ rejectUnauthorized: false });

export class IngressUpstream implements UpstreamPolicy {
  private readonly routes: () => RoutingTable;
  private readonly identity: (address: string, port: number) => Promise<Record<string, string>>;

  constructor(routes: () => RoutingTable, identity: (address: string, port: number) => Promise<Record<string, string>>) {
    this.routes = routes;
    this.identity = identity;
  }

  async decide(call: IncomingCall): Promise<Decision> {
    const route = this.routes().match(call.path);
    if (!route) return { refuse: { status: 404, message: "no Ingress path matches" } };
    const identity = await this.identity(call.remoteAddress, call.remotePort);
    const backend = new URL(route.backend);
    return {
      upstream: {
        origin: backend,
        path: call.path,
        headers: forwardedHeaders(call, isReservedHeader, identity),
        pool,
        tls: { rejectUnauthorized: false },
      },
    };
  }
}
