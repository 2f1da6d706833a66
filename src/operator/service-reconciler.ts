// Reconciles one Service: exposes it on the tailnet through a proxy, reflects the proxy's device
// in the Service's status, and removes the proxy and its device when the Service no longer asks
// for it (or is deleted). Level-based: every pass reads the world and converges it.
import type { V1LoadBalancerIngress, V1Service } from "@kubernetes/client-node";
import { KubeApiError, type KubeClient } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { ReconcileContext, ReconcileResult } from "../runtime/reconciler.ts";
import { splitKey, TerminalError } from "../runtime/reconciler.ts";
import { ControlPlaneError } from "../control/control-plane.ts";
import { ANNOTATIONS, FINALIZER, PROXY_READY_CONDITION, REASONS } from "./names.ts";
import { serviceIntent, type IntentOptions } from "./service-intent.ts";
import type { DeviceStatus, ProxyProvisioner } from "./proxy-provisioner.ts";
import type { ProxyParent } from "./proxy-objects.ts";
import { conditionChanged, controlPlaneProblem, proxyReadyCondition, type ConditionState } from "./conditions.ts";
import type { EventRecorder } from "./events.ts";
import { isEgressManaged, wantsEgress } from "./egress-intent.ts";
import type { EgressReconciler } from "./egress-reconciler.ts";
import { loginAdvice } from "../shared/login-report.ts";

/**
 * Every wait here is ended by a watch event: the proxy writing its state Secret, its pod
 * failing or going away, the Service changing. This only bounds how long a lost event could
 * stall a Service; it is not how the operator notices progress.
 */
export const SAFETY_REQUEUE_MS = 30_000;

export interface ServiceReconcilerDeps {
  readonly kube: KubeClient;
  readonly provisioner: ProxyProvisioner;
  readonly events: EventRecorder;
  readonly clock: Clock;
  readonly intent: IntentOptions;
  /** Services that ask for egress (or were rewritten for it) go there. */
  readonly egress?: EgressReconciler;
}

export class ServiceReconciler {
  private readonly deps: ServiceReconcilerDeps;

  constructor(deps: ServiceReconcilerDeps) {
    this.deps = deps;
  }

  readonly reconcile = async (key: string, { log }: ReconcileContext): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    const service = await this.deps.kube.get<V1Service>({ apiVersion: "v1", kind: "Service", namespace, name });
    if (!service) return {};
    if (this.deps.egress && (wantsEgress(service, this.deps.intent) || isEgressManaged(service))) return this.deps.egress.reconcile(service, log);
    const parent: ProxyParent = { namespace, name, type: "svc" };
    const hasFinalizer = service.metadata?.finalizers?.includes(FINALIZER) ?? false;
    const intent = service.metadata?.deletionTimestamp ? { kind: "ignore" as const } : serviceIntent(service, this.deps.intent);

    if (intent.kind === "ignore") {
      // Not ours (the watch filters most of these out before they are queued).
      if (!hasFinalizer) return {};
      return this.removeProxy(service, parent, log);
    }
    if (intent.kind === "invalid") {
      if (hasFinalizer && (await this.deps.provisioner.cleanup(parent, log)) === "pending") return { requeueAfterMs: SAFETY_REQUEUE_MS };
      await this.setStatus(service, { status: "False", reason: REASONS.invalid, message: intent.message }, undefined, "Warning");
      return {};
    }
    if (intent.kind === "waiting") {
      await this.setStatus(service, { status: "False", reason: REASONS.pending, message: intent.message }, undefined);
      return { requeueAfterMs: SAFETY_REQUEUE_MS };
    }

