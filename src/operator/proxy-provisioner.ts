// Creates, updates and removes one proxy (config and state Secrets, StatefulSet, for egress a
// headless Service) and its device on the tailnet. Every step is idempotent; cleanup can span
// several passes and reports "pending" until the proxy's pods are gone.
import type { V1Pod, V1Secret, V1StatefulSet } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import type { Logger } from "../shared/log.ts";
import { ANNOTATIONS, LABELS, STATE_SECRET_KEYS } from "./names.ts";
import {
  AUTH_KEY_FIELD,
  childSelector,
  configSecret,
  configSecretName,
  deviceIdentity,
  headlessService,
  proxyName,
  proxySecretRef,
  stateSecret,
  stateSecretName,
  statefulSet,
  type ProxyParent,
  type ProxySettings,
  type ProxyTarget,
} from "./proxy-objects.ts";
import { proxyRole, proxyRoleBinding, proxyServiceAccount } from "./proxy-rbac.ts";
import { classifyLoginError, keyFingerprint, loginAdvice, LOGIN_STATES } from "../shared/login-report.ts";

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
  /**
   * The refusal a pass just acted on (a refused key replaced, its report cleared), by proxy: that
   * pass's podProblem says it once, or the Service would only ever show "waiting" for it.
   */
  private readonly handledRefusals = new Map<string, string>();

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
    let config = await this.kube.get<V1Secret>(proxySecretRef(parent, ns, "config"));
    const identity = deviceIdentity(target);
    const existingIdentity = config?.metadata?.annotations?.[ANNOTATIONS.proxyIdentity];
    if (config && existingIdentity !== identity) {
      // Tags and the MagicDNS name belong to the device (Headscale keeps a node's name): a
      // change means a new device, logged in with a new key, and the old one deleted.
      log.info({ from: existingIdentity, to: identity }, "hostname or tags changed; replacing the proxy's device");
      if ((await this.cleanup(parent, log)) === "pending") return undefined;
      config = undefined;
    }
    let state: V1Secret | undefined;
    let stateRead = false;
    if (!config) {
      // Read once for this pass: nothing here writes the state Secret before the check below.
      state = await this.kube.get<V1Secret>(proxySecretRef(parent, ns, "state"));
      stateRead = true;
      config = await this.createConfig(parent, target, state, log);
    }
    const recorded = config?.metadata?.annotations?.[ANNOTATIONS.deviceId];
    if (!stateRead) state = await this.kube.get<V1Secret>(proxySecretRef(parent, ns, "state"));
    if (!state) {
      // Gone while a device existed (deleted by hand, a restore): the proxy's tailscaled state
      // went with it, so the proxy must log in again as a new device and the old one must go.
      const created = await this.kube.create(stateSecret(parent, this.settings, recorded));
      state = created === "exists" ? undefined : created;
      if (recorded) log.warn({ deviceId: recorded }, "the proxy's state Secret was lost; it logs in again as a new device");
    }
    const lost = recorded !== undefined && state?.metadata?.annotations?.[ANNOTATIONS.replacesDevice] === recorded;
    if (config && lost) await this.recoverLostState(parent, target, config, recorded, log);
    else if (config && state && refusedKey(state, config)) {
      await this.replaceRefusedKey(parent, target, config, log);
      const problem = reportedProblem(state);
      if (problem) this.handledRefusals.set(proxyName(parent), problem);
    } else if (config && !config.data?.[AUTH_KEY_FIELD] && !isLoggedIn(state)) await this.mintKey(parent, target, config, log);
    // Independent of each other, so in one round trip. The RoleBinding after its Role: the API
    // server refuses a binding to a Role it cannot see yet (its escalation check reads the Role's
    // rules; the operator has no `bind` verb). The StatefulSet last, so that its first pod finds
    // its ServiceAccount and permissions (the StatefulSet controller backs off after a refused pod).
    //
    // Only an egress proxy gets a headless Service: cluster pods reach it by that name (the user's
    // Service becomes an ExternalName to it). Every other proxy is reached over the tailnet, and a
    // Service per proxy would cost a write to the busiest bucket (Services: the finalizer and the
    // status already go there) and an EndpointSlice, for a DNS name nobody asks for. The
    // StatefulSet still names it (serviceName cannot change on an existing StatefulSet).
    await Promise.all([
      ...(target.serviceAccount ? [] : [proxyServiceAccount(parent, this.settings)]),
      proxyRole(parent, this.settings),
      ...(target.egress ? [headlessService(parent, this.settings)] : []),
    ].map((object) => this.kube.apply(object)));
    await this.kube.apply(proxyRoleBinding(parent, this.settings, target));
    await this.kube.apply(statefulSet(parent, this.settings, target));
    if (lost) return undefined;
    const device = deviceFromState(state);
    if (device && config && device.id !== recorded) await this.recordDevice(parent, config, recorded, device.id, log);
    return device;
  }

  /**
   * A new proxy's config Secret, created with its first key in one write: a control plane that
   * refuses or fails leaves nothing behind (no keyless Secret, no half-made proxy), and a key whose
   * Secret could not be created (a failed write, or another pass that created it first) is revoked.
   * A proxy whose state already holds a login (its config Secret deleted by hand) gets no key.
   */
  private async createConfig(parent: ProxyParent, target: ProxyTarget, state: V1Secret | undefined, log: Logger): Promise<V1Secret | undefined> {
    const minted = isLoggedIn(state) ? undefined : await this.controlPlane.createAuthKey({ tags: target.tags });
    let created: V1Secret | "exists";
    try {
      created = await this.kube.create(configSecret(parent, this.settings, target, minted));
    } catch (error) {
      if (minted) await this.revokeKey(minted.id, log);
      throw error;
    }
    if (created !== "exists") {
      if (minted) log.info({ secret: configSecretName(parent), keyId: minted.id }, "auth key minted for the proxy");
      return created;
    }
    if (minted) await this.revokeKey(minted.id, log);
    return this.readConfig(parent);
  }

  private async readConfig(parent: ProxyParent): Promise<V1Secret | undefined> {
    return this.kube.get<V1Secret>(proxySecretRef(parent, this.settings.operatorNamespace, "config"));
  }

  /**
   * Mints the proxy's single-use key into its existing config Secret. The write is conditional
   * (resourceVersion): a pass that lost a race, or any failed write, revokes what it minted, so
   * no usable key exists outside a Secret. The key replaced, if any, is revoked too.
   */
  private async mintKey(parent: ProxyParent, target: ProxyTarget, config: V1Secret, log: Logger, extraAnnotations: Record<string, string | null> = {}): Promise<void> {
    const minted = await this.controlPlane.createAuthKey({ tags: target.tags });
    try {
      await this.kube.mergePatch(
        { apiVersion: "v1", kind: "Secret", namespace: this.settings.operatorNamespace, name: configSecretName(parent) },
        {
          metadata: { resourceVersion: config.metadata?.resourceVersion, annotations: { ...extraAnnotations, [ANNOTATIONS.authKeyId]: minted.id } },
          data: { [AUTH_KEY_FIELD]: Buffer.from(minted.key).toString("base64") },
        },
      );
    } catch (error) {
      await this.revokeKey(minted.id, log);
      throw error;
    }
    log.info({ secret: configSecretName(parent), keyId: minted.id }, "auth key minted for the proxy");
    const replaced = config.metadata?.annotations?.[ANNOTATIONS.authKeyId];
    if (replaced && replaced !== minted.id) await this.revokeKey(replaced, log);
  }

  private async revokeKey(id: string, log: Logger): Promise<void> {
    try {
      await this.controlPlane.revokeAuthKey(id);
      log.info({ keyId: id }, "auth key revoked");
    } catch (error) {
      // The caller's own error (or the next pass) matters more; the key is logged to find it.
      log.warn({ keyId: id, err: error }, "revoking an auth key failed");
    }
  }

  /**
   * The state Secret was lost: the old device is deleted, a new key replaces the used one (and
   * the record of the old device, in the same conditional write), and the pod is replaced so it
   * starts from the empty state with the new key mounted.
   */
  private async recoverLostState(parent: ProxyParent, target: ProxyTarget, config: V1Secret, device: string, log: Logger): Promise<void> {
    await this.controlPlane.deleteDevice(device);
    log.info({ deviceId: device }, "device of the lost state deleted from the tailnet");
    await this.deleteDevicesJoinedWith(keyIdOf(config), log);
    await this.mintKey(parent, target, config, log, { [ANNOTATIONS.deviceId]: null });
    await this.deletePods(parent);
  }

  /**
   * The control plane refused the proxy's key (expired, revoked, used): a new one replaces it,
   * the report is cleared so this happens once per refusal, and the pod restarts with the new key.
   */
  private async replaceRefusedKey(parent: ProxyParent, target: ProxyTarget, config: V1Secret, log: Logger): Promise<void> {
    log.warn({ keyId: config.metadata?.annotations?.[ANNOTATIONS.authKeyId] }, "the control plane refused the proxy's auth key; minting a new one");
    // A used key: a login the proxy never saw through (it, or the control plane, died mid-way)
    // may have made a device with it, which this proxy, logging in anew, would never be.
    await this.deleteDevicesJoinedWith(keyIdOf(config), log);
    await this.mintKey(parent, target, config, log);
    const ns = this.settings.operatorNamespace;
    await this.kube.mergePatch({ apiVersion: "v1", kind: "Secret", namespace: ns, name: stateSecretName(parent) }, { data: { [STATE_SECRET_KEYS.loginState]: null, [STATE_SECRET_KEYS.loginError]: null } });
    await this.deletePods(parent);
  }

  /**
   * Deletes the devices that joined with these keys of the proxy's, where the control plane
   * keeps that link (Headscale): such a device may be named by no Secret, when the proxy or the
   * control plane died between registering it and the proxy reporting it. Only this proxy ever
   * held the key, so the device is this proxy's. Called before the key's id leaves the Secret.
   */
  private async deleteDevicesJoinedWith(keyIds: readonly string[], log: Logger): Promise<void> {
    if (keyIds.length === 0 || !this.controlPlane.linksDevicesToKeys) return;
    const keys = new Set(keyIds);
    for (const device of await this.controlPlane.listDevices()) {
      if (device.authKeyId === undefined || !keys.has(device.authKeyId)) continue;
      await this.controlPlane.deleteDevice(device.id);
      log.info({ deviceId: device.id, keyId: device.authKeyId }, "device that joined with the proxy's key deleted from the tailnet");
    }
  }

  private async deletePods(parent: ProxyParent): Promise<void> {
    const ns = this.settings.operatorNamespace;
    for (const pod of await this.kube.list<V1Pod>("v1", "Pod", { namespace: ns, labelSelector: `app=${proxyName(parent)}`, consistent: true })) {
      await this.kube.delete({ apiVersion: "v1", kind: "Pod", namespace: ns, name: pod.metadata?.name ?? "" }, pod.metadata?.uid ? { uid: pod.metadata.uid } : {});
    }
  }

  /**
   * Keeps the device's id on the config Secret, which outlives a lost state Secret. A proxy that
   * came back as another device (its state was lost while the operator was away) leaves the old
   * one behind: it is deleted here.
   */
  private async recordDevice(parent: ProxyParent, config: V1Secret, previous: string | undefined, id: string, log: Logger): Promise<void> {
    if (previous) {
      await this.controlPlane.deleteDevice(previous);
      log.info({ deviceId: previous, replacedBy: id }, "the proxy's previous device deleted from the tailnet");
    }
    await this.kube.mergePatch(
      { apiVersion: "v1", kind: "Secret", namespace: this.settings.operatorNamespace, name: configSecretName(parent) },
      { metadata: { resourceVersion: config.metadata?.resourceVersion, annotations: { [ANNOTATIONS.deviceId]: id } } },
    );
  }

  /** One value the proxy reported in its state Secret (STATE_SECRET_KEYS), if present. */
  async stateValue(parent: ProxyParent, key: string): Promise<string | undefined> {
    const state = await this.kube.get<V1Secret>(proxySecretRef(parent, this.settings.operatorNamespace, "state"));
    return decode(state?.data?.[key]) || undefined;
  }

  /**
   * Why the proxy's pod is not running, when Kubernetes says so (an image that cannot be pulled,
   * a container that keeps failing, a pod that cannot be scheduled); undefined while it simply
   * starts. Shown in the Service's condition instead of a bare "waiting".
   */
  async podProblem(parent: ProxyParent, log: Logger): Promise<string | undefined> {
    const ns = this.settings.operatorNamespace;
    const handled = this.handledRefusals.get(proxyName(parent));
    if (handled !== undefined) {
      this.handledRefusals.delete(proxyName(parent));
      return handled;
    }
    // What the proxy itself reported is more precise than what Kubernetes sees (a crash loop).
    const reported = reportedProblem(await this.kube.get<V1Secret>(proxySecretRef(parent, ns, "state")));
    if (reported) return reported;
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
   * Who holds a hostname the tailnet gave this proxy's device a suffix for: another parent of
   * this operator (by the identity on its config Secret), or undefined when it is none of ours.
   */
  async hostnameOwner(parent: ProxyParent, hostname: string): Promise<string | undefined> {
    const configs = await this.kube.list<V1Secret>("v1", "Secret", { namespace: this.settings.operatorNamespace, labelSelector: `${LABELS.managed}=true,${LABELS.secretType}=config` });
    for (const config of configs) {
      const labels = config.metadata?.labels ?? {};
      const owner = { namespace: labels[LABELS.parentNamespace] ?? "", name: labels[LABELS.parentName] ?? "", type: labels[LABELS.parentType] ?? "" };
      if (owner.namespace === parent.namespace && owner.name === parent.name && owner.type === parent.type) continue;
      if (config.metadata?.annotations?.[ANNOTATIONS.proxyIdentity]?.split(" ")[0] !== hostname) continue;
      return `${owner.type === "ingress" ? "Ingress" : "Service"} ${owner.namespace}/${owner.name}`;
    }
    return undefined;
  }

  /** What holds up the proxy's login while it tries (tailscaled's health warnings), if it said. */
  async loginProgress(parent: ProxyParent): Promise<string | undefined> {
    const state = await this.kube.get<V1Secret>(proxySecretRef(parent, this.settings.operatorNamespace, "state"));
    const data = state?.data ?? {};
    return decode(data[STATE_SECRET_KEYS.loginState]) === LOGIN_STATES.loggingIn ? decode(data[STATE_SECRET_KEYS.loginError]) : undefined;
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
    // Collection deletes and consistent lists act on what the API server holds, not on a watch
    // cache: an object created a moment ago must not be missed, or it would outlive its parent.
    // One request per kind (not a list and a delete per object): deletes of many Services at once
    // are bound by the client's QPS limit (ADR 0021).
    const children = { namespace: ns, labelSelector: selector };
    await this.kube.deleteCollection("apps/v1", "StatefulSet", children);
    const pods = await this.kube.list<V1Pod>("v1", "Pod", { namespace: ns, labelSelector: `app=${proxyName(parent)}`, consistent: true });
    if (pods.length > 0) return "pending";

    const secrets = await this.kube.list<V1Secret>("v1", "Secret", { namespace: ns, labelSelector: selector, consistent: true });
    for (const deviceId of new Set(secrets.flatMap(devicesOf))) {
      await this.controlPlane.deleteDevice(deviceId);
      log.info({ deviceId }, "device deleted from the tailnet");
    }
    await this.deleteDevicesJoinedWith(secrets.flatMap(keyIdOf), log);
    for (const secret of secrets) {
      // Used or not: the key's purpose ends with the proxy.
      const keyId = secret.metadata?.annotations?.[ANNOTATIONS.authKeyId];
      if (keyId) {
        await this.controlPlane.revokeAuthKey(keyId);
        log.info({ keyId }, "auth key revoked");
      }
    }
    // Nothing writes these Secrets any more (the pods are gone), so the collection is what was read.
    // The rest depend on nothing but the pods being gone: one round trip for all of them (each
    // kind has a rate limit of its own, ADR 0032). A failure fails the pass, which runs again.
    await Promise.all([["v1", "Secret"] as const, ...CLEANED_UP_LAST].map(([apiVersion, kind]) => this.kube.deleteCollection(apiVersion, kind, children)));
    return "done";
  }
}

