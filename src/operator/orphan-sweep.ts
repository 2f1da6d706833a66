// Revokes auth keys the operator minted but no Secret holds. Minting a key and writing it into its
// Secret are two calls to two systems: an operator killed between them leaves a usable, tagged key
// on the control plane that nothing names (until it expires, 24 h later). The sweep finds them by
// what the control plane lists and what the operator's Secrets name (ADR 0022).
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
  /** The tags proxies get without asking (the chart's proxy and API server proxy tags). */
  readonly defaultTags: readonly string[];
  readonly log: Logger;
}

/**
 * Revokes every usable key created before `createdBefore` whose tags are all the operator's and
 * that no Secret of the operator names. "The operator's tags" are the default proxy tags and the
 * tags of every proxy it runs now: a tailnet shared with other key issuers should give this
 * operator's proxies tags of their own (docs/proxy.md). Returns the revoked ids.
 */
export async function sweepOrphanKeys(options: OrphanSweepOptions, createdBefore: number): Promise<string[]> {
  const { controlPlane, kube, namespace, log } = options;
  // Keys first, Secrets second: a key minted and written meanwhile is named by what is read last.
  const keys = await controlPlane.listAuthKeys();
  const secrets = await kube.list<V1Secret>("v1", "Secret", { namespace, labelSelector: `${LABELS.managed}=true`, consistent: true });
  const named = new Set(secrets.flatMap((s) => s.metadata?.annotations?.[ANNOTATIONS.authKeyId] ?? []));
  const ours = new Set([...options.defaultTags, ...secrets.flatMap(identityTags)]);
  const orphans = keys.filter((key) => isOrphan(key, { createdBefore, named, ours }));
  for (const key of orphans) {
    await controlPlane.revokeAuthKey(key.id);
    log.warn({ keyId: key.id, tags: key.tags }, "revoked an auth key no proxy holds (minted by an operator stopped before it stored the key)");
  }
  return orphans.map((key) => key.id);
}

function isOrphan(key: AuthKeyRecord, scope: { createdBefore: number; named: Set<string>; ours: Set<string> }): boolean {
  return key.usable && key.createdAt < scope.createdBefore && !scope.named.has(key.id) && key.tags.length > 0 && key.tags.every((tag) => scope.ours.has(tag));
}

/** The tags in a config Secret's proxy identity annotation ("<hostname> <tag>,<tag>"). */
function identityTags(secret: V1Secret): string[] {
  const tags = secret.metadata?.annotations?.[ANNOTATIONS.proxyIdentity]?.split(" ")[1];
  return tags ? tags.split(",").filter(Boolean) : [];
}

/**
 * The leader's sweeps: one before its workers start (no key of its own can be in flight then, so
 * every orphan of a predecessor is fair game whatever the clocks say), then one per interval for
 * keys older than the grace period. A failed sweep is logged and tried again next interval: it
 * must never stop the operator.
 */
export class OrphanSweeper {
  private readonly options: OrphanSweepOptions;
  private readonly clock: Clock;
  private readonly onRevoked: (count: number) => void;

  constructor(options: OrphanSweepOptions & { clock: Clock; onRevoked?: (count: number) => void }) {
    this.options = options;
    this.clock = options.clock;
    this.onRevoked = options.onRevoked ?? (() => undefined);
  }

  /** Before the workers start. */
  async initial(): Promise<void> {
    await this.sweep(Number.POSITIVE_INFINITY);
  }

  /** Until the signal aborts. */
  async periodic(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.clock.sleep(SWEEP_INTERVAL_MS, signal);
      } catch {
        return;
      }
      await this.sweep(this.clock.now() - SWEEP_GRACE_MS);
    }
  }

  private async sweep(createdBefore: number): Promise<void> {
    try {
      const revoked = await sweepOrphanKeys(this.options, createdBefore);
      this.onRevoked(revoked.length);
    } catch (error) {
      this.options.log.warn({ err: error }, "sweeping orphaned auth keys failed; trying again later");
    }
  }
}
