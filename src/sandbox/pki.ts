// Certificates and keys for the sandbox's kube-apiserver, made with the openssl CLI (Node's
// crypto can make keys but not X.509 certificates). EC P-256 keys keep generation fast.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { CommandRunner } from "../shared/exec.ts";

export interface ApiserverPki {
  readonly caCert: string;
  readonly caKey: string;
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
    caKey: path("ca.key"),
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

/** A client certificate from the sandbox CA: the API server maps CN to the user, O to groups. */
export interface ClientCert {
  readonly cert: string;
  readonly key: string;
}

export async function issueClientCert(
  runner: CommandRunner,
  pki: Pick<ApiserverPki, "caCert" | "caKey">,
  dir: string,
  name: string,
  subject: { commonName: string; organizations?: readonly string[] },
): Promise<ClientCert> {
  const path = (suffix: string): string => join(dir, `${name}${suffix}`);
  const out: ClientCert = { cert: path(".crt"), key: path(".key") };
  await runner.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out.key]);
  const subj = `${(subject.organizations ?? []).map((o) => `/O=${o}`).join("")}/CN=${subject.commonName}`;
  await runner.run(["openssl", "req", "-new", "-key", out.key, "-subj", subj, "-out", path(".csr")]);
  await writeFile(path(".ext"), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
  await runner.run([
    "openssl", "x509", "-req", "-in", path(".csr"), "-CA", pki.caCert, "-CAkey", pki.caKey,
    // A random serial: certificates are issued concurrently, and a shared serial file would race.
    "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", "30", "-extfile", path(".ext"), "-out", out.cert,
  ]);
  return out;
}

/** A CA of its own for a sandbox server that is not the API server (e.g. Pebble's HTTPS). */
export interface SandboxCa {
  readonly cert: string;
  readonly key: string;
}

export async function createCa(runner: CommandRunner, dir: string, name: string): Promise<SandboxCa> {
  const ca: SandboxCa = { cert: join(dir, `${name}-ca.crt`), key: join(dir, `${name}-ca.key`) };
  await runner.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca.key]);
  await runner.run([
    "openssl", "req", "-x509", "-new", "-key", ca.key, "-subj", `/CN=tailnet-operator-sandbox-${name}-ca`,
    "-days", "30", "-out", ca.cert,
  ]);
  return ca;
}

/** A serving certificate from a sandbox CA for the given names and addresses. */
export async function issueServingCert(
  runner: CommandRunner,
  ca: SandboxCa,
  dir: string,
  name: string,
  sans: { ips: readonly string[]; dns: readonly string[] },
): Promise<ClientCert> {
  const path = (suffix: string): string => join(dir, `${name}${suffix}`);
  const out: ClientCert = { cert: path(".crt"), key: path(".key") };
  await runner.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out.key]);
  await runner.run(["openssl", "req", "-new", "-key", out.key, "-subj", `/CN=${name}`, "-out", path(".csr")]);
  const altNames = [...sans.ips.map((ip) => `IP:${ip}`), ...sans.dns.map((dns) => `DNS:${dns}`)].join(",");
  await writeFile(
    path(".ext"),
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${altNames}\n`,
  );
  await runner.run([
    "openssl", "x509", "-req", "-in", path(".csr"), "-CA", ca.cert, "-CAkey", ca.key,
    "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", "30", "-extfile", path(".ext"), "-out", out.cert,
  ]);
  return out;
}
