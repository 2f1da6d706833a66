import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { V1Service } from "@kubernetes/client-node";
import { egressIntent, isEgressManaged, normalizeFqdn, restorePatch, rewritePatch, wantsEgress, type EgressIntent } from "./egress-intent.ts";

const options = { defaultTags: ["tag:k8s"], defaultLoadBalancer: false };
const PROXY = "ts-db-abc123.tailscale.svc.cluster.local";

function service(annotations: Record<string, string>, spec: V1Service["spec"] = {}): V1Service {
  return {
    metadata: { name: "db", namespace: "apps", annotations, resourceVersion: "7" },
    spec: { type: "ClusterIP", clusterIP: "10.96.0.20", clusterIPs: ["10.96.0.20"], ipFamilies: ["IPv4"], ports: [{ name: "pg", port: 5432, targetPort: 5432 }], ...spec },
  };
}

function egress(svc: V1Service): EgressIntent {
  const intent = egressIntent(svc, options, PROXY);
  assert.equal(intent.kind, "egress", JSON.stringify(intent));
  return intent;
}

describe("egressIntent", () => {
  it("forwards the Service's ports to a tailnet IP, with the default hostname and tags", () => {
    const intent = egress(service({ "tailscale.com/tailnet-ip": "100.64.0.7" }));
    assert.deepEqual(intent.target, { ip: "100.64.0.7" });
    assert.equal(intent.hostname, "apps-db");
    assert.deepEqual(intent.tags, ["tag:k8s"]);
    assert.deepEqual(intent.ports, [{ protocol: "tcp", matchPort: 5432, targetPort: 5432 }]);
    assert.deepEqual(intent.families, [4]);
    assert.equal(intent.rewritten, false);
    assert.equal(intent.originalSpec.clusterIP, undefined, "the allocated ClusterIP is not kept");
    assert.equal(intent.originalSpec.clusterIPs, undefined);
  });

  it("accepts any MagicDNS name (Headscale's base domain too), normalised, and IPv6 targets", () => {
    assert.deepEqual(egress(service({ "tailscale.com/tailnet-fqdn": "NAS.Tailnet.Test." })).target, { fqdn: "nas.tailnet.test" });
    assert.deepEqual(egress(service({ "tailscale.com/tailnet-fqdn": "nas.my-tailnet.ts.net" })).target, { fqdn: "nas.my-tailnet.ts.net" });
    const v6 = egress(service({ "tailscale.com/tailnet-ip": "fd7a:115c:a1e0::5" }));
    assert.deepEqual(v6.families, [6]);
  });

  it("maps UDP ports and numeric targetPorts; a named targetPort falls back to the port", () => {
    const intent = egress(service({ "tailscale.com/tailnet-fqdn": "dns.tailnet.test" }, { ports: [{ port: 53, protocol: "UDP" }, { port: 80, targetPort: 8080 }, { port: 443, targetPort: "https" }] }));
    assert.deepEqual(intent.ports, [
      { protocol: "udp", matchPort: 53, targetPort: 53 },
      { protocol: "tcp", matchPort: 80, targetPort: 8080 },
      { protocol: "tcp", matchPort: 443, targetPort: 443 },
    ]);
  });

  it("rejects both annotations, a non-IP, an address no device can have, a non-DNS name, no ports, SCTP, other Service types, bad tags", () => {
    const cases: [V1Service, RegExp][] = [
      [service({ "tailscale.com/tailnet-ip": "100.64.0.7", "tailscale.com/tailnet-fqdn": "a.b" }), /not both/],
      [service({ "tailscale.com/tailnet-ip": "nas.tailnet.test" }), /is not an IPv4 or IPv6 address/],
      [service({ "tailscale.com/tailnet-ip": "100.64.0.300" }), /is not an IPv4 or IPv6 address/],
      [service({ "tailscale.com/tailnet-ip": "fd7a:115c:a1e0::1%eth0" }), /is not an IPv4 or IPv6 address/],
      ...["127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "::1", "fe80::1", "ff02::1"].map((ip) => [service({ "tailscale.com/tailnet-ip": ip }), /is a loopback, unspecified, multicast or link-local address/] as [V1Service, RegExp]),
      [service({ "tailscale.com/tailnet-fqdn": "nas" }), /is not a full DNS name/],
      [service({ "tailscale.com/tailnet-fqdn": "under_score.tailnet.test" }), /is not a full DNS name/],
      [service({ "tailscale.com/tailnet-fqdn": "" }), /is not a full DNS name/],
      [service({ "tailscale.com/tailnet-ip": "100.64.0.7" }, { ports: [] }), /needs ports/],
      [service({ "tailscale.com/tailnet-ip": "100.64.0.7" }, { ports: [{ port: 9, protocol: "SCTP" }] }), /TCP and UDP only/],
      [service({ "tailscale.com/tailnet-ip": "100.64.0.7" }, { type: "NodePort" }), /ClusterIP or ExternalName/],
      [service({ "tailscale.com/tailnet-ip": "100.64.0.7", "tailscale.com/tags": "k8s" }), /comma-separated list of tags/],
      [service({ "tailscale.com/tailnet-ip": "100.64.0.7", "tailscale.com/hostname": "Bad_Name" }), /not a valid DNS label/],
    ];
    for (const [svc, message] of cases) {
      const intent = egressIntent(svc, options, PROXY);
      assert.equal(intent.kind, "invalid", JSON.stringify(svc.metadata?.annotations));
      assert.match(intent.message, message);
    }
  });

  it("leaves Services without egress annotations, exposed ones and ProxyGroup ones to others", () => {
    assert.equal(egressIntent(service({}), options, PROXY).kind, "none");
    assert.equal(wantsEgress(service({ "tailscale.com/tailnet-ip": "100.64.0.7", "tailscale.com/expose": "true" }), options), false);
    assert.equal(wantsEgress(service({ "tailscale.com/tailnet-ip": "100.64.0.7", "tailscale.com/proxy-group": "pg" }), options), false);
    assert.equal(wantsEgress(service({ "tailscale.com/tailnet-ip": "100.64.0.7" }, { type: "LoadBalancer", loadBalancerClass: "tailscale" }), options), false);
  });

  it("rewrites to an ExternalName keeping the user's spec, recognises its own rewrite, and restores", () => {
    const original = service({ "tailscale.com/tailnet-ip": "100.64.0.7" }, { selector: { app: "db" } });
    const intent = egress(original);
    const patch = rewritePatch(original, intent, PROXY) as { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> };
    assert.equal(patch.spec["type"], "ExternalName");
    assert.equal(patch.spec["externalName"], PROXY);
    assert.equal(patch.spec["selector"], null);
    const saved = patch.metadata.annotations["tailscale.com/egress-original-spec"] ?? "";
    assert.deepEqual(JSON.parse(saved), { type: "ClusterIP", ipFamilies: ["IPv4"], ports: [{ name: "pg", port: 5432, targetPort: 5432 }], selector: { app: "db" } });

    const rewritten: V1Service = {
      metadata: { ...original.metadata, annotations: { ...original.metadata?.annotations, "tailscale.com/egress-original-spec": saved } },
      spec: { type: "ExternalName", externalName: PROXY, ports: original.spec?.ports ?? [] },
    };
    assert.ok(isEgressManaged(rewritten));
    const again = egress(rewritten);
    assert.equal(again.rewritten, true);
    assert.deepEqual(again.originalSpec, JSON.parse(saved));

    const restore = restorePatch(rewritten, PROXY) as { metadata: { annotations: Record<string, null> }; spec: Record<string, unknown> };
    assert.equal(restore.metadata.annotations["tailscale.com/egress-original-spec"], null);
    assert.deepEqual(restore.spec, { ...JSON.parse(saved), externalName: null });
  });

  it("treats a spec the user wrote again (GitOps) as the new original, and never restores over it", () => {
    const reapplied = service({ "tailscale.com/tailnet-ip": "100.64.0.7", "tailscale.com/egress-original-spec": "{\"type\":\"ClusterIP\"}" }, { ports: [{ port: 6543 }] });
    const intent = egress(reapplied);
    assert.equal(intent.rewritten, false);
    assert.deepEqual(intent.originalSpec.ports, [{ port: 6543 }]);
    const restore = restorePatch(reapplied, PROXY) as Record<string, unknown>;
    assert.equal(restore["spec"], undefined, "only the annotation goes");
  });

  it("keeps a headless Service headless", () => {
    const intent = egress(service({ "tailscale.com/tailnet-ip": "100.64.0.7" }, { clusterIP: "None", clusterIPs: ["None"] }));
    assert.equal(intent.originalSpec.clusterIP, "None");
  });
});

describe("normalizeFqdn", () => {
  it("lowercases, drops the trailing dot, wants two labels or more", () => {
    assert.equal(normalizeFqdn("Host.Example.COM."), "host.example.com");
    assert.equal(normalizeFqdn("host"), undefined);
    assert.equal(normalizeFqdn(`${"a".repeat(64)}.example`), undefined);
  });
});
