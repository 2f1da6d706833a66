// Decides, from a Service alone, whether the operator exposes it and with what: a pure function,
// so every rule about which Services are ours and which inputs are valid is tested in isolation.
import type { V1Service } from "@kubernetes/client-node";
import { quoted } from "./quoted.ts";
import { ANNOTATIONS, LOAD_BALANCER_CLASS } from "./names.ts";

export interface ExposeIntent {
  readonly kind: "expose";
  readonly hostname: string;
  readonly tags: readonly string[];
  /** The Service's ClusterIPs, IPv4 and/or IPv6. */
  readonly destinations: readonly string[];
  /** LoadBalancer Services get status.loadBalancer; annotated ClusterIP ones only a condition. */
  readonly loadBalancer: boolean;
}

export type ServiceIntent =
  | { readonly kind: "ignore" }
  | { readonly kind: "invalid"; readonly message: string }
  /** Exposed and valid, but the API server has not allocated a ClusterIP yet. */
  | { readonly kind: "waiting"; readonly message: string }
  | ExposeIntent;

export interface IntentOptions {
  readonly defaultTags: readonly string[];
  /** Claim LoadBalancer Services that have no loadBalancerClass (OPERATOR_DEFAULT_LOAD_BALANCER). */
  readonly defaultLoadBalancer: boolean;
}

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const TAG = /^tag:[a-zA-Z][a-zA-Z0-9-]*$/;

export function isExposed(service: V1Service, options: Pick<IntentOptions, "defaultLoadBalancer">): boolean {
  const annotations = service.metadata?.annotations ?? {};
  if (annotations[ANNOTATIONS.proxyGroup]) return false; // the HA (ProxyGroup) path, not ours
  if (annotations[ANNOTATIONS.expose] === "true") return true;
  if (service.spec?.type !== "LoadBalancer") return false;
  const lbClass = service.spec.loadBalancerClass;
  return lbClass === LOAD_BALANCER_CLASS || (lbClass === undefined && options.defaultLoadBalancer);
}

export function serviceIntent(service: V1Service, options: IntentOptions): ServiceIntent {
  if (!isExposed(service, options)) return { kind: "ignore" };
  const annotations = service.metadata?.annotations ?? {};
  const namespace = service.metadata?.namespace ?? "";
  const name = service.metadata?.name ?? "";

  if (annotations[ANNOTATIONS.tailnetIp] || annotations[ANNOTATIONS.tailnetFqdn]) {
    return { kind: "invalid", message: `${ANNOTATIONS.tailnetIp}/${ANNOTATIONS.tailnetFqdn} ask for egress, which cannot be combined with exposing the Service` };
  }
  if (service.spec?.clusterIP === "None") {
    return { kind: "invalid", message: "headless Services (clusterIP: None) have no ClusterIP to forward tailnet traffic to" };
  }
  if (service.spec?.type === "ExternalName") {
    return { kind: "invalid", message: "ExternalName Services cannot be exposed yet; expose a Service with a ClusterIP" };
  }
  const hostname = annotations[ANNOTATIONS.hostname] ?? `${namespace}-${name}`;
  if (hostname.length > 63 || !DNS_LABEL.test(hostname)) {
    const source = annotations[ANNOTATIONS.hostname] === undefined ? `the default hostname "${hostname}" (<namespace>-<name>)` : `${ANNOTATIONS.hostname} ${quoted(hostname)}`;
    return { kind: "invalid", message: `${source} is not a valid DNS label (lowercase letters, digits and '-', at most 63 characters); set ${ANNOTATIONS.hostname}` };
  }
  const tagsValue = annotations[ANNOTATIONS.tags];
  const tags = tagsValue === undefined ? [...options.defaultTags] : tagsValue.split(",").map((tag) => tag.trim()).filter(Boolean);
  const badTag = tags.find((tag) => !TAG.test(tag));
  if (badTag !== undefined || tags.length === 0) {
    return { kind: "invalid", message: `${ANNOTATIONS.tags} must be a comma-separated list of tags like "tag:k8s"; ${quoted(badTag ?? tagsValue ?? "")} is not one` };
  }
  const destinations = (service.spec?.clusterIPs ?? (service.spec?.clusterIP ? [service.spec.clusterIP] : [])).filter((ip) => ip && ip !== "None");
  if (destinations.length === 0) return { kind: "waiting", message: "waiting for the API server to allocate a ClusterIP" };
  return { kind: "expose", hostname, tags, destinations, loadBalancer: service.spec?.type === "LoadBalancer" };
}
