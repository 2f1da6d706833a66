// Decides, from an Ingress alone, whether the operator serves it and with what: hostname, tags,
// certificate Secret, Funnel, redirect and the backends each path asks for. Pure, so every rule
// about which Ingresses are ours and which inputs are valid is tested in isolation.
import type { V1Ingress, V1IngressBackend } from "@kubernetes/client-node";
import { quoted } from "./quoted.ts";
import { ANNOTATIONS } from "./names.ts";

export const INGRESS_CLASS = "tailscale";
export const INGRESS_CONTROLLER = "tailscale.com/ts-ingress";

export const INGRESS_ANNOTATIONS = {
  funnel: "tailscale.com/funnel",
  httpRedirect: "tailscale.com/http-redirect",
} as const;

/** A backend as the Ingress names it; the reconciler resolves it against the Service. */
export interface BackendRef {
  readonly pathType: "Exact" | "Prefix";
  readonly path: string;
  readonly service: string;
  readonly port: { readonly number: number } | { readonly name: string };
}

export interface IngressExposeIntent {
  readonly kind: "expose";
  readonly hostname: string;
  readonly tags: readonly string[];
  /** spec.tls[0].hosts[0] when given: the name the certificate must cover. */
  readonly tlsHost: string | undefined;
  /** spec.tls[0].secretName: the certificate comes from this Secret. */
  readonly secretName: string | undefined;
  readonly funnel: boolean;
  readonly httpRedirect: boolean;
  readonly backends: readonly BackendRef[];
  /** Rule hosts other than the TLS host: their paths are not served (as Tailscale's operator does). */
  readonly ignoredHosts: readonly string[];
}

export type IngressIntent = { readonly kind: "ignore" } | { readonly kind: "invalid"; readonly message: string } | IngressExposeIntent;

export interface IngressIntentOptions {
  readonly defaultTags: readonly string[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const TAG = /^tag:[a-zA-Z][a-zA-Z0-9-]*$/;

export function isOurIngress(ingress: V1Ingress): boolean {
  if (ingress.metadata?.annotations?.[ANNOTATIONS.proxyGroup]) return false; // the HA (ProxyGroup) path, not ours
  return ingress.spec?.ingressClassName === INGRESS_CLASS;
}

function backendRef(backend: V1IngressBackend, path: string, pathType: "Exact" | "Prefix", where: string): BackendRef | string {
  const service = backend.service;
  if (!service) return `${where}: only Service backends are supported (not resource backends)`;
  const port = service.port;
  if (port?.number !== undefined) return { path, pathType, service: service.name, port: { number: port.number } };
  if (port?.name) return { path, pathType, service: service.name, port: { name: port.name } };
  return `${where}: backend Service ${service.name} names no port`;
}

export function ingressIntent(ingress: V1Ingress, options: IngressIntentOptions): IngressIntent {
  if (!isOurIngress(ingress)) return { kind: "ignore" };
  const annotations = ingress.metadata?.annotations ?? {};
  const namespace = ingress.metadata?.namespace ?? "";
  const name = ingress.metadata?.name ?? "";
  const tls = ingress.spec?.tls?.[0];
  const tlsHost = tls?.hosts?.[0];

  let hostname: string;
  let source: string;
  const hostnameAnnotation = annotations[ANNOTATIONS.hostname];
  if (hostnameAnnotation !== undefined) {
    hostname = hostnameAnnotation;
    source = `${ANNOTATIONS.hostname} ${quoted(hostname)}`;
  } else if (tlsHost) {
    hostname = tlsHost.split(".")[0] ?? "";
    source = `the first label of spec.tls[0].hosts[0] "${tlsHost}"`;
  } else {
    hostname = `${namespace}-${name}-ingress`;
    source = `the default hostname "${hostname}" (no spec.tls[0].hosts and no ${ANNOTATIONS.hostname}; <namespace>-<name>-ingress)`;
  }
  if (hostname.length > 63 || !DNS_LABEL.test(hostname)) {
    return { kind: "invalid", message: `${source} is not a valid DNS label (lowercase letters, digits and '-', at most 63 characters); set spec.tls[0].hosts or ${ANNOTATIONS.hostname}` };
  }
  const tagsValue = annotations[ANNOTATIONS.tags];
  const tags = tagsValue === undefined ? [...options.defaultTags] : tagsValue.split(",").map((tag) => tag.trim()).filter(Boolean);
  const badTag = tags.find((tag) => !TAG.test(tag));
  if (badTag !== undefined || tags.length === 0) {
    return { kind: "invalid", message: `${ANNOTATIONS.tags} must be a comma-separated list of tags like "tag:k8s"; ${quoted(badTag ?? tagsValue ?? "")} is not one` };
  }

  const backends: BackendRef[] = [];
  const ignoredHosts = new Set<string>();
  const defaultBackend = ingress.spec?.defaultBackend;
  if (defaultBackend) {
    const ref = backendRef(defaultBackend, "/", "Prefix", "spec.defaultBackend");
    if (typeof ref === "string") return { kind: "invalid", message: ref };
    backends.push(ref);
  }
  for (const [r, rule] of (ingress.spec?.rules ?? []).entries()) {
    // Rules for other hosts would need a second name and certificate on the same device.
    if (rule.host && rule.host !== tlsHost && rule.host.split(".")[0] !== hostname) {
      ignoredHosts.add(rule.host);
      continue;
    }
    for (const [p, path] of (rule.http?.paths ?? []).entries()) {
      const value = path.path ?? "/";
      if (!value.startsWith("/")) return { kind: "invalid", message: `spec.rules[${r}].http.paths[${p}].path "${value}" must start with /` };
      // ImplementationSpecific is ours to define: Prefix, as most controllers do.
      const pathType = path.pathType === "Exact" ? "Exact" : "Prefix";
      const ref = backendRef(path.backend, value, pathType, `spec.rules[${r}].http.paths[${p}]`);
      if (typeof ref === "string") return { kind: "invalid", message: ref };
      // A path already given (by an earlier rule or the default backend) keeps its first backend.
      if (!backends.some((b) => b.path === ref.path && b.pathType === ref.pathType)) backends.push(ref);
    }
  }
  if (backends.length === 0) {
    return { kind: "invalid", message: "the Ingress has no backend to serve: give spec.defaultBackend or spec.rules[].http.paths for the TLS host" };
  }
  return {
    kind: "expose",
    hostname,
    tags,
    tlsHost,
    secretName: tls?.secretName || undefined,
    funnel: annotations[INGRESS_ANNOTATIONS.funnel] === "true",
    httpRedirect: annotations[INGRESS_ANNOTATIONS.httpRedirect] === "true",
    backends,
    ignoredHosts: [...ignoredHosts],
  };
}
