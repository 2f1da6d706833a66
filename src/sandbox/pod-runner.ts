// The kubelet and StatefulSet controller stand-in: follows every StatefulSet in the sandbox
// cluster and keeps one PodInstance per replica running its current template. It starts pods,
// restarts them when the template changes, stops them when the StatefulSet scales down or goes,
// and reports replica counts on the StatefulSet's status.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, type V1StatefulSet } from "@kubernetes/client-node";
import { systemClock } from "../shared/clock.ts";
import { PodInstance, type PodEnvironment } from "./pod-instance.ts";
import type { ImageMap } from "./pod-spec.ts";
import type { Sandbox } from "./sandbox.ts";
import { HUB_ADDRESS } from "./network.ts";
import { APISERVER_PORT } from "./kube-control-plane.ts";
import { CREATED_MOUNT_POINTS, removeCreatedMountPoints } from "./runs.ts";

export interface PodRunnerOptions {
  readonly images: ImageMap;
  /** See PodEnvironment.prepareHost: e.g. kube-proxy's rules of a given iptables flavour. */
  readonly prepareHost?: PodEnvironment["prepareHost"];
  readonly intervalMs?: number;
  readonly log?: (message: string) => void;
}

interface Desired {
  readonly sts: V1StatefulSet;
  readonly ordinal: number;
  readonly hash: string;
}

export class PodRunner {
  private readonly env: PodEnvironment;
  private readonly apps: AppsV1Api;
  private readonly pods = new Map<string, PodInstance>();
  /** Pods that failed to start, and when to try again. */
  private readonly failures = new Map<string, { error: string; retryAt: number; delayMs: number }>();
  private readonly log: (message: string) => void;
  private readonly intervalMs: number;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(sandbox: Sandbox, options: PodRunnerOptions) {
    const kc = sandbox.kubeConfig();
    this.apps = kc.makeApiClient(AppsV1Api);
    this.env = {
      runner: sandbox.runner,
      network: sandbox.network,
      core: kc.makeApiClient(CoreV1Api),
      images: options.images,
      dir: join(sandbox.run.dir, "pods"),
      apiserverHost: HUB_ADDRESS,
      apiserverPort: APISERVER_PORT,
      caFile: sandbox.kube.caFile,
      createdDirsFile: join(sandbox.run.dir, CREATED_MOUNT_POINTS),
      ...(options.prepareHost ? { prepareHost: options.prepareHost } : {}),
    };
    this.log = options.log ?? (() => undefined);
    this.intervalMs = options.intervalMs ?? 500;
  }

  /** Starts following StatefulSets until stop(). */
  start(): this {
    this.loop ??= (async () => {
      while (!this.stopping.signal.aborted) {
        await this.sync().catch((error: unknown) => {
          this.log(`pod runner: sync failed: ${(error as Error).message}`);
        });
        await systemClock.sleep(this.intervalMs, this.stopping.signal).catch(() => undefined);
      }
    })();
    return this;
  }

  /** The running pod for namespace/name, if any. */
  pod(namespace: string, name: string): PodInstance | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  /** Why a pod could not start, if it could not. */
  failure(namespace: string, name: string): string | undefined {
    return this.failures.get(`${namespace}/${name}`)?.error;
  }

  /** One pass: converge running pods to the StatefulSets' desired replicas and templates. */
  async sync(): Promise<void> {
    const list = await this.apps.listStatefulSetForAllNamespaces();
    const desired = new Map<string, Desired>();
    for (const sts of list.items) {
      if (sts.metadata?.deletionTimestamp) continue;
      const hash = templateHash(sts);
      for (let ordinal = 0; ordinal < (sts.spec?.replicas ?? 1); ordinal++) {
        desired.set(`${sts.metadata?.namespace ?? ""}/${sts.metadata?.name ?? ""}-${ordinal}`, { sts, ordinal, hash });
      }
    }
    for (const [key, pod] of this.pods) {
      if (desired.get(key)?.hash === pod.templateHash) continue;
      this.log(`pod runner: stopping ${key}`);
      this.pods.delete(key);
      await pod.stop();
    }
    for (const [key, want] of desired) {
      if (this.pods.has(key)) continue;
      await this.startPod(key, want);
    }
    for (const [key] of this.failures) if (!desired.has(key)) this.failures.delete(key);
    await Promise.all([...this.pods.values()].map((pod) => pod.refreshVolumes()));
    await Promise.all(list.items.map((sts) => this.reportStatus(sts)));
  }

  private async startPod(key: string, want: Desired): Promise<void> {
    const failure = this.failures.get(key);
    if (failure && failure.retryAt > systemClock.now()) return;
    try {
      this.log(`pod runner: starting ${key}`);
      this.pods.set(key, await PodInstance.start(this.env, want.sts, want.ordinal, want.hash));
      this.failures.delete(key);
    } catch (error) {
      const delayMs = Math.min((failure?.delayMs ?? 500) * 2, 10_000);
      const message = (error as Error).message;
      this.failures.set(key, { error: message, retryAt: systemClock.now() + delayMs, delayMs });
      this.log(`pod runner: ${key} failed to start: ${message}`);
    }
  }

  private async reportStatus(sts: V1StatefulSet): Promise<void> {
    const namespace = sts.metadata?.namespace ?? "";
    const prefix = `${namespace}/${sts.metadata?.name ?? ""}-`;
    const ready = [...this.pods.keys()].filter((key) => key.startsWith(prefix)).length;
    const status = sts.status;
    if (status?.readyReplicas === ready && status.replicas === ready && status.observedGeneration === sts.metadata?.generation) return;
    sts.status = {
      replicas: ready,
      readyReplicas: ready,
      availableReplicas: ready,
      currentReplicas: ready,
      updatedReplicas: ready,
      ...(sts.metadata?.generation === undefined ? {} : { observedGeneration: sts.metadata.generation }),
    };
    await this.apps
      .replaceNamespacedStatefulSetStatus({ name: sts.metadata?.name ?? "", namespace, body: sts })
      .catch(() => undefined);
  }

  /** Stops every pod and the loop; removes mount points the runner had to create. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await Promise.all([...this.pods.values()].map((pod) => pod.stop()));
    this.pods.clear();
    await removeCreatedMountPoints(this.env.createdDirsFile);
  }
}

function templateHash(sts: V1StatefulSet): string {
  return createHash("sha256").update(JSON.stringify(sts.spec?.template ?? {})).digest("hex").slice(0, 16);
}
