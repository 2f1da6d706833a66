// HTTP to the ACME CA: which CA certificates to trust for its HTTPS, how long to wait, and how to
// turn a failure into a sentence a user can act on. acme-client sends its requests through one
// shared axios instance; the settings here are applied to it once per process.
import { Agent, request } from "node:https";
import { rootCertificates } from "node:tls";
import acme from "acme-client";

const REQUEST_TIMEOUT_MS = 30_000;
// RFC 8555 section 6.1: clients must send a User-Agent (Pebble refuses requests without one).
const USER_AGENT = "tailnet-proxy (acme-client)";
/** Trust per CA origin (scheme://host:port): the public roots plus the configured bundle. */
const agents = new Map<string, Agent>();
let configured = false;

interface AcmeAxiosSettings {
  retryMaxAttempts: number;
  retryDefaultDelay: number;
}

function configureAcmeClient(): void {
  if (configured) return;
  configured = true;
  const defaults = acme.axios.defaults as typeof acme.axios.defaults & { acmeSettings: AcmeAxiosSettings };
  defaults.timeout = REQUEST_TIMEOUT_MS;
  // acme-client retries connection errors and 5xx itself (5 times, up to 25 s apart); the source
  // has its own backoff, so a couple of quick retries are enough and a dead CA is reported fast.
  defaults.acmeSettings.retryMaxAttempts = 2;
  defaults.acmeSettings.retryDefaultDelay = 1;
  acme.axios.interceptors.request.use((config) => {
    const agent = config.url === undefined ? undefined : agents.get(originOf(config.url));
    if (agent) config.httpsAgent = agent;
    return config;
  });
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "";
  }
}

/** Trusts caBundlePem (besides the public roots) for the CA serving directoryUrl. */
export function trustCa(directoryUrl: string, caBundlePem: string | undefined): void {
  configureAcmeClient();
  const origin = originOf(directoryUrl);
  if (caBundlePem === undefined) agents.delete(origin);
  else agents.set(origin, new Agent({ ca: [...rootCertificates, caBundlePem], keepAlive: true }));
}

export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
  readonly retryAfterSeconds: number | undefined;
}

/** A plain GET (the directory, ARI renewalInfo), with the same trust as acme-client's requests. */
export function getJson(url: string): Promise<JsonResponse> {
  const agent = agents.get(originOf(url));
  return new Promise((resolve, reject) => {
    const headers = { "user-agent": USER_AGENT, accept: "application/json" };
    const req = request(url, { method: "GET", headers, timeout: REQUEST_TIMEOUT_MS, ...(agent ? { agent } : {}) }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        const retryAfter = Number(res.headers["retry-after"]);
        resolve({ status: res.statusCode ?? 0, body, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error(`timed out after ${REQUEST_TIMEOUT_MS} ms`), { code: "ETIMEDOUT" })));
    req.on("error", reject);
    req.end();
  });
}

const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"]);
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Why talking to the CA failed at the transport level, in actionable words; undefined if not that. */
export function describeTransportError(error: unknown, directoryUrl: string): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return undefined;
  const detail = error instanceof Error ? error.message : code;
  if (UNREACHABLE.has(code)) {
    return (
      `cannot reach the ACME CA at ${directoryUrl} (${detail}): check the directory URL and that the proxy ` +
      "can reach it (DNS, egress rules, network policies, a proxy in between)"
    );
  }
  if (UNTRUSTED.has(code)) {
    return (
      `the HTTPS certificate of the ACME CA at ${directoryUrl} is not trusted (${detail}): set the ACME CA ` +
      "bundle to the certificate(s) of the CA that signs the ACME server's certificate"
    );
  }
  return undefined;
}
