// Which Ingresses use which Services and TLS Secrets, from the Ingress watch: a change to either
// re-queues exactly the Ingresses that name it (backends re-resolved, certificates re-copied).
import type { V1Ingress } from "@kubernetes/client-node";

export class IngressIndex {
  /** Ingress key → "namespace/service" and "namespace/secret" names it uses. */
  private readonly services = new Map<string, Set<string>>();
  private readonly secrets = new Map<string, Set<string>>();

  update(ingress: V1Ingress): void {
    const namespace = ingress.metadata?.namespace ?? "";
    const key = `${namespace}/${ingress.metadata?.name ?? ""}`;
    const spec = ingress.spec;
    const backends = [spec?.defaultBackend, ...(spec?.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => p.backend))];
    this.services.set(key, new Set(backends.flatMap((b) => (b?.service ? [`${namespace}/${b.service.name}`] : []))));
    this.secrets.set(key, new Set((spec?.tls ?? []).flatMap((t) => (t.secretName ? [`${namespace}/${t.secretName}`] : []))));
  }

  /** Ingress keys naming this Service. */
  usingService(namespace: string, name: string): string[] {
    return usersOf(this.services, `${namespace}/${name}`);
  }

  /** Ingress keys naming this Secret in spec.tls. */
  usingSecret(namespace: string, name: string): string[] {
    return usersOf(this.secrets, `${namespace}/${name}`);
  }
}

function usersOf(index: ReadonlyMap<string, ReadonlySet<string>>, ref: string): string[] {
  return [...index].filter(([, refs]) => refs.has(ref)).map(([key]) => key);
}
