// Publishes the device to the state Secret under the Tailscale operator's keys, patching only
// those keys: tailscaled's own state lives in the same Secret.
// Two REST calls (GET and a JSON merge PATCH of one Secret) through the proxy's own API access
// (./kube-api.ts): no Kubernetes client library in the proxy (docs/adr/0013).
import { InClusterApi, decodedData, inClusterAccess, secretPath, type InClusterAccess } from "./kube-api.ts";

export interface StateSecretWriter {
  write(values: Readonly<Record<string, string | null>>): Promise<void>;
}

export interface StateSecretReader {
  /** The Secret's data, decoded; an empty record when the Secret has none. */
  read(): Promise<Record<string, string>>;
}

/** Reads and writes one Secret through the in-cluster API with the pod's own token. */
export class KubeStateSecret implements StateSecretWriter, StateSecretReader {
  private readonly api: InClusterApi;
  private readonly path: string;

  constructor(name: string, access: InClusterAccess = inClusterAccess()) {
    this.api = new InClusterApi(access);
    this.path = secretPath(access.namespace, name);
  }

  async write(values: Readonly<Record<string, string | null>>): Promise<void> {
    // JSON merge patch: null deletes a key, other keys are left as they are.
    const data = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === null ? null : Buffer.from(v).toString("base64")]));
    await this.api.request({ method: "PATCH", path: this.path, body: JSON.stringify({ data }), contentType: "application/merge-patch+json" });
  }

  async read(): Promise<Record<string, string>> {
    const secret = JSON.parse(await this.api.request({ method: "GET", path: this.path })) as { data?: Record<string, string> | null };
    return decodedData(secret.data);
  }

  /** Closes the kept-alive connection (at shutdown). */
  close(): void {
    this.api.close();
  }
}
