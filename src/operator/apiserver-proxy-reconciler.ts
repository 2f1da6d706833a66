// The API server proxy: one tailnet device that forwards to the cluster's API server, run by the
// same provisioner and proxy image as an Ingress (an L7 proxy whose only upstream is the API
// server). It has no parent object of its own: its configuration is the operator's, so it is
// reconciled under one fixed key, and what it does is reported as Events on the operator's
// Deployment (`kubectl describe deployment`) and in the logs.
import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import type { Logger } from "../shared/log.ts";
import type { ReconcileContext, ReconcileResult } from "../runtime/reconciler.ts";
import type { IngressProxyConfig } from "../shared/ingress-config.ts";
import { childSelector, ingressSecretName, l7ConfigSecret, type ProxyParent } from "./proxy-objects.ts";
import type { ProxyProvisioner } from "./proxy-provisioner.ts";
import type { EventRecorder } from "./events.ts";
import { certificateCovers, checkTlsSecret, type TlsPair } from "./ingress-tls.ts";
import type { OperatorAcme } from "./acme-settings.ts";

export type ApiServerProxyMode = "false" | "auth" | "noauth";

export interface ApiServerProxySettings {
  readonly mode: ApiServerProxyMode;
  readonly hostname: string;
  readonly tags: readonly string[];
  /** A kubernetes.io/tls Secret in the operator's namespace. */
  readonly tlsSecret: string | undefined;
  /** Plain HTTP instead of HTTPS. */
  readonly http: boolean;
  /** The install's ServiceAccount with impersonation rights (auth); the proxy's own otherwise. */
  readonly serviceAccount: string | undefined;
  readonly controlPlane: "tailscale" | "headscale";
  /** The operator has an ACME directory for its proxies' certificates. */
  readonly acmeConfigured: boolean;
  /** Its settings, handed to the proxy when its source is "acme". */
  readonly acme?: OperatorAcme | undefined;
}

export interface ApiServerProxyDeps {
  readonly kube: KubeClient;
  readonly provisioner: ProxyProvisioner;
  readonly events: EventRecorder;
  readonly settings: ApiServerProxySettings;
  /** What Events are recorded on (the operator's Deployment); undefined records none. */
  readonly reportTo: () => Promise<KubernetesObject | undefined>;
}

export const API_SERVER_PROXY_REASONS = {
  ready: "ApiServerProxyReady",
  pending: "ApiServerProxyPending",
  invalid: "ApiServerProxyInvalid",
  failed: "ApiServerProxyFailed",
  removed: "ApiServerProxyRemoved",
} as const;

type Source = IngressProxyConfig["certificateSource"];

/** How the proxy serves: plain HTTP when asked, the named Secret, ACME, or the control plane's certificate. */
export function apiServerProxySource(settings: ApiServerProxySettings): Source | { readonly unavailable: string } {
  if (settings.http) return "none";
  if (settings.tlsSecret) return "secret";
  if (settings.acmeConfigured) return "acme";
  if (settings.controlPlane === "tailscale") return "control-plane";
  return {
    unavailable:
      "Headscale issues no certificates for MagicDNS names, so the API server proxy cannot serve HTTPS from the control plane: " +
      "set apiServerProxy.tls.secretName to a kubernetes.io/tls Secret in the operator's namespace, configure ACME, " +
      "or set apiServerProxy.http=true for plain HTTP (WireGuard still encrypts it on the tailnet)",
  };
}

export class ApiServerProxyReconciler {
  /** The one key this reconciler runs under: <operator namespace>/apiserver-proxy. */
  readonly key: string;
  private readonly deps: ApiServerProxyDeps;
  private readonly parent: ProxyParent;
  private lastReport = "";

  constructor(deps: ApiServerProxyDeps) {
    this.deps = deps;
    this.parent = { namespace: deps.provisioner.operatorNamespace, name: "apiserver-proxy", type: "apiserver" };
    this.key = `${this.parent.namespace}/${this.parent.name}`;
  }

  /** A TLS Secret the proxy serves from (its changes wake the reconciler). */
  usesSecret(namespace: string, name: string): boolean {
    return this.deps.settings.mode !== "false" && namespace === this.parent.namespace && name === this.deps.settings.tlsSecret;
  }

