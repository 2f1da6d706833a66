// The Ingress routing table as an nginx configuration: the data plane ADR 0035 proposes, where the
// supervisor stays the control plane (certificates, identity, the routing table) and nginx carries
// the bytes. A pure function, so that what nginx is told can be tested without nginx.
//
// The Ingress API's matching (routing-table.ts) in nginx's terms:
// - Exact /p        -> `location = /p`
// - Prefix /p       -> `location = /p` and `location /p/` (whole path elements: /p and /p/x, not /px)
// - Prefix /        -> `location /`
// nginx takes an exact location first, then the longest prefix: the Ingress rule of longest path
// wins, Exact before Prefix at equal length. Where an Exact and a Prefix rule share a path, the
// Exact rule keeps `location = /p`. A request no rule matches gets a 404.
import type { IngressRoute } from "../../shared/ingress-config.ts";
import { IDENTITY_HEADERS } from "./identity.ts";
import { byPrecedence } from "./routing-table.ts";
import { CALLER_HEADERS } from "./whois-endpoint.ts";

export interface NginxOptions {
  /** Directory for nginx's pid file, temp files and the identity cache. */
  readonly runDir: string;
  readonly httpsPort: number;
  /**
   * The addresses to listen on: the device's tailnet IPs, so that HTTPS is not served on the pod's
   * cluster IP and each connection's source is the caller. Every address where absent.
   */
  readonly addresses?: readonly string[];
  /**
   * The certificate chain and its key in one PEM file, read at each handshake, so that replacing
   * it (by a rename) needs no reload. One file: with two, a handshake between the two renames
   * would pair a new certificate with the old key.
   */
  readonly pemFile: string;
  /** The supervisor's identity endpoint (unix socket): answers the caller's identity as headers. */
  readonly whoisSocket: string;
  /** nginx's worker user; the pod's own user where unset. */
  readonly user?: string;
  /**
   * The headers-more module (Debian's libnginx-mod-http-headers-more-filter), which removes every
   * Tailscale-* header a client sends, as the identity headers' contract says (identity.ts);
   * without it only the identity headers' own names are replaced.
   */
  readonly headersMoreModule?: string;
}

/**
 * A string as one nginx configuration token: quoted, quotes and backslashes escaped. A `$` stays:
 * a location's path is literal, and the file paths are the supervisor's own, never with a `$`.
 */
export function quoted(value: string): string {
  if ([...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) throw new Error(`control character in nginx value ${JSON.stringify(value)}`);
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

interface Location {
  readonly match: "=" | "prefix";
  readonly path: string;
  /** The backend's origin (scheme://host:port); its upstream block is named in nginxConfig. */
  readonly origin: string;
}

/** Each distinct backend origin gets an upstream block (nginx keeps connections alive only to those). */
function upstreamNames(routes: readonly IngressRoute[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const route of routes) {
    const origin = new URL(route.backend).origin;
    if (!names.has(origin)) names.set(origin, `backend_${String(names.size)}`);
  }
  return names;
}

/**
 * A route's path as nginx compares it: nginx matches locations against the request's decoded
 * path, so `/caf%C3%A9` must be written `/café`. A path that decodes to a control character
 * cannot be written in nginx's configuration, and no client sends one raw: it routes nothing.
 */
function locationPath(path: string): string | undefined {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // Not valid percent-encoding: nginx leaves such a sequence as it is, and so does the match.
  }
  return [...decoded].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) ? undefined : decoded;
}

/** The identity subrequest's location: an Ingress path that is exactly this is not routed. */
export const WHOIS_LOCATION = "/_tailnet_whois";

/**
 * nginx locations for the routes. Each route claims its locations in RoutingTable's order, and a
 * location already claimed stays with the route before it: the route RoutingTable tries first.
 */
