// Leader election on a coordination.k8s.io Lease, as client-go does it: the holder renews the
// Lease every retry period; another replica takes over only once the holder has failed to renew
// for a whole lease duration. Writes carry the resourceVersion, so two replicas racing for an
// expired Lease cannot both win.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { KubeClient } from "../kube/kube-client.ts";
import { KubeApiError } from "../kube/kube-client.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";

interface Lease extends KubernetesObject {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export interface LeaderElectionOptions {
  readonly kube: KubeClient;
  readonly clock: Clock;
  readonly log: Logger;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly retryPeriodMs: number;
}

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private leading = false;
  private lastRenew = 0;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private ref(): { apiVersion: string; kind: string; namespace: string; name: string } {
    return { apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: this.options.namespace, name: this.options.name };
  }

  /** One attempt to acquire or renew; returns whether this replica leads afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, clock, identity, leaseDurationMs } = this.options;
    const now = new Date(clock.now()).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
    const lease = await kube.get<Lease>(this.ref());
    const durationSeconds = Math.ceil(leaseDurationMs / 1000);
    try {
      if (!lease) {
        const created = await kube.create<Lease>({
          ...this.ref(),
          metadata: { name: this.options.name, namespace: this.options.namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        });
        return this.setLeading(created !== "exists");
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? "";
      const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
      const expired = renewed + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 < clock.now();
      if (holder !== identity && holder !== "" && !expired) return this.setLeading(false);
      const takeover = holder !== identity;
      await kube.mergePatch(this.ref(), {
        metadata: { resourceVersion: lease.metadata?.resourceVersion },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          renewTime: now,
          ...(takeover ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
        },
      });
      return this.setLeading(true);
    } catch (error) {
      // A conflict means another replica wrote first: it leads, we do not.
      if (error instanceof KubeApiError && error.isConflict) return this.setLeading(false);
      throw error;
    }
  }

  private setLeading(leading: boolean): boolean {
    if (leading) this.lastRenew = this.options.clock.now();
    if (leading !== this.leading) this.options.log.info({ identity: this.options.identity, leading }, leading ? "became leader" : "not the leader");
    this.leading = leading;
    return leading;
  }

  /**
   * Resolves once this replica leads; then keeps renewing until the signal aborts, calling
   * onLost if renewal fails for a whole lease duration (the caller must stop acting then).
   */
  async run(signal: AbortSignal, onLead: () => void, onLost: () => void): Promise<void> {
    const { clock, retryPeriodMs, leaseDurationMs, log } = this.options;
    let announced = false;
    while (!signal.aborted) {
      const leading = await this.tryAcquireOrRenew().catch((error: unknown) => {
        log.warn({ err: error }, "leader election: lease update failed");
        return this.leading && clock.now() - this.lastRenew < leaseDurationMs;
      });
      if (leading && !announced) {
        announced = true;
        onLead();
      } else if (!leading && announced) {
        onLost();
        return;
      }
      await clock.sleep(retryPeriodMs, signal).catch(() => undefined);
    }
  }

  /** Gives the Lease up on shutdown so a standby can take over at once. */
  async release(): Promise<void> {
    if (!this.leading) return;
    const lease = await this.options.kube.get<Lease>(this.ref());
    if (lease?.spec?.holderIdentity !== this.options.identity) return;
    await this.options.kube.mergePatch(this.ref(), { metadata: { resourceVersion: lease.metadata?.resourceVersion }, spec: { holderIdentity: "", renewTime: null } }).catch(() => undefined);
    this.leading = false;
  }
}
