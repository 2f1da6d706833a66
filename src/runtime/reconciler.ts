// The contract between the runtime and a reconciler: level-based, keyed by namespace/name.
import type { Logger } from "../shared/log.ts";

export interface ReconcileResult {
  /** Look again after this long (waiting on the outside world, e.g. a proxy coming up). */
  readonly requeueAfterMs?: number;
}

export interface ReconcileContext {
  readonly log: Logger;
  readonly signal: AbortSignal;
}

/** Throwing retries with backoff; a TerminalError is logged and retried only when the object changes (or after a long delay). */
export type Reconcile = (key: string, context: ReconcileContext) => Promise<ReconcileResult>;

export class TerminalError extends Error {
  override readonly name = "TerminalError";
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { namespace: "", name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
