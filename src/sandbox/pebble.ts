// Pebble, Let's Encrypt's ACME test CA, as a device on the sandbox tailnet: it runs in the
// namespace of a joined tailscaled and validates challenges for real, resolving the names it is
// asked to certify through MagicDNS (tailscaled's 100.100.100.100) and connecting to them over
// the tailnet. Its own HTTPS certificate comes from a sandbox CA (pki.ts); the roots it issues
// under are served by its management API.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { startAndAwait } from "./started-process.ts";
import { httpGet } from "./https-probe.ts";
import { createCa, issueServingCert } from "./pki.ts";
import type { TailnetDevice } from "./tailnet-device.ts";

export const PEBBLE_ACME_PORT = 14000;
export const PEBBLE_MANAGEMENT_PORT = 15000;
/** tailscaled's MagicDNS resolver, reachable from inside the device's namespace. */
const MAGICDNS_RESOLVER = "100.100.100.100:53";

export interface PebbleOptions {
  readonly runner: CommandRunner;
  readonly binary: string;
  /** The joined tailnet device Pebble runs beside (in its namespace). */
  readonly device: TailnetDevice;
  readonly dir: string;
  /**
   * Certificate profiles (ACME profiles extension) and their validity in seconds; "default" is
   * used by orders that name none. Default: one 90-day profile.
   */
  readonly profiles?: Readonly<Record<string, number>>;
  /** External account binding keys (kid -> base64url HMAC key); when given, EAB is required. */
  readonly externalAccountKeys?: Readonly<Record<string, string>>;
}

export class PebbleCa {
  /** ACME directory by the device's tailnet IPv4 address (what clients on the tailnet use). */
  readonly directoryUrl: string;
  /** The CA certificate (PEM) that Pebble's own HTTPS endpoints are signed by. */
  readonly apiCaPem: string;
  /** Management API (roots, ARI overrides) on the device's bridge address, for the harness. */
  readonly managementUrl: string;
  private readonly proc: ManagedProcess;

  private constructor(directoryUrl: string, apiCaPem: string, managementUrl: string, proc: ManagedProcess) {
    this.directoryUrl = directoryUrl;
    this.apiCaPem = apiCaPem;
    this.managementUrl = managementUrl;
    this.proc = proc;
  }

  static async start(options: PebbleOptions): Promise<PebbleCa> {
    await mkdir(options.dir, { recursive: true });
    const status = await options.device.status();
    const tailnetIps = status.tailscaleIps;
    const tailnetIp = tailnetIps.find((ip) => !ip.includes(":"));
    if (!tailnetIp) throw new Error(`pebble: device ${options.device.hostname} has no tailnet IPv4 address`);
    const host = options.device.host;
    const ca = await createCa(options.runner, options.dir, "pebble");
    const serving = await issueServingCert(options.runner, ca, options.dir, "pebble", {
      ips: [...tailnetIps, host.address, host.address6],
      dns: [status.dnsName.replace(/\.$/, ""), "localhost"],
    });
    const keys = options.externalAccountKeys ?? {};
    const profiles = Object.fromEntries(
      Object.entries(options.profiles ?? { default: 90 * 24 * 3600 }).map(([name, seconds]) => [
        name,
        { description: `sandbox profile ${name} (${seconds} s)`, validityPeriod: seconds },
      ]),
    );
    const config = {
      pebble: {
        listenAddress: `:${PEBBLE_ACME_PORT}`,
        managementListenAddress: `:${PEBBLE_MANAGEMENT_PORT}`,
        certificate: serving.cert,
        privateKey: serving.key,
        // Challenges are validated on the standard ports, as a public CA does.
        httpPort: 80,
        tlsPort: 443,
        ocspResponderURL: "",
        externalAccountBindingRequired: Object.keys(keys).length > 0,
        externalAccountMACKeys: keys,
        retryAfter: { authz: 1, order: 1 },
        keyAlgorithm: "ecdsa",
        profiles,
      },
    };
    const configFile = join(options.dir, "pebble-config.json");
    await writeFile(configFile, JSON.stringify(config, null, 2));
    const apiCaPem = await readFile(ca.cert, "utf8");
    const managementUrl = `https://${host.address}:${PEBBLE_MANAGEMENT_PORT}`;
    const proc = await startAndAwait(
      {
        name: "pebble",
        logFile: join(options.dir, "pebble.log"),
        env: {
          PATH: process.env["PATH"] ?? "/usr/bin:/bin",
          // No random 0-5 s sleep before each validation (the validation itself stays real).
          PEBBLE_VA_NOSLEEP: "1",
          // Every order validates its challenges: no reuse of an earlier valid authorization.
          PEBBLE_AUTHZREUSE: "0",
        },
        argv: options.device.exec([options.binary, "-config", configFile, "-dnsserver", MAGICDNS_RESOLVER]),
      },
      async () => (await httpGet(`${managementUrl}/roots/0`, { ca: apiCaPem })).status === 200,
      20_000,
    );
    return new PebbleCa(`https://${tailnetIp}:${PEBBLE_ACME_PORT}/dir`, apiCaPem, managementUrl, proc);
  }

  /** The root the issued certificates chain to (PEM): what clients of the proxies trust. */
  async rootPem(): Promise<string> {
    const response = await httpGet(`${this.managementUrl}/roots/0`, { ca: this.apiCaPem });
    if (response.status !== 200) throw new Error(`pebble: GET /roots/0 gave HTTP ${response.status}`);
    return response.body;
  }

  /** Pebble's whole log (it logs each order, validation and issuance). */
  async log(): Promise<string> {
    return this.proc.logFile === undefined ? "" : readFile(this.proc.logFile, "utf8");
  }

  /** Serials (lowercase hex, no leading zeros) of every certificate Pebble has issued, in order. */
  async issuedSerials(): Promise<string[]> {
    const log = await this.log();
    return [...log.matchAll(/Issued certificate serial ([0-9a-f]+) for order/gi)].map((match) =>
      (match[1] ?? "").toLowerCase().replace(/^0+/, ""),
    );
  }

  logTail(lines = 30): string {
    return this.proc.logTail(lines);
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}
