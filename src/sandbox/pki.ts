// Certificates and keys for the sandbox's kube-apiserver, made with the openssl CLI (Node's
// crypto can make keys but not X.509 certificates). EC P-256 keys keep generation fast.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";

export interface ApiserverPki {
  readonly caCert: string;
  readonly servingCert: string;
  readonly servingKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
}

export async function createApiserverPki(
  runner: CommandRunner,
  dir: string,
  sans: { ips: readonly string[]; dns: readonly string[] },
): Promise<ApiserverPki> {
  const path = (name: string): string => join(dir, name);
  const pki: ApiserverPki = {
    caCert: path("ca.crt"),
    servingCert: path("apiserver.crt"),
    servingKey: path("apiserver.key"),
    serviceAccountKey: path("sa.key"),
    serviceAccountPub: path("sa.pub"),
  };
  const ecKey = (out: string): string[] => ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out];
  await Promise.all([
    runner.run(ecKey(path("ca.key"))),
    runner.run(ecKey(pki.servingKey)),
    runner.run(ecKey(pki.serviceAccountKey)),
  ]);
  await runner.run(["openssl", "pkey", "-in", pki.serviceAccountKey, "-pubout", "-out", pki.serviceAccountPub]);
  await runner.run([
    "openssl", "req", "-x509", "-new", "-key", path("ca.key"), "-subj", "/CN=tailnet-operator-sandbox-ca",
    "-days", "30", "-out", pki.caCert,
  ]);
  const altNames = [...sans.ips.map((ip) => `IP:${ip}`), ...sans.dns.map((name) => `DNS:${name}`)].join(",");
  await writeFile(
    path("apiserver.ext"),
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${altNames}\n`,
  );
  await runner.run(["openssl", "req", "-new", "-key", pki.servingKey, "-subj", "/CN=kube-apiserver", "-out", path("apiserver.csr")]);
  await runner.run([
    "openssl", "x509", "-req", "-in", path("apiserver.csr"), "-CA", pki.caCert, "-CAkey", path("ca.key"),
    "-CAcreateserial", "-days", "30", "-extfile", path("apiserver.ext"), "-out", pki.servingCert,
  ]);
  return pki;
}
