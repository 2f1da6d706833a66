// The API server proxy's upstream: the cluster's API server, reached the way in-cluster clients
// reach it (KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's CA and token). In auth mode every
// credential the caller sent is removed and the request carries the proxy's token plus
// Impersonate-User/-Group for the caller's tailnet identity; in noauth mode the caller's own
// credentials pass and the proxy adds nothing.
import { readFileSync } from "node:fs";
import { forwardedHeaders, type Decision, type IncomingCall, type UpstreamPolicy } from "../l7/upstream.ts";
import type { WhoIs } from "../l7/local-api.ts";
import { upstreamPool, type UpstreamPool } from "../l7/upstream-pool.ts";
import { impersonationFor, isCallerCredential } from "./impersonation.ts";

export type ApiServerProxyMode = "auth" | "noauth";

export interface InClusterApiServer {
  readonly origin: URL;
  readonly ca: string;
  /** The ServiceAccount token, read again when the kubelet rotates it. */
  readonly token: () => string;
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const TOKEN_REREAD_MS = 60_000;

/** The API server as the kubelet describes it to every pod. */
export function inClusterApiServer(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): InClusterApiServer {
  const host = env["KUBERNETES_SERVICE_HOST"];
  const port = env["KUBERNETES_SERVICE_PORT"];
  if (!host || !port) throw new Error("KUBERNETES_SERVICE_HOST/PORT are not set: the API server proxy runs in a pod");
  let token = { value: "", readAt: -Infinity };
  return {
    origin: new URL(`https://${host.includes(":") ? `[${host}]` : host}:${port}`),
    ca: readFileSync(`${dir}/ca.crt`, "utf8"),
    token: () => {
      const now = Date.now();
      if (now - token.readAt > TOKEN_REREAD_MS) token = { value: readFileSync(`${dir}/token`, "utf8").trim(), readAt: now };
      return token.value;
    },
  };
}

export class ApiServerUpstream implements UpstreamPolicy {
  private readonly mode: ApiServerProxyMode;
  private readonly apiServer: InClusterApiServer;
  private readonly whois: (address: string, port: number) => Promise<WhoIs | undefined>;
  private readonly pool: UpstreamPool;

  constructor(mode: ApiServerProxyMode, apiServer: InClusterApiServer, whois: (address: string, port: number) => Promise<WhoIs | undefined>) {
    this.mode = mode;
    this.apiServer = apiServer;
    this.whois = whois;
    this.pool = upstreamPool({ ca: apiServer.ca, rejectUnauthorized: true });
  }

  async decide(call: IncomingCall): Promise<Decision> {
    const base = { origin: this.apiServer.origin, path: call.path, pool: this.pool, tls: { ca: this.apiServer.ca, rejectUnauthorized: true } };
    if (this.mode === "noauth") return { upstream: { ...base, headers: forwardedHeaders(call, () => false, {}) } };
    const identity = impersonationFor(await this.whois(call.remoteAddress, call.remotePort));
    if ("refused" in identity) return { refuse: { status: 401, message: `tailnet identity required: ${identity.refused}` } };
    const add: Record<string, string | string[]> = {
      authorization: `Bearer ${this.apiServer.token()}`,
      "impersonate-user": identity.user,
      ...(identity.groups.length > 0 ? { "impersonate-group": [...identity.groups] } : {}),
    };
    return { upstream: { ...base, headers: forwardedHeaders(call, isCallerCredential, add) } };
  }
}
