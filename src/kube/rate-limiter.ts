// Client-side request rate limit to the API server, client-go's token bucket: up to `burst`
// requests go at once, then `qps` per second. The API server has its own protection (API
// Priority and Fairness) but an operator that wakes up to 1,000 Services should not make every
// other controller of the cluster queue behind it; a client limit also makes the operator's
// load predictable and comparable with client-go operators (ADR 0016). One bucket per API
// resource, as controller-runtime's clients have one per kind (ADR 0032).
//
// Each caller reserves a token up front (the bucket may go negative) and sleeps until its token
// is due, as golang.org/x/time/rate's Wait does: callers are served in arrival order and a
// waiting caller never needs waking by another.
import type { Clock } from "../shared/clock.ts";

export interface RateLimit {
  /** Sustained requests per second; 0 turns the limit off. */
  readonly qps: number;
  /** Requests allowed at once before the rate applies (>= 1). */
  readonly burst: number;
}

export interface RateLimiter {
  /** Resolves when the caller may send one request. */
  wait(signal?: AbortSignal): Promise<void>;
}

export const unlimited: RateLimiter = { wait: () => Promise.resolve() };

export class TokenBucket implements RateLimiter {
  private readonly limit: RateLimit;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(limit: RateLimit, clock: Clock) {
    if (!(limit.qps > 0) || !Number.isFinite(limit.qps)) throw new RangeError(`qps must be a positive number, got ${limit.qps}`);
    if (!Number.isInteger(limit.burst) || limit.burst < 1) throw new RangeError(`burst must be an integer >= 1, got ${limit.burst}`);
    this.limit = limit;
    this.clock = clock;
    this.tokens = limit.burst;
    this.last = clock.now();
  }

  async wait(signal?: AbortSignal): Promise<void> {
    const delayMs = this.reserve();
    if (delayMs <= 0) return;
    try {
      await this.clock.sleep(delayMs, signal);
    } catch (error) {
      // An abandoned reservation gives its token back, so later callers do not wait for it.
      this.tokens += 1;
      throw error;
    }
  }

  /** Takes a token and says how long until it is due (ms, 0 when available now). */
  private reserve(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.last) / 1000) * this.limit.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.limit.qps) * 1000;
  }
}

/** The limiter a request to an API resource ("secrets", "statefulsets.apps") waits on. */
export type RateLimiters = (resource: string) => RateLimiter;

export const noLimits: RateLimiters = () => unlimited;

/**
 * A bucket of its own for each resource, made on first use: what a controller-runtime operator
 * gets (its client, cache and status writer build one REST client, and so one bucket, per kind),
 * so a burst of Secret writes does not hold back the Lease or a status write.
 */
export function perResource(limit: RateLimit, clock: Clock): RateLimiters {
  if (limit.qps === 0) return noLimits;
  const buckets = new Map<string, TokenBucket>();
  return (resource) => {
    let bucket = buckets.get(resource);
    if (!bucket) {
      bucket = new TokenBucket(limit, clock);
      buckets.set(resource, bucket);
    }
    return bucket;
  };
}
