import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { V1Service } from "@kubernetes/client-node";
import { KubeApiError } from "./kube-client.ts";
import { HttpKubeClient } from "./http-kube-client.ts";
import { KubeIngressStatusWriter } from "./ingress-status.ts";
import { RestClient } from "./rest-client.ts";

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  accept: string | undefined;
  authorization: string | undefined;
  body: unknown;
}

type Answer = { status: number; body: object };

/** Loopback API server: discovery for v1 and apps/v1; everything else answered by `answer`. */
async function fakeApiServer(answer: (seen: Seen) => Answer | undefined): Promise<{ rest: RestClient; seen: Seen[]; waits: () => string[]; close: () => void }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      const text = Buffer.concat(chunks).toString("utf8");
      const request: Seen = { method: req.method ?? "", path: url.pathname, query: url.searchParams, contentType: req.headers["content-type"], accept: req.headers.accept, authorization: req.headers.authorization, body: text ? JSON.parse(text) : undefined };
      seen.push(request);
      const discovery: Record<string, object> = {
        "/api/v1": { resources: [{ name: "services", kind: "Service", namespaced: true }, { name: "services/status", kind: "Service", namespaced: true }, { name: "namespaces", kind: "Namespace", namespaced: false }] },
        "/apis/apps/v1": { resources: [{ name: "statefulsets", kind: "StatefulSet", namespaced: true }] },
      };
      const found = discovery[url.pathname] ? { status: 200, body: discovery[url.pathname] ?? {} } : answer(request);
      const reply = found ?? { status: 404, body: { kind: "Status", message: `${url.pathname} not found` } };
      res.writeHead(reply.status, { "content-type": "application/json" }).end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const waits: string[] = [];
  const rest = new RestClient(
    { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, authorization: () => "Bearer t0ken" },
    (resource) => ({ wait: () => { waits.push(resource); return Promise.resolve(); } }),
  );
  const close = (): void => {
    rest.close();
    server.closeAllConnections();
    server.close();
  };
  return { rest, seen, waits: () => waits, close };
}

const svc = (name: string): V1Service => ({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: "ns" }, spec: { type: "ClusterIP" } });

