// `tailnet-operator uninstall`: run by the chart's pre-delete hook while the operator's RBAC and
// credentials still exist. Every Service the operator still holds (our finalizer) gets its
// proxy, device and status removed and is let go, so that uninstalling leaves nothing behind on
// the tailnet or in the cluster and no Service is stuck behind a finalizer nobody will remove.
import type { V1Service } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { ReconcileContext, ReconcileResult } from "../runtime/reconciler.ts";
import { FINALIZER } from "./names.ts";

export interface UninstallResult {
  readonly released: string[];
  readonly failed: { key: string; error: string }[];
}

export async function releaseAll(options: {
  kube: KubeClient;
  release: (key: string, ctx: ReconcileContext) => Promise<ReconcileResult>;
  log: Logger;
  clock: Clock;
  deadlineMs: number;
}): Promise<UninstallResult> {
  const { kube, release, log, clock } = options;
  const services = await kube.list<V1Service>("v1", "Service");
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
        const { requeueAfterMs } = await release(key, ctx);
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
