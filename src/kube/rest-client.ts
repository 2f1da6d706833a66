// The operator's transport to the Kubernetes API: JSON over node:https on one keep-alive agent,
// every request (watches too) behind the client-side rate limit. @kubernetes/client-node cost
// ~80 MiB RSS just to load, and a third of the operator's CPU went to its fetch stack and object
// serializer (docs/adr/0027); the operator needs a dozen REST verbs, not generated clients.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from "node:http";
import { KubeApiError } from "./kube-client.ts";
import { readBody, readJsonLines } from "../shared/http-body.ts";
import type { KubeAccess } from "./kube-access.ts";
import { noLimits, type RateLimiters } from "./rate-limiter.ts";

/** No answer (headers or body bytes) for this long fails a request. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Requests in flight at once; watches hold one connection each for their lifetime. */
const MAX_SOCKETS = 64;

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export interface RequestSpec {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  readonly path: string;
  readonly query?: Query;
  readonly body?: unknown;
  /** Content type of the body (JSON encoded whatever it is: JSON is YAML for apply patches). */
  readonly contentType?: string;
  /** What the error message names ("get Service a/b"); the method and path otherwise. */
  readonly what?: string;
  /** The Accept header; JSON by default. */
  readonly accept?: string;
}

/**
 * A list as metadata only (what client-go's metadata client asks for), plain JSON from a server
 * that cannot: for an answer only counted, most of whose bytes would be the objects' specs.
 */
export const METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json";

export interface ResourceInfo {
  /** The URL segment: "services", "ingresses". */
  readonly plural: string;
  readonly namespaced: boolean;
}

export interface WatchEvent {
  readonly type: string;
  readonly object: unknown;
}

/** A request on a closed client: the term (or process) it served is over. */
export class ClosedError extends Error {
  override readonly name = "ClosedError";
  constructor(what: string) {
    super(`${what}: the client is closed`);
  }
}

/**
 * The API resource a request path addresses, as "resource.group" ("secrets",
 * "statefulsets.apps"); subresources count as their resource (a status write is a Service
 * write). Discovery paths, which name no resource, are "".
 */
export function apiResourceOf(path: string): string {
  const parts = path.split("?", 1)[0]?.split("/").filter(Boolean) ?? [];
  const [root, ...rest] = parts;
  if (root !== "api" && root !== "apis") return "";
  const group = root === "apis" ? (rest.shift() ?? "") : "";
  rest.shift(); // the version
  // namespaces/<ns>/<resource>/... names a namespaced resource; namespaces[/<ns>] the namespaces.
  const resource = rest[0] === "namespaces" && rest.length >= 3 ? rest[2] : rest[0];
  if (!resource) return "";
  return group ? `${resource}.${group}` : resource;
}

export class RestClient {
  private readonly access: KubeAccess;
  private readonly limiters: RateLimiters;
  private readonly base: URL;
  private agent: Agent | undefined;
  private readonly inFlight = new Set<ClientRequest>();
  private closed = false;
  private readonly discovery = new Map<string, Promise<ReadonlyMap<string, ResourceInfo>>>();

  constructor(access: KubeAccess, limiters: RateLimiters = noLimits) {
    this.access = access;
    this.limiters = limiters;
    this.base = new URL(access.server);
  }

  /** Sends one request; the decoded JSON answer, or KubeApiError for any non-2xx status. */
  async request<T = unknown>(spec: RequestSpec): Promise<T> {
    await this.limiters(apiResourceOf(spec.path)).wait();
    const res = await this.send(spec, REQUEST_TIMEOUT_MS);
    const text = await readBody(res);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw apiError(spec.what ?? `${spec.method} ${spec.path}`, status, text);
    return (text === "" ? {} : JSON.parse(text)) as T;
  }

  /**
   * Opens a watch and hands each event to onEvent until the server ends the stream (resolves) or
   * it fails (rejects; a non-2xx answer as KubeApiError). idleMs: no bytes for this long is a
   * dead connection (the server's own timeoutSeconds ends a healthy watch before that).
   */
  async watch(path: string, query: Query, onEvent: (event: WatchEvent) => void, options: { signal: AbortSignal; idleMs: number }): Promise<void> {
    await this.limiters(apiResourceOf(path)).wait(options.signal);
    const res = await this.send({ method: "GET", path, query }, options.idleMs, options.signal);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw apiError(`watch ${path}`, status, await readBody(res));
    await readJsonLines(res, `watch ${path}`, (event) => { onEvent(event as WatchEvent); });
  }

