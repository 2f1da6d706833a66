// One ACME order from account to certificate (RFC 8555 through acme-client): register or reuse
// the account, place the order, answer HTTP-01 or TLS-ALPN-01 (RFC 8737), finalize with a fresh
// key, download the chain.
// Failures come out as AcmeIssueError with the CA's own problem detail and what to check.
import { generateKeyPairSync } from "node:crypto";
import acme from "acme-client";
import type { Logger } from "../log.ts";
import type { AlpnChallengeCertificate } from "./certificate-source.ts";
import type { CertificateStore, StoredAccount, StoredCertificate } from "./certificate-store.ts";
import { describeTransportError } from "./acme-http.ts";

export interface OrderSettings {
  readonly directoryUrl: string;
  readonly domains: readonly string[];
  readonly email?: string | undefined;
  readonly externalAccountBinding?: { readonly kid: string; readonly hmacKey: string } | undefined;
  /** ACME profile (draft-ietf-acme-profiles) to ask for, when the CA offers it. */
  readonly profile?: string | undefined;
  /** The challenge the proxy answers: on port 80 (http-01) or in the TLS handshake on 443 (tls-alpn-01). */
  readonly challenge: ChallengeType;
}

export type ChallengeType = "http-01" | "tls-alpn-01";

export class AcmeIssueError extends Error {
  override readonly name = "AcmeIssueError";
}

/** newOrder's body with the profiles (draft-ietf-acme-profiles) and ARI (RFC 9773) fields. */
type OrderRequest = Parameters<acme.Client["createOrder"]>[0] & { profile?: string; replaces?: string };

/** The answers of the order in progress, read by the port-80 (HTTP-01) and port-443 (TLS-ALPN-01) servers. */
export interface ChallengeAnswers {
  /** token -> key authorization */
  readonly http: Map<string, string>;
  /** domain (lower case) -> the acmeIdentifier certificate */
  readonly alpn: Map<string, AlpnChallengeCertificate>;
}

export function newPrivateKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

/**
 * The self-signed acmeIdentifier certificate that answers a TLS-ALPN-01 challenge. RSA, not the
 * P-256 used elsewhere: acme-client gives it the key usages of a CA certificate and no
 * digitalSignature, with which OpenSSL refuses to sign a TLS 1.2 handshake using an ECDSA key
 * (RSA key exchange does not need the signature), so a TLS 1.2 validator would fail.
 */
export async function alpnChallengeCertificate(authz: acme.Authorization, keyAuthorization: string): Promise<AlpnChallengeCertificate> {
  const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
  return { certPem: cert.toString(), keyPem: key.toString() };
}

/** A client for the stored account (registering one first if there is none for this CA). */
export async function accountClient(settings: OrderSettings, store: CertificateStore, logger: Logger): Promise<acme.Client> {
  const stored = await store.loadAccount();
  const reuse = stored?.directoryUrl === settings.directoryUrl ? stored : undefined;
  if (stored && !reuse) logger.info({ previous: stored.directoryUrl }, "ACME CA changed: registering a new account");
  const keyPem = reuse?.keyPem ?? newPrivateKeyPem();
  const client = new acme.Client({
    directoryUrl: settings.directoryUrl,
    accountKey: keyPem,
    ...(reuse?.url ? { accountUrl: reuse.url } : {}),
    ...(settings.externalAccountBinding ? { externalAccountBinding: { ...settings.externalAccountBinding } } : {}),
    backoffAttempts: 30,
    backoffMin: 1_000,
    backoffMax: 5_000,
  });
  if (reuse?.url) return client;
  // Saved before registering: a crash in between must not register a second account next time.
  if (!reuse) await store.saveAccount({ directoryUrl: settings.directoryUrl, keyPem });
  try {
    await client.createAccount({
      termsOfServiceAgreed: true,
      ...(settings.email ? { contact: [`mailto:${settings.email}`] } : {}),
    });
  } catch (error) {
    throw explain(error, settings, "the ACME CA refused to register the account", eabHint(settings));
  }
  const account: StoredAccount = { directoryUrl: settings.directoryUrl, keyPem, url: client.getAccountUrl() };
  await store.saveAccount(account);
  logger.info({ account: account.url }, "ACME account registered");
  return client;
}

