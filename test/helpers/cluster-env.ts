// End-to-end tests on the sandbox's real node: the operator installed by Helm from its image,
// real pods behind real kube-proxy, plus helpers to read what the operator and its proxies did.
import { readFileSync, readdirSync } from "node:fs";
import type {
  KubeConfig} from "@kubernetes/client-node";
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  loadAllYaml,
  type CoreV1Event,
  type KubernetesObject,
  type V1Ingress,
  type V1Pod,
  type V1Service,
} from "@kubernetes/client-node";
import type { Sandbox } from "../../src/sandbox/sandbox.ts";
import type { HeadscalePreAuthKey } from "../../src/sandbox/headscale.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { OPERATOR_NAMESPACE } from "../../src/sandbox/operator-install.ts";

export { OPERATOR_NAMESPACE };
/** The image the seed manifest names; the sandbox builds it from Debian's nginx. */
export const NGINX_IMAGE = "nginx:1.20-alpine";

/** The seed manifests users already have, from examples/ (byte-identical, see examples.test.ts). */
export function seedManifest(file: string): KubernetesObject[] {
  return loadAllYaml(readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8")) as KubernetesObject[];
}

export class ClusterEnv {
  readonly sandbox: Sandbox;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly leases: CoordinationV1Api;
  readonly objects: KubernetesObjectApi;

  constructor(sandbox: Sandbox) {
    this.sandbox = sandbox;
    this.kc = sandbox.kubeConfig();
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.apps = this.kc.makeApiClient(AppsV1Api);
    this.leases = this.kc.makeApiClient(CoordinationV1Api);
    this.objects = KubernetesObjectApi.makeApiClient(this.kc);
  }

  async apply(objects: readonly KubernetesObject[]): Promise<void> {
    for (const object of objects) await this.objects.create(object);
  }

  async ensureNamespace(name: string): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name } } }).catch(() => undefined);
  }

  /** An nginx Deployment (real pods) and a Service selecting it. */
  async webService(namespace: string, name: string, spec: V1Service["spec"], annotations: Record<string, string> = {}): Promise<V1Service> {
    await this.ensureNamespace(namespace);
    const labels = { app: name };
    await this.apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name, labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: "nginx", image: NGINX_IMAGE, ports: [{ containerPort: 80 }] }] } },
        },
      },
    });
    return this.core.createNamespacedService({ namespace, body: { metadata: { name, annotations }, spec: { ports: [{ port: 80 }], selector: labels, ...spec } } });
  }

  /** Deletes the Service and waits until it is gone (the operator released its finalizer). */
  async deleteServiceAndWait(namespace: string, name: string): Promise<void> {
    await this.core.deleteNamespacedService({ name, namespace });
    await waitFor(`${namespace}/${name} gone (finalizer released)`, async () => ((await this.service(namespace, name)) ? undefined : true), { timeoutMs: 120_000, intervalMs: 250 });
  }

  /** Runs body while no node takes new pods (a proxy pod stays Pending, its key unused). */
  async cordoned(body: () => Promise<void>): Promise<void> {
    const nodes = (await this.core.listNode()).items.map((n) => n.metadata?.name ?? "");
    const set = (unschedulable: boolean): Promise<unknown> =>
      Promise.all(nodes.map((name) => this.objects.patch({ apiVersion: "v1", kind: "Node", metadata: { name }, spec: { unschedulable } } as never, undefined, undefined, undefined, undefined, "application/merge-patch+json")));
    await set(true);
    try {
      await body();
    } finally {
      await set(false);
    }
  }

  async service(namespace: string, name: string): Promise<V1Service | undefined> {
    return this.core.readNamespacedService({ name, namespace }).catch(() => undefined);
  }

  /** Waits until the Service satisfies check; the message names what was awaited. */
  async waitForService(namespace: string, name: string, what: string, check: (svc: V1Service) => boolean, timeoutMs = 120_000): Promise<V1Service> {
    return waitFor(`${namespace}/${name}: ${what}`, async () => {
      const svc = await this.service(namespace, name);
      return svc && check(svc) ? svc : undefined;
    }, { timeoutMs, intervalMs: 200 });
  }

  async ingress(namespace: string, name: string): Promise<V1Ingress | undefined> {
    return this.objects.read<V1Ingress>({ apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name, namespace } }).catch(() => undefined);
  }

  /** Waits until the Ingress satisfies check; the message names what was awaited. */
  async waitForIngress(namespace: string, name: string, what: string, check: (ingress: V1Ingress) => boolean, timeoutMs = 300_000, intervalMs = 500): Promise<V1Ingress> {
    return waitFor(`${namespace}/${name}: ${what}`, async () => {
      const found = await this.ingress(namespace, name);
      return found && check(found) ? found : undefined;
    }, { timeoutMs, intervalMs });
  }

  /** The running proxy pod of a parent (Service or Ingress): its name (a StatefulSet's, reused) and uid (not reused). */
  async runningProxyPod(namespace: string, name: string): Promise<{ name: string; uid: string } | undefined> {
    const pods = await this.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: `tailscale.com/parent-resource=${name},tailscale.com/parent-resource-ns=${namespace}` });
    const pod = pods.items.find((p) => !p.metadata?.deletionTimestamp && p.status?.phase === "Running");
    return pod?.metadata?.name && pod.metadata.uid ? { name: pod.metadata.name, uid: pod.metadata.uid } : undefined;
  }

  /** Names of the operator's children for a parent Service, by kind. */
  async children(namespace: string, name: string): Promise<string[]> {
    const labelSelector = `tailscale.com/parent-resource=${name},tailscale.com/parent-resource-ns=${namespace}`;
    const kinds = [
      ["v1", "Secret"],
      ["v1", "Service"],
      ["v1", "ServiceAccount"],
      ["apps/v1", "StatefulSet"],
      ["rbac.authorization.k8s.io/v1", "Role"],
      ["rbac.authorization.k8s.io/v1", "RoleBinding"],
    ] as const;
    const names: string[] = [];
    for (const [apiVersion, kind] of kinds) {
      const list = await this.objects.list(apiVersion, kind, OPERATOR_NAMESPACE, undefined, undefined, undefined, undefined, labelSelector);
      names.push(...list.items.map((o) => `${kind}/${o.metadata?.name ?? ""}`));
    }
    return names.sort();
  }

  async events(namespace: string, name: string): Promise<CoreV1Event[]> {
    return (await this.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` })).items;
  }

  /**
   * The first Event about the object that matches. The operator records an Event right after it
   * writes the status, so a test that saw the status waits for the Event rather than reading once.
   */
  async waitForEvent(namespace: string, name: string, what: string, match: (event: CoreV1Event) => boolean, timeoutMs = 30_000): Promise<CoreV1Event> {
    return waitFor(`${namespace}/${name}: Event ${what}`, async () => (await this.events(namespace, name)).find(match), { timeoutMs, intervalMs: 250 });
  }

  /** Headscale nodes whose MagicDNS name is the given hostname. */
  async devices(hostname: string): Promise<{ id: string; tags: string[] }[]> {
    return (await this.sandbox.headscaleAdmin.listNodes()).filter((n) => n.given_name === hostname).map((n) => ({ id: String(n.id), tags: n.tags ?? [] }));
  }

  /**
   * The control plane's keys that could still join a device (unused or reusable, not expired):
   * the leak audit. Every scenario ends with none.
   */
  async usableKeys(): Promise<{ id: string; tags: string[] }[]> {
    const now = Date.now();
    const expiry = (e: HeadscalePreAuthKey["expiration"]): number => (typeof e === "string" ? Date.parse(e) : Number(e?.seconds ?? 0) * 1000);
    return (await this.sandbox.headscaleAdmin.listPreAuthKeys())
      .filter((k) => (k.reusable || !k.used) && expiry(k.expiration) > now)
      .map((k) => ({ id: String(k.id), tags: k.acl_tags ?? [] }));
  }

  async pod(namespace: string, name: string): Promise<V1Pod | undefined> {
    return this.core.readNamespacedPod({ name, namespace }).catch(() => undefined);
  }

  /** The last lines a pod's first container logged (for failure messages); empty if there are none. */
  async podLogTail(namespace: string, name: string, lines = 20): Promise<string> {
    const pod = await this.pod(namespace, name);
    const container = pod?.spec?.containers[0]?.name;
    if (!container) return "";
    return this.core.readNamespacedPodLog({ namespace, name, container, tailLines: lines }).catch((error: unknown) => `(no log: ${(error as Error).message})`);
  }

  /** The last lines of every operator pod's log (for failure messages). */
  async operatorLogTails(lines = 40): Promise<string> {
    const names = (await this.operatorPods()).map((p) => p.metadata?.name ?? "");
    const tails = await Promise.all(names.map(async (name) => `--- ${name}:\n${await this.podLogTail(OPERATOR_NAMESPACE, name, lines)}`));
    return tails.join("\n") || "(no operator pod)";
  }

  async operatorPods(): Promise<V1Pod[]> {
    const pods = await this.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: "app.kubernetes.io/name=tailnet-operator" });
    return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  /** The pod of the Lease holder: the operator replica that acts (undefined when free). */
  async leader(): Promise<string | undefined> {
    const lease = await this.leases.readNamespacedLease({ name: "tailnet-operator-leader", namespace: OPERATOR_NAMESPACE }).catch(() => undefined);
    // Identities are <pod name>_<per-process suffix>; pod names have no underscore.
    return lease?.spec?.holderIdentity?.split("_")[0] || undefined;
  }

  /** A client authenticated as a ServiceAccount, with a token from the real TokenRequest API. */
  async clientAs(namespace: string, serviceAccount: string): Promise<CoreV1Api> {
    const request = await this.core.createNamespacedServiceAccountToken({ name: serviceAccount, namespace, body: { spec: { audiences: [], expirationSeconds: 600 } } });
    const kc = this.sandbox.kubeConfig(request.status?.token ?? "");
    return kc.makeApiClient(CoreV1Api);
  }

  async fetch(device: TailnetDevice, url: string, timeoutMs = 60_000): Promise<string> {
    return waitFor(`GET ${url} from ${device.hostname}`, async () => (await this.sandbox.runner.run(device.exec(nodeToolArgv("tailnet-client.ts", ["get", url])), { timeoutMs: 10_000 })).stdout, { timeoutMs, intervalMs: 250 });
  }
}

export function readyCondition(svc: V1Service): { status: string; reason: string; message: string } | undefined {
  const condition = svc.status?.conditions?.find((c) => c.type === "TailscaleProxyReady");
  return condition && { status: condition.status, reason: condition.reason, message: condition.message };
}

/** An Ingress's condition of the given type (Ingress status has no conditions: the operator keeps them in an annotation). */
export function ingressCondition(ingress: V1Ingress, type = "TailscaleProxyReady"): { type: string; status: string; reason: string; message: string } | undefined {
  const conditions = JSON.parse(ingress.metadata?.annotations?.["tailscale.com/conditions"] ?? "[]") as { type: string; status: string; reason: string; message: string }[];
  return conditions.find((c) => c.type === type);
}

/** Every process on the machine whose command line or environment contains needle (by PID). */
export function processesContaining(needle: string): { pid: number; where: "cmdline" | "environ" }[] {
  const found: { pid: number; where: "cmdline" | "environ" }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    for (const where of ["cmdline", "environ"] as const) {
      try {
        if (readFileSync(`/proc/${entry}/${where}`).includes(needle)) found.push({ pid: Number(entry), where });
      } catch {
        // Gone, or a kernel thread.
      }
    }
  }
  return found;
}

/** PIDs of processes whose command line contains every one of the parts. */
export function pidsOf(...parts: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (parts.every((part) => cmdline.includes(part))) pids.push(Number(entry));
    } catch {
      // Gone.
    }
  }
  return pids;
}

/** A process's environment as lines; empty when it is gone. */
export function processEnvironment(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").replaceAll("\0", "\n");
  } catch {
    return "";
  }
}
