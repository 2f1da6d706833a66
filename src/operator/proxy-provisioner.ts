// Creates, updates and removes one proxy (config and state Secrets, headless Service,
// StatefulSet) and its device on the tailnet. Every step is idempotent; cleanup can span
// several passes and reports "pending" until the proxy's pods are gone.
import type { V1Pod, V1Secret, V1StatefulSet } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import type { Logger } from "../shared/log.ts";
import { ANNOTATIONS, STATE_SECRET_KEYS } from "./names.ts";
import {
  childSelector,
  configSecret,
  configSecretName,
  deviceIdentity,
  headlessService,
  proxyName,
  stateSecret,
  stateSecretName,
  statefulSet,
  type ProxyParent,
  type ProxySettings,
  type ProxyTarget,
} from "./proxy-objects.ts";
import { proxyRole, proxyRoleBinding, proxyServiceAccount } from "./proxy-rbac.ts";

export interface DeviceStatus {
  readonly id: string;
  readonly fqdn: string;
  readonly ips: readonly string[];
  /** The firewall backend the proxy chose, and why (shown to users in an Event). */
  readonly firewall?: string;
}

export type CleanupResult = "done" | "pending";

/** Children removed once the pod and the device are gone; the pod's identity goes last. */
const CLEANED_UP_LAST = [
  ["v1", "Service"],
  ["rbac.authorization.k8s.io/v1", "RoleBinding"],
  ["rbac.authorization.k8s.io/v1", "Role"],
  ["v1", "ServiceAccount"],
] as const;

/** Container states that will not resolve by waiting a little longer. */
const STUCK_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrImageNeverPull",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

function describePodProblem(pod: V1Pod): string | undefined {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const status of statuses) {
    const waiting = status.state?.waiting;
    if (!waiting?.reason || !STUCK_REASONS.has(waiting.reason)) continue;
    // A crash loop's own message is only "back-off ..."; the last run's message says why.
    const last = status.lastState?.terminated;
    const detail = last?.message?.trim() ? `${last.reason ?? "exited"} (exit ${last.exitCode}): ${lastLines(last.message)}` : (waiting.message ?? "");
    return `container ${status.name}: ${waiting.reason}${detail ? `: ${detail}` : ""}`;
  }
  const unschedulable = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unschedulable?.reason === "Unschedulable") return `cannot be scheduled: ${unschedulable.message ?? ""}`;
  return undefined;
}

/** The end of a termination message (the container's last log lines): enough for a condition. */
function lastLines(message: string): string {
  return message.trim().split("\n").slice(-3).join(" | ").slice(-400);
}