function eabHint(settings: OrderSettings): string {
  return settings.externalAccountBinding
    ? "check the external account binding (key ID and HMAC key) the CA gave you"
    : "if the CA requires external account binding, set its key ID and HMAC key";
}

/** Places one order and sees it through; the caller has already counted it against the limit. */
export async function placeOrder(
  client: acme.Client,
  settings: OrderSettings,
  answers: ChallengeAnswers,
  logger: Logger,
  /** ARI identifier of the certificate this order renews. */
  replaces?: string,
): Promise<StoredCertificate> {
  const identifiers = settings.domains.map((value) => ({ type: "dns", value }));
  const request: OrderRequest = { identifiers, ...(settings.profile ? { profile: settings.profile } : {}) };
  const replacing: OrderRequest = replaces ? { ...request, replaces } : request;
  let order: acme.Order;
  try {
    // An ARI renewal names the certificate it replaces: Let's Encrypt exempts such orders from
    // its rate limits. A CA that refuses the reference (already replaced, unknown to it) still
    // gets a plain order.
    order = await client.createOrder(replacing).catch(async (error: unknown) => {
      if (!replaces) throw error;
      logger.warn({ err: (error as Error).message }, "the CA refused the ARI replacement order; ordering without it");
      return client.createOrder(request);
    });
  } catch (error) {
    throw explain(error, settings, `the ACME CA refused the order for ${settings.domains.join(", ")}`, "see the CA's reason above");
  }
  const authorizations = await client.getAuthorizations(order);
  for (const authz of authorizations) {
    if (authz.status === "valid") continue;
    const name = authz.identifier.value;
    const challenge = authz.challenges.find((candidate) => candidate.type === settings.challenge);
    if (!challenge) {
      throw new AcmeIssueError(
        `the ACME CA offers no ${settings.challenge} challenge for ${name} (offered: ${authz.challenges.map((c) => c.type).join(", ")}); ` +
          "set the operator's ACME challenge (acme.challenge) to one it offers: this proxy answers http-01 and tls-alpn-01",
      );
    }
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    const token = (challenge as { token?: string }).token ?? "";
    const domain = name.toLowerCase();
    if (settings.challenge === "http-01") {
      answers.http.set(token, keyAuthorization);
    } else {
      answers.alpn.set(domain, await alpnChallengeCertificate(authz, keyAuthorization));
    }
    try {
      logger.info({ domain: name, challenge: settings.challenge }, `answering the ACME ${settings.challenge} challenge`);
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    } catch (error) {
      throw explain(error, settings, `the ACME CA could not validate ${name}`, unreachableHint(settings.challenge, name));
    } finally {
      answers.http.delete(token);
      answers.alpn.delete(domain);
    }
  }
  const keyPem = newPrivateKeyPem();
  const [, csr] = await acme.crypto.createCsr({ commonName: settings.domains[0] ?? "", altNames: [...settings.domains] }, keyPem);
  try {
    const finalized = await client.finalizeOrder(order, csr);
    const certPem = await client.getCertificate(finalized);
    return { directoryUrl: settings.directoryUrl, certPem, keyPem };
  } catch (error) {
    throw explain(error, settings, `the ACME CA did not issue the certificate for ${settings.domains.join(", ")}`, "see the CA's reason above");
  }
}

function unreachableHint(challenge: ChallengeType, name: string): string {
  const where =
    challenge === "http-01"
      ? `http://${name}/.well-known/acme-challenge/ on port 80 of this proxy`
      : `${name} on port 443 of this proxy (a TLS handshake with ALPN "acme-tls/1")`;
  return (
    `the CA must reach ${where}: it must resolve ${name} to the proxy's tailnet address ` +
    "and be able to connect to it over the tailnet"
  );
}

function explain(error: unknown, settings: OrderSettings, what: string, hint: string): AcmeIssueError {
  const transport = describeTransportError(error, settings.directoryUrl);
  if (transport) return new AcmeIssueError(transport, { cause: error });
  // acme-client loses the transport error when every retry fails to connect (it then reads
  // .config of an undefined response): the CA went away in the middle of an order.
  if (error instanceof TypeError && /reading 'config'/.test(error.message)) {
    return new AcmeIssueError(`lost the connection to the ACME CA at ${settings.directoryUrl} during the order: check that it is up and reachable`, {
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new AcmeIssueError(`${what}: ${detail}; ${hint}`, { cause: error });
}
