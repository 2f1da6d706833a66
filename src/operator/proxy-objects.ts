// Pure builders of the objects that make up one proxy, in the operator's namespace. Names are
// derived from the parent (not generated), so a reconcile repeated after a crash finds and
// updates the same objects instead of creating duplicates.
import { createHash } from "node:crypto";
import type { V1Container, V1EnvVar, V1PodSecurityContext, V1ResourceRequirements, V1Secret, V1Service, V1StatefulSet } from "@kubernetes/client-node";
import type { ObjectRef } from "../kube/kube-client.ts";
import { ANNOTATIONS, LABELS } from "./names.ts";
import { EGRESS_ENV, type EgressPort } from "../shared/egress.ts";
import { INGRESS_SECRET_KEYS, type IngressProxyConfig } from "../shared/ingress-config.ts";

export interface ProxyParent {
  readonly namespace: string;
  readonly name: string;
  readonly type: "svc" | "ingress" | "apiserver";
}

export interface ProxySettings {
  readonly operatorNamespace: string;
  readonly image: string;
  readonly loginServer: string | undefined;
  readonly firewallMode: string;
  readonly forwarding: "init-container" | "pod-sysctls";
  readonly resources: V1ResourceRequirements;
  /** Extra environment for every proxy container (PROXY_ENV). */
  readonly extraEnv: Readonly<Record<string, string>>;
}

export interface ProxyTarget {
  readonly hostname: string;
  readonly tags: readonly string[];
  readonly destinations: readonly string[];
  /** L7 (Ingress) proxies: the Secret in the operator's namespace holding the routing table and certificate. */
  readonly ingressSecret?: string;
  /** An egress proxy: cluster traffic goes to this tailnet target (destinations stay empty). */
  readonly egress?: ProxyEgress;
  /**
   * A ServiceAccount the install provides instead of one per proxy (the API server proxy's, whose
   * impersonation rights are cluster-wide and granted by the chart, not by the operator).
   */
  readonly serviceAccount?: string;
  /** What the pod must restart for when it changes (an L7 proxy picks its certificate source once, at start). */
  readonly restartKey?: string;
}

export interface ProxyEgress {
  readonly ip?: string;
  readonly fqdn?: string;
  readonly ports: readonly EgressPort[];
  /** Families cluster clients reach the proxy with (its forwarding sysctls). */
  readonly families: readonly (4 | 6)[];
}

/** The proxy's environment for its egress target. */
function egressEnv(egress: ProxyEgress | undefined): V1EnvVar[] {
  if (!egress) return [];
  return [
    ...(egress.ip ? [{ name: EGRESS_ENV.targetIp, value: egress.ip }] : []),
    ...(egress.fqdn ? [{ name: EGRESS_ENV.targetFqdn, value: egress.fqdn }] : []),
    { name: EGRESS_ENV.ports, value: JSON.stringify(egress.ports) },
  ];
}

/** ts-<parent name, shortened>-<hash of namespace/name>: at most 52 characters, so the pod's
 * controller-revision-hash label (name + 11) still fits in 63. */
export function proxyName(parent: ProxyParent): string {
  const hash = createHash("sha256").update(`${parent.type}/${parent.namespace}/${parent.name}`).digest("hex").slice(0, 6);
  const stem = parent.name.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40).replace(/-+$/, "");
  return `ts-${stem}-${hash}`;
}

/** The proxy's ServiceAccount: its own, or the one the install provides for it. */
export function proxyServiceAccountName(parent: ProxyParent, target: Pick<ProxyTarget, "serviceAccount">): string {
  return target.serviceAccount ?? proxyName(parent);
}

export function stateSecretName(parent: ProxyParent): string {
  // The StatefulSet's only pod is <name>-0; the proxy finds its Secret as $(POD_NAME).
  return `${proxyName(parent)}-0`;
}

export function configSecretName(parent: ProxyParent): string {
  return `${proxyName(parent)}-config`;
}

/** An Ingress proxy's routing table and certificate (src/shared/ingress-config.ts). */
export function ingressSecretName(parent: ProxyParent): string {
  return `${proxyName(parent)}-ingress`;
}

/**
 * An L7 proxy's `<proxy>-ingress` Secret (src/shared/ingress-config.ts): its config, the copy of a
 * user's certificate for the "secret" source, and the ACME EAB HMAC key when the config names one.
 */
