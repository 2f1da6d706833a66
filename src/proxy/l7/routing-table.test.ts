import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RoutingTable } from "./routing-table.ts";

const table = new RoutingTable([
  { pathType: "Prefix", path: "/", backend: "http://10.96.0.1:80" },
  { pathType: "Prefix", path: "/api", backend: "http://10.96.0.2:8080" },
  { pathType: "Prefix", path: "/api/v2/", backend: "http://10.96.0.3:80" },
  { pathType: "Exact", path: "/api/health", backend: "http://10.96.0.4:80" },
  { pathType: "Prefix", path: "/api/health", backend: "http://10.96.0.5:80" },
]);
const backendOf = (target: string): string | undefined => table.match(target)?.backend;

describe("RoutingTable", () => {
  it("matches Prefix by whole path elements", () => {
    assert.equal(backendOf("/api"), "http://10.96.0.2:8080");
    assert.equal(backendOf("/api/"), "http://10.96.0.2:8080");
    assert.equal(backendOf("/api/users?x=1"), "http://10.96.0.2:8080");
    assert.equal(backendOf("/apis"), "http://10.96.0.1:80", "/api is not a prefix of /apis");
  });

  it("prefers the longest match, and Exact over Prefix of the same path", () => {
    assert.equal(backendOf("/api/v2"), "http://10.96.0.3:80", "a trailing slash in the rule does not count");
    assert.equal(backendOf("/api/v2/x"), "http://10.96.0.3:80");
    assert.equal(backendOf("/api/health"), "http://10.96.0.4:80");
    assert.equal(backendOf("/api/health/deep"), "http://10.96.0.5:80");
  });

  it("falls back to / (the default backend) and answers nothing without one", () => {
    assert.equal(backendOf("/other"), "http://10.96.0.1:80");
    const noDefault = new RoutingTable([{ pathType: "Exact", path: "/only", backend: "http://10.96.0.9:80" }]);
    assert.equal(noDefault.match("/only")?.backend, "http://10.96.0.9:80");
    assert.equal(noDefault.match("/only/more"), undefined);
    assert.equal(noDefault.match("/"), undefined);
  });
});
