import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { IngressRoute } from "../../shared/ingress-config.ts";
import { RoutingTable } from "./routing-table.ts";
import { locationsFor, nginxConfig, quoted } from "./nginx-config.ts";

const routes: IngressRoute[] = [
  { pathType: "Prefix", path: "/", backend: "http://10.96.0.1:80" },
  { pathType: "Prefix", path: "/api", backend: "http://10.96.0.2:8080" },
  { pathType: "Prefix", path: "/api/v2/", backend: "http://10.96.0.3:80" },
  { pathType: "Exact", path: "/api/health", backend: "http://10.96.0.4:80" },
  { pathType: "Prefix", path: "/api/health", backend: "https://10.96.0.5:443" },
];
const options = { runDir: "/run/l7", httpsPort: 443, certFile: "/run/l7/tls.crt", keyFile: "/run/l7/tls.key", whoisSocket: "/run/l7/whois.sock" };

/** nginx's choice among `=` and plain prefix locations: an exact match, else the longest prefix. */
function nginxPick(locations: ReturnType<typeof locationsFor>, path: string): string | undefined {
  const exact = locations.find((l) => l.match === "=" && l.path === path);
  if (exact) return exact.upstream;
  return locations.filter((l) => l.match === "prefix" && path.startsWith(l.path)).sort((a, b) => b.path.length - a.path.length)[0]?.upstream;
}

describe("nginxConfig", () => {
  it("routes every path to the backend the Ingress API's matching picks", () => {
    for (const table of [routes, routes.slice(1), [...routes].reverse(), [{ pathType: "Exact" as const, path: "/only", backend: "http://10.96.0.9:80" }]]) {
      const upstreams = new Map(table.map((r, i) => [new URL(r.backend).origin, `u${String(i)}`]));
      const locations = locationsFor(table, upstreams);
      const byUpstream = new Map([...upstreams].map(([origin, name]) => [name, origin]));
      const matcher = new RoutingTable(table);
      for (const path of ["/", "/x", "/api", "/api/", "/apis", "/api/users", "/api/v2", "/api/v2/x", "/api/v20", "/api/health", "/api/health/deep", "/only", "/only/x"]) {
        const expected = matcher.match(path)?.backend;
        const picked = nginxPick(locations, path);
        assert.equal(picked === undefined ? undefined : byUpstream.get(picked), expected === undefined ? undefined : new URL(expected).origin, `${path} in ${JSON.stringify(table.map((r) => `${r.pathType} ${r.path}`))}`);
      }
    }
  });

  it("keeps connections alive to each backend once, by scheme", () => {
    const conf = nginxConfig(routes, options);
    assert.equal(conf.match(/^ {2}upstream /gm)?.length, 5);
    assert.match(conf, /upstream backend_4 \{ server 10\.96\.0\.5:443; keepalive 16; \}/);
    assert.match(conf, /upstream backend_0 \{ server 10\.96\.0\.1:80; keepalive 16; \}/, "a default port written out");
    assert.match(conf, /location "\/api\/health\/" \{\n {6}proxy_pass https:\/\/backend_4;/);
    assert.match(conf, /location = "\/api\/health" \{\n {6}proxy_pass http:\/\/backend_3;/, "the Exact rule keeps the exact location");
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

  it("loads the certificate at each handshake, so a rotation needs no reload", () => {
    const conf = nginxConfig(routes, options);
    assert.match(conf, /map \$ssl_server_name \$tls_cert \{ default "\/run\/l7\/tls.crt"; \}/);
    assert.match(conf, /ssl_certificate \$tls_cert;/);
  });

  it("quotes what it is given", () => {
    assert.equal(quoted('/a "b"\\c$d'), '"/a \\"b\\"\\\\c$d"');
    assert.throws(() => quoted("/a\nb"), /control character/);
    assert.throws(() => nginxConfig([{ pathType: "Prefix", path: "/x;\n}", backend: "http://10.0.0.1:80" }], options), /control character/);
  });
});
