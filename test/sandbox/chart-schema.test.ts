// Every object the chart renders (each value set) and deploy/operator.yaml, checked by the
// sandbox's real kube-apiserver: server-side apply as a dry run with fieldValidation=Strict, so
// an unknown or misplaced field, a wrong type or an invalid value is an error, exactly as on a
// real cluster of the pinned version. This replaces kubeconform, whose schemas come from the
// internet. Then the chart's RBAC, created for real, must let the operator do its job (and no
// more), and the operator pod must pass Pod Security "restricted".
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { attachSandbox } from "../helpers/sandbox.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { TEST_PRIORITY_CLASS, VARIANTS, parseObjects, renderObjects, type KubeObject } from "../chart/helm.ts";
import { proxyRole, proxyRoleBinding, proxyServiceAccount } from "../../src/operator/proxy-rbac.ts";
import type { ProxySettings } from "../../src/operator/proxy-objects.ts";

const sandbox = await attachSandbox();
const ca = readFileSync(sandbox.kube.caFile, "utf8");
const NAMESPACE = `chart-schema-${Date.now().toString(36)}`;
const FIELD_MANAGER = "chart-schema-test";

interface ApiResponse {
  readonly status: number;
  readonly body: string;
  /** The API server's Warning headers (Pod Security, deprecations, duplicate fields). */
  readonly warnings: string[];
}

