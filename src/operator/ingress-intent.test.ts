import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Ingress, V1Secret, V1Service } from "@kubernetes/client-node";
import { ingressIntent, type IngressExposeIntent } from "./ingress-intent.ts";
import { resolveRoutes } from "./ingress-backends.ts";
import { checkTlsSecret } from "./ingress-tls.ts";
import { chooseCertificateSource } from "./ingress-reconciler.ts";

const options = { defaultTags: ["tag:k8s"] };
const backend = (name: string, port: { number: number } | { name: string }) => ({ service: { name, port } });
function ingress(spec: V1Ingress["spec"], annotations: Record<string, string> = {}, name = "web"): V1Ingress {
  return { apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name, namespace: "apps", annotations }, spec: { ingressClassName: "tailscale", ...spec } };
}
const expose = (i: V1Ingress): IngressExposeIntent => {
  const intent = ingressIntent(i, options);
  if (intent.kind !== "expose") assert.fail(JSON.stringify(intent));
  return intent;
};

describe("ingressIntent", () => {
  it("claims only class tailscale without a ProxyGroup", () => {
    assert.equal(ingressIntent(ingress({ ingressClassName: "nginx", defaultBackend: backend("a", { number: 80 }) }), options).kind, "ignore");
    assert.equal(ingressIntent(ingress({ defaultBackend: backend("a", { number: 80 }) }, { "tailscale.com/proxy-group": "pg" }), options).kind, "ignore");
  });

  it("takes the hostname from the annotation, else the first TLS host's first label, else <ns>-<name>-ingress", () => {
    assert.equal(expose(ingress({ tls: [{ hosts: ["foo.example.com"] }], defaultBackend: backend("a", { number: 80 }) })).hostname, "foo");
    assert.equal(expose(ingress({ defaultBackend: backend("a", { number: 80 }) })).hostname, "apps-web-ingress");
    assert.equal(expose(ingress({ tls: [{ hosts: ["foo"] }], defaultBackend: backend("a", { number: 80 }) }, { "tailscale.com/hostname": "bar" })).hostname, "bar");
  });

  it("reads the Secret, Funnel, redirect and tags", () => {
    const intent = expose(ingress({ tls: [{ hosts: ["foo"], secretName: "foo-tls" }], defaultBackend: backend("a", { number: 80 }) }, { "tailscale.com/funnel": "true", "tailscale.com/http-redirect": "true", "tailscale.com/tags": "tag:a, tag:b" }));
    assert.equal(intent.secretName, "foo-tls");
    assert.equal(intent.funnel, true);
    assert.equal(intent.httpRedirect, true);
    assert.deepEqual(intent.tags, ["tag:a", "tag:b"]);
  });

  it("turns paths into backends: defaultBackend at /, ImplementationSpecific as Prefix, other hosts ignored", () => {
    const intent = expose(ingress({
      tls: [{ hosts: ["foo"] }],
      defaultBackend: backend("d", { number: 80 }),
      rules: [
        { http: { paths: [{ path: "/api", pathType: "ImplementationSpecific", backend: backend("a", { name: "http" }) }, { path: "/x", pathType: "Exact", backend: backend("b", { number: 8080 }) }] } },
        { host: "other.example.com", http: { paths: [{ path: "/o", pathType: "Prefix", backend: backend("o", { number: 80 }) }] } },
      ],
    }));
    assert.deepEqual(intent.backends, [
      { path: "/", pathType: "Prefix", service: "d", port: { number: 80 } },
      { path: "/api", pathType: "Prefix", service: "a", port: { name: "http" } },
      { path: "/x", pathType: "Exact", service: "b", port: { number: 8080 } },
    ]);
    assert.deepEqual(intent.ignoredHosts, ["other.example.com"]);
  });

  it("rejects what cannot be served, naming the problem", () => {
    const invalid = (i: V1Ingress): string => {
      const intent = ingressIntent(i, options);
      if (intent.kind !== "invalid") assert.fail(JSON.stringify(intent));
      return intent.message;
    };
    assert.match(invalid(ingress({})), /no backend/);
    assert.match(invalid(ingress({ defaultBackend: backend("a", { number: 80 }) }, {}, "a-name-that-is-far-too-long-to-be-a-dns-label-for-any-tailnet-device")), /default hostname .* not a valid DNS label/);
    assert.match(invalid(ingress({ tls: [{ hosts: ["*.example.com"] }], defaultBackend: backend("a", { number: 80 }) })), /spec.tls\[0\].hosts\[0\]/);
    assert.match(invalid(ingress({ defaultBackend: { resource: { apiGroup: "x", kind: "Bucket", name: "b" } } })), /only Service backends/);
    assert.match(invalid(ingress({ defaultBackend: backend("a", { number: 80 }) }, { "tailscale.com/tags": "k8s" })), /tags/);
  });
});

