// Where the API server is and how to authenticate, found as kubectl and client-go find it: the
// KUBECONFIG file, else ~/.kube/config, else the pod's ServiceAccount (in-cluster). Supported
// credentials are the ones the operator meets: a bearer token (inline, a file, or the projected
// ServiceAccount token), a client certificate, basic auth. Exec and auth-provider plugins are
// not: their configuration fails at start-up with a message saying so.
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { load } from "js-yaml";

export interface KubeAccess {
  /** https://host:port (http:// only in tests). */
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecureSkipTlsVerify?: boolean;
  readonly tlsServerName?: string;
  /** The Authorization header value for each request, if any (a rotated token is re-read). */
  readonly authorization?: () => string;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** client-go re-reads the projected token once a minute; the kubelet renews it well before expiry. */
const TOKEN_REREAD_MS = 60_000;

interface Environment {
  readonly env: NodeJS.ProcessEnv;
  /** The ServiceAccount directory (a parameter for tests). */
  readonly serviceAccountDir?: string;
  readonly now?: () => number;
}

export function loadKubeAccess({ env, serviceAccountDir = SA_DIR, now = Date.now }: Environment): KubeAccess {
  const fromEnv = env["KUBECONFIG"]?.split(":").find((file) => file !== "" && existsSync(file));
  if (env["KUBECONFIG"] && fromEnv === undefined) throw new Error(`KUBECONFIG names no file that exists: ${env["KUBECONFIG"]}`);
  const home = env["HOME"] ? join(env["HOME"], ".kube", "config") : undefined;
  const file = fromEnv ?? (home !== undefined && existsSync(home) ? home : undefined);
  if (file !== undefined) return fromKubeconfig(file, now);
  if (env["KUBERNETES_SERVICE_HOST"]) return inCluster(env, serviceAccountDir, now);
  throw new Error("no Kubernetes API found: set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST)");
}

function inCluster(env: NodeJS.ProcessEnv, dir: string, now: () => number): KubeAccess {
  const host = env["KUBERNETES_SERVICE_HOST"] ?? "";
  const port = env["KUBERNETES_SERVICE_PORT"] ?? "443";
  const tokenFile = join(dir, "token");
  return {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, "ca.crt")),
    authorization: bearerFromFile(tokenFile, now),
  };
}

/** The token file, read again once TOKEN_REREAD_MS have passed (the kubelet rotates it in place). */
export function bearerFromFile(file: string, now: () => number): () => string {
  let token = "";
  let readAt = -Infinity;
  return () => {
    if (now() - readAt >= TOKEN_REREAD_MS) {
      token = readFileSync(file, "utf8").trim();
      readAt = now();
    }
    return `Bearer ${token}`;
  };
}

interface Named<T> {
  readonly name?: string;
  readonly cluster?: T;
  readonly user?: T;
  readonly context?: T;
}

type Fields = Record<string, unknown>;

function fromKubeconfig(file: string, now: () => number): KubeAccess {
  const config = (load(readFileSync(file, "utf8")) ?? {}) as {
    "current-context"?: string;
    contexts?: Named<Fields>[];
    clusters?: Named<Fields>[];
    users?: Named<Fields>[];
  };
  const where = `kubeconfig ${file}`;
  const contextName = config["current-context"];
  const context = config.contexts?.find((c) => c.name === contextName)?.context ?? (contextName === undefined ? config.contexts?.[0]?.context : undefined);
  if (!context) throw new Error(`${where}: no context ${contextName ?? "(no current-context)"}`);
  const cluster = config.clusters?.find((c) => c.name === context["cluster"])?.cluster;
  if (!cluster || typeof cluster["server"] !== "string") throw new Error(`${where}: cluster ${String(context["cluster"])} has no server`);
  const user = config.users?.find((u) => u.name === context["user"])?.user ?? {};
  for (const unsupported of ["exec", "auth-provider"]) {
    if (user[unsupported] !== undefined) throw new Error(`${where}: user ${String(context["user"])} uses ${unsupported}, which tailnet-operator does not support (use a token or a client certificate)`);
  }
  const base = dirname(file);
  // Relative paths in a kubeconfig are relative to the file, as kubectl reads them.
  const path = (value: unknown): string => (isAbsolute(String(value)) ? String(value) : join(base, String(value)));
  const material = (fields: Fields, dataKey: string, fileKey: string): Buffer | undefined => {
    const data = fields[dataKey];
    if (typeof data === "string" && data !== "") return Buffer.from(data, "base64");
    const named = fields[fileKey];
    if (typeof named === "string" && named !== "") return readFileSync(path(named));
    return undefined;
  };
  const ca = material(cluster, "certificate-authority-data", "certificate-authority");
  const cert = material(user, "client-certificate-data", "client-certificate");
  const key = material(user, "client-key-data", "client-key");
  const token = user["token"];
  const tokenFile = user["tokenFile"];
  const authorization =
    typeof token === "string" && token !== ""
      ? () => `Bearer ${token}`
      : typeof tokenFile === "string" && tokenFile !== ""
        ? bearerFromFile(path(tokenFile), now)
        : typeof user["username"] === "string"
          ? basic(user["username"], typeof user["password"] === "string" ? user["password"] : "")
          : undefined;
  const tlsServerName = cluster["tls-server-name"];
  return {
    server: cluster["server"].replace(/\/+$/, ""),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster["insecure-skip-tls-verify"] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(typeof tlsServerName === "string" && tlsServerName !== "" ? { tlsServerName } : {}),
    ...(authorization ? { authorization } : {}),
  };
}

function basic(username: string, password: string): () => string {
  const header = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  return () => header;
}