  readonly reconcile = async (key: string, { log }: ReconcileContext): Promise<ReconcileResult> => {
    if (key !== this.key) return {};
    const settings = this.deps.settings;
    if (settings.mode === "false") return this.release(key, { log, signal: new AbortController().signal });

    const source = apiServerProxySource(settings);
    if (typeof source !== "string") return this.refuse(source.unavailable, log);
    let tls: TlsPair | undefined;
    if (source === "secret") {
      const name = settings.tlsSecret ?? "";
      const secret = await this.deps.kube.get<V1Secret>({ apiVersion: "v1", kind: "Secret", namespace: this.parent.namespace, name });
      const checked = checkTlsSecret(`${this.parent.namespace}/${name}`, secret, [settings.hostname]);
      if (!checked.ok) return this.refuse(checked.message, log);
      tls = checked.pair;
    }

    const mode = settings.mode;
    const acme = source === "acme" ? settings.acme?.settings : undefined;
    const config: IngressProxyConfig = { version: 1, certificateSource: source, httpRedirect: false, funnel: false, routes: [], apiServer: { mode }, ...(acme ? { acme } : {}) };
    await this.deps.kube.apply(l7ConfigSecret(this.parent, this.parent.namespace, config, tls, settings.acme?.eabHmacKey));
    const device = await this.deps.provisioner.ensure(
      this.parent,
      {
        hostname: settings.hostname,
        tags: settings.tags,
        destinations: [],
        ingressSecret: ingressSecretName(this.parent),
        ...(settings.serviceAccount ? { serviceAccount: settings.serviceAccount } : {}),
        // The certificate source is picked once, at start. The mode is not: the proxy follows its
        // config Secret and switches auth/noauth live, so a mode change costs no restart (the
        // pod's restart would take the API away for as long as it takes to come back).
        restartKey: source,
      },
      log,
    );
    if (!device) {
      const problem = await this.deps.provisioner.podProblem(this.parent, log);
      if (problem) await this.report("Warning", API_SERVER_PROXY_REASONS.failed, problem, log);
      else await this.report("Normal", API_SERVER_PROXY_REASONS.pending, "waiting for the API server proxy to join the tailnet", log);
      // The state Secret and pod watches wake this key when that changes.
      return {};
    }
    if (tls && !certificateCovers(tls, device.fqdn)) {
      const message = `TLS Secret ${this.parent.namespace}/${settings.tlsSecret ?? ""} has a certificate for ${tls.names.join(", ")}, not for ${device.fqdn}, the name tailnet clients use`;
      await this.report("Warning", API_SERVER_PROXY_REASONS.invalid, message, log);
      return {};
    }
    const scheme = source === "none" ? "http" : "https";
    const meaning = mode === "auth" ? "callers act as their tailnet identity (impersonation)" : "callers' own credentials pass through";
    await this.report("Normal", API_SERVER_PROXY_REASONS.ready, `serving the Kubernetes API at ${scheme}://${device.fqdn}/ on the tailnet (${mode}: ${meaning}; certificate: ${source})`, log);
    return {};
  };

  /** Removes the proxy and its device (the mode was turned off, or uninstall). */
  readonly release = async (key: string, { log }: ReconcileContext): Promise<ReconcileResult> => {
    if (key !== this.key) return {};
    // Its Secrets go last, so while any is left there is something to remove and report; a
    // StatefulSet without them (made by a writer that raced an earlier cleanup) is one too.
    const children = { namespace: this.parent.namespace, labelSelector: childSelector(this.parent) };
    const left = (await this.deps.kube.list("v1", "Secret", children)).length + (await this.deps.kube.list("apps/v1", "StatefulSet", children)).length;
    if (left === 0) return {};
    if ((await this.deps.provisioner.cleanup(this.parent, log)) === "pending") return { requeueAfterMs: 1_000 };
    await this.report("Normal", API_SERVER_PROXY_REASONS.removed, "API server proxy and its tailnet device removed", log);
    return {};
  };

  /** Bad settings: nothing half-made stays, and the operator says what to change. */
  private async refuse(message: string, log: Logger): Promise<ReconcileResult> {
    if ((await this.deps.provisioner.cleanup(this.parent, log)) === "pending") return { requeueAfterMs: 1_000 };
    await this.report("Warning", API_SERVER_PROXY_REASONS.invalid, message, log);
    return {};
  }

  /** Logs every outcome; an Event only when it differs from the last one. */
  private async report(type: "Normal" | "Warning", reason: string, message: string, log: Logger): Promise<void> {
    const line = `${reason} ${message}`;
    if (line === this.lastReport) return;
    this.lastReport = line;
    (type === "Warning" ? log.warn.bind(log) : log.info.bind(log))({ reason }, message);
    const object = await this.deps.reportTo();
    if (object) await this.deps.events.record(object, type, reason, message);
  }
}