describe("resolveRoutes", () => {
  const service = (name: string, spec: NonNullable<V1Service["spec"]>): [string, V1Service] => [name, { metadata: { name }, spec }];
  const services = new Map([
    service("web", { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80 }, { name: "https", port: 8443 }] }),
    service("v6", { clusterIP: "fd00::10", ports: [{ port: 443 }] }),
    service("headless", { clusterIP: "None", ports: [{ port: 80 }] }),
  ]);
  const ref = (svc: string, port: { number: number } | { name: string }) => ({ path: "/", pathType: "Prefix" as const, service: svc, port });

  it("resolves ports by number or name to ClusterIP URLs, TLS for 443 and https", () => {
    const resolved = resolveRoutes("apps", [ref("web", { name: "http" }), ref("web", { name: "https" }), ref("v6", { number: 443 })], services);
    assert.deepEqual(resolved.ok && resolved.routes.map((r) => r.backend), ["http://10.96.0.10:80", "https://10.96.0.10:8443", "https://[fd00::10]:443"]);
  });

  it("names a missing Service, a headless one and a missing port", () => {
    const message = (r: ReturnType<typeof resolveRoutes>): string => (r.ok ? "" : r.message);
    assert.match(message(resolveRoutes("apps", [ref("nope", { number: 80 })], services)), /apps\/nope .* does not exist/);
    assert.match(message(resolveRoutes("apps", [ref("headless", { number: 80 })], services)), /headless/);
    assert.match(message(resolveRoutes("apps", [ref("web", { number: 81 })], services)), /no port 81 \(it has http\/80, https\/8443\)/);
    assert.match(message(resolveRoutes("apps", [ref("web", { name: "grpc" })], services)), /has no port named "grpc" \(it has/);
  });
});

describe("checkTlsSecret and the certificate source", () => {
  const dir = mkdtempSync(join(tmpdir(), "ingress-tls-"));
  const pem = (name: string): { cert: string; key: string } => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.crt`), "-subj", `/CN=${name}`, "-addext", `subjectAltName=DNS:${name}`, "-days", "1"], { stdio: "ignore" });
    return { cert: readFileSync(join(dir, `${name}.crt`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
  };
  const foo = pem("foo.tailnet.test");
  const bar = pem("bar.tailnet.test");
  rmSync(dir, { recursive: true });
  const secret = (cert: string, key: string, type = "kubernetes.io/tls"): V1Secret => ({ type, data: { "tls.crt": Buffer.from(cert).toString("base64"), "tls.key": Buffer.from(key).toString("base64") } });
  const message = (r: ReturnType<typeof checkTlsSecret>): string => (r.ok ? "" : r.message);

  it("accepts a matching pair for the host, by first label or full name", () => {
    const ok = checkTlsSecret("apps/foo", secret(foo.cert, foo.key), ["foo"]);
    assert.ok(ok.ok);
    assert.deepEqual(ok.pair.names, ["foo.tailnet.test"]);
    assert.ok(checkTlsSecret("apps/foo", secret(foo.cert, foo.key), ["foo.tailnet.test"]).ok);
    assert.ok(new X509Certificate(foo.cert).checkHost("foo.tailnet.test"));
  });

  it("names a missing, mistyped, malformed, mismatched or other-name Secret", () => {
    assert.match(message(checkTlsSecret("apps/x", undefined, ["foo"])), /apps\/x does not exist/);
    assert.match(message(checkTlsSecret("apps/x", secret(foo.cert, foo.key, "Opaque"), ["foo"])), /not kubernetes.io\/tls/);
    assert.match(message(checkTlsSecret("apps/x", secret("garbage", foo.key), ["foo"])), /not a PEM certificate/);
    assert.match(message(checkTlsSecret("apps/x", secret(foo.cert, bar.key), ["foo"])), /not the key of the certificate/);
    assert.match(message(checkTlsSecret("apps/x", secret(bar.cert, bar.key), ["foo"])), /for bar.tailnet.test, not for foo/);
  });

  it("chooses the Secret, then ACME, then the control plane, which Headscale cannot be", () => {
    assert.equal(chooseCertificateSource({ secretName: "s" }, { controlPlane: "headscale", acmeConfigured: false }), "secret");
    assert.equal(chooseCertificateSource({ secretName: undefined }, { controlPlane: "headscale", acmeConfigured: true }), "acme");
    assert.equal(chooseCertificateSource({ secretName: undefined }, { controlPlane: "tailscale", acmeConfigured: false }), "control-plane");
    const none = chooseCertificateSource({ secretName: undefined }, { controlPlane: "headscale", acmeConfigured: false });
    assert.match(typeof none === "string" ? "" : none.unavailable, /Headscale.*secretName.*ACME/);
  });
});
