// Where an L7 proxy's serving certificate comes from (a TLS Secret, an ACME CA, the control
// plane): one contract, so the HTTPS server never knows which source it is talking to.

export interface ServedCertificate {
  readonly certPem: string; // leaf first, then the chain
  readonly keyPem: string;
  readonly notAfter: Date;
}

export interface CertificateSource {
  readonly kind: "secret" | "acme" | "control-plane";
  /**
   * Resolves with the first usable certificate, then calls onChange with every newer one (a
   * rotated Secret, a renewal) until signal aborts. Rejects when no certificate can be had; the
   * message says why in words a user can act on.
   */
  start(signal: AbortSignal, onChange: (certificate: ServedCertificate) => void, onRenewal?: (problem: RenewalProblem | null) => void): Promise<ServedCertificate>;
}

/**
 * A renewal that failed while a certificate is in service (null once one succeeds): the Ingress
 * still works, so this is a warning until the served certificate expires.
 */
export interface RenewalProblem {
  readonly message: string;
  /** The served certificate is past its notAfter: clients now fail to connect. */
  readonly expired: boolean;
}

/** The self-signed certificate that answers a TLS-ALPN-01 challenge (RFC 8737). */
export interface AlpnChallengeCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Answers ACME challenges while an order is pending: HTTP-01 on the proxy's port 80, TLS-ALPN-01
 * on its port 443 (a TLS handshake offering only the ALPN protocol "acme-tls/1").
 */
export interface ChallengeResponder {
  /** The key authorization for /.well-known/acme-challenge/<token>, or undefined if not ours. */
  keyAuthorization(token: string): string | undefined;
  /** The certificate for a pending TLS-ALPN-01 challenge on serverName, or undefined. */
  alpnCertificate(serverName: string): AlpnChallengeCertificate | undefined;
  /** True while a TLS-ALPN-01 challenge is pending: only then are handshakes inspected. */
  alpnPending(): boolean;
}
