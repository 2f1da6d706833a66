// The TailscaleProxyReady condition: the lastTransitionTime moves only when the status does,
// as Kubernetes API conventions ask.
import type { V1Condition } from "@kubernetes/client-node";
import { PROXY_READY_CONDITION } from "./names.ts";
import type { ControlPlaneError } from "../control/control-plane.ts";

export interface ConditionState {
  readonly status: "True" | "False";
  readonly reason: string;
  readonly message: string;
}

export function proxyReadyCondition(previous: readonly V1Condition[] | undefined, next: ConditionState, now: Date, generation: number | undefined): V1Condition {
  const old = previous?.find((c) => c.type === PROXY_READY_CONDITION);
  return {
    type: PROXY_READY_CONDITION,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : now,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  };
}

/** True when the condition would change what is stored (ignoring the transition time). */
export function conditionChanged(previous: readonly V1Condition[] | undefined, next: ConditionState): boolean {
  const old = previous?.find((c) => c.type === PROXY_READY_CONDITION);
  return !old || old.status !== next.status || old.reason !== next.reason || old.message !== next.message;
}

/**
 * What a failed control-plane call means for the user. One that may pass (unreachable, throttled,
 * failing) is retried with backoff, and the condition says so rather than staying silent.
 */
export function controlPlaneProblem(error: ControlPlaneError): string {
  return error.retryable ? `the control plane is unreachable or failing; retrying with backoff (${error.message})` : error.message;
}