    if (!hasFinalizer) {
      // The finalizer goes on before anything is created, so nothing can be orphaned.
      await this.deps.kube.mergePatch(
        { apiVersion: "v1", kind: "Service", namespace, name },
        { metadata: { finalizers: [...(service.metadata?.finalizers ?? []), FINALIZER], resourceVersion: service.metadata?.resourceVersion } },
      );
      // The Service watch delivers this change and queues the Service again, with the
      // finalizer in the cache: reading sooner would see the old object and conflict.
      return {};
    }
    let device: DeviceStatus | undefined;
    try {
      device = await this.deps.provisioner.ensure(parent, intent, log);
    } catch (error) {
      if (error instanceof ControlPlaneError) {
        // Tailscale refuses a key for tags the operator's OAuth client does not own: say what to change.
        const message = error.status === 400 && /tag/i.test(error.message) ? `${loginAdvice("tags")}: ${error.message}` : controlPlaneProblem(error);
        await this.setStatus(service, { status: "False", reason: REASONS.controlPlaneError, message }, undefined, "Warning");
        // Retrying at once cannot help: the runtime looks again when the Service changes, or
        // after a long delay (the control plane's policy may be fixed outside the cluster).
        if (!error.retryable) throw new TerminalError(error.message, { cause: error });
      } else if (error instanceof KubeApiError && error.isNotFound) {
        // The proxies' namespace does not exist (or was deleted under us): say so, keep retrying.
        const message = `cannot create the proxy: ${error.message}`;
        await this.setStatus(service, { status: "False", reason: REASONS.failed, message }, undefined, "Warning");
      }
      throw error;
    }
    if (!device) {
      const problem = await this.deps.provisioner.podProblem(parent, log);
      const progress = problem ? undefined : await this.deps.provisioner.loginProgress(parent);
      const state: ConditionState = problem
        ? { status: "False", reason: REASONS.failed, message: problem }
        : { status: "False", reason: REASONS.pending, message: `waiting for the proxy to join the tailnet${progress ? ` (tailscaled: ${progress})` : ""}` };
      await this.setStatus(service, state, undefined, problem ? "Warning" : "Normal");
      return { requeueAfterMs: SAFETY_REQUEUE_MS };
    }
    const ingress = intent.loadBalancer ? loadBalancerIngress(device, intent.destinations) : undefined;
    const ready = `exposed on the tailnet as ${device.fqdn}`;
    const given = device.fqdn.split(".")[0];
    if (given !== intent.hostname) {
      // The tailnet made the name unique (as with the Tailscale operator, the Service is still
      // exposed, under the suffixed name): say whose the name is, so the user can pick another.
      const owner = (await this.deps.provisioner.hostnameOwner(parent, intent.hostname)) ?? "another device of the tailnet";
      const message = `hostname "${intent.hostname}" is taken by ${owner}; ${ready} instead. Set another ${ANNOTATIONS.hostname} for a name of its own`;
      await this.setStatus(service, { status: "True", reason: REASONS.hostnameTaken, message }, ingress, "Warning");
      return {};
    }
    await this.setStatus(service, { status: "True", reason: REASONS.ready, message: ready }, ingress, "Normal", device.firewall ? `${ready}; proxy firewall: ${device.firewall}` : ready);
    return {};
  };

  /**
   * Removes the proxy and device of a Service that still carries our finalizer, whatever the
   * Service asks for: what `tailnet-operator uninstall` does before the operator goes away.
   */
  readonly release = async (key: string, { log }: ReconcileContext): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    const service = await this.deps.kube.get<V1Service>({ apiVersion: "v1", kind: "Service", namespace, name });
    if (service && this.deps.egress && isEgressManaged(service)) return this.deps.egress.release(service, log);
    if (!service?.metadata?.finalizers?.includes(FINALIZER)) return {};
    return this.removeProxy(service, { namespace, name, type: "svc" }, log);
  };

  private async removeProxy(service: V1Service, parent: ProxyParent, log: Logger): Promise<ReconcileResult> {
    if ((await this.deps.provisioner.cleanup(parent, log)) === "pending") return { requeueAfterMs: SAFETY_REQUEUE_MS };
    const ref = { apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name };
    let current: V1Service | undefined = service;
    if (!service.metadata?.deletionTimestamp) {
      // Still there but no longer exposed: take our status fields back. That write moves the
      // resourceVersion, so the finalizer is removed from a fresh read.
      await this.deps.kube.applyServiceStatus(parent.namespace, parent.name, {});
      await this.deps.events.record(service, "Normal", REASONS.cleanedUp, "proxy and tailnet device removed");
      current = await this.deps.kube.get<V1Service>(ref);
      if (!current) return {};
    }
    await this.deps.kube.mergePatch(ref, {
      metadata: { finalizers: (current.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER), resourceVersion: current.metadata?.resourceVersion },
    });
    log.info("proxy removed");
    return {};
  }

  /** Applies our condition (and LB ingress) and records an Event when the condition changes. */
  private async setStatus(
    service: V1Service,
    state: ConditionState,
    ingress: V1LoadBalancerIngress[] | undefined,
    eventType: "Normal" | "Warning" = "Normal",
    eventMessage = state.message,
  ): Promise<void> {
    const previous = service.status?.conditions;
    const changed = conditionChanged(previous, state);
    const sameIngress = JSON.stringify(service.status?.loadBalancer?.ingress ?? []) === JSON.stringify(ingress ?? []);
    // A new generation that leads to the same condition still moves observedGeneration, so
    // users (and kubectl wait) can tell the operator has seen their change.
    const seen = previous?.find((c) => c.type === PROXY_READY_CONDITION)?.observedGeneration === service.metadata?.generation;
    if (!changed && sameIngress && seen) return;
    const condition = proxyReadyCondition(previous, state, new Date(this.deps.clock.now()), service.metadata?.generation);
    await this.deps.kube.applyServiceStatus(service.metadata?.namespace ?? "", service.metadata?.name ?? "", {
      conditions: [condition],
      ...(ingress ? { loadBalancer: { ingress } } : {}),
    });
    if (changed) await this.deps.events.record(service, eventType, state.reason, eventMessage);
  }
}

/** The MagicDNS name (shown by kubectl as EXTERNAL-IP) and the tailnet IPs of the Service's families. */
export function loadBalancerIngress(device: DeviceStatus, destinations: readonly string[]): V1LoadBalancerIngress[] {
  const families = new Set(destinations.map((ip) => (ip.includes(":") ? 6 : 4)));
  return [{ hostname: device.fqdn }, ...device.ips.filter((ip) => families.has(ip.includes(":") ? 6 : 4)).map((ip) => ({ ip }))];
}
