// An Ingress proxy's upstream: the backend Service of the first matching path, with the caller's
// tailnet identity as Tailscale-* headers (client-sent copies removed first).
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { RoutingTable } from "./routing-table.ts";
import { isReservedHeader } from "./identity.ts";
import { forwardedHeaders, type Decision, type IncomingCall, type UpstreamPolicy } from "./upstream.ts";

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });
// Backends on 443 have cluster certificates, not ours to verify (as Tailscale's operator does).
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, rejectUnauthorized: false });

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
    const secure = backend.protocol === "https:";
    return {
      upstream: {
        origin: backend,
        path: call.path,
        headers: forwardedHeaders(call, isReservedHeader, identity),
        agent: secure ? httpsAgent : httpAgent,
        tls: { rejectUnauthorized: false },
      },
    };
  }
}
