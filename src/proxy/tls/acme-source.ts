// Serving certificates from an ACME CA (Let's Encrypt, a private step-ca or Pebble, any RFC 8555
// server). The account, the current certificate and the order history live in a
// CertificateStore, so a restart serves the stored certificate instead of ordering again; renewal
// follows the CA's ARI window when offered (two thirds of the lifetime otherwise); orders are
// capped per window so that no loop can exhaust the CA's rate limits.
import type { Logger } from "../log.ts";
import { systemClock, type Clock } from "../../shared/clock.ts";
import type { AlpnChallengeCertificate, CertificateSource, ChallengeResponder, RenewalProblem, ServedCertificate } from "./certificate-source.ts";
import type { CertificateStore, StoredCertificate } from "./certificate-store.ts";
import { getJson, trustCa, describeTransportError } from "./acme-http.ts";
import { AcmeIssueError, accountClient, placeOrder, type ChallengeAnswers, type ChallengeType, type OrderSettings } from "./acme-order.ts";
import { DEFAULT_ORDER_LIMITS, decideOrder, describeLimit, type OrderLimit } from "./order-limit.ts";
import { coversExactly, readCertificate, renewalTime, type CertificateFacts, type RenewalWindow } from "./renewal.ts";

export { MemoryCertificateStore, KeyValueCertificateStore, type CertificateStore, type KeyValueStorage } from "./certificate-store.ts";
export { AcmeIssueError } from "./acme-order.ts";

export interface AcmeSourceOptions {
  /** The CA's ACME directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory). */
  readonly directoryUrl: string;
  /** PEM certificates to trust for the CA's own HTTPS (a private CA), besides the public roots. */
  readonly caBundlePem?: string | undefined;
  /** External account binding, for CAs that require one (ZeroSSL, Google, many private CAs). */
  readonly externalAccountBinding?: { readonly kid: string; readonly hmacKey: string } | undefined;
  readonly email?: string | undefined;
  /** The names to certify: the device's MagicDNS name. The first is the subject's CN. */
  readonly domains: readonly string[];
  /** ACME profile to ask for (e.g. Let's Encrypt's "shortlived"), if the CA offers profiles. */
  readonly profile?: string | undefined;
  /** How the proxy proves control of the names (default http-01). */
  readonly challenge?: ChallengeType | undefined;
  readonly store: CertificateStore;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Caps on orders placed (default: 3 an hour and 5 a week), counted in the store. */
  readonly orderLimits?: readonly OrderLimit[];
  /** Backoff after a failed renewal: first and longest wait (default 30 s, 1 h). */
  readonly retryMs?: { readonly initial: number; readonly max: number };
  readonly random?: () => number;
}

/** An order the limits refused; retryAt says when one fits again. */
export class OrderLimitError extends AcmeIssueError {
  readonly retryAt: number;
  constructor(message: string, retryAt: number) {
    super(message);
    this.retryAt = retryAt;
  }
}

interface Current {
  readonly stored: StoredCertificate;
  readonly facts: CertificateFacts;
}

interface RenewalPlan {
  readonly at: number;
  readonly recheckAt: number;
}

const ARI_RECHECK_MS = { min: 3_600_000, max: 24 * 3_600_000 };

export class AcmeCertificateSource implements CertificateSource, ChallengeResponder {
  readonly kind = "acme";
  private readonly options: AcmeSourceOptions;
  private readonly settings: OrderSettings;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly answers: ChallengeAnswers = { http: new Map(), alpn: new Map() };

  constructor(options: AcmeSourceOptions) {
    if (options.domains.length === 0) throw new Error("AcmeCertificateSource: no domain to certify");
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger.child({ component: "acme", domains: options.domains });
    this.settings = {
      directoryUrl: options.directoryUrl,
      domains: options.domains.map((domain) => domain.toLowerCase().replace(/\.$/, "")),
      email: options.email,
      externalAccountBinding: options.externalAccountBinding,
      profile: options.profile,
      challenge: options.challenge ?? "http-01",
    };
    trustCa(options.directoryUrl, options.caBundlePem);
  }

  keyAuthorization(token: string): string | undefined {
    return this.answers.http.get(token);
  }

  alpnCertificate(serverName: string): AlpnChallengeCertificate | undefined {
    return this.answers.alpn.get(serverName.toLowerCase());
  }

  alpnPending(): boolean {
    return this.answers.alpn.size > 0;
  }

