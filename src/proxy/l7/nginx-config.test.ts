import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { IngressRoute } from "../../shared/ingress-config.ts";
import { RoutingTable } from "./routing-table.ts";
import { locationsFor, nginxConfig, quoted, WHOIS_LOCATION } from "./nginx-config.ts";

const routes: IngressRoute[] = [
  { pathType: "Prefix", path: "/", backend: "http://10.96.0.1:80" },
  { pathType: "Prefix", path: "/api", backend: "http://10.96.0.2:8080" },
  { pathType: "Prefix", path: "/api/v2/", backend: "http://10.96.0.3:80" },
  { pathType: "Exact", path: "/api/health", backend: "http://10.96.0.4:80" },
  { pathType: "Prefix", path: "/api/health", backend: "https://10.96.0.5:443" },
];
const options = { runDir: "/run/l7", httpsPort: 443, pemFile: "/run/l7/tls.pem", whoisSocket: "/run/l7/whois.sock" };

/** nginx's choice among `=` and plain prefix locations (the backend's origin): an exact match, else the longest prefix. */
function nginxPick(locations: ReturnType<typeof locationsFor>, path: string): string | undefined {
  const exact = locations.find((l) => l.match === "=" && l.path === path);
  if (exact) return exact.origin;
  return locations.filter((l) => l.match === "prefix" && path.startsWith(l.path)).sort((a, b) => b.path.length - a.path.length)[0]?.origin;
}

