import { setFlagsFromString } from "node:v8";
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Writable } from "node:stream";
import type { AddressInfo } from "node:net";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { createLogger } from "../shared/log.ts";
import { RestClient } from "./rest-client.ts";
import { startWatch, type WatchOptions } from "./watch.ts";

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

/** A tiny API server on loopback; handle answers lists and watches (url has watch=true). */
async function fakeApiServer(handle: (req: IncomingMessage, res: ServerResponse, url: URL) => void): Promise<RestClient> {
  const server = createServer((req, res) => {
    handle(req, res, new URL(req.url ?? "/", "http://x"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const rest = new RestClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  after(() => {
    rest.close();
    server.closeAllConnections();
    server.close();
  });
  return rest;
}

const json = { "content-type": "application/json" };
const listOf = (resourceVersion: string, items: object[]): string => JSON.stringify({ apiVersion: "v1", kind: "ConfigMapList", metadata: { resourceVersion }, items });
const event = (type: string, object: object): string => `${JSON.stringify({ type, object })}\n`;
const configMap = (name: string, resourceVersion: string, uid = `uid-${name}`): object => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "ns", resourceVersion, uid } });

function options(rest: RestClient, onObject: (object: V1ConfigMap) => void): WatchOptions<V1ConfigMap> {
  return {
    rest,
    log: createLogger({ name: "test", level: "silent" }),
    path: "/api/v1/namespaces/ns/configmaps",
    apiVersion: "v1",
    kind: "ConfigMap",
    onObject,
    backoff: { initialMs: 20, maxMs: 100 },
  };
}

/** Resolves when check() holds, polling the event loop (fails the test after 5 s). */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("startWatch", () => {
  it("reports synced only after a list succeeded and its objects were delivered, not when the first list failed", async () => {
    let lists = 0;
    const rest = await fakeApiServer((_req, res, url) => {
      if (url.searchParams.get("watch") === "true") {
        res.writeHead(200, json); // open and quiet
        return;
      }
      lists++;
      if (lists === 1) {
        res.writeHead(500, json).end(JSON.stringify({ kind: "Status", message: "etcd is not ready" }));
        return;
      }
      res.writeHead(200, json).end(listOf("5", [{ metadata: { name: "one", namespace: "ns", resourceVersion: "5" } }]));
    });
    const seen: string[] = [];
    let synced = false;
    const { log, restarted } = watchLog();
    const watch = startWatch<V1ConfigMap>({ ...options(rest, (object) => seen.push(object.metadata?.name ?? "")), log });
    void watch.synced.then(() => {
      synced = true;
    });
    await restarted;
    assert.equal(lists, 1, "the first list was made, and failed");
    assert.equal(synced, false, "not synced after a failed list");
    await watch.synced;
    assert.equal(lists, 2);
    assert.deepEqual(seen, ["one"], "the listed object was delivered before synced");
    assert.equal(watch.store.get("one", "ns")?.kind, "ConfigMap", "listed objects are cached with their kind");
    await watch.stop();
  });

  it("drops managedFields from listed and watched objects before the cache or a handler sees them", async () => {
    const managedFields = [{ manager: "kubectl", operation: "Apply", fieldsType: "FieldsV1", fieldsV1: { "f:data": { "f:k": {} } } }];
    const rest = await fakeApiServer((_req, res, url) => {
      res.writeHead(200, json);
      if (url.searchParams.get("watch") === "true") {
        res.write(event("ADDED", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "watched", namespace: "ns", resourceVersion: "6", managedFields } }));
        return;
      }
      res.end(listOf("5", [{ metadata: { name: "listed", namespace: "ns", resourceVersion: "5", managedFields } }]));
    });
    const handed: V1ConfigMap[] = [];
    const watch = startWatch<V1ConfigMap>(options(rest, (object) => handed.push(object)));
    await until("the watched object", () => handed.some((o) => o.metadata?.name === "watched"));
    await watch.stop();
    assert.deepEqual(handed.map((o) => o.metadata?.name).sort(), ["listed", "watched"]);
    for (const name of ["listed", "watched"]) {
      assert.ok(watch.store.get(name, "ns"), `${name} is cached`);
      assert.equal(watch.store.get(name, "ns")?.metadata?.managedFields, undefined, `${name}: cached without managedFields`);
    }
    assert.ok(handed.every((o) => o.metadata?.managedFields === undefined), "handlers never see managedFields");
  });

  it("caches metadata without managedFields as an ordinary object, not the hash table a delete leaves", async () => {
    const managedFields = [{ manager: "kubectl", operation: "Apply", fieldsType: "FieldsV1", fieldsV1: {} }];
    const rest = await fakeApiServer((_req, res, url) => {
      res.writeHead(200, json);
      if (url.searchParams.get("watch") === "true") {
        res.write(event("ADDED", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "watched", namespace: "ns", resourceVersion: "6", managedFields, labels: { a: "b" } } }));
        return;
      }
      res.end(listOf("5", [{ metadata: { name: "listed", namespace: "ns", resourceVersion: "5", managedFields, labels: { a: "b" } } }]));
    });
    const watch = startWatch<V1ConfigMap>(options(rest, () => undefined));
    await until("the watched object", () => watch.store.get("watched", "ns") !== undefined);
    await watch.stop();
    for (const name of ["listed", "watched"]) assert.ok(hasFastProperties(watch.store.get(name, "ns")?.metadata), `${name}: metadata in V8's fast mode`);
  });

  it("resumes a watch the server ended from the last resourceVersion (bookmarks too), without listing again", async () => {
    let lists = 0;
    const watches: URLSearchParams[] = [];
    const rest = await fakeApiServer((_req, res, url) => {
      res.writeHead(200, json);
      if (url.searchParams.get("watch") !== "true") {
        lists++;
        res.end(listOf("5", [configMap("a", "5")]));
        return;
      }
      watches.push(url.searchParams);
      // The first watch sees an object and a bookmark, then the server's timeout ends it.
      if (watches.length === 1) res.end(event("ADDED", configMap("b", "6")) + event("BOOKMARK", { kind: "ConfigMap", apiVersion: "v1", metadata: { resourceVersion: "9" } }));
    });
    const seen: string[] = [];
    const watch = startWatch<V1ConfigMap>(options(rest, (object) => seen.push(object.metadata?.name ?? "")));
    await until("a second watch", () => watches.length === 2);
    await watch.stop();
    assert.equal(lists, 1, "no relist on an ended watch");
    assert.equal(watches[0]?.get("resourceVersion"), "5", "the first watch starts at the list's resourceVersion");
    assert.equal(watches[1]?.get("resourceVersion"), "9", "the second resumes from the bookmark");
    for (const query of watches) {
      assert.equal(query.get("allowWatchBookmarks"), "true");
      assert.ok(Number(query.get("timeoutSeconds")) >= 300, "the server, not the client, ends a quiet watch");
    }
    assert.deepEqual(seen, ["a", "b"], "nothing is reported again on a reconnect");
  });

  it("lists again only on 410 Gone, reporting just what changed and what went", async () => {
    let lists = 0;
    let watchCount = 0;
    const rest = await fakeApiServer((_req, res, url) => {
      res.writeHead(200, json);
      if (url.searchParams.get("watch") !== "true") {
        lists++;
        res.end(lists === 1 ? listOf("5", [configMap("a", "5"), configMap("c", "5")]) : listOf("20", [configMap("a", "5"), configMap("b", "18")]));
        return;
      }
      watchCount++;
      if (watchCount === 1) res.end(event("ERROR", { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: "too old resource version" }));
    });
    const seen: string[] = [];
    const watch = startWatch<V1ConfigMap>(options(rest, (object) => seen.push(object.metadata?.name ?? "")));
    await until("a watch after the relist", () => watchCount === 2);
    await watch.stop();
    assert.equal(lists, 2);
    assert.deepEqual(seen, ["a", "c", "b", "c"], "a (unchanged) is not reported again; b is new, c went");
    assert.deepEqual(watch.store.list().map((o) => o.metadata?.name).sort(), ["a", "b"]);
  });

  it("restarts a failed watch with backoff from the same resourceVersion", async () => {
    let lists = 0;
    const watches: string[] = [];
    const rest = await fakeApiServer((_req, res, url) => {
      if (url.searchParams.get("watch") !== "true") {
        lists++;
        res.writeHead(200, json).end(listOf("5", [configMap("a", "5")]));
        return;
      }
      watches.push(url.searchParams.get("resourceVersion") ?? "");
      if (watches.length === 1) {
        res.writeHead(503, json).end(JSON.stringify({ kind: "Status", message: "apiserver restarting" }));
        return;
      }
      res.writeHead(200, json);
    });
    const { log, restarted } = watchLog();
    const watch = startWatch<V1ConfigMap>({ ...options(rest, () => undefined), log });
    await restarted;
    await until("a second watch", () => watches.length === 2);
    await watch.stop();
    assert.equal(lists, 1, "a failed watch is not a reason to list");
    assert.deepEqual(watches, ["5", "5"]);
  });
});

/**
 * Whether V8 keeps the object's properties in its fast (shape-described) layout. A deleted
 * property turns the object into a dictionary, several times larger.
 */
function hasFastProperties(object: unknown): boolean {
  setFlagsFromString("--allow-natives-syntax");
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- natives syntax parses only in code compiled after the flag
  return (new Function("o", "return %HasFastProperties(o)") as (o: unknown) => boolean)(object);
}