const decode = (value: string | undefined): string | undefined => (value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8"));

export class ProxyProvisioner {
  private readonly kube: KubeClient;
  private readonly controlPlane: ControlPlane;
  private readonly settings: ProxySettings;

  constructor(kube: KubeClient, controlPlane: ControlPlane, settings: ProxySettings) {
    this.kube = kube;
    this.controlPlane = controlPlane;
    this.settings = settings;
  }

  /** Where the proxies and their Secrets live. */
  get operatorNamespace(): string {
    return this.settings.operatorNamespace;
  }

  /** Brings the proxy to the target; returns the device once the proxy has reported it. */
  async ensure(parent: ProxyParent, target: ProxyTarget, log: Logger): Promise<DeviceStatus | undefined> {
    const ns = this.settings.operatorNamespace;
    const existing = await this.kube.get<V1Secret>({ apiVersion: "v1", kind: "Secret", namespace: ns, name: configSecretName(parent) });
    const identity = deviceIdentity(target);
    const existingIdentity = existing?.metadata?.annotations?.[ANNOTATIONS.proxyIdentity];
    if (existing && existingIdentity !== identity) {
      // Tags and the MagicDNS name belong to the device (Headscale keeps a node's name): a
      // change means a new device, logged in with a new key, and the old one deleted.
      log.info({ from: existingIdentity, to: identity }, "hostname or tags changed; replacing the proxy's device");
      if ((await this.cleanup(parent, log)) === "pending") return undefined;
    }
    if (!existing || existingIdentity !== identity) {
      // The single-use key is minted only when the config Secret is created.
      const authKey = await this.controlPlane.createAuthKey({ tags: target.tags });
      const created = await this.kube.create(configSecret(parent, this.settings, target, authKey));
      log.info({ secret: configSecretName(parent), raced: created === "exists" }, "auth key minted for the proxy");
    }
    // Created once and never applied again: tailscaled and the proxy own its data.
    const state = await this.kube.get<V1Secret>({ apiVersion: "v1", kind: "Secret", namespace: ns, name: stateSecretName(parent) });
    if (!state) await this.kube.create(stateSecret(parent, this.settings));
    if (!target.serviceAccount) await this.kube.apply(proxyServiceAccount(parent, this.settings));
    await this.kube.apply(proxyRole(parent, this.settings));
    await this.kube.apply(proxyRoleBinding(parent, this.settings, target));
    await this.kube.apply(headlessService(parent, this.settings));
    await this.kube.apply(statefulSet(parent, this.settings, target));
    return deviceFromState(state);
  }

  /** One value the proxy reported in its state Secret (STATE_SECRET_KEYS), if present. */
  async stateValue(parent: ProxyParent, key: string): Promise<string | undefined> {
    const state = await this.kube.get<V1Secret>({ apiVersion: "v1", kind: "Secret", namespace: this.settings.operatorNamespace, name: stateSecretName(parent) });
    return decode(state?.data?.[key]) || undefined;
  }

  /**
   * Why the proxy's pod is not running, when Kubernetes says so (an image that cannot be pulled,
   * a container that keeps failing, a pod that cannot be scheduled); undefined while it simply
   * starts. Shown in the Service's condition instead of a bare "waiting".
   */
  async podProblem(parent: ProxyParent, log: Logger): Promise<string | undefined> {
    const ns = this.settings.operatorNamespace;
    const pods = await this.kube.list<V1Pod>("v1", "Pod", { namespace: ns, labelSelector: childSelector(parent) });
    for (const pod of pods) {
      const problem = describePodProblem(pod);
      if (!problem) continue;
      await this.replaceIfOutdated(pod, log);
      return `proxy pod ${pod.metadata?.name ?? ""}: ${problem}`;
    }
    return undefined;
  }

  /**
   * A StatefulSet never replaces a pod that is not Ready (kubernetes/kubernetes#67250), so a pod
   * stuck on a bad image or a crash loop would keep its old template after the fix: delete it
   * once the StatefulSet has a newer revision, and the StatefulSet makes it again from that one.
   */
  private async replaceIfOutdated(pod: V1Pod, log: Logger): Promise<void> {
    const ns = this.settings.operatorNamespace;
    const owner = pod.metadata?.ownerReferences?.find((o) => o.kind === "StatefulSet");
    if (!owner) return;
    const sts = await this.kube.get<V1StatefulSet>({ apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: owner.name });
    const podRevision = pod.metadata?.labels?.["controller-revision-hash"];
    const updateRevision = sts?.status?.updateRevision;
    if (!podRevision || !updateRevision || podRevision === updateRevision) return;
    log.info({ pod: pod.metadata?.name, from: podRevision, to: updateRevision }, "replacing a stuck proxy pod that has an outdated template");
    // By UID: the pod may come from a watch cache, and its successor has the same name.
    await this.kube.delete({ apiVersion: "v1", kind: "Pod", namespace: ns, name: pod.metadata?.name ?? "" }, pod.metadata?.uid ? { uid: pod.metadata.uid } : {});
  }

  /**
   * StatefulSet first (so the proxy stops using the device), then the device on the control
   * plane (a missing one is fine), then Secrets and Services. Pending until the pods are gone.
   */
  async cleanup(parent: ProxyParent, log: Logger): Promise<CleanupResult> {
    const ns = this.settings.operatorNamespace;
    const selector = childSelector(parent);
    // Read from the API server, not a watch cache: an object created a moment ago must not be
    // missed, or it would outlive its parent.
    const sets = await this.kube.list<V1StatefulSet>("apps/v1", "StatefulSet", { namespace: ns, labelSelector: selector, consistent: true });
    for (const sts of sets) await this.kube.delete({ apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: sts.metadata?.name ?? "" });
    const pods = await this.kube.list<V1Pod>("v1", "Pod", { namespace: ns, labelSelector: `app=${proxyName(parent)}`, consistent: true });
    if (pods.length > 0) return "pending";

    const secrets = await this.kube.list<V1Secret>("v1", "Secret", { namespace: ns, labelSelector: selector, consistent: true });
    for (const secret of secrets) {
      const deviceId = decode(secret.data?.[STATE_SECRET_KEYS.deviceId]);
      if (deviceId) {
        await this.controlPlane.deleteDevice(deviceId);
        log.info({ deviceId }, "device deleted from the tailnet");
      }
    }
    for (const secret of secrets) await this.kube.delete({ apiVersion: "v1", kind: "Secret", namespace: ns, name: secret.metadata?.name ?? "" });
    for (const [apiVersion, kind] of CLEANED_UP_LAST) {
      for (const object of await this.kube.list(apiVersion, kind, { namespace: ns, labelSelector: selector, consistent: true })) {
        await this.kube.delete({ apiVersion, kind, namespace: ns, name: object.metadata?.name ?? "" });
      }
    }
    return "done";
  }
}

/** The device as the proxy reported it in its state Secret, once it has. */
function deviceFromState(secret: V1Secret | undefined): DeviceStatus | undefined {
  const data = secret?.data ?? {};
  const id = decode(data[STATE_SECRET_KEYS.deviceId]);
  const fqdn = decode(data[STATE_SECRET_KEYS.deviceFqdn]);
  const ips = decode(data[STATE_SECRET_KEYS.deviceIps]);
  if (!id || !fqdn || !ips) return undefined;
  const mode = decode(data[STATE_SECRET_KEYS.firewallMode]);
  const reason = decode(data[STATE_SECRET_KEYS.firewallReason]);
  return { id, fqdn, ips: JSON.parse(ips) as string[], ...(mode ? { firewall: `${mode} (${reason ?? "no reason given"})` } : {}) };
}
