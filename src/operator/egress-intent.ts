// Decides, from a Service alone, whether it asks for egress to a tailnet target and with what:
// a pure function, like service-intent.ts, so every validation rule is tested in isolation.
import { BlockList, isIP } from "node:net";
import type { V1Service, V1ServiceSpec } from "@kubernetes/client-node";
import type { EgressPort } from "../shared/egress.ts";
import { quoted } from "./quoted.ts";
import { ANNOTATIONS } from "./names.ts";
import { DNS_LABEL, TAG, isExposed, type IntentOptions } from "./service-intent.ts";

/**
 * Addresses no tailnet device or subnet route can be: the proxy's own loopback, "this host",
 * multicast, reserved and broadcast IPv4, IPv6 link-local (meaningless without an interface).
 */
const NEVER_A_TARGET = new BlockList();
NEVER_A_TARGET.addSubnet("0.0.0.0", 8, "ipv4");
NEVER_A_TARGET.addSubnet("127.0.0.0", 8, "ipv4");
NEVER_A_TARGET.addSubnet("224.0.0.0", 3, "ipv4");
NEVER_A_TARGET.addAddress("::", "ipv6");
NEVER_A_TARGET.addAddress("::1", "ipv6");
NEVER_A_TARGET.addSubnet("fe80::", 10, "ipv6");
NEVER_A_TARGET.addSubnet("ff00::", 8, "ipv6");

export type EgressTarget = { readonly ip: string } | { readonly fqdn: string };

export interface EgressIntent {
  readonly kind: "egress";
  readonly hostname: string;
  readonly tags: readonly string[];
  readonly target: EgressTarget;
  readonly ports: readonly EgressPort[];
  /** Address families cluster clients use to reach the proxy (its forwarding sysctls). */
  readonly families: readonly (4 | 6)[];
  /** The spec as the user wrote it: kept in an annotation, put back when egress ends. */
  readonly originalSpec: V1ServiceSpec;
  /** True when the Service already points at the proxy (the operator rewrote it). */
  readonly rewritten: boolean;
}

export type EgressDecision = { readonly kind: "none" } | { readonly kind: "invalid"; readonly message: string } | EgressIntent;

/** A Service that asks for egress (exposed ones go to service-intent, which rejects the mix). */
export function wantsEgress(service: V1Service, options: Pick<IntentOptions, "defaultLoadBalancer">): boolean {
  const annotations = service.metadata?.annotations ?? {};
  if (annotations[ANNOTATIONS.proxyGroup] || isExposed(service, options)) return false;
  return annotations[ANNOTATIONS.tailnetIp] !== undefined || annotations[ANNOTATIONS.tailnetFqdn] !== undefined;
}

/** A Service the operator rewrote for egress (its original spec is still to be put back). */
export function isEgressManaged(service: V1Service): boolean {
  return service.metadata?.annotations?.[ANNOTATIONS.egressOriginalSpec] !== undefined;
}

/** A DNS name of at least two labels, without the trailing dot, lowercased; undefined if not one. */
export function normalizeFqdn(value: string): string | undefined {
  const name = value.trim().toLowerCase().replace(/\.$/, "");
  const labels = name.split(".");
  if (name.length > 253 || labels.length < 2) return undefined;
  return labels.every((label) => label.length <= 63 && DNS_LABEL.test(label)) ? name : undefined;
}

/**
 * The spec to keep: what the user wrote, without what the API server allocated (the ClusterIP
 * comes back as a new one; a headless Service's "None" is the user's and stays).
 */
export function userSpec(spec: V1ServiceSpec): V1ServiceSpec {
  const rest = { ...spec };
  delete rest.clusterIP;
  delete rest.clusterIPs;
  return spec.clusterIP === "None" ? { ...rest, clusterIP: "None" } : rest;
}

/**
 * @param proxyExternalName the proxy's headless Service name in the cluster domain: a Service
 * whose spec already points there has been rewritten by the operator.
 */
