import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ApiServerUpstream, type InClusterApiServer } from "./apiserver-upstream.ts";
import { impersonationFor } from "./impersonation.ts";
import type { WhoIs } from "../l7/local-api.ts";
import type { IncomingCall } from "../l7/upstream.ts";

const alice: WhoIs = {
  Node: { Name: "alice-laptop.tail.example.", Tags: [] },
  UserProfile: { LoginName: "alice@example.com" },
  CapMap: {
    "tailscale.com/cap/kubernetes": [{ impersonate: { groups: ["readers", "devs"] } }, { something: "else" }],
    "https://tailscale.com/cap/kubernetes": [{ impersonate: { groups: ["devs", "legacy"] } }],
  },
};
const ci: WhoIs = { Node: { Name: "ci-runner.tail.example.", Tags: ["tag:ci"] }, UserProfile: { LoginName: "tagged-devices" } };

const apiServer: InClusterApiServer = { origin: new URL("https://[fd00::1]:6443"), ca: "CA", token: () => "proxy-token" };

function call(headers: Record<string, string | string[]>): IncomingCall {
  return { method: "GET", path: "/api/v1/pods?watch=1", headers, host: "k8s.tail.example", remoteAddress: "100.64.0.7", remotePort: 41000, secure: true };
}

describe("impersonationFor", () => {
  it("impersonates a user by login name with the groups of every kubernetes grant, once each", () => {
    assert.deepEqual(impersonationFor(alice), { user: "alice@example.com", groups: ["readers", "devs", "legacy"] });
  });

  it("impersonates a tagged device by its MagicDNS name, with its tags as groups when no grant applies", () => {
    assert.deepEqual(impersonationFor(ci), { user: "ci-runner.tail.example", groups: ["tag:ci"] });
    const granted = { ...ci, CapMap: { "tailscale.com/cap/kubernetes": [{ impersonate: { groups: ["deployers"] } }] } };
    assert.deepEqual(impersonationFor(granted), { user: "ci-runner.tail.example", groups: ["deployers"] });
  });

  it("gives a user without a grant no groups (RBAC decides), and refuses a caller the tailnet does not know", () => {
    assert.deepEqual(impersonationFor({ ...alice, CapMap: null }), { user: "alice@example.com", groups: [] });
    assert.ok("refused" in impersonationFor(undefined));
    assert.ok("refused" in impersonationFor({ Node: { Name: "x.", Tags: [] }, UserProfile: {} }));
  });

  it("ignores grant values that do not have the documented shape", () => {
    const odd: WhoIs = { ...alice, CapMap: { "tailscale.com/cap/kubernetes": [null, "x", { impersonate: { groups: "admins" } }, { impersonate: { groups: [1, "ok"] } }] } };
    assert.deepEqual(impersonationFor(odd), { user: "alice@example.com", groups: ["ok"] });
  });
});

describe("ApiServerUpstream", () => {
  const spoofed = {
    authorization: "Bearer stolen-admin-token",
    "impersonate-user": "system:admin",
    "impersonate-group": "system:masters",
    "impersonate-extra-scopes": "all",
    "impersonate-uid": "0",
    accept: "application/json",
    connection: "keep-alive",
  };

  it("auth: removes the caller's credentials and sends the proxy's token with the caller's tailnet identity", async () => {
    const upstream = new ApiServerUpstream("auth", apiServer, () => Promise.resolve(alice));
    const decision = await upstream.decide(call(spoofed));
    assert.ok("upstream" in decision);
    const { headers, origin, path, tls } = decision.upstream;
    assert.equal(origin.host, "[fd00::1]:6443");
    assert.equal(path, "/api/v1/pods?watch=1");
    assert.deepEqual(tls, { ca: "CA", rejectUnauthorized: true });
    assert.equal(headers["authorization"], "Bearer proxy-token");
    assert.equal(headers["impersonate-user"], "alice@example.com");
    assert.deepEqual(headers["impersonate-group"], ["readers", "devs", "legacy"]);
    assert.equal(headers["impersonate-extra-scopes"], undefined);
    assert.equal(headers["impersonate-uid"], undefined);
    assert.equal(headers["accept"], "application/json");
    assert.equal(headers["connection"], undefined, "hop-by-hop headers do not cross");
    assert.equal(headers["x-forwarded-for"], "100.64.0.7");
  });

  it("auth: sends no Impersonate-Group at all for a caller without groups", async () => {
    const upstream = new ApiServerUpstream("auth", apiServer, () => Promise.resolve({ ...alice, CapMap: {} }));
    const decision = await upstream.decide(call({ "impersonate-group": "system:masters" }));
    assert.ok("upstream" in decision);
    assert.equal(decision.upstream.headers["impersonate-group"], undefined);
  });

  it("auth: refuses a caller whois cannot name, without asking the API server", async () => {
    const upstream = new ApiServerUpstream("auth", apiServer, () => Promise.resolve(undefined));
    const decision = await upstream.decide(call(spoofed));
    assert.ok("refuse" in decision);
    assert.equal(decision.refuse.status, 401);
  });

  it("noauth: passes the caller's own credentials and adds none", async () => {
    let asked = false;
    const upstream = new ApiServerUpstream("noauth", apiServer, () => {
      asked = true;
      return Promise.resolve(alice);
    });
    const decision = await upstream.decide(call({ authorization: "Bearer users-own-token", "impersonate-user": "bob" }));
    assert.ok("upstream" in decision);
    assert.equal(decision.upstream.headers["authorization"], "Bearer users-own-token");
    assert.equal(decision.upstream.headers["impersonate-user"], "bob");
    assert.equal(asked, false, "noauth needs no whois");
  });
});
