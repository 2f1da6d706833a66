// Reconciles one Ingress of class tailscale: resolves its backends and certificate, writes the
// proxy's routing table (and certificate copy) to the proxy's ingress Secret, runs the proxy
// through the same provisioner as Services, and reports the device in status.loadBalancer and in
// conditions + Events. Bad input tears down whatever exists and creates nothing.
import type { V1Ingress, V1IngressLoadBalancerIngress, V1Secret, V1Service } from "@kubernetes/client-node";
import { KubeApiError, type KubeClient } from "../kube/kube-client.ts";
import type { IngressStatusWriter } from "../kube/ingress-status.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { ReconcileContext, ReconcileResult } from "../runtime/reconciler.ts";
import { splitKey } from "../runtime/reconciler.ts";
import { ControlPlaneError } from "../control/control-plane.ts";
import { controlPlaneProblem } from "./conditions.ts";
import { funnelCondition, proxyFunnels } from "./ingress-funnel.ts";
import { httpsEngine, type IngressProxyConfig } from "../shared/ingress-config.ts";
import { STATE_SECRET_KEYS } from "../shared/state-keys.ts";
import { ANNOTATIONS, FINALIZER } from "./names.ts";
import { ingressIntent, isOurIngress, type IngressExposeIntent, type IngressIntentOptions } from "./ingress-intent.ts";
import { resolveRoutes } from "./ingress-backends.ts";
import { certificateCovers, checkTlsSecret, type TlsPair } from "./ingress-tls.ts";
import { CONDITIONS_ANNOTATION, INGRESS_CONDITIONS, INGRESS_REASONS, nextConditions, readConditions, type IngressCondition } from "./ingress-conditions.ts";
import type { DeviceStatus, ProxyProvisioner } from "./proxy-provisioner.ts";
import { ingressSecretName, l7ConfigSecret, type ProxyParent } from "./proxy-objects.ts";
import type { EventRecorder } from "./events.ts";
import type { OperatorAcme } from "./acme-settings.ts";

const PROXY_POLL_MS = 1_000;
const INGRESS_API = "networking.k8s.io/v1";

export type CertificateSourceKind = IngressProxyConfig["certificateSource"];

export interface IngressReconcilerOptions extends IngressIntentOptions {
  readonly controlPlane: "tailscale" | "headscale";
  /** The operator has an ACME directory configured (the proxies can get certificates there). */
  readonly acmeConfigured: boolean;
  /** The settings handed to proxies whose source is "acme" (present when acmeConfigured). */
  readonly acme?: OperatorAcme | undefined;
}

export interface IngressReconcilerDeps {
  readonly kube: KubeClient;
  readonly status: IngressStatusWriter;
  readonly provisioner: ProxyProvisioner;
  readonly events: EventRecorder;
  readonly clock: Clock;
  readonly options: IngressReconcilerOptions;
}

/**
 * The one place that picks an Ingress's certificate source: the user's Secret when named, else
 * ACME when the operator has a directory, else the control plane's own certificates, which only
 * Tailscale's control plane issues (Headscale has no CertDomains and no set-dns).
 */
export function chooseCertificateSource(intent: Pick<IngressExposeIntent, "secretName">, options: Pick<IngressReconcilerOptions, "controlPlane" | "acmeConfigured">): CertificateSourceKind | { readonly unavailable: string } {
  if (intent.secretName) return "secret";
  if (options.acmeConfigured) return "acme";
  if (options.controlPlane === "tailscale") return "control-plane";
  return {
    unavailable:
      "Headscale does not issue certificates for MagicDNS names, so this Ingress cannot be served over HTTPS from the control plane: " +
      "set spec.tls[0].secretName to a kubernetes.io/tls Secret (for example one cert-manager maintains), " +
      "or configure the operator with an ACME directory (chart value acme.directoryUrl) and the proxies get certificates from that CA",
  };
}

type Outcome = { readonly kind: "invalid"; readonly reason: string; readonly message: string };

export class IngressReconciler {
  private readonly deps: IngressReconcilerDeps;

  constructor(deps: IngressReconcilerDeps) {
    this.deps = deps;
  }

  readonly reconcile = async (key: string, { log }: ReconcileContext): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    const ingress = await this.deps.kube.get<V1Ingress>({ apiVersion: INGRESS_API, kind: "Ingress", namespace, name });
    if (!ingress) return {};
    const parent: ProxyParent = { namespace, name, type: "ingress" };
    const hasFinalizer = ingress.metadata?.finalizers?.includes(FINALIZER) ?? false;
    const intent = ingress.metadata?.deletionTimestamp ? { kind: "ignore" as const } : ingressIntent(ingress, this.deps.options);