  async start(signal: AbortSignal, onChange: (certificate: ServedCertificate) => void, onRenewal: (problem: RenewalProblem | null) => void = () => undefined): Promise<ServedCertificate> {
    const stored = await this.storedCertificate();
    let current: Current | undefined;
    let plan: RenewalPlan | undefined;
    if (stored) {
      plan = await this.renewalPlan(stored);
      if (this.clock.now() < plan.at) {
        this.logger.info({ serial: stored.facts.serial, notAfter: stored.facts.notAfter }, "serving the stored ACME certificate");
        current = stored;
      }
    }
    if (!current) {
      try {
        current = await this.issue(stored);
        plan = undefined;
      } catch (error) {
        if (!stored || this.clock.now() >= stored.facts.notAfter.getTime()) throw error;
        this.logger.warn({ err: (error as Error).message, notAfter: stored.facts.notAfter }, "renewal failed; serving the stored certificate meanwhile");
        onRenewal(renewalProblem(error, stored.facts.notAfter, false));
        current = stored;
        // The loop's next attempt waits out the first backoff (or the order limit).
        const retryAt = error instanceof OrderLimitError ? error.retryAt : this.clock.now() + (this.options.retryMs?.initial ?? 30_000);
        plan = { at: retryAt, recheckAt: retryAt };
      }
    }
    const first = current;
    this.renewLoop(first, plan ?? (await this.renewalPlan(first)), signal, onChange, onRenewal).catch((error: unknown) => {
      this.logger.error({ err: (error as Error).message }, "ACME renewal stopped unexpectedly; the certificate will no longer be renewed");
    });
    return served(first);
  }

  private async renewLoop(first: Current, firstPlan: RenewalPlan, signal: AbortSignal, onChange: (certificate: ServedCertificate) => void, onRenewal: (problem: RenewalProblem | null) => void): Promise<void> {
    const initialBackoff = this.options.retryMs?.initial ?? 30_000;
    let current = first;
    let plan = firstPlan;
    let backoff = initialBackoff;
    while (!signal.aborted) {
      const now = this.clock.now();
      if (now < plan.at) {
        if (!(await this.sleep(Math.min(plan.at, plan.recheckAt) - now, signal))) return;
        if (this.clock.now() < plan.at) plan = await this.renewalPlan(current);
        continue;
      }
      let next: Current;
      try {
        next = await this.issue(current);
      } catch (error) {
        const limited = error instanceof OrderLimitError;
        const wait = limited ? error.retryAt - this.clock.now() : backoff;
        if (!limited) backoff = Math.min(backoff * 2, this.options.retryMs?.max ?? 3_600_000);
        const expired = this.clock.now() >= current.facts.notAfter.getTime();
        this.logger[expired ? "error" : "warn"](
          { err: (error as Error).message, retryInMs: wait, notAfter: current.facts.notAfter },
          expired ? "ACME renewal failed and the served certificate has expired" : "ACME renewal failed; will retry",
        );
        onRenewal(renewalProblem(error, current.facts.notAfter, expired));
        if (!(await this.sleep(wait, signal))) return;
        continue;
      }
      current = next;
      backoff = initialBackoff;
      onRenewal(null);
      try {
        onChange(served(current));
      } catch (error) {
        this.logger.error({ err: (error as Error).message }, "the renewed certificate could not be put in service");
      }
      plan = await this.renewalPlan(current);
    }
  }

