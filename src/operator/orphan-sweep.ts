// Revokes auth keys the operator minted but no Secret holds. Minting a key and writing it into its
// Secret are two calls to two systems: an operator killed between them leaves a usable, tagged key
// on the control plane that nothing names (until it expires, 24 h later). The sweep finds them by
// what the control plane lists and what the operator's Secrets name. Off unless ORPHAN_KEY_SWEEP
// is set: the control plane cannot say which keys are this operator's (ADR 0022).
import type { V1Secret } from "@kubernetes/client-node";
import type { AuthKeyRecord, ControlPlane } from "../control/control-plane.ts";
import type { KubeClient } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import { ANNOTATIONS, LABELS } from "./names.ts";

/** How often the leader sweeps while it acts. */
export const SWEEP_INTERVAL_MS = 10 * 60_000;
/**
 * A key younger than this is left alone by the periodic sweep: its Secret may be a moment from
 * being written, and the control plane's clock may differ from ours by a little.
 */
export const SWEEP_GRACE_MS = 5 * 60_000;

export interface OrphanSweepOptions {
  readonly controlPlane: ControlPlane;
  readonly kube: KubeClient;
  readonly namespace: string;
  /**
   * The tags the operator's configuration gives proxies (PROXY_TAGS, and APISERVER_PROXY_TAGS when
   * that proxy is on). Never tags from Service annotations: a user who can annotate a Service must
   * not widen what the operator revokes.
   */
  readonly tags: readonly string[];
  /** Where the control plane keeps descriptions (Tailscale), only keys with this one are looked at. */
  readonly description: string;
  readonly log: Logger;
}

/**
 * Revokes every key created before `createdBefore` that looks like one the operator minted and
 * lost: usable, single-use and not ephemeral (what the operator mints), carrying only configured
 * proxy tags, with the operator's description where the control plane keeps one, and named by no
 * config Secret. Returns the revoked ids; a key that cannot be revoked is logged and skipped.
 */
export async function sweepOrphanKeys(options: OrphanSweepOptions, createdBefore: number, signal?: AbortSignal): Promise<string[]> {
  const { controlPlane, kube, namespace, log } = options;
  // Keys first, Secrets second: a key minted and written meanwhile is named by what is read last.
  const keys = await controlPlane.listAuthKeys();
  const secrets = await kube.list<V1Secret>("v1", "Secret", { namespace, labelSelector: `${LABELS.managed}=true,${LABELS.secretType}=config`, consistent: true });
  const named = new Set(secrets.flatMap((s) => s.metadata?.annotations?.[ANNOTATIONS.authKeyId] ?? []));
  const scope = { createdBefore, named, tags: new Set(options.tags), description: options.description };
  const revoked: string[] = [];
  for (const key of keys.filter((k) => isOrphan(k, scope))) {
    if (signal?.aborted) break;
    try {
      await controlPlane.revokeAuthKey(key.id);
      revoked.push(key.id);
      log.warn({ keyId: key.id, tags: key.tags }, "revoked an auth key no proxy holds (minted by an operator stopped before it stored the key)");
    } catch (error) {
      log.warn({ keyId: key.id, err: error }, "could not revoke an orphaned auth key; trying the others");
    }
  }
  return revoked;
}

function isOrphan(key: AuthKeyRecord, scope: { createdBefore: number; named: Set<string>; tags: Set<string>; description: string }): boolean {
  if (!key.usable || key.reusable || key.ephemeral || key.createdAt >= scope.createdBefore || scope.named.has(key.id)) return false;
  if (key.description !== undefined && key.description !== scope.description) return false;
  return key.tags.length > 0 && key.tags.every((tag) => scope.tags.has(tag));
}

/**
 * The leader's sweeps: one before its workers start, then one per interval for keys older than
 * the grace period. With leader election, the first sweep takes every key however young: the
 * previous leader stopped acting before this one started, and no worker of its own runs yet. A
 * single replica without election may overlap its predecessor in a rollout, so it keeps the grace
 * period. A failed sweep is logged and tried again next interval: it never stops the operator.
 */
export class OrphanSweeper {
  private readonly options: OrphanSweepOptions;
  private readonly clock: Clock;
  private readonly exclusive: boolean;
  private readonly onRevoked: (count: number) => void;

  constructor(options: OrphanSweepOptions & { clock: Clock; exclusive: boolean; onRevoked?: (count: number) => void }) {
    this.options = options;
    this.clock = options.clock;
    this.exclusive = options.exclusive;
    this.onRevoked = options.onRevoked ?? (() => undefined);
  }

  /** Before the workers start. */
  async initial(signal?: AbortSignal): Promise<void> {
    await this.sweep(this.exclusive ? Number.POSITIVE_INFINITY : this.clock.now() - SWEEP_GRACE_MS, signal);
  }

  /** Until the signal aborts. */
  async periodic(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.clock.sleep(SWEEP_INTERVAL_MS, signal);
      } catch {
        return;
      }
      await this.sweep(this.clock.now() - SWEEP_GRACE_MS, signal);
    }
  }

  private async sweep(createdBefore: number, signal?: AbortSignal): Promise<void> {
    try {
      const revoked = await sweepOrphanKeys(this.options, createdBefore, signal);
      this.onRevoked(revoked.length);
    } catch (error) {
      this.options.log.warn({ err: error }, "sweeping orphaned auth keys failed; trying again later");
    }
  }
}
