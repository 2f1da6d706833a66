// The proxy's login as it reports it in the state Secret, and how the operator reads it: the
// values of STATE_SECRET_KEYS.loginState, and the advice a user needs for a known refusal.
import { createHash } from "node:crypto";

export const LOGIN_STATES = { loggingIn: "LoggingIn", running: "Running", failed: "Failed" } as const;

/** Names an auth key without revealing it: the first 16 hex digits of its SHA-256. */
export function keyFingerprint(key: string): string {
  return createHash("sha256").update(key.trim()).digest("hex").slice(0, 16);
}

export type LoginState = (typeof LOGIN_STATES)[keyof typeof LOGIN_STATES];

/** A refusal the user (or the operator) can act on, recognised from the control plane's words. */
export type RefusalKind = "tags" | "key" | "unreachable" | "interrupted" | "other";

export function classifyLoginError(message: string): RefusalKind {
  if (/tag/i.test(message) && /(invalid|not permitted|not allowed|permission|owner|unauthori[sz]ed)/i.test(message)) return "tags";
  if (/(expired|revoked|invalid key|key.*(not found|invalid|already used|used)|authkey|auth key|pre-?auth)/i.test(message)) return "key";
  // tailscaled itself stopped (killed, its pod deleted) while `tailscale up` waited on it.
  if (/(local tailscaled|local Tailscale daemon|doesn't appear to be running|tailscaled.*(not running|exited))/i.test(message)) return "interrupted";
  // The connection dropped mid-login: the control plane restarting, or a proxy in between.
  if (/(timeout|timed out|deadline|unreachable|connection refused|connection reset|unexpected EOF|\bEOF\b|broken pipe|no route|not connected to control|could not connect|dial)/i.test(message)) return "unreachable";
  return "other";
}

/** What to tell the user, besides the control plane's own words. */
export function loginAdvice(kind: RefusalKind): string {
  switch (kind) {
    case "tags":
      return "the control plane's policy does not let the operator assign these tags: make the operator's tag an owner of each (tagOwners), or change tailscale.com/tags";
    case "key":
      return "the proxy's auth key is expired, revoked or used up: the operator mints a new one";
    case "unreachable":
      return "the proxy cannot reach the control plane (or lost the connection mid-login): check its URL and the pod's network path to it; the proxy retries";
    case "interrupted":
      return "tailscaled stopped while the proxy logged in; the proxy restarts and tries again";
    case "other":
      return "the control plane refused the proxy's login";
  }
}
