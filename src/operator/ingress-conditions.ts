// An Ingress has no status.conditions (networking.k8s.io/v1 has only status.loadBalancer), so
// the operator keeps its conditions, shaped like Kubernetes conditions, as JSON in the
// annotation tailscale.com/conditions; Events carry the same news for `kubectl describe`.
import type { V1Condition } from "@kubernetes/client-node";

export const CONDITIONS_ANNOTATION = "tailscale.com/conditions";
export const INGRESS_CONDITIONS = { ready: "TailscaleProxyReady", funnel: "TailscaleFunnel" } as const;

export const INGRESS_REASONS = {
  ready: "ProxyReady",
  pending: "ProxyPending",
  failed: "ProxyFailed",
  invalid: "ProxyInvalid",
  invalidBackend: "InvalidIngressBackend",
  invalidTls: "InvalidTLSSecret",
  hostnameInUse: "HostnameInUse",
  hostnameTaken: "HostnameTaken",
  noCertificateSource: "CertificateUnavailable",
  certificateFailed: "CertificateFailed",
  certificateRenewalFailed: "CertificateRenewalFailed",
  funnelEnabled: "FunnelEnabled",
  funnelUnavailable: "FunnelUnavailable",
  funnelPending: "FunnelPending",
  cleanedUp: "ProxyDeleted",
  controlPlaneError: "ControlPlaneError",
} as const;

export interface IngressCondition {
  readonly type: string;
  readonly status: "True" | "False";
  readonly reason: string;
  readonly message: string;
}

export function readConditions(annotations: Record<string, string> | undefined): V1Condition[] {
  const raw = annotations?.[CONDITIONS_ANNOTATION];
  if (!raw) return [];
  try {
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? (parsed as V1Condition[]) : [];
  } catch {
    return [];
  }
}

/**
 * The next conditions (types not given are dropped) and the ones whose status, reason or message
 * changed (an Event each). lastTransitionTime moves only when the status does.
 */
export function nextConditions(previous: readonly V1Condition[], next: readonly IngressCondition[], now: Date): { conditions: V1Condition[]; changed: IngressCondition[]; dropped: boolean } {
  const changed: IngressCondition[] = [];
  const conditions = next.map((condition) => {
    const old = previous.find((c) => c.type === condition.type);
    if (!old || old.status !== condition.status || old.reason !== condition.reason || old.message !== condition.message) changed.push(condition);
    return { ...condition, lastTransitionTime: old && old.status === condition.status ? old.lastTransitionTime : now };
  });
  const dropped = previous.some((c) => !next.some((n) => n.type === c.type));
  return { conditions, changed, dropped };
}
