// etcd + kube-apiserver for the sandbox, configured for real nodes: Node and RBAC authorization,
// NodeRestriction, client certificates from the sandbox CA (kubelets, kube-proxy, controllers),
// a client certificate of its own for the kubelets' API (logs, exec), service-account signing,
// and bearer tokens for tests. It serves on the hub bridge address, which pods reach through
// the kubernetes Service.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { stringify } from "yaml";
import type { CommandRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { createApiserverPki, issueClientCert, type ApiserverPki } from "./pki.ts";
import { startAndAwait } from "./started-process.ts";
import { httpGet } from "./https-probe.ts";

export interface KubeControlPlaneOptions {
  readonly runner: CommandRunner;
  readonly dir: string;
  readonly etcdBinary: string;
  readonly apiserverBinary: string;
  /** Address on the hub bridge that pods use to reach the API server. */
  readonly advertiseAddress: string;
  readonly serviceClusterIpRange: string;
  /** An audit policy (audit.k8s.io/v1 Policy): its events go to <dir>/audit.log as JSON lines. */
  readonly auditPolicy?: Readonly<Record<string, unknown>>;
}

/** Facts a client needs to talk to the sandbox API server; written to the run dir as JSON. */
export interface KubeAccess {
  readonly server: string;
  readonly caFile: string;
  readonly adminToken: string;
  /** A valid identity with no RBAC bindings at all. */
  readonly unprivilegedToken: string;
  readonly adminKubeconfig: string;
  /** The audit log, when the API server was started with an audit policy. */
  readonly auditLog?: string;
}

export const APISERVER_PORT = 6443;

export class KubeControlPlane {
  readonly access: KubeAccess;
  /** The CA (with its key) and the service-account keys, for the controllers and nodes. */
  readonly pki: ApiserverPki;
  private readonly processes: ManagedProcess[];
  private readonly startApiserver: () => Promise<ManagedProcess>;

  private constructor(access: KubeAccess, pki: ApiserverPki, processes: ManagedProcess[], startApiserver: () => Promise<ManagedProcess>) {
    this.access = access;
    this.pki = pki;
    this.processes = processes;
    this.startApiserver = startApiserver;
  }

  /** Stops and starts kube-apiserver (etcd keeps the data), as an upgrade or a crash would. */
  async restartApiserver(): Promise<void> {
    const old = this.processes.pop();
    await old?.stop(10_000);
    this.processes.push(await this.startApiserver());
  }

  static async start(options: KubeControlPlaneOptions): Promise<KubeControlPlane> {
    const dir = options.dir;
    await mkdir(join(dir, "pki"), { recursive: true });
    const pki = await createApiserverPki(options.runner, join(dir, "pki"), {
      ips: ["127.0.0.1", options.advertiseAddress, firstServiceIp(options.serviceClusterIpRange)],
      dns: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
    });
    // What the API server presents to kubelets (logs, exec, port-forward); system:masters may.
    const kubeletClient = await issueClientCert(options.runner, pki, join(dir, "pki"), "apiserver-kubelet-client", {
      commonName: "kube-apiserver-kubelet-client",
      organizations: ["system:masters"],
    });
    const adminToken = randomBytes(24).toString("hex");
    const unprivilegedToken = randomBytes(24).toString("hex");
    await writeFile(
      join(dir, "tokens.csv"),
      `${adminToken},sandbox-admin,uid-admin,"system:masters"\n${unprivilegedToken},sandbox-nobody,uid-nobody\n`,
      { mode: 0o600 },
    );

    const auditLog = join(dir, "audit.log");
    const auditFlags: string[] = [];
    if (options.auditPolicy) {
      await writeFile(join(dir, "audit-policy.yaml"), stringify(options.auditPolicy));
      // No rotation: readers count lines over time windows of one file.
      auditFlags.push(`--audit-policy-file=${join(dir, "audit-policy.yaml")}`, `--audit-log-path=${auditLog}`, "--audit-log-format=json", "--audit-log-maxsize=0");
    }
    const processes: ManagedProcess[] = [];
    try {
      processes.push(
        await startAndAwait(
          {
            name: "etcd",
            logFile: join(dir, "etcd.log"),
            argv: [
              options.etcdBinary,
              `--data-dir=${join(dir, "etcd")}`,
              "--listen-client-urls=http://127.0.0.1:2379",
              "--advertise-client-urls=http://127.0.0.1:2379",
              "--listen-peer-urls=http://127.0.0.1:2380",
              "--unsafe-no-fsync=true",
              "--log-level=warn",
            ],
          },
          async () => (await httpGet("http://127.0.0.1:2379/health")).status === 200,
          30_000,
        ),
      );
      const server = `https://${options.advertiseAddress}:${APISERVER_PORT}`;
      const ca = await readFile(pki.caCert, "utf8");
      const startApiserver = (): Promise<ManagedProcess> =>
        startAndAwait(
          {
            name: "kube-apiserver",
            logFile: join(dir, "kube-apiserver.log"),
            argv: [
              options.apiserverBinary,
              "--etcd-servers=http://127.0.0.1:2379",
              "--bind-address=0.0.0.0",
              `--secure-port=${APISERVER_PORT}`,
              `--advertise-address=${options.advertiseAddress}`,
              `--tls-cert-file=${pki.servingCert}`,
              `--tls-private-key-file=${pki.servingKey}`,
              `--token-auth-file=${join(dir, "tokens.csv")}`,
              // Kubelets, kube-proxy and the controllers authenticate with client certificates.
              `--client-ca-file=${pki.caCert}`,
              "--authorization-mode=Node,RBAC",
              "--enable-admission-plugins=NodeRestriction",
              `--kubelet-client-certificate=${kubeletClient.cert}`,
              `--kubelet-client-key=${kubeletClient.key}`,
              // Nodes have no resolvable hostnames in the sandbox.
              "--kubelet-preferred-address-types=InternalIP",
              "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
              `--service-account-key-file=${pki.serviceAccountPub}`,
              `--service-account-signing-key-file=${pki.serviceAccountKey}`,
              `--service-cluster-ip-range=${options.serviceClusterIpRange}`,
              "--allow-privileged=true",
              "--enable-priority-and-fairness=false",
              "-v=1",
              ...auditFlags,
            ],
          },
          async () => (await httpGet(`${server}/readyz`, { ca, token: adminToken })).status === 200,
          90_000,
        );
      processes.push(await startApiserver());
      const adminKubeconfig = join(dir, "admin.kubeconfig");
      await writeFile(adminKubeconfig, kubeconfig(server, pki.caCert, adminToken), { mode: 0o600 });
      const access: KubeAccess = { server, caFile: pki.caCert, adminToken, unprivilegedToken, adminKubeconfig, ...(options.auditPolicy ? { auditLog } : {}) };
      return new KubeControlPlane(access, pki, processes, startApiserver);
    } catch (error) {
      for (const proc of processes.reverse()) await proc.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    for (const proc of [...this.processes].reverse()) await proc.stop(10_000);
  }
}

/** A kubeconfig for a bearer token; the same shape kubectl writes. */
export function kubeconfig(server: string, caFile: string, token: string, namespace = "default"): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "sandbox", cluster: { server, "certificate-authority": caFile } }],
    users: [{ name: "sandbox-user", user: { token } }],
    contexts: [{ name: "sandbox", context: { cluster: "sandbox", user: "sandbox-user", namespace } }],
    "current-context": "sandbox",
  });
}

/** A kubeconfig for a client certificate (kubelet, kube-proxy, controller-manager, scheduler). */
export function certKubeconfig(server: string, caFile: string, cert: { cert: string; key: string }): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "sandbox", cluster: { server, "certificate-authority": caFile } }],
    users: [{ name: "sandbox-user", user: { "client-certificate": cert.cert, "client-key": cert.key } }],
    contexts: [{ name: "sandbox", context: { cluster: "sandbox", user: "sandbox-user" } }],
    "current-context": "sandbox",
  });
}

function firstServiceIp(ranges: string): string {
  const [base] = (ranges.split(",")[0] ?? "").split("/");
  const octets = (base ?? "").split(".").map(Number);
  octets[3] = (octets[3] ?? 0) + 1;
  return octets.join(".");
}
