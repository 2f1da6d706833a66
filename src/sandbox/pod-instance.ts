// One pod of a StatefulSet, run the way a kubelet would: a Pod object with a pod IP, a fresh
// network namespace, a private mount namespace with the volumes and the service-account token
// at their mount paths, the resolved environment, the container's capability set, and
// restarts with backoff when the container exits.
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { CoreV1Api, V1Container, V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import type { CommandRunner } from "../shared/exec.ts";
import { ManagedProcess } from "../shared/process.ts";
import { systemClock } from "../shared/clock.ts";
import type { SandboxHost, SandboxNetwork } from "./network.ts";
import { containerArgv, containerCapabilities, resolveEnv, type ImageMap, type PodDataSource } from "./pod-spec.ts";
import { SERVICE_ACCOUNT_DIR, writeServiceAccountDir, writeVolumes } from "./pod-volumes.ts";

export interface PodEnvironment {
  readonly runner: CommandRunner;
  readonly network: SandboxNetwork;
  readonly core: CoreV1Api;
  readonly images: ImageMap;
  readonly dir: string;
  readonly apiserverHost: string;
  readonly apiserverPort: number;
  readonly caFile: string;
  /** File listing mount-point directories the runner had to create on the host. */
  readonly createdDirsFile: string;
  /** Makes the pod's network namespace look like a given kind of node before containers start. */
  readonly prepareHost?: (pod: V1Pod, host: SandboxHost) => Promise<void>;
}

const NODE_NAME = "sandbox-node";
const MAX_RESTART_DELAY_MS = 10_000;
const MAX_GRACE_MS = 10_000;

export class PodInstance {
  readonly pod: V1Pod;
  readonly templateHash: string;
  private readonly env: PodEnvironment;
  private readonly host: SandboxHost;
  private readonly dir: string;
  private readonly running = new Map<string, ManagedProcess>();
  private readonly supervisors: Promise<void>[] = [];
  private readonly stopping = new AbortController();
  private restarts = 0;

  private constructor(env: PodEnvironment, pod: V1Pod, host: SandboxHost, dir: string, templateHash: string) {
    this.env = env;
    this.pod = pod;
    this.host = host;
    this.dir = dir;
    this.templateHash = templateHash;
  }

  static async start(env: PodEnvironment, sts: V1StatefulSet, ordinal: number, templateHash: string): Promise<PodInstance> {
    const pod = await createPodObject(env.core, sts, ordinal);
    const host = await env.network.addHost("pod");
    // Short directory names: a pod's TMPDIR holds unix sockets, whose paths are limited to 107 bytes.
    const instance = new PodInstance(env, pod, host, join(env.dir, (pod.metadata?.uid ?? "").slice(0, 8)), templateHash);
    try {
      await instance.prepareAndRun();
      return instance;
    } catch (error) {
      await instance.stop();
      throw error;
    }
  }

  get name(): string {
    return `${this.pod.metadata?.namespace ?? ""}/${this.pod.metadata?.name ?? ""}`;
  }

  /** PID of a container's main process while it runs. */
  containerPid(container: string): number | undefined {
    const proc = this.running.get(container);
    return proc?.running ? proc.pid : undefined;
  }

  /** Where a container's output goes (the runner's stand-in for `kubectl logs`). */
  logFile(container: string): string {
    return join(this.dir, `${container}.log`);
  }

  get uid(): string {
    return this.pod.metadata?.uid ?? "";
  }

  get networkNamespace(): string {
    return this.host.namespace.name;
  }

  get address(): string {
    return this.host.address;
  }

  private data(): PodDataSource {
    const namespace = this.pod.metadata?.namespace ?? "default";
    const core = this.env.core;
    const decode = (values: Record<string, string> | undefined): Record<string, string> | undefined =>
      values && Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
    return {
      secret: async (name) => decode((await core.readNamespacedSecret({ name, namespace }).catch(() => undefined))?.data ?? undefined),
      configMap: async (name) => (await core.readNamespacedConfigMap({ name, namespace }).catch(() => undefined))?.data ?? undefined,
    };
  }

  /** Re-reads Secret and ConfigMap volumes, as the kubelet refreshes them. */
  async refreshVolumes(): Promise<void> {
    await writeVolumes(this.pod, join(this.dir, "volumes"), this.data()).catch(() => undefined);
  }

  private async prepareAndRun(): Promise<void> {
    const spec = this.pod.spec ?? { containers: [] };
    await mkdir(this.dir, { recursive: true });
    await this.env.prepareHost?.(this.pod, this.host);
    // Pod sysctls are namespaced (net.*), so they apply to the pod's namespace only.
    for (const sysctl of spec.securityContext?.sysctls ?? []) {
      await this.env.runner.run(this.host.namespace.exec(["sysctl", "-qw", `${sysctl.name}=${sysctl.value}`]));
    }
    const volumes = await writeVolumes(this.pod, join(this.dir, "volumes"), this.data());
    if (spec.automountServiceAccountToken !== false) {
      const token = await this.mintToken();
      await writeServiceAccountDir(join(this.dir, "serviceaccount"), token, await readFile(this.env.caFile, "utf8"), this.pod.metadata?.namespace ?? "default");
      volumes.set("__serviceaccount", join(this.dir, "serviceaccount"));
    }
    // Everything is resolved before any process starts: a bad spec fails the pod as a whole.
    const plans = await Promise.all([...(spec.initContainers ?? []), ...spec.containers].map((c) => this.plan(c, volumes)));
    const initCount = spec.initContainers?.length ?? 0;
    for (const plan of plans.slice(0, initCount)) {
      const status = await this.launch(plan).exited;
      if (status.code !== 0) throw new Error(`pod ${this.name}: init container ${plan.name} exited with ${status.code ?? status.signal ?? "?"}`);
    }
    await this.reportRunning();
    for (const plan of plans.slice(initCount)) this.supervisors.push(this.supervise(plan));
  }

  private async mintToken(): Promise<string> {
    const namespace = this.pod.metadata?.namespace ?? "default";
    const serviceAccount = this.pod.spec?.serviceAccountName ?? "default";
    const response = await this.env.core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: {
        spec: {
          audiences: [],
          expirationSeconds: 3600,
          boundObjectRef: { kind: "Pod", apiVersion: "v1", name: this.pod.metadata?.name ?? "", uid: this.pod.metadata?.uid ?? "" },
        },
      },
    });
    return response.status?.token ?? "";
  }

  private async plan(container: V1Container, volumes: Map<string, string>): Promise<ContainerPlan> {
    const argv = containerArgv(container, this.env.images);
    const env = await resolveEnv(container, this.pod, this.host.address, this.data());
    const mounts: { source: string; target: string; readOnly: boolean }[] = [];
    for (const mount of container.volumeMounts ?? []) {
      const source = volumes.get(mount.name);
      if (!source) throw new Error(`container ${container.name}: volumeMount ${mount.name} has no volume`);
      mounts.push({ source: mount.subPath ? join(source, mount.subPath) : source, target: mount.mountPath, readOnly: mount.readOnly ?? false });
    }
    const saDir = volumes.get("__serviceaccount");
    if (saDir) mounts.push({ source: saDir, target: SERVICE_ACCOUNT_DIR, readOnly: true });
    for (const mount of mounts) await this.ensureMountPoint(mount.target);
    const script = join(this.dir, `${container.name}.sh`);
    await writeFile(script, mountScript(mounts, containerCapabilities(container)), { mode: 0o755 });
    return {
      name: container.name,
      argv: this.host.namespace.exec(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", script, ...argv]),
      env: {
        PATH: [...(this.env.images(container.image ?? "")?.path ?? []), process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"].join(":"),
        HOSTNAME: this.pod.metadata?.name ?? "",
        // A container has a /tmp of its own; pods here share the host's, so each gets a TMPDIR.
        TMPDIR: await this.privateTmp(),
        KUBERNETES_SERVICE_HOST: this.env.apiserverHost,
        KUBERNETES_SERVICE_PORT: String(this.env.apiserverPort),
        KUBERNETES_SERVICE_PORT_HTTPS: String(this.env.apiserverPort),
        ...env,
      },
      cwd: container.workingDir,
    };
  }

  private async privateTmp(): Promise<string> {
    const dir = join(this.dir, "tmp");
    await mkdir(dir, { recursive: true, mode: 0o1777 });
    return dir;
  }

  /** Mount points must exist on the host; the ones created are recorded for the final sweep. */
  private async ensureMountPoint(path: string): Promise<void> {
    if (existsSync(path)) return;
    const topmostCreated = await mkdir(path, { recursive: true });
    if (topmostCreated) await appendFile(this.env.createdDirsFile, `${topmostCreated}\n`);
  }

  private launch(plan: ContainerPlan): ManagedProcess {
    const proc = ManagedProcess.start({
      name: `${this.name}/${plan.name}`,
      argv: plan.argv,
      env: plan.env,
      logFile: join(this.dir, `${plan.name}.log`),
      group: true,
      ...(plan.cwd ? { cwd: plan.cwd } : {}),
    });
    this.running.set(plan.name, proc);
    return proc;
  }

  private async supervise(plan: ContainerPlan): Promise<void> {
    let delay = 1_000;
    while (!this.isStopping()) {
      const started = systemClock.now();
      const proc = this.launch(plan);
      await proc.exited;
      // Like a container runtime: the container's leftovers die with its main process.
      proc.signal("SIGKILL");
      if (this.isStopping()) return;
      this.restarts++;
      await this.reportRunning().catch(() => undefined);
      // A container that ran for a while restarts quickly; a crash loop backs off.
      delay = systemClock.now() - started > 30_000 ? 1_000 : Math.min(delay * 2, MAX_RESTART_DELAY_MS);
      await systemClock.sleep(delay, this.stopping.signal).catch(() => undefined);
    }
  }

  private isStopping(): boolean {
    return this.stopping.signal.aborted;
  }

  private async reportRunning(): Promise<void> {
    const now = new Date();
    const current = await this.env.core.readNamespacedPod({ name: this.pod.metadata?.name ?? "", namespace: this.pod.metadata?.namespace ?? "" });
    current.status = {
      phase: "Running",
      podIP: this.host.address,
      podIPs: [{ ip: this.host.address }],
      hostIP: this.host.address,
      startTime: current.status?.startTime ?? now,
      conditions: ["Initialized", "ContainersReady", "Ready", "PodScheduled"].map((type) => ({ type, status: "True", lastTransitionTime: now })),
      containerStatuses: (this.pod.spec?.containers ?? []).map((c) => ({
        name: c.name,
        image: c.image ?? "",
        imageID: "",
        ready: true,
        restartCount: this.restarts,
        started: true,
        state: { running: { startedAt: now } },
      })),
    };
    await this.env.core.replaceNamespacedPodStatus({ name: current.metadata?.name ?? "", namespace: current.metadata?.namespace ?? "", body: current });
  }

  /** Stops the containers (SIGTERM, grace period, SIGKILL), removes the namespace and the Pod. */
  async stop(options: { deletePod?: boolean } = {}): Promise<void> {
    this.stopping.abort();
    const grace = Math.min((this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000, MAX_GRACE_MS);
    await Promise.all([...this.running.values()].map((proc) => proc.stop(grace)));
    await Promise.all(this.supervisors);
    await this.env.network.removeHost(this.host);
    if (options.deletePod ?? true) {
      await this.env.core
        .deleteNamespacedPod({ name: this.pod.metadata?.name ?? "", namespace: this.pod.metadata?.namespace ?? "", gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
  }
}

interface ContainerPlan {
  readonly name: string;
  readonly argv: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string | undefined;
}

/** The shell script run in the private mount namespace: bind mounts, then drop capabilities. */
function mountScript(mounts: readonly { source: string; target: string; readOnly: boolean }[], caps: readonly string[] | "all"): string {
  const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  const lines = ["#!/bin/sh", "set -e"];
  for (const mount of mounts) {
    lines.push(`mount --bind ${quote(mount.source)} ${quote(mount.target)}`);
    if (mount.readOnly) lines.push(`mount -o remount,bind,ro ${quote(mount.target)}`);
  }
  if (caps === "all") {
    lines.push('exec "$@"');
  } else {
    const set = ["-all", ...caps.map((cap) => `+${cap.toLowerCase()}`)].join(",");
    // For root, the bounding set caps what execve grants, so this is the container's cap set.
    lines.push(`exec setpriv --bounding-set ${set} --inh-caps -all -- "$@"`);
  }
  return `${lines.join("\n")}\n`;
}

async function createPodObject(core: CoreV1Api, sts: V1StatefulSet, ordinal: number): Promise<V1Pod> {
  const namespace = sts.metadata?.namespace ?? "default";
  const name = `${sts.metadata?.name ?? ""}-${ordinal}`;
  const template = sts.spec?.template;
  const body: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      labels: { ...template?.metadata?.labels, "statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": String(ordinal) },
      annotations: { ...template?.metadata?.annotations },
      ownerReferences: [
        { apiVersion: "apps/v1", kind: "StatefulSet", name: sts.metadata?.name ?? "", uid: sts.metadata?.uid ?? "", controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: { ...(template?.spec ?? { containers: [] }), nodeName: NODE_NAME, hostname: name },
  };
  // A Pod left by an earlier runner instance is replaced, as a StatefulSet controller would.
  await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
  return core.createNamespacedPod({ namespace, body });
}
