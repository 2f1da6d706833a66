// The certificate sources an Ingress proxy can serve from, and the one place that picks one from
// the proxy's config. "acme" is implemented by AcmeCertificateSource (src/proxy/tls/acme-source.ts).
import type { AlpnChallengeCertificate, CertificateSource, ChallengeResponder, RenewalProblem, ServedCertificate } from "../tls/certificate-source.ts";
import type { AcmeSourceOptions } from "../tls/acme-source.ts";
import type { CertificateStore } from "../tls/certificate-store.ts";
import { INGRESS_SECRET_KEYS, type IngressProxyConfig } from "../../shared/ingress-config.ts";
import type { Logger } from "../log.ts";
import type { SecretData } from "./ingress-secret.ts";
import type { LocalApi } from "./local-api.ts";
import { X509Certificate } from "node:crypto";

function served(certPem: string, keyPem: string): ServedCertificate {
  return { certPem, keyPem, notAfter: new Date(new X509Certificate(certPem).validTo) };
}

/**
 * The user's kubernetes.io/tls Secret, as the operator copied it into the proxy's ingress Secret
 * (the proxy lives in the operator's namespace and cannot read the user's): every copy the
 * operator writes after a rotation becomes the served certificate.
 */
export class SecretCertificateSource implements CertificateSource {
  readonly kind = "secret" as const;
  private readonly initial: SecretData;
  private readonly subscribe: (listener: (data: SecretData) => void) => void;

  constructor(initial: SecretData, subscribe: (listener: (data: SecretData) => void) => void) {
    this.initial = initial;
    this.subscribe = subscribe;
  }

  start(signal: AbortSignal, onChange: (certificate: ServedCertificate) => void): Promise<ServedCertificate> {
    const pick = (data: SecretData): ServedCertificate | undefined => {
      const cert = data[INGRESS_SECRET_KEYS.cert];
      const key = data[INGRESS_SECRET_KEYS.key];
      return cert && key ? served(cert, key) : undefined;
    };
    let current = this.initial[INGRESS_SECRET_KEYS.cert];
    this.subscribe((data) => {
      if (signal.aborted || data[INGRESS_SECRET_KEYS.cert] === current) return;
      const next = pick(data);
      if (!next) return;
      current = next.certPem;
      onChange(next);
    });
    const first = pick(this.initial);
    return first ? Promise.resolve(first) : Promise.reject(new Error("the ingress Secret holds no tls.crt/tls.key; the operator copies them from the Ingress's spec.tls[0].secretName"));
  }
}

/** tailscaled's certificate from the control plane (Tailscale; Headscale issues none). */
export class ControlPlaneCertificateSource implements CertificateSource {
  readonly kind = "control-plane" as const;
  private readonly localApi: LocalApi;
  private readonly domain: string;
  private readonly checkEveryMs: number;

  constructor(localApi: LocalApi, domain: string, checkEveryMs = 6 * 3600_000) {
    this.localApi = localApi;
    this.domain = domain;
    this.checkEveryMs = checkEveryMs;
  }

  async start(signal: AbortSignal, onChange: (certificate: ServedCertificate) => void): Promise<ServedCertificate> {
    const pair = await this.localApi.certPair(this.domain);
    let current = pair.certPem;
    // tailscaled renews ahead of expiry; asking again now and then picks the renewal up.
    const timer = setInterval(() => {
      this.localApi.certPair(this.domain).then((next) => {
        if (next.certPem === current) return;
        current = next.certPem;
        onChange(served(next.certPem, next.keyPem));
      }, () => undefined);
    }, this.checkEveryMs);
    signal.addEventListener("abort", () => { clearInterval(timer); }, { once: true });
    return served(pair.certPem, pair.keyPem);
  }
}

/**
 * The ACME source, loaded when it starts: acme-client and @peculiar/x509 add ~60 MiB RSS to a
 * process, which only the proxies of Ingresses that use ACME should pay (docs/adr/0013).
 */
class LazyAcmeSource implements CertificateSource, ChallengeResponder {
  readonly kind = "acme" as const;
  private readonly options: AcmeSourceOptions;
  private loaded: ChallengeResponder | undefined;

  constructor(options: AcmeSourceOptions) {
    this.options = options;
  }

  async start(signal: AbortSignal, onChange: (certificate: ServedCertificate) => void, onRenewal?: (problem: RenewalProblem | null) => void): Promise<ServedCertificate> {
    const { AcmeCertificateSource } = await import("../tls/acme-source.ts");
    const source = new AcmeCertificateSource(this.options);
    this.loaded = source;
    return source.start(signal, onChange, onRenewal);
  }

  keyAuthorization(token: string): string | undefined {
    return this.loaded?.keyAuthorization(token);
  }

  alpnCertificate(serverName: string): AlpnChallengeCertificate | undefined {
    return this.loaded?.alpnCertificate(serverName);
  }

  alpnPending(): boolean {
    return this.loaded?.alpnPending() ?? false;
  }
}

export interface SourceDeps {
  readonly initialSecret: SecretData;
  readonly subscribeSecret: (listener: (data: SecretData) => void) => void;
  readonly localApi: LocalApi;
  /** The device's MagicDNS name (what clients ask for). */
  readonly fqdn: string;
  /** The operator's ACME settings (config.acme) and where the account and certificate persist. */
  readonly acme: IngressProxyConfig["acme"];
  readonly acmeStore: CertificateStore;
  readonly logger: Logger;
}

/**
 * The one place the proxy picks its certificate source from its config. The ACME source also
 * answers its challenges (HTTP-01 on port 80, TLS-ALPN-01 on 443), so it is returned as the
 * challenge responder too.
 */
export function createCertificateSource(kind: IngressProxyConfig["certificateSource"], deps: SourceDeps): { source: CertificateSource; challenges: ChallengeResponder | undefined } {
  switch (kind) {
    case "none":
      throw new Error("plain HTTP (certificate source none) serves no certificate");
    case "secret":
      return { source: new SecretCertificateSource(deps.initialSecret, deps.subscribeSecret), challenges: undefined };
    case "control-plane":
      return { source: new ControlPlaneCertificateSource(deps.localApi, deps.fqdn), challenges: undefined };
    case "acme": {
      const settings = deps.acme;
      if (!settings) throw new Error("the ingress config asks for ACME but holds no ACME settings; the operator writes them when it has an ACME directory configured");
      const hmacKey = deps.initialSecret[INGRESS_SECRET_KEYS.eabHmacKey];
      if (settings.eabKeyId && !hmacKey) throw new Error(`the ingress Secret holds no ${INGRESS_SECRET_KEYS.eabHmacKey} for the ACME external account binding`);
      const acme = new LazyAcmeSource({
        directoryUrl: settings.directoryUrl,
        caBundlePem: settings.caBundlePem,
        email: settings.email,
        externalAccountBinding: settings.eabKeyId && hmacKey ? { kid: settings.eabKeyId, hmacKey } : undefined,
        profile: settings.profile,
        challenge: settings.challenge,
        domains: [deps.fqdn],
        store: deps.acmeStore,
        logger: deps.logger,
        orderLimits: [
          { maxOrders: settings.maxOrdersPerHour, windowMs: 3_600_000 },
          { maxOrders: settings.maxOrdersPerWeek, windowMs: 7 * 24 * 3_600_000 },
        ],
      });
      return { source: acme, challenges: acme };
    }
  }
}