describe("HttpKubeClient", () => {
  let api: Awaited<ReturnType<typeof fakeApiServer>>;
  let kube: HttpKubeClient;
  const answers = new Map<string, Answer>();
  before(async () => {
    api = await fakeApiServer((seen) => answers.get(`${seen.method} ${seen.path}${seen.query.get("continue") ? `?continue=${seen.query.get("continue") ?? ""}` : ""}`));
    kube = new HttpKubeClient(api.rest);
  });
  after(() => {
    api.close();
  });

  it("server-side applies with the field manager, forced, as an apply patch, finding the URL by discovery once", async () => {
    answers.set("PATCH /api/v1/namespaces/ns/services/a", { status: 200, body: { ...svc("a"), metadata: { name: "a", namespace: "ns", uid: "u1" } } });
    const applied = await kube.apply(svc("a"));
    await kube.apply(svc("a"));
    assert.equal(applied.metadata?.uid, "u1");
    const patches = api.seen.filter((s) => s.method === "PATCH");
    assert.equal(patches.length, 2);
    assert.equal(patches[0]?.contentType, "application/apply-patch+yaml");
    assert.equal(patches[0].query.get("fieldManager"), "tailnet-operator");
    assert.equal(patches[0].query.get("force"), "true");
    assert.equal(patches[0].authorization, "Bearer t0ken");
    assert.deepEqual(patches[0].body, svc("a"));
    assert.equal(api.seen.filter((s) => s.path === "/api/v1").length, 1, "discovery is asked once per apiVersion");
    assert.equal(api.waits().length, api.seen.length, "every request passed the rate limiter");
    assert.deepEqual(new Set(api.waits()), new Set(["", "services"]), "discovery, then the Services' own bucket");
  });

  it("gets an object, and undefined for a 404", async () => {
    answers.set("GET /apis/apps/v1/namespaces/ns/statefulsets/s", { status: 200, body: { apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: "s", namespace: "ns" } } });
    assert.equal((await kube.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace: "ns", name: "s" }))?.metadata?.name, "s");
    assert.equal(await kube.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace: "ns", name: "missing" }), undefined);
  });

  it("lists every page, giving items their apiVersion and kind, with the label selector on each page", async () => {
    answers.set("GET /api/v1/namespaces/ns/services", { status: 200, body: { metadata: { continue: "p2", resourceVersion: "7" }, items: [{ metadata: { name: "a", namespace: "ns" } }] } });
    answers.set("GET /api/v1/namespaces/ns/services?continue=p2", { status: 200, body: { metadata: { resourceVersion: "7" }, items: [{ metadata: { name: "b", namespace: "ns" } }] } });
    const items = await kube.list("v1", "Service", { namespace: "ns", labelSelector: "x=y" });
    assert.deepEqual(items.map((i) => [i.apiVersion, i.kind, i.metadata?.name]), [["v1", "Service", "a"], ["v1", "Service", "b"]]);
    const pages = api.seen.filter((s) => s.path === "/api/v1/namespaces/ns/services" && s.method === "GET");
    assert.deepEqual(pages.map((p) => p.query.get("labelSelector")), ["x=y", "x=y"]);
    assert.equal(pages[0]?.query.get("limit"), "500");
  });

  it("lists a cluster-scoped kind without a namespace in its path", async () => {
    answers.set("GET /api/v1/namespaces", { status: 200, body: { metadata: {}, items: [{ metadata: { name: "default" } }] } });
    assert.deepEqual((await kube.list("v1", "Namespace", { namespace: "ignored" })).map((i) => i.metadata?.name), ["default"]);
  });

  it("creates with POST to the collection, and says exists on a 409", async () => {
    answers.set("POST /api/v1/namespaces/ns/services", { status: 409, body: { kind: "Status", message: "already exists" } });
    assert.equal(await kube.create(svc("c")), "exists");
    const post = api.seen.find((s) => s.method === "POST");
    assert.equal(post?.query.get("fieldManager"), "tailnet-operator");
  });

  it("merge-patches with the merge patch content type and the patch as given", async () => {
    answers.set("PATCH /api/v1/namespaces/ns/services/m", { status: 200, body: svc("m") });
    await kube.mergePatch({ apiVersion: "v1", kind: "Service", namespace: "ns", name: "m" }, { metadata: { resourceVersion: "3", finalizers: null } });
    const patch = api.seen.find((s) => s.path === "/api/v1/namespaces/ns/services/m");
    assert.equal(patch?.contentType, "application/merge-patch+json");
    assert.deepEqual(patch.body, { metadata: { resourceVersion: "3", finalizers: null } });
  });

  it("applies a Service's status to its status subresource", async () => {
    answers.set("PATCH /api/v1/namespaces/ns/services/st/status", { status: 200, body: svc("st") });
    await kube.applyServiceStatus("ns", "st", { loadBalancer: { ingress: [{ ip: "100.64.0.1" }] } });
    const patch = api.seen.find((s) => s.path === "/api/v1/namespaces/ns/services/st/status");
    assert.equal(patch?.contentType, "application/apply-patch+yaml");
    assert.equal(patch.query.get("force"), "true");
    assert.deepEqual(patch.body, { apiVersion: "v1", kind: "Service", metadata: { name: "st", namespace: "ns" }, status: { loadBalancer: { ingress: [{ ip: "100.64.0.1" }] } } });
  });

  it("deletes with a uid precondition in the background; a 404 or a failed precondition is false", async () => {
    answers.set("DELETE /api/v1/namespaces/ns/services/d", { status: 200, body: {} });
    answers.set("DELETE /api/v1/namespaces/ns/services/successor", { status: 409, body: { kind: "Status", message: "Precondition failed: UID in precondition" } });
    assert.equal(await kube.delete({ apiVersion: "v1", kind: "Service", namespace: "ns", name: "d" }, { uid: "u1" }), true);
    assert.equal(await kube.delete({ apiVersion: "v1", kind: "Service", namespace: "ns", name: "successor" }, { uid: "u1" }), false);
    assert.equal(await kube.delete({ apiVersion: "v1", kind: "Service", namespace: "ns", name: "gone" }), false);
    const del = api.seen.find((s) => s.method === "DELETE" && s.path.endsWith("/d"));
    assert.deepEqual(del?.body, { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background", preconditions: { uid: "u1" } });
  });

  it("deletes a collection by label selector in one request, counting what went, and refuses an empty selector", async () => {
    answers.set("DELETE /apis/apps/v1/namespaces/ns/statefulsets", { status: 200, body: { kind: "StatefulSetList", items: [{ metadata: { name: "a" } }, { metadata: { name: "b" } }] } });
    assert.equal(await kube.deleteCollection("apps/v1", "StatefulSet", { namespace: "ns", labelSelector: "parent=x" }), 2);
    const del = api.seen.find((s) => s.method === "DELETE" && s.path === "/apis/apps/v1/namespaces/ns/statefulsets");
    assert.equal(del?.query.get("labelSelector"), "parent=x");
    assert.deepEqual(del.body, { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background" });
    assert.match(del.accept ?? "", /^application\/json;as=PartialObjectMetadataList;g=meta\.k8s\.io;v=v1, application\/json$/, "only the deleted objects' metadata");
    const before = api.seen.length;
    await assert.rejects(kube.deleteCollection("apps/v1", "StatefulSet", { namespace: "ns", labelSelector: "" }), /no label selector/);
    assert.equal(api.seen.length, before, "nothing sent");
  });

  it("throws KubeApiError with the HTTP status and the Status message", async () => {
    answers.set("PATCH /api/v1/namespaces/ns/services/bad", { status: 422, body: { kind: "Status", message: "spec.ports: Required value" } });
    await assert.rejects(kube.apply(svc("bad")), (error: unknown) => {
      assert.ok(error instanceof KubeApiError);
      assert.equal(error.status, 422);
      assert.match(error.message, /apply Service ns\/bad: HTTP 422: spec\.ports: Required value/);
      return true;
    });
    await assert.rejects(kube.apply({ apiVersion: "v1", kind: "NoSuchKind", metadata: { name: "x", namespace: "ns" } }), (error: unknown) => error instanceof KubeApiError && error.isNotFound);
  });

  it("writes an Ingress's load balancer status as a merge patch of its status subresource", async () => {
    answers.set("PATCH /apis/networking.k8s.io/v1/namespaces/ns/ingresses/web/status", { status: 200, body: {} });
    await new KubeIngressStatusWriter(api.rest).setLoadBalancer("ns", "web", [{ hostname: "web.tailnet.ts.net" }]);
    const patch = api.seen.find((s) => s.path.endsWith("/ingresses/web/status"));
    assert.equal(patch?.contentType, "application/merge-patch+json");
    assert.deepEqual(patch.body, { status: { loadBalancer: { ingress: [{ hostname: "web.tailnet.ts.net" }] } } });
  });
});
