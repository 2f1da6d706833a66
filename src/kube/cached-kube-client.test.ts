import { describe, it, beforeEach } from "node:test";
import assert from "node:assert/strict";
import type { KubernetesObject } from "@kubernetes/client-node";
import { FakeKubeClient } from "../../test/fakes/fake-kube-client.ts";
import { CachedKubeClient, holds, parseEqualitySelector, type CacheStore } from "./cached-kube-client.ts";

/** A watch cache holding exactly the given objects. */
function store(objects: KubernetesObject[]): CacheStore {
  return {
    get: (name, namespace) => objects.find((o) => o.metadata?.name === name && o.metadata.namespace === namespace),
    list: (namespace) => objects.filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  };
}

const secret = (name: string, labels: Record<string, string>, data: Record<string, string> = {}): KubernetesObject & { data: Record<string, string> } => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: "tailscale", labels },
  data,
});

describe("CachedKubeClient", () => {
  let live: FakeKubeClient;
  let kube: CachedKubeClient;
  beforeEach(() => {
    live = new FakeKubeClient();
    kube = new CachedKubeClient(live);
  });

  it("answers gets inside a watch's scope from its cache, and asks the API server on a miss", async () => {
    kube.register({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", labelSelector: "managed=true" }, store([secret("cached", { managed: "true" }, { k: "from-cache" })]));
    live.seed(secret("cached", { managed: "true" }, { k: "from-api" }));
    live.seed(secret("unlabelled", {}, { k: "from-api" }));
    const hit = await kube.get<ReturnType<typeof secret>>({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: "cached" });
    assert.equal(hit?.data.k, "from-cache");
    const miss = await kube.get<ReturnType<typeof secret>>({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: "unlabelled" });
    assert.equal(miss?.data.k, "from-api", "outside the watch's selector: read live");
    const otherNamespace = await kube.get({ apiVersion: "v1", kind: "Secret", namespace: "default", name: "cached" });
    assert.equal(otherNamespace, undefined);
    assert.deepEqual(kube.stats, { hits: 1, misses: 2, absent: 0, appliesSkipped: 0 });
  });

  it("takes a miss as the answer for an object named with the labels its watch selects by, unless it created the object itself", async () => {
    const objects: KubernetesObject[] = [];
    kube.register({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", labelSelector: "managed=true" }, store(objects));
    // In the API server but not (yet) in the watch: what a lagging watch looks like.
    live.seed(secret("lagging", { managed: "true" }, { k: "from-api" }));
    const ref = (name: string, labels?: Record<string, string>): { apiVersion: string; kind: string; namespace: string; name: string; labels?: Record<string, string> } => ({
      apiVersion: "v1", kind: "Secret", namespace: "tailscale", name, ...(labels ? { labels } : {}),
    });
    assert.equal(await kube.get(ref("lagging", { managed: "true", parent: "x" })), undefined, "labelled as the watch selects: the cache answers");
    assert.equal((await kube.get<ReturnType<typeof secret>>(ref("lagging")))?.data.k, "from-api", "no labels named: live");
    assert.equal((await kube.get<ReturnType<typeof secret>>(ref("lagging", { other: "x" })))?.data.k, "from-api", "labels the watch does not select by: live");
    assert.deepEqual(kube.stats, { hits: 0, misses: 2, absent: 1, appliesSkipped: 0 });

    // Read your own writes: created here, not in the watch yet, so asked live.
    await kube.create(secret("mine", { managed: "true" }, { k: "created" }));
    assert.equal((await kube.get<ReturnType<typeof secret>>(ref("mine", { managed: "true" })))?.data.k, "created");
    assert.equal(kube.stats.misses, 3);
    // Once the watch has shown it, a later miss (it was deleted) is the cache's answer again.
    objects.push(secret("mine", { managed: "true" }, { k: "watched" }));
    assert.equal((await kube.get<ReturnType<typeof secret>>(ref("mine", { managed: "true" })))?.data.k, "watched");
    objects.pop();
    assert.equal(await kube.get(ref("mine", { managed: "true" })), undefined);
    assert.deepEqual(kube.stats, { hits: 1, misses: 3, absent: 2, appliesSkipped: 0 });
  });

  it("serves from the newest store registered for a scope (a new term as leader watches afresh)", async () => {
    const scope = { apiVersion: "v1", kind: "Secret", namespace: "tailscale", labelSelector: "managed=true" };
    kube.register(scope, store([secret("s", { managed: "true" }, { k: "old term" })]));
    kube.register(scope, store([secret("s", { managed: "true" }, { k: "new term" })]));
    const got = await kube.get<ReturnType<typeof secret>>({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", name: "s" });
    assert.equal(got?.data.k, "new term");
  });

  it("lists from the cache only when the query is at least as narrow as the watch, or when asked for consistency", async () => {
    kube.register({ apiVersion: "v1", kind: "Secret", namespace: "tailscale", labelSelector: "managed=true" }, store([secret("a", { managed: "true", parent: "x" }), secret("b", { managed: "true", parent: "y" })]));
    live.seed(secret("a", { managed: "true", parent: "x" }));
    live.seed(secret("fresh", { managed: "true", parent: "x" }));
    const names = (objects: KubernetesObject[]): (string | undefined)[] => objects.map((o) => o.metadata?.name).sort();
    assert.deepEqual(names(await kube.list("v1", "Secret", { namespace: "tailscale", labelSelector: "managed=true,parent=x" })), ["a"]);
    assert.deepEqual(names(await kube.list("v1", "Secret", { namespace: "tailscale", labelSelector: "managed=true,parent=x", consistent: true })), ["a", "fresh"]);
    assert.deepEqual(names(await kube.list("v1", "Secret", { namespace: "tailscale", labelSelector: "parent=x" })), ["a", "fresh"], "wider than the watch: live");
    const before = kube.stats.misses;
    await kube.list("v1", "Secret", { namespace: "tailscale", labelSelector: "managed in (true)" });
    assert.equal(kube.stats.misses, before + 1, "a set-based selector is not understood by the cache: live");
  });

  it("skips an apply whose every field already holds, and sends one that changes anything", async () => {
    const current = { ...secret("s", { managed: "true" }, { k: "v" }), type: "Opaque", metadata: { name: "s", namespace: "tailscale", labels: { managed: "true" }, uid: "u1", resourceVersion: "7" } };
    kube.register({ apiVersion: "v1", kind: "Secret", namespace: "tailscale" }, store([current]));
    await kube.apply(secret("s", { managed: "true" }, { k: "v" }));
    assert.deepEqual(live.writes, [], "nothing to change: no request");
    await kube.apply(secret("s", { managed: "true" }, { k: "changed" }));
    assert.equal(live.writes.length, 1);
    assert.equal(kube.stats.appliesSkipped, 1);
  });
});

describe("holds", () => {
  it("accepts extra fields the API server defaulted, but not a changed value or a removed list entry", () => {
    const desired = { spec: { ports: [{ port: 80 }], selector: { app: "x" } } };
    assert.equal(holds(desired, { spec: { ports: [{ port: 80, protocol: "TCP" }], selector: { app: "x" }, clusterIP: "None" } }), true);
    assert.equal(holds(desired, { spec: { ports: [{ port: 81 }], selector: { app: "x" } } }), false);
    assert.equal(holds(desired, { spec: { ports: [{ port: 80 }, { port: 443 }], selector: { app: "x" } } }), false, "a list entry we no longer want");
    assert.equal(holds(desired, { spec: { selector: { app: "x" } } }), false);
    assert.equal(holds({ a: [] }, { a: [] }), true);
    assert.equal(holds({ a: {} }, { a: [] }), false);
  });
});

describe("parseEqualitySelector", () => {
  it("parses equality terms and refuses anything else", () => {
    assert.deepEqual(parseEqualitySelector("a=b, c==d"), new Map([["a", "b"], ["c", "d"]]));
    assert.deepEqual(parseEqualitySelector(""), new Map());
    assert.equal(parseEqualitySelector("a!=b"), undefined);
    assert.equal(parseEqualitySelector("a in (b)"), undefined);
    assert.equal(parseEqualitySelector("a"), undefined);
  });
});