function api(method: string, path: string, body?: object, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, sandbox.kube.server),
      {
        method,
        ca,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${sandbox.kube.adminToken}`,
          accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": method === "PATCH" ? "application/apply-patch+yaml" : "application/json" }),
          ...headers,
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => {
          const warning = res.headers.warning;
          resolve({ status: res.statusCode ?? 0, body: text, warnings: warning === undefined ? [] : Array.isArray(warning) ? warning : [warning] });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** The kinds the chart (and the proxies' RBAC) render: REST plural and scope. */
const RESOURCES: Record<string, { plural: string; namespaced: boolean }> = {
  Namespace: { plural: "namespaces", namespaced: false },
  ServiceAccount: { plural: "serviceaccounts", namespaced: true },
  Secret: { plural: "secrets", namespaced: true },
  Pod: { plural: "pods", namespaced: true },
  Deployment: { plural: "deployments", namespaced: true },
  Job: { plural: "jobs", namespaced: true },
  ClusterRole: { plural: "clusterroles", namespaced: false },
  ClusterRoleBinding: { plural: "clusterrolebindings", namespaced: false },
  Role: { plural: "roles", namespaced: true },
  RoleBinding: { plural: "rolebindings", namespaced: true },
  IngressClass: { plural: "ingressclasses", namespaced: false },
  Lease: { plural: "leases", namespaced: true },
  PriorityClass: { plural: "priorityclasses", namespaced: false },
};

function objectPath(object: KubeObject): string {
  const resource = RESOURCES[object.kind];
  if (!resource) throw new Error(`chart-schema test: add kind ${object.kind} to RESOURCES`);
  const group = object.apiVersion.includes("/") ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const scope = resource.namespaced ? `/namespaces/${object.metadata.namespace ?? NAMESPACE}` : "";
  return `${group}${scope}/${resource.plural}/${object.metadata.name}`;
}

/** Server-side apply; a dry run unless `persist`. Strict: unknown and duplicate fields fail. */
function apply(object: KubeObject, options: { persist?: boolean; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
  const query = new URLSearchParams({ fieldManager: FIELD_MANAGER, force: "true", fieldValidation: "Strict", ...(options.persist ? {} : { dryRun: "All" }) });
  return api("PATCH", `${objectPath(object)}?${query.toString()}`, object, options.headers);
}

function assertAccepted(object: KubeObject, response: ApiResponse): void {
  assert.ok(response.status >= 200 && response.status < 300, `${object.kind}/${object.metadata.name}: HTTP ${response.status}: ${response.body}`);
  assert.deepEqual(response.warnings, [], `${object.kind}/${object.metadata.name}: the API server warned`);
}

/** deploy/operator.yaml, moved from namespace tailscale into the test's namespace. */
function staticManifestObjects(): KubeObject[] {
  const objects = parseObjects(readFileSync(new URL("../../deploy/operator.yaml", import.meta.url), "utf8"));
  for (const object of objects) {
    if (object.kind === "Namespace") object.metadata.name = NAMESPACE;
    if (object.metadata.namespace !== undefined) object.metadata.namespace = NAMESPACE;
    for (const subject of (object["subjects"] ?? []) as { namespace?: string }[]) subject.namespace = NAMESPACE;
  }
  return objects;
}

/** The operator pod of a render, as the Deployment would create it. */
function operatorPod(objects: readonly KubeObject[], name: string): KubeObject {
  const deployment = objects.find((o) => o.kind === "Deployment") as (KubeObject & { spec: { template: { metadata: object; spec: object } } }) | undefined;
  assert.ok(deployment);
  return { apiVersion: "v1", kind: "Pod", metadata: { ...deployment.spec.template.metadata, name, namespace: NAMESPACE }, spec: deployment.spec.template.spec };
}

const cleanup: string[] = [];

before(async () => {
  // Pod Security "restricted" is enforced on pods and warned about on Deployments here: the
  // operator pod must pass it (the proxies, which need privileges, are not created by the chart).
  const namespace: KubeObject = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: NAMESPACE, labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted" } },
  };
  assertAccepted(namespace, await apply(namespace, { persist: true }));
  cleanup.push(objectPath(namespace));
  // What the operator pod refers to must exist for the pod to be admitted: its ServiceAccount
  // (the same name in every render) and the PriorityClass one value set names.
  const prerequisites: KubeObject[] = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "tailnet-operator", namespace: NAMESPACE } },
    { apiVersion: "scheduling.k8s.io/v1", kind: "PriorityClass", metadata: { name: TEST_PRIORITY_CLASS }, value: 1_000_000 },
  ];
  for (const object of prerequisites) {
    assertAccepted(object, await apply(object, { persist: true }));
    cleanup.push(objectPath(object));
  }
});

after(async () => {
  for (const path of cleanup.reverse()) await api("DELETE", path);
});

describe("the chart's objects, validated by kube-apiserver (dry run, fieldValidation=Strict)", () => {
  it("rejects an unknown field (the check is real)", async () => {
    const bogus: KubeObject = { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "bogus", namespace: NAMESPACE }, automountToken: true };
    const response = await apply(bogus);
    // Apply answers 500 "failed to create typed patch object" for a field outside the schema.
    assert.ok(response.status >= 400, `HTTP ${response.status}`);
    assert.match(response.body, /\.automountToken: field not declared in schema/);
  });

  it("rejects a pod that is not restricted-compliant in the test namespace (the check is real)", async () => {
    const pod = operatorPod(await renderObjects(VARIANTS[0]!.values, NAMESPACE), "escalating-pod");
    (pod["spec"] as { containers: { securityContext: Record<string, unknown> }[] }).containers[0]!.securityContext["allowPrivilegeEscalation"] = true;
    const response = await apply(pod);
    assert.equal(response.status, 403, response.body);
    assert.match((JSON.parse(response.body) as { message: string }).message, /violates PodSecurity "restricted:.*allowPrivilegeEscalation/);
  });

  const renders: { name: string; objects: () => Promise<KubeObject[]> }[] = [
    ...VARIANTS.map((variant) => ({ name: variant.name, objects: () => renderObjects(variant.values, NAMESPACE) })),
    { name: "deploy/operator.yaml", objects: () => Promise.resolve(staticManifestObjects()) },
  ];
  for (const render of renders) {
    it(`accepts every object: ${render.name}`, async () => {
      const objects = await render.objects();
      assert.ok(objects.length >= 6, `rendered ${objects.length} objects`);
      for (const object of objects) assertAccepted(object, await apply(object));
      // The operator's own pod, admitted by Pod Security "restricted" (enforced here).
      assertAccepted(operatorPod(objects, "operator-pod-check"), await apply(operatorPod(objects, "operator-pod-check")));
    });
  }
});

describe("the chart's RBAC, created for real, as the operator's ServiceAccount", () => {
  const release = `rbac-${Date.now().toString(36)}`;
  let operator: Record<string, string> = {};

  before(async () => {
    const objects = (await renderObjects({ fullnameOverride: release, controlPlane: { existingSecret: "c" } }, NAMESPACE)).filter((o) =>
      ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"].includes(o.kind),
    );
    for (const object of objects) {
      assertAccepted(object, await apply(object, { persist: true }));
      cleanup.push(objectPath(object));
    }
    operator = { "impersonate-user": `system:serviceaccount:${NAMESPACE}:${release}` };
    // The API server's RBAC authorizer reads the bindings from an informer: new ones take a
    // moment to count. Wait until it grants one rule of the Role and one of the ClusterRole.
    const allowed = async (attributes: Record<string, string>): Promise<boolean> => {
      const review = { apiVersion: "authorization.k8s.io/v1", kind: "SelfSubjectAccessReview", spec: { resourceAttributes: attributes } };
      const response = await api("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, operator);
      return (JSON.parse(response.body) as { status?: { allowed?: boolean } }).status?.allowed === true;
    };
    await waitFor("the chart's RBAC to be in force", async () =>
      ((await allowed({ namespace: NAMESPACE, verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings" })) &&
        (await allowed({ verb: "list", group: "", resource: "services" }))) || undefined,
    { timeoutMs: 30_000, intervalMs: 100 });
  });

  it("can give a proxy its own ServiceAccount, Role (one Secret by name) and RoleBinding (RBAC escalation check)", async () => {
    // The operator's own builders; created for real (a RoleBinding's check needs its Role to exist).
    const settings = { operatorNamespace: NAMESPACE } as ProxySettings;
    const parent = { namespace: "default", name: "web", type: "svc" } as const;
    for (const object of [proxyServiceAccount(parent, settings), proxyRole(parent, settings), proxyRoleBinding(parent, settings, {})] as KubeObject[]) {
      assertAccepted(object, await apply(object, { persist: true, headers: operator }));
    }
  });

  it("can take and renew its own leader Lease, and no other", async () => {
    const lease = (name: string): KubeObject => ({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name, namespace: NAMESPACE }, spec: { holderIdentity: "x" } });
    const own = lease("tailnet-operator-leader");
    assertAccepted(own, await api("POST", `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases?dryRun=All`, own, operator));
    assert.equal((await api("GET", objectPath(own), undefined, operator)).status, 404, "reading its own Lease is allowed (it does not exist yet)");
    assert.equal((await api("GET", objectPath(lease("someone-else")), undefined, operator)).status, 403);
  });

  it("may only read Secrets outside its namespace (Ingress TLS Secrets), never write them, nor make cluster-wide RBAC", async () => {
    // The read is the documented price of tls.secretName on Ingresses (ADR 0011).
    assert.equal((await api("GET", "/api/v1/namespaces/kube-system/secrets", undefined, operator)).status, 200);
    const foreign = { apiVersion: "v1", kind: "Secret", metadata: { name: "planted", namespace: "kube-system" }, stringData: { k: "v" } };
    assert.equal((await api("POST", "/api/v1/namespaces/kube-system/secrets", foreign, operator)).status, 403);
    assert.equal((await api("DELETE", "/api/v1/namespaces/kube-system/secrets/anything", undefined, operator)).status, 403);
    assert.equal((await api("PUT", "/api/v1/namespaces/kube-system/secrets/anything", foreign, operator)).status, 403);
    const clusterRole: KubeObject = { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: `${release}-escalated` }, rules: [] };
    assert.equal((await apply(clusterRole, { headers: operator })).status, 403);
  });
});
