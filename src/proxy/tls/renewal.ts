// When to renew: at two thirds of the lifetime by default, or inside the CA's ACME Renewal
// Information (ARI, RFC 9773) window when it offers one. Pure functions, so the policy is tested
// without a CA.
import { X509Certificate as NodeX509 } from "node:crypto";
import { AuthorityKeyIdentifierExtension, X509Certificate } from "@peculiar/x509";

export interface CertificateFacts {
  /** Lowercase hex, no leading zeros (how CAs and logs print it). */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DNS names in the subjectAltName. */
  readonly dnsNames: readonly string[];
  /** The ARI certificate identifier (base64url AKI keyIdentifier "." base64url serial), if derivable. */
  readonly ariCertId: string | undefined;
}

export function readCertificate(certPem: string): CertificateFacts {
  const leafPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(certPem)?.[0];
  if (!leafPem) throw new Error("no PEM certificate found");
  const leaf = new NodeX509(leafPem);
  const dnsNames = (leaf.subjectAltName ?? "")
    .split(", ")
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4).toLowerCase());
  return {
    serial: leaf.serialNumber.toLowerCase().replace(/^0+/, ""),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    dnsNames,
    ariCertId: ariCertId(leafPem),
  };
}

function ariCertId(leafPem: string): string | undefined {
  const cert = new X509Certificate(leafPem);
  const aki = cert.getExtension(AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) return undefined;
  // The serial as its DER INTEGER content: a leading zero byte when the high bit is set.
  let serialHex = cert.serialNumber.length % 2 === 1 ? `0${cert.serialNumber}` : cert.serialNumber;
  if (/^[89a-f]/i.test(serialHex)) serialHex = `00${serialHex}`;
  return `${Buffer.from(aki.keyId, "hex").toString("base64url")}.${Buffer.from(serialHex, "hex").toString("base64url")}`;
}

/** True when the certificate names exactly the wanted domains (order and case aside). */
export function coversExactly(facts: CertificateFacts, domains: readonly string[]): boolean {
  const want = new Set(domains.map((domain) => domain.toLowerCase()));
  return want.size === new Set(facts.dnsNames).size && facts.dnsNames.every((name) => want.has(name));
}

export interface RenewalWindow {
  readonly start: Date;
  readonly end: Date;
}

/**
 * The moment to renew (epoch ms). Without ARI: two thirds into the lifetime, plus a jitter of up
 * to a twelfth of it so that many proxies do not all renew at once. With ARI, a random point in
 * the CA's window, as RFC 9773 asks; but when the window opens before the two-thirds point and
 * closes after it (Pebble's does for short-lived certificates: it spans the whole lifetime), the
 * point is taken in the part after it, so a certificate is not replaced right after issuance.
 * A window that closes before the two-thirds point (the CA wants early renewal, e.g. before a
 * revocation) is followed as is.
 */
export function renewalTime(facts: CertificateFacts, window: RenewalWindow | undefined, random: () => number): number {
  const notBefore = facts.notBefore.getTime();
  const lifetime = facts.notAfter.getTime() - notBefore;
  const twoThirds = notBefore + (lifetime * 2) / 3;
  const jitter = lifetime / 12;
  if (!window || window.end.getTime() <= window.start.getTime()) return twoThirds + random() * jitter;
  const start = window.start.getTime();
  const end = window.end.getTime();
  if (end <= twoThirds || start >= twoThirds) return start + random() * (end - start);
  return twoThirds + random() * (Math.min(end, twoThirds + jitter) - twoThirds);
}
