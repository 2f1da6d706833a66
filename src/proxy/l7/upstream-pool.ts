// Keep-alive connections from an L7 proxy to its upstreams, by origin: undici's Agent. Its HTTP/1.1
// parser hands body chunks on as views of the bytes read, where node's http client copies every
// chunk into a new Buffer; on loopback that is a fifth of the proxy's CPU per MiB (ADR 0030).
// Only the dispatcher is loaded, not undici's index (fetch, WebSocket, caches: 13 MiB more RSS).
import type { Dispatcher } from "undici";
import UndiciAgent from "undici/lib/dispatcher/agent.js";

export type UpstreamPool = Dispatcher;

export interface UpstreamPoolOptions {
  /** CA bundle for https upstreams (the API server's); none: the system's. */
  readonly ca?: string;
  /** false for backends whose certificates are the cluster's business, as the Tailscale operator does. */
  readonly rejectUnauthorized: boolean;
}

export function upstreamPool(options: UpstreamPoolOptions): UpstreamPool {
  return new UndiciAgent({
    // Per origin, as the http.Agent before it had.
    connections: 256,
    // Streams, watches and long polls are the backend's business, not a proxy timeout's.
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { rejectUnauthorized: options.rejectUnauthorized, ...(options.ca === undefined ? {} : { ca: options.ca }) },
  });
}
