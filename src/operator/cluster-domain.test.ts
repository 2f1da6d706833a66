import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { clusterDomain, domainFromResolvConf } from "./cluster-domain.ts";

describe("cluster domain", () => {
  it("reads the domain from the search list the kubelet writes", () => {
    assert.equal(domainFromResolvConf("nameserver 10.96.0.10\nsearch tailscale.svc.k8s.example svc.k8s.example k8s.example\noptions ndots:5\n"), "k8s.example");
    assert.equal(domainFromResolvConf("nameserver 1.1.1.1\n"), undefined);
  });

  it("prefers the setting, falls back to cluster.local without a readable resolv.conf", () => {
    assert.equal(clusterDomain("corp.internal"), "corp.internal");
    assert.equal(clusterDomain(undefined, "/nonexistent/resolv.conf"), "cluster.local");
  });
});
