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

export interface NginxOptions {
  /** Directory for nginx's pid file, temp files and the identity cache. */
  readonly runDir: string;
  readonly httpsPort: number;
  /** Certificate and key files, read at each handshake, so that replacing them needs no reload. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The supervisor's identity endpoint (unix socket): answers the caller's identity as headers. */
  readonly whoisSocket: string;
  /** nginx's worker user; the pod's own user where unset. */
  readonly user?: string;
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
  readonly upstream: string;
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

export function locationsFor(routes: readonly IngressRoute[], upstreams: ReadonlyMap<string, string>): Location[] {
  const exact = new Map<string, Location>();
  const prefix = new Map<string, Location>();
  const upstreamOf = (route: IngressRoute): string => upstreams.get(new URL(route.backend).origin) ?? "";
  // Exact rules first, so that they keep `location = /p` against a Prefix rule of the same path.
  for (const route of [...routes].sort((a, b) => (a.pathType === "Exact" ? 0 : 1) - (b.pathType === "Exact" ? 0 : 1))) {
    const upstream = upstreamOf(route);
    if (route.pathType === "Exact") {
      if (!exact.has(route.path)) exact.set(route.path, { match: "=", path: route.path, upstream });
      continue;
    }
    const trimmed = route.path.replace(/\/+$/, "");
    if (trimmed === "") {
      if (!prefix.has("/")) prefix.set("/", { match: "prefix", path: "/", upstream });
      continue;
    }
    if (!exact.has(trimmed)) exact.set(trimmed, { match: "=", path: trimmed, upstream });
    if (!prefix.has(`${trimmed}/`)) prefix.set(`${trimmed}/`, { match: "prefix", path: `${trimmed}/`, upstream });
  }
  return [...exact.values(), ...prefix.values()];
}

/** host:port with the port always written: URL drops a scheme's default, nginx would assume 80. */
function hostPort(origin: string): string {
  const url = new URL(origin);
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

const IDENTITY = Object.values(IDENTITY_HEADERS);
const variableOf = (header: string): string => `$ts_${header.replaceAll("-", "_")}`;

function proxiedLocation(location: Location, scheme: string): string[] {
  return [
    `    location ${location.match === "=" ? "= " : ""}${quoted(location.path)} {`,
    `      proxy_pass ${scheme}://${location.upstream};`,
    "    }",
  ];
}

/** The whole nginx.conf for one Ingress proxy. */
export function nginxConfig(routes: readonly IngressRoute[], options: NginxOptions): string {
  const upstreams = upstreamNames(routes);
  const schemes = new Map([...upstreams].map(([origin, name]) => [name, new URL(origin).protocol.replace(":", "")]));
  const locations = locationsFor(routes, upstreams);
  const dir = options.runDir;
  return [
    ...(options.user === undefined ? [] : [`user ${options.user};`]),
    // One worker: a proxy pod asks for a sliver of a CPU, and one worker is the engine the bench measures.
    "worker_processes 1;",
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
    "  proxy_read_timeout 1h; proxy_send_timeout 1h;",
    "  client_max_body_size 0;",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `  ${kind}_temp_path ${quoted(`${dir}/tmp/${kind}`)};`),
    `  proxy_cache_path ${quoted(`${dir}/whois-cache`)} levels=1 keys_zone=whois:1m inactive=60s;`,
    // A variable path is read at each handshake: a rotated certificate without a reload, which
    // would close the idle keep-alive connections of the old worker.
    `  map $ssl_server_name $tls_cert { default ${quoted(options.certFile)}; }`,
    `  map $ssl_server_name $tls_key { default ${quoted(options.keyFile)}; }`,
    "  map $http_upgrade $connection_upgrade { default upgrade; \"\" \"\"; }",
    ...[...upstreams].map(([origin, name]) => `  upstream ${name} { server ${hostPort(origin)}; keepalive 16; }`),
    "  server {",
    `    listen ${String(options.httpsPort)} ssl http2;`,
    "    ssl_certificate $tls_cert;",
    "    ssl_certificate_key $tls_key;",
    // The caller's identity, asked once per caller address per 10 s (WhoisCache's lifetime).
    // Caching needs buffering: nginx caches no response it does not buffer.
    "    location = /_tailnet_whois {",
    "      internal;",
    "      auth_request off;",
    `      proxy_pass http://unix:${options.whoisSocket}:/whois;`,
    "      proxy_pass_request_body off; proxy_set_header Content-Length \"\"; proxy_set_header X-Caller $remote_addr;",
    "      proxy_buffering on; proxy_cache whois; proxy_cache_key $remote_addr; proxy_cache_valid 200 10s;",
    "    }",
    "    auth_request /_tailnet_whois;",
    ...IDENTITY.map((h) => `    auth_request_set ${variableOf(h)} $upstream_http_${h.replaceAll("-", "_")};`),
    // Set here, each replaces the client's copy of the header; an empty value sends none.
    ...IDENTITY.map((h) => `    proxy_set_header ${h} ${variableOf(h)};`),
    // The client's own Host, as it sent it (HTTP/2: its :authority).
    "    proxy_set_header Host $http_host;",
    "    proxy_set_header Upgrade $http_upgrade;",
    "    proxy_set_header Connection $connection_upgrade;",
    // The tailnet is the edge: nobody in front of the proxy is trusted to have set these.
    "    proxy_set_header X-Forwarded-For $remote_addr;",
    "    proxy_set_header X-Forwarded-Proto https;",
    "    proxy_set_header X-Forwarded-Host $http_host;",
    ...locations.flatMap((location) => proxiedLocation(location, schemes.get(location.upstream) ?? "http")),
    ...(locations.some((l) => l.match === "prefix" && l.path === "/") ? [] : ["    location / { return 404; }"]),
    "  }",
    "}",
    "",
  ].join("\n");
}