  /** Every item of a collection, LISTed in pages (limit/continue) so no answer is huge. */
  async listAll(path: string, query: Query = {}, pageSize = 500): Promise<{ items: KubernetesObject[]; resourceVersion: string }> {
    const items: KubernetesObject[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    do {
      const page = await this.request<{ items?: KubernetesObject[] | null; metadata?: { continue?: string; resourceVersion?: string } }>({
        method: "GET",
        path,
        query: { ...query, limit: pageSize, continue: continueToken },
        what: `list ${path}`,
      });
      for (const item of page.items ?? []) items.push(item);
      continueToken = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (continueToken);
    return { items, resourceVersion };
  }

  /** A kind's URL segment and scope, from the API server's discovery (asked once per apiVersion). */
  async resource(apiVersion: string, kind: string): Promise<ResourceInfo> {
    let known = this.discovery.get(apiVersion);
    if (!known) {
      known = this.request<{ resources?: { name: string; kind: string; namespaced: boolean }[] }>({ method: "GET", path: groupPath(apiVersion), what: `discover ${apiVersion}` }).then(
        (list) => new Map((list.resources ?? []).filter((r) => !r.name.includes("/")).map((r) => [r.kind, { plural: r.name, namespaced: r.namespaced }])),
      );
      this.discovery.set(apiVersion, known);
      // A failed discovery is asked again next time.
      known.catch(() => this.discovery.delete(apiVersion));
    }
    const info = (await known).get(kind);
    if (!info) throw new KubeApiError(`the API server serves no ${kind} in ${apiVersion}`, 404);
    return info;
  }

  /** The path of a collection (name undefined) or of one object. */
  async objectPath(ref: { apiVersion: string; kind: string; namespace?: string | undefined; name?: string | undefined }): Promise<string> {
    const info = await this.resource(ref.apiVersion, ref.kind);
    const namespace = info.namespaced && ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : "";
    return `${groupPath(ref.apiVersion)}${namespace}/${info.plural}${ref.name ? `/${encodeURIComponent(ref.name)}` : ""}`;
  }

  /**
   * Ends every connection, and with them every request in flight (each fails at once), and fails
   * every later request at once: at shutdown, and when a term as leader ends on a lost Lease, where
   * a request hung on a cut connection must neither hold the term open nor land after another
   * replica acts, and the term's work must not open new ones (ADR 0026).
   */
  close(): void {
    this.closed = true;
    for (const req of this.inFlight) req.destroy(new ClosedError(`${req.method} ${req.path}`));
    this.inFlight.clear();
    this.agent?.destroy();
    this.agent = undefined;
  }

  private send(spec: RequestSpec, timeoutMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    if (this.closed) return Promise.reject(new ClosedError(`${spec.method} ${spec.path}`));
    const tls = this.base.protocol === "https:";
    // Loaded on first use through getBuiltinModule: the ESM facade of node:http(s) would load
    // undici for its lazy WebSocket export (docs/adr/0013).
    const transport = process.getBuiltinModule(tls ? "node:https" : "node:http");
    this.agent ??= tls
      ? new (process.getBuiltinModule("node:https").Agent)({
          keepAlive: true,
          maxSockets: MAX_SOCKETS,
          ...(this.access.ca ? { ca: this.access.ca } : {}),
          ...(this.access.cert ? { cert: this.access.cert } : {}),
          ...(this.access.key ? { key: this.access.key } : {}),
          ...(this.access.tlsServerName ? { servername: this.access.tlsServerName } : {}),
          rejectUnauthorized: this.access.insecureSkipTlsVerify !== true,
        })
      : new (process.getBuiltinModule("node:http").Agent)({ keepAlive: true, maxSockets: MAX_SOCKETS });
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(spec.query ?? {})) if (value !== undefined) search.set(key, String(value));
    const query = search.size > 0 ? `?${search.toString()}` : "";
    const prefix = this.base.pathname.replace(/\/+$/, "");
    const options: RequestOptions = {
      method: spec.method,
      host: this.base.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: this.base.port || (tls ? 443 : 80),
      path: `${prefix}${spec.path}${query}`,
      agent: this.agent,
      timeout: timeoutMs,
      ...(signal ? { signal } : {}),
      headers: {
        accept: spec.accept ?? "application/json",
        "user-agent": "tailnet-operator",
        ...(this.access.authorization ? { authorization: this.access.authorization() } : {}),
        ...(body === undefined ? {} : { "content-type": spec.contentType ?? "application/json", "content-length": Buffer.byteLength(body) }),
      },
    };
    return new Promise((resolve, reject) => {
      const req = transport.request(options, resolve);
      this.inFlight.add(req);
      req.on("close", () => this.inFlight.delete(req));
      req.on("timeout", () => req.destroy(new Error(`${spec.method} ${spec.path}: no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }
}

function groupPath(apiVersion: string): string {
  return apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** KubeApiError with the Status object's message when the body is one. */
export function apiError(what: string, status: number, body: string): KubeApiError {
  let detail = "";
  try {
    detail = (JSON.parse(body) as { message?: string }).message ?? "";
  } catch {
    detail = body.slice(0, 200);
  }
  return new KubeApiError(`${what}: HTTP ${status}${detail ? `: ${detail}` : ""}`, status);
}
