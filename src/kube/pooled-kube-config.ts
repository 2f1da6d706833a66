// One keep-alive connection pool to the API server. client-node builds a new undici Agent for
// every request it sends through its generated API clients, so each call would pay a TCP and
// TLS handshake; here the first Agent it builds is kept and every later request rides on it.
// Credentials are still applied per request (a projected ServiceAccount token is re-read), only
// the transport is shared. Every request (generated clients and watches alike) passes here, so
// this is also where the client-side rate limit applies.
import { KubeConfig, type RequestContext } from "@kubernetes/client-node";
import { unlimited, type RateLimiter } from "./rate-limiter.ts";

type Dispatcher = NonNullable<ReturnType<RequestContext["getDispatcher"]>>;

export class PooledKubeConfig extends KubeConfig {
  private pool: Dispatcher | undefined;
  private readonly limiter: RateLimiter;

  constructor(limiter: RateLimiter = unlimited) {
    super();
    this.limiter = limiter;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.limiter.wait();
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    if (this.pool === undefined) {
      this.pool = fresh;
      return;
    }
    if (fresh === this.pool) return;
    context.setDispatcher(this.pool);
    // Never used for a connection, so closing it frees nothing but its bookkeeping.
    void fresh.close().catch(() => undefined);
  }

  /** Closes the pool's idle connections (at shutdown). */
  async closePool(): Promise<void> {
    await this.pool?.close().catch(() => undefined);
    this.pool = undefined;
  }
}
