// Keeps an Ingress proxy's certificate source running: starts the one its config names, retries
// with backoff while no certificate can be had (reporting why, so the operator can put it on the
// Ingress), and starts afresh when the operator changes the source or its settings (a new ACME
// directory, a fixed CA bundle). The last good certificate stays in service meanwhile.
import type { Clock } from "../../shared/clock.ts";
import { INGRESS_SECRET_KEYS, type IngressProxyConfig } from "../../shared/ingress-config.ts";
import type { Logger } from "../log.ts";
import type { CertificateSource, ChallengeResponder, RenewalProblem, ServedCertificate } from "../tls/certificate-source.ts";
import type { SecretData } from "./ingress-secret.ts";

export interface ChosenSource {
  readonly source: CertificateSource;
  readonly challenges: ChallengeResponder | undefined;
}

export interface SupervisorDeps {
  readonly log: Logger;
  readonly clock: Clock;
  /** Builds the source the config names, from the ingress Secret's current data; may throw. */
  readonly create: (config: IngressProxyConfig, data: SecretData) => ChosenSource;
  readonly serve: (certificate: ServedCertificate) => void;
  /** Publishes why no certificate can be had (null once one is served); must not throw. */
  readonly report: (problem: string | null) => Promise<void>;
  /** Publishes a failing renewal while a certificate is in service (null once one succeeds); must not throw. */
  readonly reportRenewal: (problem: RenewalProblem | null) => Promise<void>;
  /** Wait after a failed start: first and longest (default 10 s, 5 min). */
  readonly retryMs?: { readonly initial: number; readonly max: number };
}

/** What makes a source different: restarting for anything else (routes) would be wasteful. */
function sourceKey(config: IngressProxyConfig, data: SecretData): string {
  return JSON.stringify([config.certificateSource, config.acme ?? null, config.acme?.eabKeyId ? (data[INGRESS_SECRET_KEYS.eabHmacKey] ?? "") : ""]);
}

export class CertificateSupervisor {
  private readonly deps: SupervisorDeps;
  private current: { key: string; stop: AbortController } | undefined;
  private responder: ChallengeResponder | undefined;
  private resolveFirst: (() => void) | undefined;
  /** Resolves when the first certificate is in service. */
  readonly firstServed: Promise<void>;

  constructor(deps: SupervisorDeps) {
    this.deps = deps;
    this.firstServed = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
  }

  /** The running source's challenge responder (HTTP-01, TLS-ALPN-01), if it has one. */
  challenges(): ChallengeResponder | undefined {
    return this.responder;
  }

  /** Starts the source the config names, unless the one running is the same. */
  update(config: IngressProxyConfig, data: SecretData): void {
    const key = sourceKey(config, data);
    if (this.current?.key === key) return;
    if (this.current) this.deps.log.info({ source: config.certificateSource }, "certificate settings changed; restarting the certificate source");
    this.current?.stop.abort();
    const stop = new AbortController();
    this.current = { key, stop };
    void this.run(config, data, stop.signal);
  }

  stop(): void {
    this.current?.stop.abort();
  }

  private async run(config: IngressProxyConfig, data: SecretData, signal: AbortSignal): Promise<void> {
    const retry = this.deps.retryMs ?? { initial: 10_000, max: 300_000 };
    let wait = retry.initial;
    // Read through a function: the signal flips while start() is awaited.
    const stopped = (): boolean => signal.aborted;
    while (!stopped()) {
      // A renewal may fail before start() resolves (a stored certificate served meanwhile): kept
      // until the certificate is in service, so that clearing the start error does not hide it.
      let renewal: RenewalProblem | null = null;
      let inService = false;
      const onRenewal = (problem: RenewalProblem | null): void => {
        renewal = problem;
        if (inService && !stopped()) void this.deps.reportRenewal(problem);
      };
      try {
        const chosen = this.deps.create(config, data);
        this.responder = chosen.challenges;
        const certificate = await chosen.source.start(signal, (next) => {
          if (stopped()) return;
          this.deps.serve(next);
          this.deps.log.info({ source: chosen.source.kind, notAfter: next.notAfter }, "certificate replaced (open connections keep the old one)");
        }, onRenewal);
        if (stopped()) return;
        this.deps.serve(certificate);
        this.deps.log.info({ source: chosen.source.kind, notAfter: certificate.notAfter }, "certificate in service");
        inService = true;
        await this.deps.report(null);
        await this.deps.reportRenewal(renewal);
        this.resolveFirst?.();
        return;
      } catch (error) {
        if (stopped()) return;
        const message = (error as Error).message;
        this.deps.log.warn({ source: config.certificateSource, err: message, retryInMs: wait }, "no certificate yet; will retry");
        await this.deps.report(message);
        try {
          await this.deps.clock.sleep(wait, signal);
        } catch {
          return;
        }
        wait = Math.min(wait * 2, retry.max);
      }
    }
  }
}