export function l7ConfigSecret(parent: ProxyParent, namespace: string, config: IngressProxyConfig, tls: { certPem: string; keyPem: string } | undefined, eabHmacKey: string | undefined): V1Secret {
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: ingressSecretName(parent), namespace, labels: { ...childLabels(parent), [LABELS.secretType]: "ingress" } },
    type: "Opaque",
    data: {
      [INGRESS_SECRET_KEYS.config]: b64(JSON.stringify(config)),
      ...(tls ? { [INGRESS_SECRET_KEYS.cert]: b64(tls.certPem), [INGRESS_SECRET_KEYS.key]: b64(tls.keyPem) } : {}),
      ...(config.acme?.eabKeyId && eabHmacKey ? { [INGRESS_SECRET_KEYS.eabHmacKey]: b64(eabHmacKey) } : {}),
    },
  };
}

/** Labels that tie children to the parent (owner references cannot cross namespaces). */
export function childLabels(parent: ProxyParent): Record<string, string> {
  return {
    [LABELS.managed]: "true",
    [LABELS.parentName]: parent.name,
    [LABELS.parentNamespace]: parent.namespace,
    [LABELS.parentType]: parent.type,
  };
}

export function childSelector(parent: ProxyParent): string {
  return Object.entries(childLabels(parent)).map(([k, v]) => `${k}=${v}`).join(",");
}

/** Hostname and tags: what the device was registered with; a change means a new device. */
export function deviceIdentity(target: ProxyTarget): string {
  return `${target.hostname} ${target.tags.join(",")}`;
}

/**
 * One of the proxy's two Secrets by name, with the labels it is made with: the operator's
 * Secret watch selects by them, so its cache can say that the Secret does not exist.
 */
export function proxySecretRef(parent: ProxyParent, namespace: string, type: "config" | "state"): ObjectRef {
  const name = type === "config" ? configSecretName(parent) : stateSecretName(parent);
  return { apiVersion: "v1", kind: "Secret", namespace, name, labels: proxySecretLabels(parent, type) };
}

function proxySecretLabels(parent: ProxyParent, type: "config" | "state"): Record<string, string> {
  return { ...childLabels(parent), [LABELS.secretType]: type };
}

/** key: the proxy's first auth key and its id, written with the Secret in one create. */
export function configSecret(parent: ProxyParent, settings: ProxySettings, target: ProxyTarget, key?: { id: string; key: string }): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: configSecretName(parent),
      namespace: settings.operatorNamespace,
      labels: proxySecretLabels(parent, "config"),
      annotations: { [ANNOTATIONS.proxyIdentity]: deviceIdentity(target), ...(key ? { [ANNOTATIONS.authKeyId]: key.id } : {}) },
    },
    ...(key ? { data: { [AUTH_KEY_FIELD]: Buffer.from(key.key).toString("base64") } } : {}),
  };
}

/** The key the config Secret holds for the proxy's first login. */
export const AUTH_KEY_FIELD = "authkey";

/** lostDevice: the state is re-made after a loss, and the device it belonged to must go. */
export function stateSecret(parent: ProxyParent, settings: ProxySettings, lostDevice?: string): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: stateSecretName(parent),
      namespace: settings.operatorNamespace,
      labels: proxySecretLabels(parent, "state"),
      ...(lostDevice ? { annotations: { [ANNOTATIONS.replacesDevice]: lostDevice } } : {}),
    },
  };
}

export function headlessService(parent: ProxyParent, settings: ProxySettings): V1Service {
  const name = proxyName(parent);
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: settings.operatorNamespace, labels: childLabels(parent) },
    spec: { clusterIP: "None", selector: { app: name }, ipFamilyPolicy: "PreferDualStack" },
  };
}

/** Where the kubelet mounts the config Secret in the proxy container. */
export const PROXY_CONFIG_DIR = "/etc/tailnet-proxy";
const HEALTH_PORT = 9002;

/** The forwarding sysctls the proxy needs: IPv4 always, IPv6 when a destination is IPv6. */
function forwardingSysctls(target: ProxyTarget): { name: string; value: string }[] {
  return [
    { name: "net.ipv4.ip_forward", value: "1" },
    ...(target.destinations.some((ip) => ip.includes(":")) || target.egress?.families.includes(6) ? [{ name: "net.ipv6.conf.all.forwarding", value: "1" }] : []),
  ];
}

/**
 * Forwarding is a per-pod-network sysctl outside the kubelet's safe set. By default a privileged
 * init container (the proxy image's `tailnet-proxy init`) sets it and exits, so the long-running
 * container keeps only NET_ADMIN, NET_RAW and MKNOD; `pod-sysctls` needs no privileged container
 * at all but only runs where the kubelet allows the sysctls (docs/proxy.md).
 */