export function egressIntent(service: V1Service, options: IntentOptions, proxyExternalName: string): EgressDecision {
  if (!wantsEgress(service, options)) return { kind: "none" };
  const annotations = service.metadata?.annotations ?? {};
  const ipValue = annotations[ANNOTATIONS.tailnetIp];
  const fqdnValue = annotations[ANNOTATIONS.tailnetFqdn];
  if (ipValue !== undefined && fqdnValue !== undefined) {
    return { kind: "invalid", message: `set either ${ANNOTATIONS.tailnetIp} or ${ANNOTATIONS.tailnetFqdn}, not both` };
  }
  let target: EgressTarget;
  if (ipValue !== undefined) {
    const ip = ipValue.trim();
    // A zone id (fe80::1%eth0) names a local interface: meaningless for a tailnet device's address.
    if (isIP(ip) === 0 || ip.includes("%")) return { kind: "invalid", message: `${ANNOTATIONS.tailnetIp} ${quoted(ipValue)} is not an IPv4 or IPv6 address` };
    if (NEVER_A_TARGET.check(ip, isIP(ip) === 6 ? "ipv6" : "ipv4")) {
      return { kind: "invalid", message: `${ANNOTATIONS.tailnetIp} ${quoted(ipValue)} is a loopback, unspecified, multicast or link-local address, which no tailnet device has` };
    }
    target = { ip };
  } else {
    const fqdn = normalizeFqdn(fqdnValue ?? "");
    if (!fqdn) return { kind: "invalid", message: `${ANNOTATIONS.tailnetFqdn} ${quoted(fqdnValue ?? "")} is not a full DNS name (like host.tailnet.example)` };
    target = { fqdn };
  }

  const spec = service.spec ?? {};
  const saved = annotations[ANNOTATIONS.egressOriginalSpec];
  const rewritten = saved !== undefined && spec.type === "ExternalName" && spec.externalName === proxyExternalName;
  let originalSpec: V1ServiceSpec;
  if (rewritten) {
    try {
      originalSpec = JSON.parse(saved) as V1ServiceSpec;
    } catch {
      return { kind: "invalid", message: `${ANNOTATIONS.egressOriginalSpec} is not valid JSON; remove it and write the Service's spec again` };
    }
  } else {
    originalSpec = userSpec(spec);
  }
  const type = originalSpec.type ?? "ClusterIP";
  if (type !== "ClusterIP" && type !== "ExternalName") {
    return { kind: "invalid", message: `egress needs a ClusterIP or ExternalName Service; this one is ${type}` };
  }

  const ports: EgressPort[] = [];
  for (const port of spec.ports ?? []) {
    const protocol = (port.protocol ?? "TCP").toLowerCase();
    if (protocol !== "tcp" && protocol !== "udp") return { kind: "invalid", message: `port ${port.port} is ${port.protocol ?? ""}: egress forwards TCP and UDP only` };
    // A named targetPort means nothing on a tailnet device: the port itself is used.
    const targetPort = typeof port.targetPort === "number" ? port.targetPort : port.port;
    ports.push({ protocol, matchPort: port.port, targetPort });
  }
  if (ports.length === 0) return { kind: "invalid", message: "an egress Service needs ports: list the ports to forward to the tailnet target" };

  const namespace = service.metadata?.namespace ?? "";
  const name = service.metadata?.name ?? "";
  const hostname = annotations[ANNOTATIONS.hostname] ?? `${namespace}-${name}`;
  if (hostname.length > 63 || !DNS_LABEL.test(hostname)) {
    return { kind: "invalid", message: `the proxy's hostname ${quoted(hostname)} is not a valid DNS label (lowercase letters, digits and '-', at most 63 characters); set ${ANNOTATIONS.hostname}` };
  }
  const tagsValue = annotations[ANNOTATIONS.tags];
  const tags = tagsValue === undefined ? [...options.defaultTags] : tagsValue.split(",").map((tag) => tag.trim()).filter(Boolean);
  const badTag = tags.find((tag) => !TAG.test(tag));
  if (badTag !== undefined || tags.length === 0) {
    return { kind: "invalid", message: `${ANNOTATIONS.tags} must be a comma-separated list of tags like "tag:k8s"; ${quoted(badTag ?? tagsValue ?? "")} is not one` };
  }

  const families: (4 | 6)[] =
    "ip" in target ? [isIP(target.ip) === 6 ? 6 : 4] : [...new Set((originalSpec.ipFamilies ?? ["IPv4"]).map((f) => (f === "IPv6" ? 6 : 4)))];
  return { kind: "egress", hostname, tags, target, ports, families, originalSpec, rewritten };
}

/** The merge patch that points the Service at the proxy, keeping the user's spec in an annotation. */
export function rewritePatch(service: V1Service, intent: EgressIntent, proxyExternalName: string): object {
  return {
    metadata: { annotations: { [ANNOTATIONS.egressOriginalSpec]: JSON.stringify(intent.originalSpec) }, resourceVersion: service.metadata?.resourceVersion },
    spec: {
      type: "ExternalName",
      externalName: proxyExternalName,
      // What an ExternalName Service may not have.
      selector: null,
      clusterIP: null,
      clusterIPs: null,
      ipFamilies: null,
      ipFamilyPolicy: null,
      internalTrafficPolicy: null,
    },
  };
}

/**
 * The merge patch that puts the user's spec back and drops the annotation that kept it. A spec
 * that no longer points at the proxy is the user's newer one and stays as it is.
 */
export function restorePatch(service: V1Service, proxyExternalName: string): object | undefined {
  const saved = service.metadata?.annotations?.[ANNOTATIONS.egressOriginalSpec];
  if (saved === undefined) return undefined;
  let original: V1ServiceSpec | undefined;
  try {
    original = service.spec?.type === "ExternalName" && service.spec.externalName === proxyExternalName ? (JSON.parse(saved) as V1ServiceSpec) : undefined;
  } catch {
    original = undefined; // nothing to put back: only the annotation goes
  }
  return {
    metadata: { annotations: { [ANNOTATIONS.egressOriginalSpec]: null }, resourceVersion: service.metadata?.resourceVersion },
    ...(original ? { spec: { ...original, externalName: original.externalName ?? null, selector: original.selector ?? null } } : {}),
  };
}
