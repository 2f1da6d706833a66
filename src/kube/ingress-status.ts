// Writes an Ingress's status.loadBalancer (its own subresource), beside KubeClient so that the
// Service-only client keeps its shape. The real one and a fake implement this narrow interface.
import type { V1IngressLoadBalancerIngress } from "@kubernetes/client-node";
import { FIELD_MANAGER, MERGE_PATCH } from "./http-kube-client.ts";
import type { RestClient } from "./rest-client.ts";

export interface IngressStatusWriter {
  /** Replaces status.loadBalancer.ingress (an empty list clears it). */
  setLoadBalancer(namespace: string, name: string, ingress: readonly V1IngressLoadBalancerIngress[]): Promise<void>;
}

export class KubeIngressStatusWriter implements IngressStatusWriter {
  private readonly rest: RestClient;

  constructor(rest: RestClient) {
    this.rest = rest;
  }

  async setLoadBalancer(namespace: string, name: string, ingress: readonly V1IngressLoadBalancerIngress[]): Promise<void> {
    await this.rest.request({
      method: "PATCH",
      path: `/apis/networking.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/ingresses/${encodeURIComponent(name)}/status`,
      query: { fieldManager: FIELD_MANAGER },
      body: { status: { loadBalancer: { ingress: [...ingress] } } },
      contentType: MERGE_PATCH,
      what: `set status of Ingress ${namespace}/${name}`,
    });
  }
}
