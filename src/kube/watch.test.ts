import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Writable } from "node:stream";
import type { AddressInfo } from "node:net";
import { CoreV1Api, KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { createLogger } from "../shared/log.ts";
import { startWatch } from "./watch.ts";

/** A logger that tells when the watch gave up on its first attempt. */
function watchLog(): { log: ReturnType<typeof createLogger>; restarted: Promise<void> } {
  let restartedNow: () => void = () => undefined;
  const restarted = new Promise<void>((resolve) => (restartedNow = resolve));
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (chunk.toString().includes("watch failed; restarting")) restartedNow();
      done();
    },
  });
  return { log: createLogger({ name: "test", destination }), restarted };
}

/** A tiny API server on loopback: the first list fails with 500, later ones return one object. */
async function fakeApiServer(): Promise<{ kc: KubeConfig; lists: () => number; close: () => void }> {
  let lists = 0;
  const server = createServer((req, res) => {
    if (req.url?.includes("watch=true")) {
      // A watch that stays open and quiet.
      res.writeHead(200, { "content-type": "application/json" });
      return;
    }
    lists++;
    if (lists === 1) {
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Status", message: "etcd is not ready" }));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({
      apiVersion: "v1",
      kind: "ConfigMapList",
      metadata: { resourceVersion: "5" },
      items: [{ metadata: { name: "one", namespace: "ns", resourceVersion: "5" } }],
    }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { kc, lists: () => lists, close: () => { server.closeAllConnections(); server.close(); } };
}

describe("startWatch", () => {
  it("reports synced only after a list succeeded and its objects were delivered, not when the first list failed", async () => {
    const api = await fakeApiServer();
    after(api.close);
    const core = api.kc.makeApiClient(CoreV1Api);
    const seen: string[] = [];
    let synced = false;
    const { log, restarted } = watchLog();
    const watch = startWatch<V1ConfigMap>({
      kc: api.kc,
      log,
      path: "/api/v1/namespaces/ns/configmaps",
      list: () => core.listNamespacedConfigMap({ namespace: "ns" }),
      onObject: (object) => seen.push(object.metadata?.name ?? ""),
    });
    void watch.synced.then(() => {
      synced = true;
    });
    await restarted;
    assert.equal(api.lists(), 1, "the first list was made, and failed");
    assert.equal(synced, false, "not synced after a failed list");
    await watch.synced;
    assert.ok(api.lists() >= 2);
    assert.ok(seen.includes("one"), "the listed object was delivered before synced");
    await watch.stop();
  });

  it("drops managedFields from listed and watched objects before the cache or a handler sees them", async () => {
    const managedFields = [{ manager: "kubectl", operation: "Apply", fieldsType: "FieldsV1", fieldsV1: { "f:data": { "f:k": {} } } }];
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      if (req.url?.includes("watch=true")) {
        res.write(`${JSON.stringify({ type: "ADDED", object: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "watched", namespace: "ns", resourceVersion: "6", managedFields } } })}\n`);
        return;
      }
      res.end(JSON.stringify({ apiVersion: "v1", kind: "ConfigMapList", metadata: { resourceVersion: "5" }, items: [{ metadata: { name: "listed", namespace: "ns", resourceVersion: "5", managedFields } }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    after(() => {
      server.closeAllConnections();
      server.close();
    });
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const core = kc.makeApiClient(CoreV1Api);
    const handed: V1ConfigMap[] = [];
    let watched: () => void = () => undefined;
    const sawWatched = new Promise<void>((resolve) => (watched = resolve));
    const watch = startWatch<V1ConfigMap>({
      kc,
      log: createLogger({ name: "test", level: "silent" }),
      path: "/api/v1/namespaces/ns/configmaps",
      list: () => core.listNamespacedConfigMap({ namespace: "ns" }),
      onObject: (object) => {
        handed.push(object);
        if (object.metadata?.name === "watched") watched();
      },
    });
    await sawWatched;
    await watch.stop();
    assert.deepEqual(handed.map((o) => o.metadata?.name).sort(), ["listed", "watched"]);
    for (const name of ["listed", "watched"]) {
      assert.equal(watch.store.get(name, "ns")?.metadata?.managedFields, undefined, `${name}: cached without managedFields`);
    }
    assert.ok(handed.every((o) => o.metadata?.managedFields === undefined), "handlers never see managedFields");
  });
});
