// Where an L7 proxy sends a request, and with which headers: the one decision that differs
// between an Ingress proxy (routes by path, adds the caller's identity) and the API server proxy
// (one upstream, the caller's identity as impersonation). L7Server does the rest the same way.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { UpstreamPool } from "./upstream-pool.ts";

export interface IncomingCall {
  readonly method: string;
  /** Path and query, as the client sent them. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The Host (HTTP/1.1) or :authority (HTTP/2) the client asked for. */
  readonly host: string;
  /** The caller's address on the tailnet: the connection's source, never a header. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Whether it came over TLS (X-Forwarded-Proto). */
  readonly secure: boolean;
}

export interface Upstream {
  /** Scheme, host and port of the upstream (its path is ignored). */
  readonly origin: URL;
  /** Path and query of the upstream request, kept apart from origin so that no path can change the host. */
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  /** Keep-alive connections for ordinary requests. */
  readonly pool: UpstreamPool;
  /** TLS settings for an upgraded connection, which gets a connection of its own. */
  readonly tls: { readonly ca?: string; readonly rejectUnauthorized: boolean };
}

export type Decision = { readonly upstream: Upstream } | { readonly refuse: { readonly status: number; readonly message: string } };

export interface UpstreamPolicy {
  decide(call: IncomingCall): Promise<Decision>;
}

/** Hop-by-hop headers (RFC 9110 7.6.1) and HTTP/2 pseudo-headers never cross the proxy. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "proxy-authorization", "proxy-authenticate", "http2-settings", "host"]);

function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  return new Set((headers.connection ?? "").toLowerCase().split(",").map((h) => h.trim()).filter(Boolean));
}

/**
 * The request headers an upstream gets: the client's end-to-end headers minus those `drop`
 * names, then X-Forwarded-* (the tailnet is the edge: nobody in front of this proxy is trusted to
 * have set them), then `add`, which wins over anything the client sent.
 */
export function forwardedHeaders(call: IncomingCall, drop: (name: string) => boolean, add: Readonly<Record<string, string | string[]>>): OutgoingHttpHeaders {
  const listed = connectionListed(call.headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(call.headers)) {
    if (value === undefined || name.startsWith(":") || HOP_BY_HOP.has(name) || listed.has(name) || drop(name)) continue;
    out[name] = value;
  }
  if (call.headers.te === "trailers") out["te"] = "trailers";
  out["host"] = call.host;
  out["x-forwarded-for"] = call.remoteAddress;
  out["x-forwarded-proto"] = call.secure ? "https" : "http";
  out["x-forwarded-host"] = call.host;
  return { ...out, ...add };
}

/** The response headers a client gets: the upstream's end-to-end headers. */
export function returnedHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}
