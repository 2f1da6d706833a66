// Self-signed certificates with chosen serials, validity and AKI, for the TLS unit tests.
import { webcrypto } from "node:crypto";
import {
  AuthorityKeyIdentifierExtension,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
  cryptoProvider,
} from "@peculiar/x509";

cryptoProvider.set(webcrypto as unknown as Parameters<typeof cryptoProvider.set>[0]);

export interface TestCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function makeCertificate(options: {
  dnsNames: readonly string[];
  /** IP address SANs (a loopback test server reached by address). */
  ips?: readonly string[];
  notBefore: Date;
  notAfter: Date;
  serialHex?: string;
  akiHex?: string;
}): Promise<TestCertificate> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const cert = await X509CertificateGenerator.createSelfSigned({
    name: `CN=${options.dnsNames[0] ?? "test"}`,
    keys,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    serialNumber: options.serialHex ?? "0102030405",
    signingAlgorithm: algorithm,
    extensions: [
      new SubjectAlternativeNameExtension([...options.dnsNames.map((value) => ({ type: "dns" as const, value })), ...(options.ips ?? []).map((value) => ({ type: "ip" as const, value }))]),
      ...(options.akiHex ? [new AuthorityKeyIdentifierExtension(options.akiHex)] : []),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString("pem"), keyPem };
}
