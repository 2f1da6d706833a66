import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ClosedError, RestClient, apiResourceOf } from "./rest-client.ts";

describe("apiResourceOf", () => {
  it("names the resource (and its group) a path addresses, which picks the rate limit's bucket", () => {
    assert.equal(apiResourceOf("/api/v1/namespaces/ns/secrets/a"), "secrets");
    assert.equal(apiResourceOf("/api/v1/namespaces/ns/services/a/status"), "services");
    assert.equal(apiResourceOf("/api/v1/services"), "services");
    assert.equal(apiResourceOf("/api/v1/namespaces/ns"), "namespaces");
    assert.equal(apiResourceOf("/api/v1/namespaces"), "namespaces");
    assert.equal(apiResourceOf("/apis/apps/v1/namespaces/ns/statefulsets?fieldManager=x"), "statefulsets.apps");
    assert.equal(apiResourceOf("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"), "leases.coordination.k8s.io");
    assert.equal(apiResourceOf("/apis/rbac.authorization.k8s.io/v1/clusterroles"), "clusterroles.rbac.authorization.k8s.io");
    assert.equal(apiResourceOf("/api/v1"), "");
    assert.equal(apiResourceOf("/apis/apps/v1"), "");
    assert.equal(apiResourceOf("/version"), "");
  });
});

describe("RestClient.close", () => {
  it("fails a request hung on its connection at once, and every later request without sending it", async () => {
    // The first request is never answered (the API server behind a cut link); others are.
    const held: ServerResponse[] = [];
    let asked = 0;
    const server = createServer((req, res) => {
      asked++;
      if (req.url?.startsWith("/api/v1/namespaces/a/services/hung")) held.push(res);
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Service", metadata: { name: "ok" } }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const rest = new RestClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    try {
      const hung = rest.request({ method: "GET", path: "/api/v1/namespaces/a/services/hung" });
      while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const before = await rest.request<{ metadata: { name: string } }>({ method: "GET", path: "/api/v1/namespaces/a/services/ok" });
      assert.equal(before.metadata.name, "ok");
      rest.close();
      await assert.rejects(hung, ClosedError);
      await assert.rejects(rest.request({ method: "GET", path: "/api/v1/namespaces/a/services/ok" }), ClosedError);
      assert.equal(asked, 2, "the request after close never reached the server");
    } finally {
      rest.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
