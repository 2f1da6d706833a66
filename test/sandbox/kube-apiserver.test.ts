// The sandbox's Kubernetes control plane is a real kube-apiserver with RBAC enforced.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CoreV1Api, ApiException } from "@kubernetes/client-node";
import { attachSandbox } from "../helpers/sandbox.ts";
import { httpGet } from "../../src/sandbox/https-probe.ts";
import { readPins } from "../../src/sandbox/binaries.ts";

const sandbox = await attachSandbox();
const ca = readFileSync(sandbox.kube.caFile, "utf8");

describe("kube-apiserver", () => {
  it("is ready and is the pinned version", async () => {
    const ready = await httpGet(`${sandbox.kube.server}/readyz`, { ca, token: sandbox.kube.adminToken });
    assert.equal(ready.status, 200);
    const version = JSON.parse((await httpGet(`${sandbox.kube.server}/version`, { ca, token: sandbox.kube.adminToken })).body) as { gitVersion: string };
    assert.equal(version.gitVersion, readPins()["K8S_VERSION"]);
  });

  it("allocates a ClusterIP from the service range to a Service created through client-node", async () => {
    const core = sandbox.kubeConfig().makeApiClient(CoreV1Api);
    const namespace = `smoke-${Date.now()}`;
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const created = await core.createNamespacedService({
      namespace,
      body: { metadata: { name: "web" }, spec: { ports: [{ port: 80 }], selector: { app: "web" } } },
    });
    assert.match(created.spec?.clusterIP ?? "", /^10\.96\.\d+\.\d+$/);
    const read = await core.readNamespacedService({ name: "web", namespace });
    assert.equal(read.spec?.clusterIP, created.spec?.clusterIP);
    await core.deleteNamespace({ name: namespace });
  });

  it("denies, through RBAC, an authenticated identity that has no bindings", async () => {
    const nobody = sandbox.kubeConfig(sandbox.kube.unprivilegedToken).makeApiClient(CoreV1Api);
    await assert.rejects(nobody.listNamespace(), (error: unknown) => error instanceof ApiException && error.code === 403);
    const admin = sandbox.kubeConfig().makeApiClient(CoreV1Api);
    const namespaces = await admin.listNamespace();
    assert.ok(namespaces.items.some((ns) => ns.metadata?.name === "default"));
  });

  it("rejects an unknown token as unauthenticated", async () => {
    const stranger = sandbox.kubeConfig("not-a-token").makeApiClient(CoreV1Api);
    await assert.rejects(stranger.listNamespace(), (error: unknown) => error instanceof ApiException && error.code === 401);
  });
});