export function locationsFor(routes: readonly IngressRoute[]): Location[] {
  const claimed = new Map<string, Location>();
  const claim = (location: Location): void => {
    const key = `${location.match} ${location.path}`;
    if (!claimed.has(key) && !(location.match === "=" && location.path === WHOIS_LOCATION)) claimed.set(key, location);
  };
  for (const route of [...routes].sort(byPrecedence)) {
    const origin = new URL(route.backend).origin;
    const path = locationPath(route.path);
    if (path === undefined) continue;
    if (route.pathType === "Exact") {
      claim({ match: "=", path, origin });
      continue;
    }
    const trimmed = path.replace(/\/+$/, "");
    if (trimmed !== "") claim({ match: "=", path: trimmed, origin });
    claim({ match: "prefix", path: `${trimmed}/`, origin });
  }
  return [...claimed.values()];
}

/** host:port with the port always written: URL drops a scheme's default, nginx would assume 80. */
function hostPort(origin: string): string {
  const url = new URL(origin);
  // The operator writes a ClusterIP; anything else would be written unquoted into the config.
  if (!/^[A-Za-z0-9.\-:[\]]+$/.test(url.hostname)) throw new Error(`backend host ${JSON.stringify(url.hostname)} is not an address`);
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

/** nginx's listen addresses: IPv6 in brackets, the port written out. */
function listenOn(options: NginxOptions): string[] {
  const port = String(options.httpsPort);
  if (!options.addresses?.length) return [port];
  return options.addresses.map((address) => {
    if (!/^[0-9A-Fa-f.:]+$/.test(address)) throw new Error(`listen address ${JSON.stringify(address)} is not an IP address`);
    return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
  });
}

const IDENTITY = Object.values(IDENTITY_HEADERS);
const X_ACCEL = ["X-Accel-Redirect", "X-Accel-Buffering", "X-Accel-Limit-Rate", "X-Accel-Charset", "X-Accel-Expires"];
const variableOf = (header: string): string => `$ts_${header.replaceAll("-", "_")}`;

function proxiedLocation(location: Location, upstreams: ReadonlyMap<string, string>): string[] {
  return [
    `    location ${location.match === "=" ? "= " : ""}${quoted(location.path)} {`,
    `      proxy_pass ${new URL(location.origin).protocol}//${upstreams.get(location.origin) ?? ""};`,
    "    }",
  ];
}

/** The whole nginx.conf for one Ingress proxy. */
export function nginxConfig(routes: readonly IngressRoute[], options: NginxOptions): string {
  const upstreams = upstreamNames(routes);
  const locations = locationsFor(routes);
  const dir = options.runDir;
  return [
    ...(options.headersMoreModule === undefined ? [] : [`load_module ${quoted(options.headersMoreModule)};`]),
    ...(options.user === undefined ? [] : [`user ${options.user};`]),
    // One worker: a proxy pod asks for a sliver of a CPU, and one worker is the engine the bench measures.
    "worker_processes 1;",
    // A reload (a route change) lets the old worker finish its requests, but not hold a WebSocket
    // or a watch open for ever beside the new one.
    "worker_shutdown_timeout 60s;",
    `pid ${quoted(`${dir}/nginx.pid`)};`,
    "error_log stderr warn;",
    "events { worker_connections 4096; }",
    "http {",
    "  access_log off;",
    "  server_tokens off;",
    // Streams (server-sent events, watches) reach the client as they come: no buffering, bodies
    // through one 64 KiB buffer, never a temp file.
    "  proxy_buffering off; proxy_request_buffering off; proxy_buffer_size 64k; proxy_buffers 4 64k; proxy_busy_buffers_size 128k; proxy_max_temp_file_size 0;",
    "  proxy_http_version 1.1;",
    // Streams, long polls and idle WebSockets are the backend's business (as on the L7 server,
    // which has no timeouts): an hour, in each direction.
    "  proxy_read_timeout 1h; proxy_send_timeout 1h; send_timeout 1h; client_body_timeout 1h;",
    "  client_max_body_size 0;",
    // Header lines up to 16 KiB, as node's HTTP server takes them (large cookies, tokens).
    "  large_client_header_buffers 4 16k;",
    // The backend's own Server and Date go to the client, and its X-Accel-* headers mean nothing
    // here (an app written for an nginx in front of it must not trigger internal redirects).
    "  proxy_pass_header Server; proxy_pass_header Date;",
    `  proxy_ignore_headers ${X_ACCEL.join(" ")};`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `  ${kind}_temp_path ${quoted(`${dir}/tmp/${kind}`)};`),
    `  proxy_cache_path ${quoted(`${dir}/whois-cache`)} levels=1 keys_zone=whois:1m inactive=60s;`,
    // A variable path is read at each handshake: a rotated certificate without a reload, which
    // would close the idle keep-alive connections of the old worker.
    `  map $ssl_server_name $tls_pem { default ${quoted(options.pemFile)}; }`,
    "  map $http_upgrade $connection_upgrade { default upgrade; \"\" \"\"; }",
    ...[...upstreams].map(([origin, name]) => `  upstream ${name} { server ${hostPort(origin)}; keepalive 16; keepalive_timeout 4s; }`),
    "  server {",
    ...listenOn(options).map((address) => `    listen ${address} ssl http2;`),
    "    ssl_certificate $tls_pem;",
    "    ssl_certificate_key $tls_pem;",
    // The caller's identity, asked once per caller address per 10 s (WhoisCache's lifetime).
    // Caching needs buffering: nginx caches no response it does not buffer.
    `    location = ${WHOIS_LOCATION} {`,
    "      internal;",
    "      auth_request off;",
    `      proxy_pass http://unix:${options.whoisSocket}:/whois;`,
    // Only the caller's address goes to the endpoint, none of the client's headers (cookies, tokens).
    `      proxy_pass_request_body off; proxy_pass_request_headers off; proxy_set_header ${CALLER_HEADERS.address} $remote_addr; proxy_set_header ${CALLER_HEADERS.port} $remote_port;`,
    "      proxy_buffering on; proxy_cache whois; proxy_cache_key $remote_addr; proxy_cache_valid 200 10s;",
    // X-Accel-Expires: 0 is how the endpoint says "do not cache" (an unknown caller).
    `      proxy_ignore_headers ${X_ACCEL.filter((h) => h !== "X-Accel-Expires").join(" ")};`,
    // LocalAPI answers whois in milliseconds; a request does not wait longer than WhoisCache would.
    "      proxy_connect_timeout 5s; proxy_send_timeout 5s; proxy_read_timeout 5s;",
    "    }",
    // Before the identity is asked (rewrite phase, then access): the client's copies are gone, the
    // proxy's are set below.
    ...(options.headersMoreModule === undefined ? [] : ["    more_clear_input_headers \"Tailscale-*\";"]),
    `    auth_request ${WHOIS_LOCATION};`,
    ...IDENTITY.map((h) => `    auth_request_set ${variableOf(h)} $upstream_http_${h.replaceAll("-", "_")};`),
    // Set here, each replaces the client's copy of the header; an empty value sends none. A
    // location that sets any proxy_set_header of its own inherits none of these (nginx's rule):
    // proxied locations set none (unit test), only the whois location does, on purpose.
    ...IDENTITY.map((h) => `    proxy_set_header ${h} ${variableOf(h)};`),
    // The client's own Host, as it sent it (HTTP/2: its :authority).
    "    proxy_set_header Host $http_host;",
    "    proxy_set_header Upgrade $http_upgrade;",
    "    proxy_set_header Connection $connection_upgrade;",
    // The tailnet is the edge: nobody in front of the proxy is trusted to have set these.
    "    proxy_set_header X-Forwarded-For $remote_addr;",
    "    proxy_set_header X-Forwarded-Proto https;",
    "    proxy_set_header X-Forwarded-Host $http_host;",
    ...locations.flatMap((location) => proxiedLocation(location, upstreams)),
    ...(locations.some((l) => l.match === "prefix" && l.path === "/") ? [] : ["    location / { return 404; }"]),
    "  }",
    "}",
    "",
  ].join("\n");
}
