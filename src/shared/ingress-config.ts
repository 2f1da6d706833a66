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
} as const;

export const routeSchema = z.object({
  /** "Exact" or "Prefix" (ImplementationSpecific is written as Prefix by the operator). */
  pathType: z.enum(["Exact", "Prefix"]),
  path: z.string().startsWith("/"),
  /** Where matching requests go: http://<ClusterIP>:<port> (https:// for a port 443 or named "https"). */
  backend: z.url(),
});

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
});

export type IngressRoute = z.infer<typeof routeSchema>;
export type IngressProxyConfig = z.infer<typeof ingressConfigSchema>;

/** Parses the config JSON; throws with every problem named. */
export function parseIngressConfig(json: string): IngressProxyConfig {
  const parsed = ingressConfigSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`invalid ingress config: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}