    if (intent.kind === "ignore") {
      if (!hasFinalizer) return {};
      return this.removeProxy(ingress, parent, log);
    }
    const prepared = intent.kind === "invalid" ? ({ kind: "invalid", reason: INGRESS_REASONS.invalid, message: intent.message } as const) : await this.prepare(ingress, intent);
    const funnelFacts = { controlPlane: this.deps.options.controlPlane, certificateSource: prepared.kind === "ready" ? prepared.config.certificateSource : undefined, reported: undefined, fqdn: undefined };
    const funnelWanted = intent.kind === "expose" && intent.funnel;
    let extra = [funnelCondition(funnelWanted, funnelFacts)].filter((c) => c !== undefined);
    if (prepared.kind === "invalid") {
      if (hasFinalizer && (await this.deps.provisioner.cleanup(parent, log)) === "pending") return { requeueAfterMs: PROXY_POLL_MS };
      await this.setStatus(ingress, [{ type: INGRESS_CONDITIONS.ready, status: "False", reason: prepared.reason, message: prepared.message }, ...extra], [], "Warning");
      return {};
    }
    if (intent.kind !== "expose") return {};
    const { config, tls } = prepared;

    if (!hasFinalizer) {
      // The finalizer goes on before anything is created, so nothing can be orphaned.
      await this.deps.kube.mergePatch(
        { apiVersion: INGRESS_API, kind: "Ingress", namespace, name },
        { metadata: { finalizers: [...(ingress.metadata?.finalizers ?? []), FINALIZER], resourceVersion: ingress.metadata?.resourceVersion } },
      );
      return { requeueAfterMs: 0 };
    }
    let device: DeviceStatus | undefined;
    try {
      // The routing table and certificate exist before the proxy starts, so it never serves without them.
      await this.deps.kube.apply(l7ConfigSecret(parent, this.deps.provisioner.operatorNamespace, config, tls, this.deps.options.acme?.eabHmacKey));
      // The proxy picks its HTTPS engine at start: a config that needs the other one restarts it.
      device = await this.deps.provisioner.ensure(parent, { hostname: intent.hostname, tags: intent.tags, destinations: [], ingressSecret: ingressSecretName(parent), restartKey: httpsEngine(config) }, log);
    } catch (error) {
      if (error instanceof ControlPlaneError) {
        await this.setStatus(ingress, [{ type: INGRESS_CONDITIONS.ready, status: "False", reason: INGRESS_REASONS.controlPlaneError, message: controlPlaneProblem(error) }, ...extra], [], "Warning");
      } else if (error instanceof KubeApiError && error.isNotFound) {
        await this.setStatus(ingress, [{ type: INGRESS_CONDITIONS.ready, status: "False", reason: INGRESS_REASONS.failed, message: `cannot create the proxy: ${error.message}` }, ...extra], [], "Warning");
      }
      throw error;
    }
    if (funnelWanted) {
      const reported = await this.deps.provisioner.stateValue(parent, STATE_SECRET_KEYS.funnel);
      extra = [funnelCondition(true, { ...funnelFacts, reported, fqdn: device?.fqdn })].filter((c) => c !== undefined);
    }
    // The proxy reports why it has no certificate (an unreachable or refusing ACME CA, ...).
    const certificateProblem = await this.deps.provisioner.stateValue(parent, STATE_SECRET_KEYS.certificateError);
    if (certificateProblem) {
      const message = `the proxy cannot get a certificate (source: ${config.certificateSource}): ${certificateProblem}${device ? "; it keeps serving its previous certificate" : ""}`;
      const lb = device ? [{ hostname: device.fqdn, ports: [{ port: 443, protocol: "TCP" }] }] : [];
      await this.setStatus(ingress, [{ type: INGRESS_CONDITIONS.ready, status: "False", reason: INGRESS_REASONS.certificateFailed, message }, ...extra], lb, "Warning");
      return {};
    }
    if (!device) {
      const problem = await this.deps.provisioner.podProblem(parent, log);
      const ready: IngressCondition = problem
        ? { type: INGRESS_CONDITIONS.ready, status: "False", reason: INGRESS_REASONS.failed, message: problem }
        : { type: INGRESS_CONDITIONS.ready, status: "False", reason: INGRESS_REASONS.pending, message: `waiting for the proxy to join the tailnet and serve a certificate (source: ${config.certificateSource})` };
      await this.setStatus(ingress, [ready, ...extra], [], problem ? "Warning" : "Normal");
      return { requeueAfterMs: PROXY_POLL_MS };
    }
    // The tailnet made the name unique (another device holds it): say whose it is, as for Services.
    const taken = device.fqdn.split(".")[0] === intent.hostname ? undefined : await this.takenBy(parent, intent.hostname);
    if (tls && !certificateCovers(tls, device.fqdn)) {
      // Known only now: the tailnet's domain. Serving a certificate for another name would only
      // give clients a verification error, so say which name it must be for.
      const message = `${taken ? `${taken}; the device is ${device.fqdn}, and ` : ""}TLS Secret ${namespace}/${intent.secretName ?? ""} has a certificate for ${tls.names.join(", ")}, not for ${device.fqdn}, the name tailnet clients use`;
      await this.setStatus(ingress, [{ type: INGRESS_CONDITIONS.ready, status: "False", reason: taken ? INGRESS_REASONS.hostnameTaken : INGRESS_REASONS.invalidTls, message }, ...extra], [], "Warning");
      return {};
    }
    const ports = [{ port: 443, protocol: "TCP" }, ...(config.httpRedirect ? [{ port: 80, protocol: "TCP" }] : [])];
    const ignored = intent.ignoredHosts.length > 0 ? `; rules for other hosts are not served: ${intent.ignoredHosts.join(", ")}` : "";
    // Serving still works while a renewal fails; the user hears of it before the certificate expires.
    const renewalProblem = await this.deps.provisioner.stateValue(parent, STATE_SECRET_KEYS.certificateRenewalError);
    const warnings = [...(taken ? [taken] : []), ...(renewalProblem ? [`the certificate is not being renewed: ${renewalProblem}`] : [])];
    const message = `${warnings.map((w) => `${w}; `).join("")}serving https://${device.fqdn}/ on the tailnet (certificate: ${config.certificateSource})${ignored}`;
    const reason = taken ? INGRESS_REASONS.hostnameTaken : renewalProblem ? INGRESS_REASONS.certificateRenewalFailed : INGRESS_REASONS.ready;
    const ready = { type: INGRESS_CONDITIONS.ready, status: "True", reason, message } as const;
    await this.setStatus(ingress, [ready, ...extra], [{ hostname: device.fqdn, ports }], warnings.length > 0 ? "Warning" : "Normal");
    return {};
  };

  /** Everything that must hold before a proxy exists: backends, certificate, a free hostname. */
  private async prepare(ingress: V1Ingress, intent: IngressExposeIntent): Promise<Outcome | { kind: "ready"; config: IngressProxyConfig; tls: TlsPair | undefined }> {
    const namespace = ingress.metadata?.namespace ?? "";
    const owner = await this.hostnameOwner(ingress, intent.hostname);
    if (owner) return { kind: "invalid", reason: INGRESS_REASONS.hostnameInUse, message: `hostname "${intent.hostname}" is already used by Ingress ${owner}; give this one another spec.tls[0].hosts[0] or tailscale.com/hostname` };

    const services = new Map<string, V1Service>();
    for (const serviceName of new Set(intent.backends.map((b) => b.service))) {
      const service = await this.deps.kube.get<V1Service>({ apiVersion: "v1", kind: "Service", namespace, name: serviceName });
      if (service) services.set(serviceName, service);
    }
    const routes = resolveRoutes(namespace, intent.backends, services);
    if (!routes.ok) return { kind: "invalid", reason: INGRESS_REASONS.invalidBackend, message: routes.message };

    const source = chooseCertificateSource(intent, this.deps.options);
    if (typeof source !== "string") return { kind: "invalid", reason: INGRESS_REASONS.noCertificateSource, message: source.unavailable };
    let tls: TlsPair | undefined;
    if (source === "secret") {
      const secretName = intent.secretName ?? "";
      const secret = await this.deps.kube.get<V1Secret>({ apiVersion: "v1", kind: "Secret", namespace, name: secretName });
      const checked = checkTlsSecret(`${namespace}/${secretName}`, secret, [intent.tlsHost ?? intent.hostname]);
      if (!checked.ok) return { kind: "invalid", reason: INGRESS_REASONS.invalidTls, message: checked.message };
      tls = checked.pair;
    }
    const funnel = proxyFunnels(intent.funnel, this.deps.options.controlPlane, source);
    const acme = source === "acme" ? this.deps.options.acme?.settings : undefined;
    const config: IngressProxyConfig = { version: 1, certificateSource: source, httpRedirect: intent.httpRedirect, funnel, routes: routes.routes, ...(acme ? { acme } : {}) };
    return { kind: "ready", config, tls };
  }

  private async takenBy(parent: ProxyParent, hostname: string): Promise<string> {
    const owner = (await this.deps.provisioner.hostnameOwner(parent, hostname)) ?? "another device of the tailnet";
    return `hostname "${hostname}" is taken by ${owner}; set another ${ANNOTATIONS.hostname} for a name of its own`;
  }

  /** Another Ingress of ours that asks for the same hostname and came first, if any. */
  private async hostnameOwner(ingress: V1Ingress, hostname: string): Promise<string | undefined> {
    const self = `${ingress.metadata?.namespace ?? ""}/${ingress.metadata?.name ?? ""}`;
    const rank = (i: V1Ingress): string => `${new Date(i.metadata?.creationTimestamp ?? 0).toISOString()} ${i.metadata?.namespace ?? ""}/${i.metadata?.name ?? ""}`;
    const all = await this.deps.kube.list<V1Ingress>(INGRESS_API, "Ingress");
    for (const other of all) {
      const key = `${other.metadata?.namespace ?? ""}/${other.metadata?.name ?? ""}`;
      if (key === self || other.metadata?.deletionTimestamp || !isOurIngress(other)) continue;
      const otherIntent = ingressIntent(other, this.deps.options);
      if (otherIntent.kind === "expose" && otherIntent.hostname === hostname && rank(other) < rank(ingress)) return key;
    }
    return undefined;
  }

  /** Removes the proxy and device of an Ingress that still carries our finalizer (also for uninstall). */
  readonly release = async (key: string, { log }: ReconcileContext): Promise<ReconcileResult> => {
    const { namespace, name } = splitKey(key);
    const ingress = await this.deps.kube.get<V1Ingress>({ apiVersion: INGRESS_API, kind: "Ingress", namespace, name });
    if (!ingress?.metadata?.finalizers?.includes(FINALIZER)) return {};
    return this.removeProxy(ingress, { namespace, name, type: "ingress" }, log);
  };

  private async removeProxy(ingress: V1Ingress, parent: ProxyParent, log: Logger): Promise<ReconcileResult> {
    if ((await this.deps.provisioner.cleanup(parent, log)) === "pending") return { requeueAfterMs: PROXY_POLL_MS };
    const ref = { apiVersion: INGRESS_API, kind: "Ingress", namespace: parent.namespace, name: parent.name };
    let current: V1Ingress | undefined = ingress;
    if (!ingress.metadata?.deletionTimestamp) {
      await this.deps.status.setLoadBalancer(parent.namespace, parent.name, []);
      await this.deps.events.record(ingress, "Normal", INGRESS_REASONS.cleanedUp, "proxy and tailnet device removed");
      current = await this.deps.kube.get<V1Ingress>(ref);
      if (!current) return {};
    }
    await this.deps.kube.mergePatch(ref, {
      metadata: {
        finalizers: (current.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER),
        ...(current.metadata?.deletionTimestamp ? {} : { annotations: { [CONDITIONS_ANNOTATION]: null } }),
        resourceVersion: current.metadata?.resourceVersion,
      },
    });
    log.info("proxy removed");
    return {};
  }

  /** Writes the conditions annotation and load balancer status when they change; an Event per changed condition. */
  private async setStatus(ingress: V1Ingress, conditions: readonly IngressCondition[], lb: V1IngressLoadBalancerIngress[], eventType: "Normal" | "Warning"): Promise<void> {
    const namespace = ingress.metadata?.namespace ?? "";
    const name = ingress.metadata?.name ?? "";
    const previous = readConditions(ingress.metadata?.annotations);
    const next = nextConditions(previous, conditions, new Date(this.deps.clock.now()));
    if (next.changed.length > 0 || next.dropped) {
      await this.deps.kube.mergePatch({ apiVersion: INGRESS_API, kind: "Ingress", namespace, name }, { metadata: { annotations: { [CONDITIONS_ANNOTATION]: JSON.stringify(next.conditions) } } });
    }
    if (JSON.stringify(ingress.status?.loadBalancer?.ingress ?? []) !== JSON.stringify(lb)) await this.deps.status.setLoadBalancer(namespace, name, lb);
    for (const condition of next.changed) {
      const type = condition.type === INGRESS_CONDITIONS.funnel ? (condition.reason === INGRESS_REASONS.funnelUnavailable ? "Warning" : "Normal") : eventType;
      await this.deps.events.record(ingress, type, condition.reason, condition.message);
    }
  }
}
