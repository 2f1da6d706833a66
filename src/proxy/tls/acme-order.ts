// One ACME order from account to certificate (RFC 8555 through acme-client): register or reuse
// the account, place the order, answer HTTP-01, finalize with a fresh key, download the chain.
// Failures come out as AcmeIssueError with the CA's own problem detail and what to check.
import { generateKeyPairSync } from "node:crypto";
import acme from "acme-client";
import type { Logger } from "../log.ts";
import type { CertificateStore, StoredAccount, StoredCertificate } from "./certificate-store.ts";
import { describeTransportError } from "./acme-http.ts";

export interface OrderSettings {
  readonly directoryUrl: string;
  readonly domains: readonly string[];
  readonly email?: string | undefined;
  readonly externalAccountBinding?: { readonly kid: string; readonly hmacKey: string } | undefined;
  /** ACME profile (draft-ietf-acme-profiles) to ask for, when the CA offers it. */
  readonly profile?: string | undefined;
}

export class AcmeIssueError extends Error {
  override readonly name = "AcmeIssueError";
}

/** newOrder's body with the profiles (draft-ietf-acme-profiles) and ARI (RFC 9773) fields. */
type OrderRequest = Parameters<acme.Client["createOrder"]>[0] & { profile?: string; replaces?: string };

/** Pending HTTP-01 answers, token -> key authorization, read by the port-80 server. */
export type ChallengeAnswers = Map<string, string>;

export function newPrivateKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
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
    const challenge = authz.challenges.find((candidate) => candidate.type === "http-01");
    if (!challenge) {
      throw new AcmeIssueError(
        `the ACME CA offers no http-01 challenge for ${name} (offered: ${authz.challenges.map((c) => c.type).join(", ")}); ` +
          "this proxy can only answer http-01",
      );
    }
    const token = (challenge as { token?: string }).token ?? "";
    answers.set(token, await client.getChallengeKeyAuthorization(challenge));
    try {
      logger.info({ domain: name }, "answering the ACME http-01 challenge");
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    } catch (error) {
      throw explain(
        error,
        settings,
        `the ACME CA could not validate ${name}`,
        `the CA must reach http://${name}/.well-known/acme-challenge/ on port 80 of this proxy: ` +
          `it must resolve ${name} to the proxy's tailnet address and be able to connect to it over the tailnet`,
      );
    } finally {
      answers.delete(token);
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
