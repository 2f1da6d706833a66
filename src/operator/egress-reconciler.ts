// Egress for one Service: an egress proxy forwards the Service's ports to a tailnet target, and
// the Service becomes an ExternalName pointing at the proxy's headless Service, so pods keep
// using the Service's own DNS name. The user's spec is kept in an annotation and put back, and
// the proxy and its device removed, when the Service stops asking for egress.
import type { V1Secret, V1Service } from "@kubernetes/client-node";
import { KubeApiError, type KubeClient } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { ReconcileResult } from "../runtime/reconciler.ts";
import { ControlPlaneError } from "../control/control-plane.ts";
import { parseEgressTargetReport, type EgressTargetReport } from "../shared/egress.ts";
import { FINALIZER, REASONS, STATE_SECRET_KEYS } from "./names.ts";
import type { IntentOptions } from "./service-intent.ts";
import { egressIntent, isEgressManaged, restorePatch, rewritePatch, type EgressIntent } from "./egress-intent.ts";
import type { DeviceStatus, ProxyProvisioner } from "./proxy-provisioner.ts";
import { proxyName, proxySecretRef, type ProxyParent, type ProxyTarget } from "./proxy-objects.ts";
import { conditionChanged, controlPlaneProblem, proxyReadyCondition, type ConditionState } from "./conditions.ts";
import type { EventRecorder } from "./events.ts";

const PROXY_POLL_MS = 1_000;

export interface EgressReconcilerDeps {
  readonly kube: KubeClient;
  readonly provisioner: ProxyProvisioner;
  readonly events: EventRecorder;
  readonly clock: Clock;
  readonly intent: IntentOptions;
  readonly operatorNamespace: string;
  /** The cluster's DNS domain (cluster.local), for the ExternalName the Service points at. */
  readonly clusterDomain: string;
}

export class EgressReconciler {
  private readonly deps: EgressReconcilerDeps;

  constructor(deps: EgressReconcilerDeps) {
    this.deps = deps;
  }

  /** Where the rewritten Service points: the proxy's headless Service, fully qualified. */
  externalName(parent: ProxyParent): string {
    return `${proxyName(parent)}.${this.deps.operatorNamespace}.svc.${this.deps.clusterDomain}`;
  }

  async reconcile(service: V1Service, log: Logger): Promise<ReconcileResult> {
    const parent = parentOf(service);
    const hasFinalizer = service.metadata?.finalizers?.includes(FINALIZER) ?? false;
    const intent = service.metadata?.deletionTimestamp ? { kind: "none" as const } : egressIntent(service, this.deps.intent, this.externalName(parent));

    if (intent.kind === "none") return this.release(service, log);
    if (intent.kind === "invalid") {
      // Nothing half-made: a Service that turns invalid loses its proxy and gets its spec back.
      if (hasFinalizer && (await this.deps.provisioner.cleanup(parent, log)) === "pending") return { requeueAfterMs: PROXY_POLL_MS };
      const current = await this.restore(service, parent);
      if (!current) return {};
      await this.setStatus(current, { status: "False", reason: REASONS.invalid, message: intent.message }, "Warning");
      return {};
    }
    if (!hasFinalizer) {
      await this.deps.kube.mergePatch(serviceRef(parent), {
        metadata: { finalizers: [...(service.metadata?.finalizers ?? []), FINALIZER], resourceVersion: service.metadata?.resourceVersion },
      });
      return { requeueAfterMs: 0 };
    }

    let device: DeviceStatus | undefined;
    try {
      device = await this.deps.provisioner.ensure(parent, proxyTarget(intent), log);
    } catch (error) {
      if (error instanceof ControlPlaneError) {
        await this.setStatus(service, { status: "False", reason: REASONS.controlPlaneError, message: controlPlaneProblem(error) }, "Warning");
      } else if (error instanceof KubeApiError && error.isNotFound) {
        await this.setStatus(service, { status: "False", reason: REASONS.failed, message: `cannot create the proxy: ${error.message}` }, "Warning");
      }
      throw error;
    }
    if (!intent.rewritten) {
      // After the proxy's objects exist, so the name it points at is never a dangling one for long.
      await this.deps.kube.mergePatch(serviceRef(parent), rewritePatch(service, intent, this.externalName(parent)));
      log.info({ externalName: this.externalName(parent) }, "Service pointed at its egress proxy");
      return { requeueAfterMs: 0 };
    }

    const target = "ip" in intent.target ? intent.target.ip : intent.target.fqdn;
    if (!device) {
      const problem = await this.deps.provisioner.podProblem(parent, log);
      const state: ConditionState = problem
        ? { status: "False", reason: REASONS.failed, message: problem }
        : { status: "False", reason: REASONS.pending, message: "waiting for the egress proxy to join the tailnet" };
      await this.setStatus(service, state, problem ? "Warning" : "Normal");
      return { requeueAfterMs: PROXY_POLL_MS };
    }
    const report = await this.report(parent);
    if (report?.target !== target) {
      await this.setStatus(service, { status: "False", reason: REASONS.pending, message: `waiting for the egress proxy to resolve ${target}` });
      return { requeueAfterMs: PROXY_POLL_MS };
    }
    if (report.error !== undefined || report.ips.length === 0) {
      // The proxy keeps looking (the device may join later); its next report wakes us up.
      const message = `egress target ${target}: ${report.error ?? "no tailnet address"}`;
      await this.setStatus(service, { status: "False", reason: REASONS.egressTargetNotFound, message }, "Warning");
      return {};
    }
    const message = `egress to ${target} (${report.ips.join(", ")}) through ${device.fqdn}`;
    await this.setStatus(service, { status: "True", reason: REASONS.ready, message });
    return {};
  }

