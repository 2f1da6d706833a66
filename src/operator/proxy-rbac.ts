// The proxies' identity in the operator namespace: a ServiceAccount allowed to read and write
// Secrets there (tailscaled keeps its state in one, the proxy reports its device in it) and
// nothing else. Applied at start (as leader), idempotently.
import type { V1Role, V1RoleBinding } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";

export async function ensureProxyRbac(kube: KubeClient, namespace: string, serviceAccount: string): Promise<void> {
  await kube.apply({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: serviceAccount, namespace } });
  await kube.apply<V1Role>({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: serviceAccount, namespace },
    rules: [
      { apiGroups: [""], resources: ["secrets"], verbs: ["get", "update", "patch"] },
      { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
    ],
  });
  await kube.apply<V1RoleBinding>({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: serviceAccount, namespace },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: serviceAccount },
    subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace }],
  });
}
