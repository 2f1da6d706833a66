// Resolves an Ingress's backends against their Services into the proxy's routing table: each
// path goes to the Service's ClusterIP and port (kube-proxy balances over its endpoints). Pure
// over the Services it is given, so missing, headless and port-less backends are tested alone.
import type { V1Service } from "@kubernetes/client-node";
import type { IngressRoute } from "../shared/ingress-config.ts";
import type { BackendRef } from "./ingress-intent.ts";

export type ResolvedRoutes = { readonly ok: true; readonly routes: IngressRoute[] } | { readonly ok: false; readonly message: string };

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** services: the backends' Services by name, in the Ingress's namespace (missing ones absent). */
export function resolveRoutes(namespace: string, backends: readonly BackendRef[], services: ReadonlyMap<string, V1Service>): ResolvedRoutes {
  const routes: IngressRoute[] = [];
  for (const backend of backends) {
    const service = services.get(backend.service);
    const what = `backend Service ${namespace}/${backend.service} (path ${backend.path})`;
    if (!service) return { ok: false, message: `${what} does not exist` };
    if (service.spec?.type === "ExternalName") return { ok: false, message: `${what} is an ExternalName Service; give a Service with a ClusterIP` };
    const clusterIP = service.spec?.clusterIP;
    if (clusterIP === "None") return { ok: false, message: `${what} is headless (clusterIP: None); give a Service with a ClusterIP` };
    if (!clusterIP) return { ok: false, message: `${what} has no ClusterIP yet` };
    const ports = service.spec?.ports ?? [];
    const wanted = backend.port;
    const port = "number" in wanted ? ports.find((p) => p.port === wanted.number) : ports.find((p) => p.name === wanted.name);
    if (!port) {
      const asked = "number" in wanted ? `port ${wanted.number}` : `port named "${wanted.name}"`;
      const has = ports.map((p) => (p.name ? `${p.name}/${p.port}` : String(p.port))).join(", ");
      return { ok: false, message: `${what} has no ${asked} (it has ${has || "no ports"})` };
    }
    // As Tailscale's operator does: a backend on 443 or a port named https speaks TLS; its
    // certificate is for the cluster, not for us, so it is not verified.
    const scheme = port.port === 443 || port.name === "https" ? "https" : "http";
    routes.push({ path: backend.path, pathType: backend.pathType, backend: `${scheme}://${hostPort(clusterIP, port.port)}` });
  }
  return { ok: true, routes };
}
