// Writes an Ingress's status.loadBalancer (its own subresource), beside KubeClient so that the
// Service-only client keeps its shape. The real one and a fake implement this narrow interface.
import { NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1IngressLoadBalancerIngress } from "@kubernetes/client-node";
import { FIELD_MANAGER } from "./client-node.ts";

export interface IngressStatusWriter {
  /** Replaces status.loadBalancer.ingress (an empty list clears it). */
  setLoadBalancer(namespace: string, name: string, ingress: readonly V1IngressLoadBalancerIngress[]): Promise<void>;
}

export class KubeIngressStatusWriter implements IngressStatusWriter {
  private readonly api: NetworkingV1Api;

  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(NetworkingV1Api);
  }

  async setLoadBalancer(namespace: string, name: string, ingress: readonly V1IngressLoadBalancerIngress[]): Promise<void> {
    await this.api.patchNamespacedIngressStatus(
      { name, namespace, body: { status: { loadBalancer: { ingress: [...ingress] } } }, fieldManager: FIELD_MANAGER },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
}
