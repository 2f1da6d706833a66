// CoreDNS as the cluster's DNS, as kubeadm deploys it: ServiceAccount, RBAC, Corefile, a
// Deployment and the kube-dns Service at the clusterDNS address the kubelets hand to pods.
// It answers for the cluster domain only: there is no forward plugin, so no query ever
// leaves the sandbox (other names get SERVFAIL).
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { waitFor } from "../../shared/clock.ts";

export interface ClusterDnsOptions {
  readonly image: string;
  readonly clusterIp: string;
  readonly clusterDomain: string;
  readonly replicas?: number;
}

const NAMESPACE = "kube-system";
const NAME = "coredns";
const LABELS = { "k8s-app": "kube-dns" };

export function corefile(clusterDomain: string): string {
  return `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loop
    reload
    loadbalance
}
`;
}

export function clusterDnsObjects(options: ClusterDnsOptions): KubernetesObject[] {
  const metadata = { name: NAME, namespace: NAMESPACE };
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns" },
      rules: [
        { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    } as KubernetesObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: NAME, namespace: NAMESPACE }],
    } as KubernetesObject,
    { apiVersion: "v1", kind: "ConfigMap", metadata, data: { Corefile: corefile(options.clusterDomain) } } as KubernetesObject,
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { ...metadata, labels: LABELS },
      spec: {
        replicas: options.replicas ?? 1,
        selector: { matchLabels: LABELS },
        template: {
          metadata: { labels: LABELS },
          spec: {
            serviceAccountName: NAME,
            priorityClassName: "system-cluster-critical",
            // Its own upstream would be the node's resolv.conf: a sandbox node has no resolver.
            dnsPolicy: "Default",
            containers: [
              {
                name: "coredns",
                image: options.image,
                imagePullPolicy: "IfNotPresent",
                args: ["-conf", "/etc/coredns/Corefile"],
                ports: [
                  { name: "dns", containerPort: 53, protocol: "UDP" },
                  { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
                ],
                resources: { requests: { cpu: "10m", memory: "30Mi" } },
                volumeMounts: [{ name: "config", mountPath: "/etc/coredns", readOnly: true }],
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] },
                  readOnlyRootFilesystem: true,
                },
                livenessProbe: { httpGet: { path: "/health", port: 8080 }, initialDelaySeconds: 30, periodSeconds: 10 },
                readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 1 },
              },
            ],
            volumes: [{ name: "config", configMap: { name: NAME, items: [{ key: "Corefile", path: "Corefile" }] } }],
          },
        },
      },
    } as KubernetesObject,
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: NAMESPACE, labels: { ...LABELS, "kubernetes.io/name": "CoreDNS" } },
      spec: {
        selector: LABELS,
        clusterIP: options.clusterIp,
        ports: [
          { name: "dns", port: 53, protocol: "UDP" },
          { name: "dns-tcp", port: 53, protocol: "TCP" },
        ],
      },
    } as KubernetesObject,
  ];
}

/** Applies the objects (server-side apply, so a second call is harmless). */
export async function deployClusterDns(kc: KubeConfig, options: ClusterDnsOptions): Promise<void> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  for (const object of clusterDnsObjects(options)) {
    await client.patch(object, undefined, undefined, "tailnet-operator-sandbox", true, PatchStrategy.ServerSideApply);
  }
}

/** Waits until every CoreDNS replica is available (ready: it has synced with the API server). */
export async function awaitClusterDns(kc: KubeConfig, timeoutMs: number): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  try {
    await waitFor(
      "CoreDNS to be available",
      async () => {
        const deployment = await apps.readNamespacedDeployment({ name: NAME, namespace: NAMESPACE });
        const want = deployment.spec?.replicas ?? 1;
        return (deployment.status?.availableReplicas ?? 0) >= want ? true : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; its pods: ${await podSummary(kc).catch(() => "(unknown)")}`, { cause: error });
  }
}

/** Phase and container states of the CoreDNS pods, for an error message. */
async function podSummary(kc: KubeConfig): Promise<string> {
  const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NAMESPACE, labelSelector: "k8s-app=kube-dns" });
  return (
    pods.items
      .map((pod) => {
        const states = (pod.status?.containerStatuses ?? []).map((c) => `${c.name} ready=${String(c.ready)} ${JSON.stringify(c.state)}`);
        return `${pod.metadata?.name ?? "?"} ${pod.status?.phase ?? "?"} on ${pod.spec?.nodeName ?? "no node"} [${states.join("; ")}]`;
      })
      .join(", ") || "none"
  );
}
