// Checks a user's TLS Secret before its certificate is copied to a proxy: the right type, a
// certificate and key that parse and belong together, and a name the Ingress is served under.
// Never logs or returns key material.
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { V1Secret } from "@kubernetes/client-node";

export interface TlsPair {
  readonly certPem: string;
  readonly keyPem: string;
  readonly names: readonly string[];
  readonly notAfter: Date;
}

export type TlsCheck = { readonly ok: true; readonly pair: TlsPair } | { readonly ok: false; readonly message: string };

const decode = (value: string | undefined): string => (value === undefined ? "" : Buffer.from(value, "base64").toString("utf8"));

/** DNS names of the certificate (subjectAltName, falling back to the CN). */
function dnsNames(cert: X509Certificate): string[] {
  const sans = (cert.subjectAltName ?? "").split(/,\s*/).filter((s) => s.startsWith("DNS:")).map((s) => s.slice(4));
  if (sans.length > 0) return sans;
  const cn = /CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn] : [];
}

/**
 * secret: the Secret as read (undefined if missing). names: what the certificate must cover;
 * a name without a dot (a bare hostname such as "foo") is satisfied by any certificate name
 * whose first label it is, since the tailnet's domain is known only once the device is up.
 */
export function checkTlsSecret(ref: string, secret: V1Secret | undefined, names: readonly string[]): TlsCheck {
  if (!secret) return { ok: false, message: `TLS Secret ${ref} does not exist` };
  if (secret.type !== "kubernetes.io/tls") return { ok: false, message: `TLS Secret ${ref} has type "${secret.type ?? "Opaque"}", not kubernetes.io/tls` };
  const certPem = decode(secret.data?.["tls.crt"]);
  const keyPem = decode(secret.data?.["tls.key"]);
  if (!certPem || !keyPem) return { ok: false, message: `TLS Secret ${ref} lacks ${certPem ? "tls.key" : "tls.crt"}` };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return { ok: false, message: `TLS Secret ${ref}: tls.crt is not a PEM certificate` };
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return { ok: false, message: `TLS Secret ${ref}: tls.key is not the key of the certificate in tls.crt` };
  } catch {
    return { ok: false, message: `TLS Secret ${ref}: tls.key is not a PEM private key` };
  }
  const certNames = dnsNames(cert);
  for (const name of names) {
    const covered = name.includes(".") ? cert.checkHost(name) !== undefined : certNames.some((n) => n.split(".")[0] === name || n.startsWith("*."));
    if (!covered) return { ok: false, message: `TLS Secret ${ref} has a certificate for ${certNames.join(", ") || "no DNS name"}, not for ${name}` };
  }
  return { ok: true, pair: { certPem, keyPem, names: certNames, notAfter: new Date(cert.validTo) } };
}

/** The certificate covers the FQDN exactly or by a one-label wildcard. */
export function certificateCovers(pair: Pick<TlsPair, "names">, fqdn: string): boolean {
  return pair.names.some((name) => name === fqdn || (name.startsWith("*.") && fqdn.slice(fqdn.indexOf(".") + 1) === name.slice(2)));
}
