// Publishes the device to the state Secret under the Tailscale operator's keys, patching only
// those keys: tailscaled's own state lives in the same Secret.
import { readFileSync } from "node:fs";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";

export interface StateSecretWriter {
  write(values: Readonly<Record<string, string | null>>): Promise<void>;
}

const SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/** Writes through the in-cluster API with the pod's own service-account token. */
export class KubeStateSecret implements StateSecretWriter {
  private readonly core: CoreV1Api;
  private readonly name: string;
  private readonly namespace: string;

  constructor(name: string) {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    this.core = kc.makeApiClient(CoreV1Api);
    this.name = name;
    this.namespace = readFileSync(SA_NAMESPACE, "utf8").trim();
  }

  async write(values: Readonly<Record<string, string | null>>): Promise<void> {
    // JSON merge patch: null deletes a key, other keys are left as they are.
    const data = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === null ? null : Buffer.from(v).toString("base64")]));
    await this.core.patchNamespacedSecret({ name: this.name, namespace: this.namespace, body: { data } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
  }
}