  /** Resolves false when aborted instead of throwing, so the loop ends quietly. */
  private async sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    try {
      await this.clock.sleep(Math.max(0, ms), signal);
      return true;
    } catch {
      return false;
    }
  }

  private async storedCertificate(): Promise<Current | undefined> {
    const stored = await this.options.store.loadCertificate();
    if (!stored) return undefined;
    try {
      const facts = readCertificate(stored.certPem);
      if (stored.directoryUrl !== this.settings.directoryUrl || !coversExactly(facts, this.settings.domains)) {
        this.logger.info({ names: facts.dnsNames }, "the stored certificate is for other names or another CA; ordering a new one");
        return undefined;
      }
      if (this.clock.now() >= facts.notAfter.getTime()) return undefined;
      return { stored, facts };
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "the stored certificate is unreadable; ordering a new one");
      return undefined;
    }
  }

  /** Orders a certificate; renewing is the one being replaced (if any). */
  private async issue(renewing: Current | undefined): Promise<Current> {
    // Checked first (no CA needed), recorded only once the order is about to be sent, so an
    // unreachable CA does not use up the allowance.
    await this.countOrder(false);
    const directory = await this.directory();
    const client = await accountClient(this.settings, this.options.store, this.logger);
    this.checkProfile(directory);
    await this.countOrder(true);
    const replaces = typeof directory["renewalInfo"] === "string" ? renewing?.facts.ariCertId : undefined;
    this.logger.info({ reason: renewing ? "renewal" : "initial", profile: this.settings.profile, replaces }, "placing an ACME order");
    const stored = await placeOrder(client, this.settings, this.answers, this.logger, replaces);
    const facts = readCertificate(stored.certPem);
    await this.options.store.saveCertificate(stored);
    this.logger.info({ serial: facts.serial, notBefore: facts.notBefore, notAfter: facts.notAfter }, "ACME certificate issued");
    return { stored, facts };
  }

  private async countOrder(record: boolean): Promise<void> {
    const store = this.options.store;
    const limits = this.options.orderLimits ?? DEFAULT_ORDER_LIMITS;
    const now = this.clock.now();
    const decision = decideOrder(await store.loadOrderHistory(), now, limits);
    if (!decision.allowed) {
      const retryAt = new Date(decision.retryAt).toISOString();
      throw new OrderLimitError(
        `not ordering a certificate for ${this.settings.domains.join(", ")}: this proxy's limit of ` +
          `${describeLimit(decision.limit)} is reached (counted across restarts); the next order is allowed at ${retryAt}. ` +
          "Repeated orders mean certificates are being lost or refused: check the proxy's logs and its state Secret",
        decision.retryAt,
      );
    }
    // Counted before the order is sent: a crash mid-order still counts.
    if (record) await store.saveOrderHistory([...decision.history, now]);
  }

  private async directory(): Promise<Record<string, unknown>> {
    const url = this.settings.directoryUrl;
    let response;
    try {
      response = await getJson(url);
    } catch (error) {
      throw new AcmeIssueError(describeTransportError(error, url) ?? `cannot read the ACME directory at ${url}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const body = response.body as Record<string, unknown> | undefined;
    if (response.status !== 200 || typeof body?.["newOrder"] !== "string") {
      throw new AcmeIssueError(`${url} is not an ACME directory (HTTP ${response.status}): check the ACME directory URL`);
    }
    return body;
  }

  private checkProfile(directory: Record<string, unknown>): void {
    const wanted = this.settings.profile;
    if (!wanted) return;
    const offered = (directory["meta"] as { profiles?: Record<string, unknown> } | undefined)?.profiles;
    if (!offered || !(wanted in offered)) {
      throw new AcmeIssueError(
        `the ACME CA does not offer the profile "${wanted}" (offered: ${offered ? Object.keys(offered).join(", ") : "none"}): ` +
          "change or unset the ACME profile",
      );
    }
  }

  /** When to renew, and when to ask the CA's ARI again (its Retry-After). */
  private async renewalPlan(current: Current): Promise<RenewalPlan> {
    const random = this.options.random ?? Math.random;
    const window = await this.ariWindow(current.facts).catch((error: unknown) => {
      this.logger.debug({ err: (error as Error).message }, "no ARI renewal window; renewing at two thirds of the lifetime");
      return undefined;
    });
    const at = renewalTime(current.facts, window?.window, random);
    const retry = Math.min(Math.max((window?.retryAfterSeconds ?? 0) * 1000, ARI_RECHECK_MS.min), ARI_RECHECK_MS.max);
    this.logger.info({ serial: current.facts.serial, renewAt: new Date(at), ari: window !== undefined }, "ACME renewal scheduled");
    return { at, recheckAt: this.clock.now() + retry };
  }

  private async ariWindow(facts: CertificateFacts): Promise<{ window: RenewalWindow; retryAfterSeconds: number | undefined } | undefined> {
    if (!facts.ariCertId) return undefined;
    const base = (await this.directory())["renewalInfo"];
    if (typeof base !== "string") return undefined;
    const response = await getJson(`${base.replace(/\/$/, "")}/${facts.ariCertId}`);
    const suggested = (response.body as { suggestedWindow?: { start?: unknown; end?: unknown } } | undefined)?.suggestedWindow;
    if (response.status !== 200 || typeof suggested?.start !== "string" || typeof suggested.end !== "string") return undefined;
    return { window: { start: new Date(suggested.start), end: new Date(suggested.end) }, retryAfterSeconds: response.retryAfterSeconds };
  }
}

function served(current: Current): ServedCertificate {
  return { certPem: current.stored.certPem, keyPem: current.stored.keyPem, notAfter: current.facts.notAfter };
}

function renewalProblem(error: unknown, notAfter: Date, expired: boolean): RenewalProblem {
  const message = (error as Error).message;
  return {
    expired,
    message: expired ? `renewal failed and the served certificate expired at ${notAfter.toISOString()}: ${message}` : `renewal failed; serving the certificate valid until ${notAfter.toISOString()}: ${message}`,
  };
}
