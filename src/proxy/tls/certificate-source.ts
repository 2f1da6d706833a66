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

/** Answers ACME HTTP-01 challenges on the proxy's port 80 while an order is pending. */
export interface HttpChallengeResponder {
  /** The key authorization for /.well-known/acme-challenge/<token>, or undefined if not ours. */
  keyAuthorization(token: string): string | undefined;
}
