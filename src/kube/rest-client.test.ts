import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { RestClient } from "./rest-client.ts";

describe("RestClient.disconnect", () => {
  it("fails a request hung on its connection at once, and later requests connect afresh", async () => {
    // The first request is never answered (the API server behind a cut link); later ones are.
    const held: ServerResponse[] = [];
    const server = createServer((req, res) => {
      if (req.url?.startsWith("/api/v1/namespaces/a/services/hung")) held.push(res);
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Service", metadata: { name: "ok" } }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const rest = new RestClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    try {
      const hung = rest.request({ method: "GET", path: "/api/v1/namespaces/a/services/hung" });
      while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      rest.disconnect();
      await assert.rejects(hung, /disconnected/);
      const answer = await rest.request<{ metadata: { name: string } }>({ method: "GET", path: "/api/v1/namespaces/a/services/ok" });
      assert.equal(answer.metadata.name, "ok");
    } finally {
      rest.disconnect();
      server.closeAllConnections();
      server.close();
    }
  });
});
