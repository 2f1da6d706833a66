// kube-controller-manager and kube-scheduler in the hub, each with a client certificate whose
// CN is the user the default RBAC already binds (system:kube-controller-manager,
// system:kube-scheduler). The controller-manager creates the default ServiceAccounts and the
// kube-root-ca.crt ConfigMaps that pods need, EndpointSlices, and Deployment/StatefulSet pods.
import { mkdir, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import type { CommandRunner } from "../../shared/exec.ts";
import type { ManagedProcess } from "../../shared/process.ts";
import { startAndAwait } from "../started-process.ts";
import { issueClientCert, type ApiserverPki } from "../pki.ts";
import { certKubeconfig } from "../kube-control-plane.ts";
import { progress } from "./cluster.ts";

export interface KubeControllersOptions {
  readonly runner: CommandRunner;
  readonly dir: string;
  readonly server: string;
  readonly pki: ApiserverPki;
  readonly controllerManagerBinary: string;
  readonly schedulerBinary: string;
  readonly serviceClusterIpRange: string;
  readonly clusterCidr: string;
  /** kube-controller-manager's --controllers (default: all the defaults). */
  readonly controllers?: readonly string[];
}

const CONTROLLER_MANAGER_PORT = 10257;
const SCHEDULER_PORT = 10259;

export class KubeControllers {
  private readonly processes: ManagedProcess[];
  private stopping = false;

  private constructor(processes: ManagedProcess[], restart: readonly (() => Promise<ManagedProcess>)[]) {
    this.processes = processes;
    processes.forEach((proc, i) => {
      this.supervise(i, proc, restart[i]);
    });
  }

  /**
   * A controller that exits is started again, as the kubelet restarts a control plane's static
   * pods: kube-scheduler was seen to exit during API server restarts, leaving every new pod Pending.
   */
  /** A call, not a field read: it changes while a restart is awaited. */
  private isStopping(): boolean {
    return this.stopping;
  }

  private supervise(index: number, proc: ManagedProcess, restart: (() => Promise<ManagedProcess>) | undefined): void {
    if (!restart) return;
    void proc.exited.then(async (status) => {
      if (this.isStopping()) return;
      progress(`${proc.name} exited (code ${String(status.code)}, signal ${String(status.signal)}); starting it again`);
      for (;;) {
        try {
          const next = await restart();
          if (this.isStopping()) {
            await next.stop();
            return;
          }
          this.processes[index] = next;
          this.supervise(index, next, restart);
          return;
        } catch (error) {
          progress(`${proc.name} did not start again: ${(error as Error).message.split("\n")[0] ?? ""}`);
          if (this.isStopping()) return;
          await new Promise((resolve) => setTimeout(resolve, 2_000));
        }
      }
    });
  }

  static async start(options: KubeControllersOptions): Promise<KubeControllers> {
    await mkdir(options.dir, { recursive: true });
    const kubeconfigFor = async (name: string, user: string): Promise<string> => {
      const cert = await issueClientCert(options.runner, options.pki, options.dir, name, { commonName: user });
      const file = join(options.dir, `${name}.kubeconfig`);
      await writeFile(file, certKubeconfig(options.server, options.pki.caCert, cert), { mode: 0o600 });
      return file;
    };
    const [kcmConfig, schedulerConfig] = await Promise.all([
      kubeconfigFor("kube-controller-manager", "system:kube-controller-manager"),
      kubeconfigFor("kube-scheduler", "system:kube-scheduler"),
    ]);
    // Their own HTTPS endpoints delegate authentication to the API server; /healthz is always allowed.
    const serving = (kubeconfig: string, port: number): string[] => [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${String(port)}`,
      `--cert-dir=${options.dir}`,
      "--leader-elect=false",
      "-v=1",
    ];
    const processes: ManagedProcess[] = [];
    const controllerManager = (): Promise<ManagedProcess> =>
        startAndAwait(
          {
            name: "kube-controller-manager",
            logFile: join(options.dir, "kube-controller-manager.log"),
            argv: [
              options.controllerManagerBinary,
              ...serving(kcmConfig, CONTROLLER_MANAGER_PORT),
              // Each controller acts as its own ServiceAccount, as in a real cluster's RBAC.
              "--use-service-account-credentials",
              `--service-account-private-key-file=${options.pki.serviceAccountKey}`,
              `--root-ca-file=${options.pki.caCert}`,
              `--cluster-cidr=${options.clusterCidr}`,
              // Nodes get fixed pod ranges from the sandbox (CNI is configured before they register).
              "--allocate-node-cidrs=false",
              `--service-cluster-ip-range=${options.serviceClusterIpRange}`,
              `--cluster-signing-cert-file=${options.pki.caCert}`,
              `--cluster-signing-key-file=${options.pki.caKey}`,
              // Otherwise it creates /usr/libexec/kubernetes/kubelet-plugins on the host.
              `--flex-volume-plugin-dir=${join(options.dir, "volume-plugins")}`,
              ...(options.controllers ? [`--controllers=${options.controllers.join(",")}`] : []),
            ],
          },
          () => healthz(CONTROLLER_MANAGER_PORT),
          60_000,
        );
    const scheduler = (): Promise<ManagedProcess> =>
        startAndAwait(
          {
            name: "kube-scheduler",
            logFile: join(options.dir, "kube-scheduler.log"),
            argv: [options.schedulerBinary, ...serving(schedulerConfig, SCHEDULER_PORT)],
          },
          () => healthz(SCHEDULER_PORT),
          60_000,
        );
    try {
      const started = await Promise.all([
        controllerManager().then((proc) => (processes.push(proc), proc)),
        scheduler().then((proc) => (processes.push(proc), proc)),
      ]);
      return new KubeControllers(started, [controllerManager, scheduler]);
    } catch (error) {
      for (const proc of processes) await proc.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.processes.map((proc) => proc.stop(10_000)));
  }
}

/** GET https://127.0.0.1:<port>/healthz; their serving certificates are self-signed. */
function healthz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => {
      resolve(false);
    });
    req.end();
  });
}
