// Publishes the device to the state Secret under the Tailscale operator's keys, patching only
// those keys: tailscaled's own state lives in the same Secret.
// Two REST calls (GET and a JSON merge PATCH of one Secret) with the pod's ServiceAccount token
// over one keep-alive connection: @kubernetes/client-node would cost ~80 MiB RSS in every proxy
// pod for them (docs/adr/0013).
import { readFileSync } from "node:fs";
import type { Agent, RequestOptions } from "node:https";

export interface StateSecretWriter {
  write(values: Readonly<Record<string, string | null>>): Promise<void>;
}

export interface StateSecretReader {
  /** The Secret's data, decoded; an empty record when the Secret has none. */
  read(): Promise<Record<string, string>>;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const TIMEOUT_MS = 15_000;

/** Where the API server is and how to trust it: the pod's in-cluster environment. */
export interface InClusterAccess {
  readonly host: string;
  readonly port: number;
  readonly namespace: string;
  readonly ca: string;
  /** Read for every request: the kubelet rotates projected tokens. */
  readonly token: () => string;
}

export function inClusterAccess(env: NodeJS.ProcessEnv = process.env, dir = SA_DIR): InClusterAccess {
  const host = env["KUBERNETES_SERVICE_HOST"];
  const port = env["KUBERNETES_SERVICE_PORT"];
  if (!host || !port) throw new Error("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset");
  return {
    host,
    port: Number(port),
    namespace: readFileSync(`${dir}/namespace`, "utf8").trim(),
    ca: readFileSync(`${dir}/ca.crt`, "utf8"),
    token: () => readFileSync(`${dir}/token`, "utf8").trim(),
  };
}

/** An API error with the server's status and message (a Status object's `message`). */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  readonly status: number;
  constructor(method: string, path: string, status: number, body: string) {
    let message = body.slice(0, 300);
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? message;
    } catch {
      // Not a Status object: the raw text.
    }
    super(`${method} ${path}: HTTP ${status}: ${message}`);
    this.status = status;
  }
}

/** Reads and writes one Secret through the in-cluster API with the pod's own token. */
export class KubeStateSecret implements StateSecretWriter, StateSecretReader {
  private readonly access: InClusterAccess;
  private readonly path: string;
  private agent: Agent | undefined;

  constructor(name: string, access: InClusterAccess = inClusterAccess()) {
    this.access = access;
    this.path = `/api/v1/namespaces/${encodeURIComponent(access.namespace)}/secrets/${encodeURIComponent(name)}`;
  }

  async write(values: Readonly<Record<string, string | null>>): Promise<void> {
    // JSON merge patch: null deletes a key, other keys are left as they are.
    const data = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === null ? null : Buffer.from(v).toString("base64")]));
    await this.request("PATCH", JSON.stringify({ data }), "application/merge-patch+json");
  }

  async read(): Promise<Record<string, string>> {
    const secret = JSON.parse(await this.request("GET")) as { data?: Record<string, string> };
    return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
  }

  /** Closes the kept-alive connection (at shutdown). */
  close(): void {
    this.agent?.destroy();
  }

  private request(method: string, body?: string, contentType?: string): Promise<string> {
    // node:https (TLS) is loaded on first use; process.getBuiltinModule skips the ESM facade,
    // which would materialize tls.rootCertificates and friends for nothing.
    const https = process.getBuiltinModule("node:https");
    this.agent ??= new https.Agent({ keepAlive: true, maxSockets: 1, ca: this.access.ca });
    const options: RequestOptions = {
      method,
      host: this.access.host,
      port: this.access.port,
      path: this.path,
      agent: this.agent,
      timeout: TIMEOUT_MS,
      headers: {
        authorization: `Bearer ${this.access.token()}`,
        accept: "application/json",
        ...(body === undefined ? {} : { "content-type": contentType ?? "application/json", "content-length": Buffer.byteLength(body) }),
      },
    };
    return new Promise((resolve, reject) => {
      const req = https.request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(text);
          else reject(new KubeApiError(method, this.path, status, text));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${this.path}: no answer within ${TIMEOUT_MS} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }
}
