// The proxy's own cap on ACME orders. Public CAs rate-limit per account and per name (Let's
// Encrypt: 5 failed validations per hour, 5 duplicate certificates per week), and a proxy that
// crash-loops or keeps losing its state would otherwise burn that quota for everyone using the
// account. The history lives in the CertificateStore, so restarts count too.

export interface OrderLimit {
  readonly maxOrders: number;
  readonly windowMs: number;
}

/** At most 3 orders an hour and 5 a week: below Let's Encrypt's limits for one name set. */
export const DEFAULT_ORDER_LIMITS: readonly OrderLimit[] = [
  { maxOrders: 3, windowMs: 3_600_000 },
  { maxOrders: 5, windowMs: 7 * 24 * 3_600_000 },
];

export type OrderDecision =
  | { readonly allowed: true; readonly history: readonly number[] }
  | { readonly allowed: false; readonly retryAt: number; readonly limit: OrderLimit; readonly history: readonly number[] };

/**
 * Whether an order may be placed now, and the history pruned to the longest window. When it may
 * not, retryAt is when the oldest order inside the binding window ages out.
 */
export function decideOrder(history: readonly number[], now: number, limits: readonly OrderLimit[]): OrderDecision {
  const longest = Math.max(0, ...limits.map((limit) => limit.windowMs));
  const kept = history.filter((at) => at > now - longest && at <= now).sort((a, b) => a - b);
  let refusal: { retryAt: number; limit: OrderLimit } | undefined;
  for (const limit of limits) {
    const inWindow = kept.filter((at) => at > now - limit.windowMs);
    if (inWindow.length < limit.maxOrders) continue;
    // The (count - max + 1)th oldest must age out before one more order fits.
    const retryAt = (inWindow[inWindow.length - limit.maxOrders] ?? now) + limit.windowMs;
    if (!refusal || retryAt > refusal.retryAt) refusal = { retryAt, limit };
  }
  return refusal ? { allowed: false, ...refusal, history: kept } : { allowed: true, history: kept };
}

export function describeLimit(limit: OrderLimit): string {
  const hours = limit.windowMs / 3_600_000;
  const span = hours >= 24 && hours % 24 === 0 ? `${hours / 24} day(s)` : hours >= 1 ? `${hours} hour(s)` : `${limit.windowMs / 1000} s`;
  return `${limit.maxOrders} orders per ${span}`;
}