/**
 * Every device a proxy's Secrets know: the one the proxy reported, the one the operator recorded,
 * and the one tailscaled's own login profile names (there even when the proxy died between
 * logging in and writing device_id).
 */
function devicesOf(secret: V1Secret): string[] {
  const data = secret.data ?? {};
  const ids = [decode(data[STATE_SECRET_KEYS.deviceId]), secret.metadata?.annotations?.[ANNOTATIONS.deviceId], ...profileNodeIds(decode(data[TAILSCALED_PROFILES]))];
  return ids.filter((id): id is string => Boolean(id));
}

function keyIdOf(config: V1Secret): string[] {
  const id = config.metadata?.annotations?.[ANNOTATIONS.authKeyId];
  return id ? [id] : [];
}

/** tailscaled's kube state store keeps its login profiles (with the node's stable id) under this key. */
const TAILSCALED_PROFILES = "_profiles";

function profileNodeIds(profiles: string | undefined): string[] {
  if (!profiles) return [];
  try {
    return Object.values(JSON.parse(profiles) as Record<string, { NodeID?: string }>).flatMap((p) => (p.NodeID ? [p.NodeID] : []));
  } catch {
    return [];
  }
}

/** The proxy's own report of why it is not forwarding: a refused login, or rules it could not program. */
function reportedProblem(state: V1Secret | undefined): string | undefined {
  const data = state?.data ?? {};
  const firewallError = decode(data[STATE_SECRET_KEYS.firewallError]);
  if (firewallError) return `the proxy is on the tailnet but could not program its forwarding rules (${decode(data[STATE_SECRET_KEYS.firewallMode]) ?? "no backend"}): ${firewallError}`;
  if (decode(data[STATE_SECRET_KEYS.loginState]) !== LOGIN_STATES.failed) return undefined;
  const words = decode(data[STATE_SECRET_KEYS.loginError]) ?? "no reason given";
  return `login failed: ${loginAdvice(classifyLoginError(words))}; the control plane said: ${words}`;
}

/**
 * The proxy reports that the control plane refused the key the config Secret holds now. A report
 * naming another key comes from a pod that still held the key replaced before (it is being
 * deleted): acting on it would replace the new key too. A report naming no key (a proxy from
 * before keys were named) is taken as it is.
 */
function refusedKey(state: V1Secret, config: V1Secret): boolean {
  const data = state.data ?? {};
  if (decode(data[STATE_SECRET_KEYS.loginState]) !== LOGIN_STATES.failed || classifyLoginError(decode(data[STATE_SECRET_KEYS.loginError]) ?? "") !== "key") return false;
  const reportedKey = decode(data[STATE_SECRET_KEYS.loginKey]);
  const currentKey = decode(config.data?.[AUTH_KEY_FIELD]);
  return reportedKey === undefined || currentKey === undefined || reportedKey === keyFingerprint(currentKey);
}

/** True when tailscaled's state holds a login (the proxy needs no key to come back). */
function isLoggedIn(state: V1Secret | undefined): boolean {
  const data = state?.data ?? {};
  return Boolean(data[STATE_SECRET_KEYS.deviceId]) || profileNodeIds(decode(data[TAILSCALED_PROFILES])).length > 0;
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
