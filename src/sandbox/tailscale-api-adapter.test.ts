import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { TailscaleApi } from "../control/tailscale-api.ts";
import { TailscaleApiAdapter } from "./tailscale-api-adapter.ts";

/** A stand-in for Headscale: its /api/v1 calls as the operator's client makes them, /key, and a /ts2021 upgrade that echoes. */
async function fakeHeadscale() {
  const seen: { method: string; path: string; body: unknown; auth: string | undefined }[] = [];
  const nodes = new Map([["7", { id: "7", name: "proxy-a", ipAddresses: ["100.64.0.7"], tags: ["tag:k8s"] }]]);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString()));
    req.on("end", () => {
      const path = req.url ?? "";
      seen.push({ method: req.method ?? "", path, body: text ? JSON.parse(text) : undefined, auth: req.headers.authorization });
      const json = (status: number, body: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (path.startsWith("/key")) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("mkey:server");
      } else if (req.method === "POST" && path === "/api/v1/preauthkey") json(200, { preAuthKey: { id: "42", key: "hskey-auth-secret" } });
      else if (req.method === "POST" && path === "/api/v1/preauthkey/expire") json(200, {});
      else if (path.startsWith("/api/v1/node/")) {
        const id = path.slice("/api/v1/node/".length);
        const node = nodes.get(id);
        if (!node) json(404, { message: "not found" });
        else if (req.method === "DELETE") {
          nodes.delete(id);
          json(200, {});
        } else json(200, { node });
      } else if (path === "/api/v1/node") json(200, { nodes: [...nodes.values()] });
      else json(404, {});
    });
  });
  server.on("upgrade", (req: IncomingMessage, socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade ?? ""}\r\nConnection: upgrade\r\n\r\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`, seen, nodes, server };
}

async function setup() {
  const headscale = await fakeHeadscale();
  const adapter = await TailscaleApiAdapter.start({
    headscaleUrl: headscale.url,
    headscaleApiKey: "hs-api-key",
    clientId: "client-id",
    clientSecret: "client-secret",
    baseDomain: "tailnet.test",
    host: "127.0.0.1",
    port: 0,
  });
  const stop = async (): Promise<void> => {
    await adapter.stop();
    headscale.server.closeAllConnections();
    await new Promise((resolve) => headscale.server.close(resolve));
  };
  return { headscale, adapter, stop };
}

test("v2 keys and devices are served from Headscale's API, with OAuth client credentials", async () => {
  const { headscale, adapter, stop } = await setup();
  try {
    const client = new TailscaleApi({ apiUrl: adapter.url, clientId: "client-id", clientSecret: "client-secret" });
    const key = await client.createAuthKey({ tags: ["tag:k8s"], expirySeconds: 600 });
    assert.deepEqual(key, { id: "42", key: "hskey-auth-secret" });
    const created = headscale.seen.find((call) => call.path === "/api/v1/preauthkey");
    assert.ok(created);
    assert.equal(created.auth, "Bearer hs-api-key");
    const body = created.body as { aclTags: string[]; reusable: boolean };
    assert.deepEqual(body.aclTags, ["tag:k8s"]);
    assert.equal(body.reusable, false);

    assert.deepEqual(await client.getDevice("7"), { id: "7", hostname: "proxy-a", addresses: ["100.64.0.7"], tags: ["tag:k8s"] });
    assert.equal((await client.listDevices()).length, 1);
    await client.deleteDevice("7");
    assert.equal(headscale.nodes.size, 0);
    assert.equal(await client.getDevice("7"), undefined);
    await client.revokeAuthKey("42");
    assert.deepEqual(headscale.seen.find((call) => call.path === "/api/v1/preauthkey/expire")?.body, { id: "42" });
    assert.equal(adapter.calls.get("POST keys"), 1);
    assert.equal(adapter.calls.get("DELETE device/:id"), 1);
  } finally {
    await stop();
  }
});

test("a wrong client secret gets no token, and no token gets no keys", async () => {
  const { headscale, adapter, stop } = await setup();
  try {
    const client = new TailscaleApi({ apiUrl: adapter.url, clientId: "client-id", clientSecret: "wrong" });
    await assert.rejects(client.createAuthKey({ tags: ["tag:k8s"] }), /HTTP 401/);
    const anonymous = await fetch(`${adapter.url}/api/v2/tailnet/-/keys`, { method: "POST", body: "{}" });
    assert.equal(anonymous.status, 401);
    assert.equal(headscale.seen.filter((call) => call.path.startsWith("/api/v1/")).length, 0);
  } finally {
    await stop();
  }
});

test("the control protocol passes through: plain requests and the /ts2021 upgrade", async () => {
  const { headscale, adapter, stop } = await setup();
  try {
    const key = await fetch(`${adapter.url}/key?v=130`);
    assert.equal(await key.text(), "mkey:server");
    assert.equal(headscale.seen.at(-1)?.path, "/key?v=130");

    const { port } = new URL(adapter.url);
    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write("POST /ts2021 HTTP/1.1\r\nHost: control\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n");
      });
      let text = "";
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes("\r\n\r\n") && !text.includes("noise-bytes")) socket.write("noise-bytes");
        if (text.endsWith("noise-bytes")) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on("error", reject);
    });
    assert.match(echoed, /^HTTP\/1.1 101 Switching Protocols/);
    assert.match(echoed, /noise-bytes$/);
    // Unknown v2 calls are answered 404 and counted, not forwarded.
    const token = await (await fetch(`${adapter.url}/api/v2/oauth/token`, { method: "POST", body: "grant_type=client_credentials&client_id=client-id&client_secret=client-secret", headers: { "content-type": "application/x-www-form-urlencoded" } })).json() as { access_token: string };
    const unknown = await fetch(`${adapter.url}/api/v2/tailnet/-/vip-services`, { headers: { authorization: `Bearer ${token.access_token}` } });
    assert.equal(unknown.status, 404);
    assert.equal(adapter.calls.get("unknown GET /api/v2/tailnet/-/vip-services"), 1);
  } finally {
    await stop();
  }
});
