// Follows the proxy's ingress Secret (routing table and certificate copy, written by the
// operator) through the API: a read, then a watch by name, restarted when it ends. A narrow
// interface so the L7 server is tested without a cluster; the proxy's Role allows exactly this.
import { readFileSync } from "node:fs";
import { CoreV1Api, KubeConfig, Watch, type V1Secret } from "@kubernetes/client-node";
import type { Logger } from "../log.ts";

export type SecretData = Readonly<Record<string, string>>;

export interface SecretFollower {
  /** Resolves with the Secret's data once it exists, then calls onChange with every change until signal aborts. */
  follow(signal: AbortSignal, onChange: (data: SecretData) => void): Promise<SecretData>;
}

const SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const RETRY_MS = 2_000;

const decoded = (secret: V1Secret): SecretData => Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));

export class KubeSecretFollower implements SecretFollower {
  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly name: string;
  private readonly namespace: string;
  private readonly log: Logger;

  constructor(name: string, log: Logger) {
    this.kc = new KubeConfig();
    this.kc.loadFromCluster();
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.name = name;
    this.namespace = readFileSync(SA_NAMESPACE, "utf8").trim();
    this.log = log;
  }

  async follow(signal: AbortSignal, onChange: (data: SecretData) => void): Promise<SecretData> {
    let first: V1Secret | undefined;
    while (!first) {
      first = await this.core.readNamespacedSecret({ name: this.name, namespace: this.namespace }).catch((error: unknown) => {
        this.log.warn({ err: error, secret: this.name }, "cannot read the ingress Secret yet; retrying");
        return undefined;
      });
      if (!first) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      if (signal.aborted) throw new Error("stopped");
    }
    let resourceVersion = first.metadata?.resourceVersion ?? "";
    let last = JSON.stringify(first.data ?? {});
    const watch = new Watch(this.kc);
    const loop = async (): Promise<void> => {
      while (!signal.aborted) {
        await new Promise<void>((resolve) => {
          const started = watch.watch(
            `/api/v1/namespaces/${this.namespace}/secrets`,
            { fieldSelector: `metadata.name=${this.name}`, resourceVersion, allowWatchBookmarks: true },
            (type: string, object: V1Secret) => {
              if (object.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
              if (type !== "ADDED" && type !== "MODIFIED") return;
              const data = JSON.stringify(object.data ?? {});
              if (data === last) return;
              last = data;
              onChange(decoded(object));
            },
            (error: unknown) => {
              // 410 Gone (or any error): list again from a fresh read.
              if (error) resourceVersion = "";
              resolve();
            },
          );
          started.then((request) => {
            signal.addEventListener("abort", () => { request.abort(); }, { once: true });
          }, () => { resolve(); });
        });
        // The abort listener resolves the watch too: stop here rather than re-watching.
        if ((signal as { aborted: boolean }).aborted) return;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        if (!resourceVersion) {
          const fresh = await this.core.readNamespacedSecret({ name: this.name, namespace: this.namespace }).catch(() => undefined);
          if (fresh) {
            resourceVersion = fresh.metadata?.resourceVersion ?? "";
            const data = JSON.stringify(fresh.data ?? {});
            if (data !== last) {
              last = data;
              onChange(decoded(fresh));
            }
          }
        }
      }
    };
    void loop();
    return decoded(first);
  }
}
