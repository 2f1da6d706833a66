// `tailnet-operator uninstall`: run by the chart's pre-delete hook while the operator's RBAC and
// credentials still exist. Every Service the operator still holds (our finalizer) gets its
// proxy, device and status removed and is let go, so that uninstalling leaves nothing behind on
// the tailnet or in the cluster and no Service is stuck behind a finalizer nobody will remove.
import type { V1Deployment, V1Pod, V1Service } from "@kubernetes/client-node";
import { KubeApiError, type KubeClient } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { ReconcileContext, ReconcileResult } from "../runtime/reconciler.ts";
import { FINALIZER } from "./names.ts";

export interface UninstallResult {
  readonly released: string[];
  readonly failed: { key: string; error: string }[];
}

/**
 * Scales the operator's Deployment to zero and waits for its pods to go: a running operator
 * would re-create the proxies that uninstall removes, since their Services still ask for them.
 */
export async function stopOperator(options: { kube: KubeClient; namespace: string; deployment: string; log: Logger; clock: Clock; deadlineMs: number }): Promise<void> {
  const { kube, namespace, deployment, log, clock } = options;
  const ref = { apiVersion: "apps/v1", kind: "Deployment", namespace, name: deployment };
  const found = await kube.get<V1Deployment>(ref);
  if (!found) {
    log.info({ deployment }, "no operator Deployment to stop");
    return;
  }
  await kube.mergePatch(ref, { spec: { replicas: 0 } });
  const selector = Object.entries(found.spec?.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
  const deadline = clock.now() + options.deadlineMs;
  // Only the Deployment's pods (owned by its ReplicaSets): the hook's own pod may match the selector.
  const operatorPods = async (): Promise<V1Pod[]> =>
    (await kube.list<V1Pod>("v1", "Pod", { namespace, labelSelector: selector })).filter((pod) => pod.metadata?.ownerReferences?.some((o) => o.kind === "ReplicaSet"));
  while ((await operatorPods()).length > 0) {
    if (clock.now() > deadline) throw new Error(`the operator's pods (${selector}) did not stop`);
    await clock.sleep(500);
  }
  log.info({ deployment }, "operator stopped");
}

export async function releaseAll(options: {
  kube: KubeClient;
  release: (key: string, ctx: ReconcileContext) => Promise<ReconcileResult>;
  log: Logger;
  clock: Clock;
  deadlineMs: number;
  /** What to release: Services (the default) or Ingresses, which carry the same finalizer. */
  resource?: { apiVersion: string; kind: string };
}): Promise<UninstallResult> {
  const { kube, release, log, clock } = options;
  const services = await kube.list<V1Service>(options.resource?.apiVersion ?? "v1", options.resource?.kind ?? "Service");
  const held = services.filter((svc) => svc.metadata?.finalizers?.includes(FINALIZER)).map((svc) => `${svc.metadata?.namespace ?? ""}/${svc.metadata?.name ?? ""}`);
  log.info({ services: held.length }, "releasing every exposed Service");
  const result: UninstallResult = { released: [], failed: [] };
  const signal = new AbortController().signal;
  const deadline = clock.now() + options.deadlineMs;
  // One at a time: each waits for its proxy pod to go, and they are few next to a reconcile burst.
  for (const key of held) {
    const ctx = { log: log.child({ service: key }), signal };
    try {
      for (;;) {
        const { requeueAfterMs } = await release(key, ctx).catch((error: unknown) => {
          // Someone else wrote the Service meanwhile (the user, or a controller): read it again.
          if (error instanceof KubeApiError && error.isConflict) return { requeueAfterMs: 0 };
          throw error;
        });
        if (requeueAfterMs === undefined) break;
        if (clock.now() > deadline) throw new Error("timed out waiting for the proxy to stop");
        await clock.sleep(Math.max(requeueAfterMs, 250));
      }
      result.released.push(key);
      log.info({ service: key }, "released");
    } catch (error) {
      result.failed.push({ key, error: (error as Error).message });
      log.error({ service: key, err: error }, "could not release");
    }
  }
  return result;
}
