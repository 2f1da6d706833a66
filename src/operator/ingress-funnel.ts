// The TailscaleFunnel condition of an Ingress asking for tailscale.com/funnel: Headscale has no
// Funnel; Funnel serves HTTPS only; on Tailscale the proxy configures it and reports whether the
// tailnet's policy allows it (src/proxy/l7/funnel.ts), which this turns into the condition.
import { FUNNEL_ON } from "../shared/state-keys.ts";
import { INGRESS_CONDITIONS, INGRESS_REASONS, type IngressCondition } from "./ingress-conditions.ts";
import { INGRESS_ANNOTATIONS } from "./ingress-intent.ts";

type ControlPlaneKind = "tailscale" | "headscale";

export interface FunnelFacts {
  readonly controlPlane: ControlPlaneKind;
  /** The certificate source chosen for the Ingress, once known. */
  readonly certificateSource: string | undefined;
  /** What the proxy reported (STATE_SECRET_KEYS.funnel), if anything yet. */
  readonly reported: string | undefined;
  /** The device's MagicDNS name, once it runs. */
  readonly fqdn: string | undefined;
}

/** Whether the proxy is to configure Funnel (the config Secret's `funnel`). */
export function proxyFunnels(wanted: boolean, controlPlane: ControlPlaneKind, certificateSource: string): boolean {
  return wanted && controlPlane !== "headscale" && certificateSource !== "none";
}

export function funnelCondition(wanted: boolean, facts: FunnelFacts): IngressCondition | undefined {
  if (!wanted) return undefined;
  const condition = (status: "True" | "False", reason: string, message: string): IngressCondition => ({ type: INGRESS_CONDITIONS.funnel, status, reason, message: `${INGRESS_ANNOTATIONS.funnel}: ${message}` });
  if (facts.controlPlane === "headscale") {
    return condition("False", INGRESS_REASONS.funnelUnavailable, "Headscale does not offer Funnel (it rejects the funnel node attribute); the Ingress is served on the tailnet only");
  }
  if (facts.certificateSource === "none") {
    return condition("False", INGRESS_REASONS.funnelUnavailable, "Funnel publishes HTTPS, and this Ingress serves plain HTTP only; the Ingress is served on the tailnet only");
  }
  if (facts.reported === FUNNEL_ON) {
    return condition("True", INGRESS_REASONS.funnelEnabled, `published on the internet${facts.fqdn ? ` at https://${facts.fqdn}/` : ""} through Funnel`);
  }
  if (facts.reported) {
    return condition("False", INGRESS_REASONS.funnelUnavailable, `the tailnet does not allow Funnel for this proxy: ${facts.reported}; the Ingress is served on the tailnet only`);
  }
  return condition("False", INGRESS_REASONS.funnelPending, "waiting for the proxy to configure Funnel");
}
