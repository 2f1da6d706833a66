// The proxy's own access to the Kubernetes API: JSON over node:https with the pod's
// ServiceAccount token and CA, on one keep-alive agent per client. The proxy makes a handful of
// calls on its own Secrets (a GET, a merge PATCH, a watch by name); @kubernetes/client-node would
// cost ~80 MiB RSS in every proxy pod for them (docs/adr/0013).
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import type { Agent, RequestOptions } from "node:https";
import { readBody, readJsonLines } from "../shared/http-body.ts";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** No answer (headers or body bytes) for this long fails a request. */
const REQUEST_TIMEOUT_MS = 15_000;

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
  constructor(what: string, status: number, body: string) {
    let message = body.slice(0, 300);
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? message;
    } catch {
      // Not a Status object: the raw text.
    }
    super(`${what}: HTTP ${status}: ${message}`);
    this.status = status;
  }
}

/** A Secret's data (base64) as text. */
export function decodedData(data: Readonly<Record<string, string>> | null | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
}

/** The path of one Secret in the pod's namespace. */
export function secretPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`;
}

/** One line of a watch stream. */
export interface WatchEvent {
  readonly type: string;
  readonly object: unknown;
}

export interface RequestSpec {
  readonly method: "GET" | "PATCH";
  /** Path and query, already encoded. */
  readonly path: string;
  readonly body?: string;
  readonly contentType?: string;
}

export class InClusterApi {
  readonly access: InClusterAccess;
  private agent: Agent | undefined;

  constructor(access: InClusterAccess = inClusterAccess()) {
    this.access = access;
  }

  /** Sends one request; the answer's text, or KubeApiError for any non-2xx status. */
  async request(spec: RequestSpec): Promise<string> {
    const res = await this.send(spec, REQUEST_TIMEOUT_MS);
    const text = await readBody(res);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw new KubeApiError(`${spec.method} ${spec.path}`, status, text);
    return text;
  }

  /**
   * Opens a watch (path with its query) and hands each newline-delimited event to onEvent until
   * the server ends the stream (resolves) or it fails (rejects: a non-2xx answer as KubeApiError,
   * a throw from onEvent, a broken or silent connection, the signal). idleMs: no bytes for this
   * long is a dead connection (the server's own timeoutSeconds ends a healthy watch before that).
   */
  async watch(path: string, onEvent: (event: WatchEvent) => void, options: { signal: AbortSignal; idleMs: number }): Promise<void> {
    const res = await this.send({ method: "GET", path }, options.idleMs, options.signal);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw new KubeApiError(`watch ${path}`, status, await readBody(res));
    await readJsonLines(res, `watch ${path}`, (event) => { onEvent(event as WatchEvent); });
  }

  /** Closes the kept-alive connection (at shutdown). */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private send(spec: RequestSpec, timeoutMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    // node:https (TLS) is loaded on first use; process.getBuiltinModule skips the ESM facade,
    // which would materialize tls.rootCertificates and friends for nothing.
    const https = process.getBuiltinModule("node:https");
    // One socket: the proxy's calls on a Secret are sequential (a watch holds it while it runs).
    this.agent ??= new https.Agent({ keepAlive: true, maxSockets: 1, ca: this.access.ca });
    const options: RequestOptions = {
      method: spec.method,
      host: this.access.host,
      port: this.access.port,
      path: spec.path,
      agent: this.agent,
      // The socket's idle timeout: it covers a streamed body too, so a dead watch is noticed.
      timeout: timeoutMs,
      ...(signal ? { signal } : {}),
      headers: {
        authorization: `Bearer ${this.access.token()}`,
        accept: "application/json",
        ...(spec.body === undefined ? {} : { "content-type": spec.contentType ?? "application/json", "content-length": Buffer.byteLength(spec.body) }),
      },
    };
    return new Promise((resolve, reject) => {
      const req = https.request(options, resolve);
      req.on("timeout", () => req.destroy(new Error(`${spec.method} ${spec.path}: nothing received for ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(spec.body);
    });
  }
}
