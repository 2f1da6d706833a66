// An operator deployment in the sandbox for end-to-end tests: the operator namespace, the pod
// runner (kubelet stand-in) and the real operator process, plus helpers to read what they did.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, loadAllYaml, type CoreV1Event, type KubernetesObject, type V1Pod, type V1Service } from "@kubernetes/client-node";
import type { SandboxHost } from "../../src/sandbox/network.ts";
import type { Sandbox } from "../../src/sandbox/sandbox.ts";
import { PodRunner } from "../../src/sandbox/pod-runner.ts";
import { projectImageMap } from "../../src/sandbox/images.ts";
import { startOperator, type OperatorProcess } from "../../src/sandbox/operator-process.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { waitFor } from "../../src/shared/clock.ts";

export const OPERATOR_NAMESPACE = "tailscale";

/**
 * Proxies of Services named "legacy-node" or "nft-node" run on a node whose kube-proxy already
 * holds rules in iptables-legacy or iptables-nft (Ubuntu 20.04 and 22.04): the proxy must notice.
 */
async function nodeFlavour(sandbox: Sandbox, pod: V1Pod, host: SandboxHost): Promise<void> {
  const flavour = { "legacy-node": "iptables-legacy", "nft-node": "iptables-nft" }[pod.metadata?.labels?.["tailscale.com/parent-resource"] ?? ""];
  if (!flavour) return;
  await sandbox.runner.run(host.namespace.exec([flavour, "-t", "nat", "-N", "KUBE-SERVICES"]));
  await sandbox.runner.run(host.namespace.exec([flavour, "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]));
}

/** The seed manifests users already have (../shared/examples/seed), read unchanged. */
export function seedManifest(file: string): KubernetesObject[] {
  const path = fileURLToPath(new URL(`../../../shared/examples/seed/${file}`, import.meta.url));
  return loadAllYaml(readFileSync(path, "utf8")) as KubernetesObject[];
}

export class OperatorEnv {
  readonly sandbox: Sandbox;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly objects: KubernetesObjectApi;
  readonly pods: PodRunner;

  constructor(sandbox: Sandbox) {
    this.sandbox = sandbox;
    const kc = sandbox.kubeConfig();
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.pods = new PodRunner(sandbox, { images: projectImageMap(), intervalMs: 200, prepareHost: (pod, host) => nodeFlavour(sandbox, pod, host) });
  }

  async setUp(): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name: OPERATOR_NAMESPACE } } }).catch(() => undefined);
    this.sandbox.track(this.pods.start());
  }

  async startOperator(id: string, httpPort: number, extraEnv: Record<string, string> = {}): Promise<OperatorProcess> {
    return startOperator(this.sandbox, { id, httpPort, extraEnv });
  }

  async apply(objects: readonly KubernetesObject[]): Promise<void> {
    for (const object of objects) await this.objects.create(object);
  }

  async service(namespace: string, name: string): Promise<V1Service | undefined> {
    return this.core.readNamespacedService({ name, namespace }).catch(() => undefined);
  }

  /** Waits until the Service satisfies check; the message names what was awaited. */
  async waitForService(namespace: string, name: string, what: string, check: (svc: V1Service) => boolean, timeoutMs = 60_000): Promise<V1Service> {
    return waitFor(`${namespace}/${name}: ${what}`, async () => {
      const svc = await this.service(namespace, name);
      return svc && check(svc) ? svc : undefined;
    }, { timeoutMs, intervalMs: 100 });
  }

  /** Names of the operator's children for a parent Service, by kind. */
  async children(namespace: string, name: string): Promise<string[]> {
    const labelSelector = `tailscale.com/parent-resource=${name},tailscale.com/parent-resource-ns=${namespace}`;
    const [secrets, services, sets] = await Promise.all([
      this.core.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE, labelSelector }),
      this.core.listNamespacedService({ namespace: OPERATOR_NAMESPACE, labelSelector }),
      this.apps.listNamespacedStatefulSet({ namespace: OPERATOR_NAMESPACE, labelSelector }),
    ]);
    return [
      ...secrets.items.map((o) => `Secret/${o.metadata?.name ?? ""}`),
      ...services.items.map((o) => `Service/${o.metadata?.name ?? ""}`),
      ...sets.items.map((o) => `StatefulSet/${o.metadata?.name ?? ""}`),
    ].sort();
  }

  async events(namespace: string, name: string): Promise<CoreV1Event[]> {
    return (await this.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` })).items;
  }

  /** Headscale nodes whose MagicDNS name is the given hostname. */
  async nodes(hostname: string): Promise<{ id: string; tags: string[] }[]> {
    return (await this.sandbox.headscaleAdmin.listNodes()).filter((n) => n.given_name === hostname).map((n) => ({ id: String(n.id), tags: n.tags ?? [] }));
  }

  async fetch(device: TailnetDevice, url: string, timeoutMs = 30_000): Promise<string> {
    return waitFor(`GET ${url} from ${device.hostname}`, async () => (await this.sandbox.runner.run(device.exec(nodeToolArgv("tailnet-client.ts", ["get", url])), { timeoutMs: 10_000 })).stdout, { timeoutMs, intervalMs: 250 });
  }
}

export function readyCondition(svc: V1Service): { status: string; reason: string; message: string } | undefined {
  const condition = svc.status?.conditions?.find((c) => c.type === "TailscaleProxyReady");
  return condition && { status: condition.status, reason: condition.reason, message: condition.message };
}