function forwardingSetup(settings: ProxySettings, target: ProxyTarget): { initContainers: V1Container[]; securityContext: V1PodSecurityContext } {
  // An L7 proxy terminates connections itself and forwards nothing at the IP layer.
  if (target.ingressSecret) return { initContainers: [], securityContext: {} };
  const sysctls = forwardingSysctls(target);
  if (settings.forwarding === "pod-sysctls") return { initContainers: [], securityContext: { sysctls } };
  return {
    securityContext: {},
    initContainers: [
      {
        name: "sysctls",
        image: settings.image,
        imagePullPolicy: "IfNotPresent",
        args: ["init", ...sysctls.map((s) => `${s.name}=${s.value}`)],
        securityContext: { privileged: true },
        resources: { requests: { cpu: "1m", memory: "16Mi" } },
        terminationMessagePolicy: "FallbackToLogsOnError",
      },
    ],
  };
}

export function statefulSet(parent: ProxyParent, settings: ProxySettings, target: ProxyTarget): V1StatefulSet {
  const name = proxyName(parent);
  const env: V1EnvVar[] = [
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "TS_KUBE_SECRET", value: "$(POD_NAME)" },
    // A file, not an environment variable: children (tailscaled) would inherit the variable.
    { name: "TS_AUTHKEY_FILE", value: `${PROXY_CONFIG_DIR}/${AUTH_KEY_FIELD}` },
    { name: "TS_HOSTNAME", value: target.hostname },
    ...(target.destinations.length > 0 ? [{ name: "TS_DEST_IP", value: target.destinations.join(",") }] : []),
    ...egressEnv(target.egress),
    { name: "TS_DEBUG_FIREWALL_MODE", value: settings.firewallMode },
    { name: "TS_LOCAL_ADDR_PORT", value: `[::]:${HEALTH_PORT}` },
    ...(settings.loginServer ? [{ name: "TS_LOGIN_SERVER", value: settings.loginServer }] : []),
    ...(target.ingressSecret ? [{ name: "TS_INGRESS_SECRET", value: target.ingressSecret }] : []),
    ...Object.entries(settings.extraEnv).map(([k, v]) => ({ name: k, value: v })),
  ];
  const forwarding = forwardingSetup(settings, target);
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name, namespace: settings.operatorNamespace, labels: childLabels(parent) },
    spec: {
      replicas: 1,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { ...childLabels(parent), app: name },
          // A new identity is a new device: the proxy restarts and logs in with the new key.
          annotations: { [ANNOTATIONS.proxyIdentity]: deviceIdentity(target), ...(target.restartKey ? { [ANNOTATIONS.proxyRestartKey]: target.restartKey } : {}) },
        },
        spec: {
          serviceAccountName: proxyServiceAccountName(parent, target),
          // Service links would put every Service of the namespace into the proxy's environment.
          enableServiceLinks: false,
          securityContext: forwarding.securityContext,
          initContainers: forwarding.initContainers,
          containers: [
            {
              name: "tailscale",
              image: settings.image,
              imagePullPolicy: "IfNotPresent",
              env,
              ports: [{ name: "health", containerPort: HEALTH_PORT }],
              readinessProbe: { httpGet: { path: "/healthz", port: "health" }, periodSeconds: 2, failureThreshold: 3 },
              // Alive while the process answers at all; login can legitimately take minutes.
              livenessProbe: { httpGet: { path: "/livez", port: "health" }, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 5 },
              // Liveness only counts once the process answers: on a busy node, loading the proxy
              // (type stripping) can outlast the liveness budget, which then kills it in a loop.
              startupProbe: { httpGet: { path: "/livez", port: "health" }, periodSeconds: 5, failureThreshold: 60, timeoutSeconds: 5 },
              // MKNOD: a container's /dev has no /dev/net/tun; the proxy creates it (c 10:200,
              // which the runtime's default device rules allow).
              securityContext: {
                privileged: false,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW", "MKNOD"] },
              },
              resources: settings.resources,
              volumeMounts: [{ name: "config", mountPath: PROXY_CONFIG_DIR, readOnly: true }],
              // A proxy that fails at start says why in `kubectl describe` and in the Service.
              terminationMessagePolicy: "FallbackToLogsOnError",
            },
          ],
          volumes: [{ name: "config", secret: { secretName: configSecretName(parent), defaultMode: 0o400 } }],
        },
      },
    },
  };
}