describe("nginxConfig", () => {
  it("routes every path to the backend the Ingress API's matching picks", () => {
    const route = (pathType: "Exact" | "Prefix", path: string, host: string): IngressRoute => ({ pathType, path, backend: `http://${host}:80` });
    const tables: IngressRoute[][] = [
      routes,
      routes.slice(1),
      [...routes].reverse(),
      [route("Exact", "/only", "10.96.0.9")],
      // A Prefix rule with a trailing slash is the longer path: RoutingTable tries it before an
      // Exact or a Prefix rule without one.
      [route("Exact", "/api", "10.96.0.1"), route("Prefix", "/api/", "10.96.0.2")],
      [route("Prefix", "/api", "10.96.0.1"), route("Prefix", "/api/", "10.96.0.2")],
      [route("Prefix", "/api/", "10.96.0.2"), route("Prefix", "/api", "10.96.0.1"), route("Exact", "/api", "10.96.0.3")],
    ];
    for (const table of tables) {
      const locations = locationsFor(table);
      const matcher = new RoutingTable(table);
      for (const path of ["/", "/x", "/api", "/api/", "/apis", "/api/users", "/api/v2", "/api/v2/x", "/api/v20", "/api/health", "/api/health/deep", "/only", "/only/x"]) {
        const expected = matcher.match(path)?.backend;
        assert.equal(nginxPick(locations, path), expected === undefined ? undefined : new URL(expected).origin, `${path} in ${JSON.stringify(table.map((r) => `${r.pathType} ${r.path}`))}`);
      }
    }
  });

  it("keeps connections alive to each backend once, by scheme", () => {
    const conf = nginxConfig(routes, options);
    assert.equal(conf.match(/^ {2}upstream /gm)?.length, 5);
    assert.match(conf, /upstream backend_4 \{ server 10\.96\.0\.5:443; keepalive 16; keepalive_timeout 4s; \}/);
    assert.match(conf, /upstream backend_0 \{ server 10\.96\.0\.1:80; keepalive 16; keepalive_timeout 4s; \}/, "a default port written out");
    assert.match(conf, /location "\/api\/health\/" \{\n {6}proxy_pass https:\/\/backend_4;/);
    assert.match(conf, /location = "\/api\/health" \{\n {6}proxy_pass http:\/\/backend_3;/, "the Exact rule keeps the exact location");
  });

  it("bounds what a stuck identity lookup or a reload can hold, and ignores a backend's X-Accel-* headers", () => {
    const conf = nginxConfig(routes, options);
    assert.match(conf, /^worker_shutdown_timeout 60s;$/m);
    assert.match(conf, /location = \/_tailnet_whois \{[^}]*proxy_read_timeout 5s;/);
    assert.match(conf, /^ {2}proxy_ignore_headers X-Accel-Redirect X-Accel-Buffering X-Accel-Limit-Rate X-Accel-Charset X-Accel-Expires;$/m);
    assert.match(conf, /location = \/_tailnet_whois \{[^}]*proxy_ignore_headers X-Accel-Redirect X-Accel-Buffering X-Accel-Limit-Rate X-Accel-Charset;/, "the whois endpoint's X-Accel-Expires is honoured");
  });

  it("answers 404 where no rule covers /, and not where one does", () => {
    assert.match(nginxConfig(routes.slice(1), options), /location \/ \{ return 404; \}/);
    assert.doesNotMatch(nginxConfig(routes, options), /return 404/);
  });

  it("sets the identity headers from the whois answer, replacing the client's, and X-Forwarded-* from the connection", () => {
    const conf = nginxConfig(routes, options);
    for (const header of ["tailscale-user-login", "tailscale-user-name", "tailscale-user-profile-pic", "tailscale-node-name", "tailscale-node-tags"]) {
      const variable = `$ts_${header.replaceAll("-", "_")}`;
      assert.ok(conf.includes(`auth_request_set ${variable} $upstream_http_${header.replaceAll("-", "_")};`), header);
      assert.ok(conf.includes(`proxy_set_header ${header} ${variable};`), header);
    }
    assert.match(conf, /proxy_set_header X-Forwarded-For \$remote_addr;/);
    // The whois location neither asks itself nor inherits the identity headers.
    assert.match(conf, /location = \/_tailnet_whois \{\n {6}internal;\n {6}auth_request off;/);
    assert.match(conf, /proxy_cache_key \$remote_addr; proxy_cache_valid 200 10s;/);
  });

  it("loads the certificate and its key from one file at each handshake, so a rotation needs no reload", () => {
    const conf = nginxConfig(routes, options);
    assert.match(conf, /map \$ssl_server_name \$tls_pem \{ default "\/run\/l7\/tls.pem"; \}/);
    assert.match(conf, /ssl_certificate \$tls_pem;\n {4}ssl_certificate_key \$tls_pem;/);
  });

  it("listens on the addresses given, IPv6 in brackets, and on every address without them", () => {
    const conf = nginxConfig(routes, { ...options, addresses: ["100.64.0.7", "fd7a:115c:a1e0::7"] });
    assert.deepEqual([...conf.matchAll(/ listen (.*);/g)].map((m) => m[1]), ["100.64.0.7:443 ssl http2", "[fd7a:115c:a1e0::7]:443 ssl http2"]);
    assert.deepEqual([...nginxConfig(routes, options).matchAll(/ listen (.*);/g)].map((m) => m[1]), ["443 ssl http2"]);
    assert.throws(() => nginxConfig(routes, { ...options, addresses: ["localhost; include /etc"] }), /not an IP address/);
  });

  it("removes every Tailscale-* header a client sends where the headers-more module is given, before the identity is set", () => {
    const conf = nginxConfig(routes, { ...options, headersMoreModule: "/usr/lib/nginx/modules/more.so" });
    assert.match(conf, /^load_module "\/usr\/lib\/nginx\/modules\/more.so";\n/);
    assert.match(conf, /more_clear_input_headers "Tailscale-\*";\n {4}auth_request /);
    assert.doesNotMatch(nginxConfig(routes, options), /load_module|more_clear/);
  });

  it("gives proxied locations no headers of their own, so they inherit the identity and X-Forwarded-* ones", () => {
    const conf = nginxConfig(routes, options);
    const proxied = [...conf.matchAll(/ {4}location (?!= \/_tailnet_whois)[^{]*\{\n((?: {6}.*\n)*) {4}\}/g)].map((m) => m[1] ?? "");
    assert.equal(proxied.length, locationsFor(routes).length);
    for (const body of proxied) assert.doesNotMatch(body, /proxy_set_header|auth_request/);
  });

  it("does not route the identity subrequest's path, which stays internal", () => {
    const conf = nginxConfig([...routes, { pathType: "Exact", path: WHOIS_LOCATION, backend: "http://10.96.0.7:80" }, { pathType: "Prefix", path: WHOIS_LOCATION, backend: "http://10.96.0.8:80" }], options);
    assert.equal(conf.match(/location = "?\/_tailnet_whois"? \{/g)?.length, 1, "one location = /_tailnet_whois: nginx refuses a duplicate");
    assert.match(conf, /location "\/_tailnet_whois\/" \{/, "the Prefix rule keeps the paths below it");
    // Only the caller's address reaches the identity endpoint.
    assert.match(conf, /proxy_pass_request_headers off; proxy_set_header x-caller \$remote_addr; proxy_set_header x-caller-port \$remote_port;/);
  });

  it("quotes what it is given", () => {
    assert.equal(quoted('/a "b"\\c$d'), '"/a \\"b\\"\\\\c$d"');
    assert.throws(() => quoted("/a\nb"), /control character/);
  });

  it("writes paths as nginx compares them (decoded), and leaves out a rule no location can express", () => {
    const conf = nginxConfig([
      { pathType: "Prefix", path: "/caf%C3%A9", backend: "http://10.0.0.1:80" },
      { pathType: "Exact", path: "/x;%0A}", backend: "http://10.0.0.2:80" },
      { pathType: "Prefix", path: "/y\n}", backend: "http://10.0.0.2:80" },
      { pathType: "Exact", path: "/100%", backend: "http://10.0.0.3:80" },
    ], options);
    assert.match(conf, /location = "\/café" \{/);
    assert.match(conf, /location = "\/100%" \{/, "not percent-encoding: as written");
    assert.doesNotMatch(conf, /\/x;|\/y/, "a control character routes nothing");
    assert.doesNotThrow(() => nginxConfig([{ pathType: "Prefix", path: "/x;\n}", backend: "http://10.0.0.1:80" }], options));
    assert.throws(() => nginxConfig([{ pathType: "Prefix", path: "/", backend: "http://a;b:80" }], options), /not an address/);
  });
});
