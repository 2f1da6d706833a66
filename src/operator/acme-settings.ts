// The operator's ACME settings (ADR 0015): with a directory URL configured, Ingresses without a
// TLS Secret get their certificates from that CA, ordered by their proxies. The operator only
// validates the settings and hands them to each proxy in its ingress Secret; the HMAC key of an
// external account binding is read from a file and never logged.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { AcmeSettings } from "../shared/ingress-config.ts";

const orders = (fallback: number, what: string) => z.coerce.number().int().min(1).max(1000).default(fallback).describe(what);

export const acmeEnvShape = {
  ACME_DIRECTORY_URL: z.url({ protocol: /^https$/ }).optional().describe("ACME: directory URL of the CA (https://...); set, Ingresses without a TLS Secret get certificates from it"),
  ACME_CA_BUNDLE_FILE: z.string().optional().describe("ACME: PEM file of CA certificates trusted for the ACME CA's own HTTPS (a private CA), besides the public roots"),
  ACME_EMAIL: z.email().optional().describe("ACME: contact email of the proxies' accounts"),
  ACME_EAB_KEY_ID: z.string().min(1).optional().describe("ACME: external account binding key ID (CAs that require EAB)"),
  ACME_EAB_HMAC_KEY_FILE: z.string().optional().describe("ACME: file holding the external account binding's HMAC key (base64url)"),
  ACME_CHALLENGE: z.enum(["http-01", "tls-alpn-01"]).default("http-01").describe("ACME: how proxies prove control of their names: http-01 (port 80) or tls-alpn-01 (port 443, for CAs or networks without port 80)"),
  ACME_PROFILE: z.string().regex(/^[A-Za-z0-9._-]+$/, "must be a profile name like shortlived").optional().describe("ACME: certificate profile to order (the CA must offer it)"),
  ACME_MAX_ORDERS_PER_HOUR: orders(3, "ACME: orders each proxy may place per hour (counted across restarts)"),
  ACME_MAX_ORDERS_PER_WEEK: orders(5, "ACME: orders each proxy may place per week (counted across restarts)"),
} as const;

type AcmeEnv = z.infer<z.ZodObject<typeof acmeEnvShape>>;

/** What is inconsistent in the ACME settings, or undefined. */
export function acmeConfigProblem(env: AcmeEnv): string | undefined {
  const dependent = (["ACME_CA_BUNDLE_FILE", "ACME_EMAIL", "ACME_EAB_KEY_ID", "ACME_EAB_HMAC_KEY_FILE", "ACME_PROFILE"] as const).filter((k) => env[k] !== undefined);
  if (!env.ACME_DIRECTORY_URL && dependent.length > 0) return `${dependent.join(", ")} set without ACME_DIRECTORY_URL`;
  if ((env.ACME_EAB_KEY_ID === undefined) !== (env.ACME_EAB_HMAC_KEY_FILE === undefined)) return "ACME_EAB_KEY_ID and ACME_EAB_HMAC_KEY_FILE go together (the external account binding needs both)";
  if (env.ACME_MAX_ORDERS_PER_WEEK < env.ACME_MAX_ORDERS_PER_HOUR) return "ACME_MAX_ORDERS_PER_WEEK must be at least ACME_MAX_ORDERS_PER_HOUR";
  return undefined;
}

export interface OperatorAcme {
  readonly settings: AcmeSettings;
  /** The EAB HMAC key: written only into the proxies' ingress Secrets. */
  readonly eabHmacKey: string | undefined;
}

/** Reads the files the settings name; throws naming the file (never its content). */
export function loadAcme(env: AcmeEnv, read: (path: string) => string = (path) => readFileSync(path, "utf8")): OperatorAcme | undefined {
  if (!env.ACME_DIRECTORY_URL) return undefined;
  const file = (path: string, what: string): string => {
    try {
      const text = read(path).trim();
      if (!text) throw new Error("file is empty");
      return text;
    } catch (error) {
      throw new Error(`cannot read ${what} from ${path}: ${(error as Error).message}`);
    }
  };
  let caBundlePem: string | undefined;
  if (env.ACME_CA_BUNDLE_FILE) {
    caBundlePem = file(env.ACME_CA_BUNDLE_FILE, "the ACME CA bundle");
    const blocks = caBundlePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new Error(`the ACME CA bundle ${env.ACME_CA_BUNDLE_FILE} holds no PEM certificate`);
    blocks.forEach((block, index) => {
      try {
        new X509Certificate(block);
      } catch (error) {
        throw new Error(`the ACME CA bundle ${env.ACME_CA_BUNDLE_FILE}: certificate #${index + 1} does not parse: ${(error as Error).message}`);
      }
    });
  }
  const eabHmacKey = env.ACME_EAB_HMAC_KEY_FILE ? file(env.ACME_EAB_HMAC_KEY_FILE, "the ACME EAB HMAC key") : undefined;
  const settings: AcmeSettings = {
    directoryUrl: env.ACME_DIRECTORY_URL,
    maxOrdersPerHour: env.ACME_MAX_ORDERS_PER_HOUR,
    maxOrdersPerWeek: env.ACME_MAX_ORDERS_PER_WEEK,
    // Written only when not the default, so proxies' ingress Secrets stay as they were.
    ...(env.ACME_CHALLENGE === "http-01" ? {} : { challenge: env.ACME_CHALLENGE }),
    ...(caBundlePem ? { caBundlePem } : {}),
    ...(env.ACME_EMAIL ? { email: env.ACME_EMAIL } : {}),
    ...(env.ACME_EAB_KEY_ID ? { eabKeyId: env.ACME_EAB_KEY_ID } : {}),
    ...(env.ACME_PROFILE ? { profile: env.ACME_PROFILE } : {}),
  };
  return { settings, eabHmacKey };
}