  /**
   * Removes the proxy and its device, puts the user's spec back (unless the Service is being
   * deleted), clears our status and drops the finalizer. Also what uninstall does.
   */
  async release(service: V1Service, log: Logger): Promise<ReconcileResult> {
    const parent = parentOf(service);
    const hasFinalizer = service.metadata?.finalizers?.includes(FINALIZER) ?? false;
    if (hasFinalizer && (await this.deps.provisioner.cleanup(parent, log)) === "pending") return { requeueAfterMs: PROXY_POLL_MS };
    let current: V1Service | undefined = service;
    if (!service.metadata?.deletionTimestamp) {
      const managed = isEgressManaged(service);
      current = await this.restore(service, parent);
      if (!current) return {};
      if (current.status?.conditions?.length) await this.deps.kube.applyServiceStatus(parent.namespace, parent.name, {});
      // Only a Service that had a proxy (our finalizer) lost one; a copied annotation alone just goes.
      if (hasFinalizer) await this.deps.events.record(current, "Normal", REASONS.cleanedUp, "egress proxy and tailnet device removed; the Service's own spec is back");
      else if (managed) await this.deps.events.record(current, "Normal", REASONS.cleanedUp, "the operator's egress annotations removed (this Service had no egress proxy); its own spec is back");
      current = await this.deps.kube.get<V1Service>(serviceRef(parent));
      if (!current) return {};
    }
    if (current.metadata?.finalizers?.includes(FINALIZER)) {
      await this.deps.kube.mergePatch(serviceRef(parent), {
        metadata: { finalizers: (current.metadata.finalizers).filter((f) => f !== FINALIZER), resourceVersion: current.metadata.resourceVersion },
      });
      log.info("egress proxy removed");
    }
    return {};
  }

  /** Puts the user's spec back if the operator had rewritten it; returns the Service as it is now. */
  private async restore(service: V1Service, parent: ProxyParent): Promise<V1Service | undefined> {
    const patch = restorePatch(service, this.externalName(parent));
    if (!patch) return service;
    await this.deps.kube.mergePatch(serviceRef(parent), patch);
    return this.deps.kube.get<V1Service>(serviceRef(parent));
  }

  private async report(parent: ProxyParent): Promise<EgressTargetReport | undefined> {
    const secret = await this.deps.kube.get<V1Secret>(proxySecretRef(parent, this.deps.operatorNamespace, "state"));
    const raw = secret?.data?.[STATE_SECRET_KEYS.egressTarget];
    return parseEgressTargetReport(raw === undefined ? undefined : Buffer.from(raw, "base64").toString("utf8"));
  }

  private async setStatus(service: V1Service, state: ConditionState, eventType: "Normal" | "Warning" = "Normal"): Promise<void> {
    const previous = service.status?.conditions;
    if (!conditionChanged(previous, state)) return;
    const condition = proxyReadyCondition(previous, state, new Date(this.deps.clock.now()), service.metadata?.generation);
    await this.deps.kube.applyServiceStatus(service.metadata?.namespace ?? "", service.metadata?.name ?? "", { conditions: [condition] });
    await this.deps.events.record(service, eventType, state.reason, state.message);
  }
}

function parentOf(service: V1Service): ProxyParent {
  return { namespace: service.metadata?.namespace ?? "", name: service.metadata?.name ?? "", type: "svc" };
}

function serviceRef(parent: ProxyParent) {
  return { apiVersion: "v1", kind: "Service", namespace: parent.namespace, name: parent.name };
}

function proxyTarget(intent: EgressIntent): ProxyTarget {
  return {
    hostname: intent.hostname,
    tags: intent.tags,
    destinations: [],
    egress: { ...intent.target, ports: intent.ports, families: intent.families },
  };
}
