// The L7 contract between the operator (which writes it) and an Ingress or API server proxy
// (which follows it):
// one Secret per proxy in the operator's namespace, `<proxy>-ingress`, holding the routing table
// and, for the "secret" certificate source, a copy of the user's certificate and key. The
// proxy may read only that Secret (its Role names it), never the user's namespace.
import { z } from "zod";

export const INGRESS_SECRET_KEYS = {
  config: "ingress.json",
  cert: "tls.crt",
  key: "tls.key",
  /** The ACME external account binding's HMAC key (only with certificateSource "acme" and EAB). */
  eabHmacKey: "acme-eab-hmac-key",
} as const;

export const routeSchema = z.object({
  /** "Exact" or "Prefix" (ImplementationSpecific is written as Prefix by the operator). */
  pathType: z.enum(["Exact", "Prefix"]),
  path: z.string().startsWith("/"),
  /** Where matching requests go: http://<ClusterIP>:<port> (https:// for a port 443 or named "https"). */
  backend: z.url(),
});

/** The operator's ACME settings, as a proxy needs them (the EAB HMAC key travels in its own key). */
export const acmeSettingsSchema = z.object({
  directoryUrl: z.url(),
  /** PEM certificates trusted for the CA's own HTTPS, besides the public roots. */
  caBundlePem: z.string().optional(),
  email: z.string().optional(),
  /** External account binding key ID; its HMAC key is INGRESS_SECRET_KEYS.eabHmacKey. */
  eabKeyId: z.string().optional(),
  profile: z.string().optional(),
  /** The challenge the proxy answers (absent: http-01, as before the setting existed). */
  challenge: z.enum(["http-01", "tls-alpn-01"]).optional(),
  /** Orders this proxy may place per hour and per week (counted across restarts). */
  maxOrdersPerHour: z.int().min(1),
  maxOrdersPerWeek: z.int().min(1),
});

export type AcmeSettings = z.infer<typeof acmeSettingsSchema>;

export const ingressConfigSchema = z.object({
  version: z.literal(1),
  /**
   * Where the serving certificate comes from (src/proxy/tls/certificate-source.ts); "none" serves
   * plain HTTP on port 80 and no HTTPS at all (only where the user asked for it).
   */
  certificateSource: z.enum(["secret", "acme", "control-plane", "none"]),
  /** Port 80 answers with a redirect to https:// (tailscale.com/http-redirect). */
  httpRedirect: z.boolean(),
  /** Funnel asked for and offered by the control plane (tailscale.com/funnel). */
  funnel: z.boolean(),
  routes: z.array(routeSchema),
  /** The API server proxy: every request goes to the cluster's API server (routes are empty). */
  apiServer: z.object({ mode: z.enum(["auth", "noauth"]) }).optional(),
  /** Present when certificateSource is "acme". */
  acme: acmeSettingsSchema.optional(),
});

export type IngressRoute = z.infer<typeof routeSchema>;
export type IngressProxyConfig = z.infer<typeof ingressConfigSchema>;

/** Parses the config JSON; throws with every problem named. */
export function parseIngressConfig(json: string): IngressProxyConfig {
  const parsed = ingressConfigSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`invalid ingress config: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

/**
 * What serves the proxy's HTTPS port (ADR 0035): nginx carries an Ingress's bytes; the proxy's
 * own stack serves where only it can: the API server (impersonation per request), an ACME
 * TLS-ALPN-01 challenge (answered inside the handshake on port 443), and plain HTTP (port 80
 * only). Chosen at start: the operator restarts the proxy when it changes (the pod's restart key).
 */
export function httpsEngine(config: IngressProxyConfig): "nginx" | "node" {
  if (config.apiServer !== undefined || config.certificateSource === "none") return "node";
  if (config.certificateSource === "acme" && config.acme?.challenge === "tls-alpn-01") return "node";
  return "nginx";
}
