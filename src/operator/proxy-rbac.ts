// Each proxy's own identity: a ServiceAccount whose Role reaches exactly one object, the proxy's
// state Secret (tailscaled keeps its state there; the proxy reports its device there). Not the
// config Secret (the kubelet mounts it), not the operator's credentials, not another proxy's
// Secrets. Owner labels tie them to the parent, so cleanup removes them with the rest.
import type { V1Role, V1RoleBinding, V1ServiceAccount } from "@kubernetes/client-node";
import { childLabels, ingressSecretName, proxyName, proxyServiceAccountName, stateSecretName, type ProxyParent, type ProxySettings, type ProxyTarget } from "./proxy-objects.ts";

export function proxyServiceAccount(parent: ProxyParent, settings: ProxySettings): V1ServiceAccount {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: proxyName(parent), namespace: settings.operatorNamespace, labels: childLabels(parent) },
    // The token is mounted only into the proxy's own pod, by the kubelet.
    automountServiceAccountToken: true,
  };
}

export function proxyRole(parent: ProxyParent, settings: ProxySettings): V1Role {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: proxyName(parent), namespace: settings.operatorNamespace, labels: childLabels(parent) },
    rules: [
      // resourceNames cannot limit create or list, so the operator creates the Secret first and
      // the proxy never needs either.
      { apiGroups: [""], resources: ["secrets"], resourceNames: [stateSecretName(parent)], verbs: ["get", "update", "patch"] },
      // An Ingress proxy follows its routing table and certificate (a watch by name is allowed
      // with resourceNames when it selects metadata.name); read only, and only that Secret.
      ...(parent.type === "ingress" || parent.type === "apiserver" ? [{ apiGroups: [""], resources: ["secrets"], resourceNames: [ingressSecretName(parent)], verbs: ["get", "list", "watch"] }] : []),
    ],
  };
}

export function proxyRoleBinding(parent: ProxyParent, settings: ProxySettings, target: Pick<ProxyTarget, "serviceAccount">): V1RoleBinding {
  const name = proxyName(parent);
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name, namespace: settings.operatorNamespace, labels: childLabels(parent) },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
    subjects: [{ kind: "ServiceAccount", name: proxyServiceAccountName(parent, target), namespace: settings.operatorNamespace }],
  };
}
