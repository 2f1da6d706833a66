// An ACME CA for the Ingress proxies' certificates, the way the sandbox offers one: Pebble
// (pebble.ts) on a tailnet device of its own, its issuing root in a file that tailnet clients
// verify the proxies' certificates with, and the chart's acme.* values that point the operator
// at it. One setup for the ACME tests, the demo and the Ingress bench.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { resolvePebble } from "./binaries.ts";
import type { Values } from "./operator-install.ts";
import { PebbleCa } from "./pebble.ts";
import type { Sandbox } from "./sandbox.ts";
import type { TailnetDevice } from "./tailnet-device.ts";

export interface TailnetAcmeCa {
  readonly device: TailnetDevice;
  readonly pebble: PebbleCa;
  /** Pebble's issuing root (PEM): what a tailnet client trusts to verify a proxy's certificate. */
  readonly rootFile: string;
}

export interface TailnetAcmeCaOptions {
  /** The CA device's hostname: one of its own, as MagicDNS names stay with their first device. */
  readonly hostname: string;
  /** Pebble's files go to dir/pebble, the issuing root to dir/pebble-root.pem. */
  readonly dir: string;
  /** Certificate profiles and their validity in seconds (PebbleOptions.profiles). */
  readonly profiles?: Readonly<Record<string, number>>;
}

export async function startTailnetAcmeCa(sandbox: Sandbox, options: TailnetAcmeCaOptions): Promise<TailnetAcmeCa> {
  await mkdir(options.dir, { recursive: true });
  const device = await sandbox.addDevice(options.hostname, { tags: ["tag:test"] });
  const pebble = sandbox.track(
    await PebbleCa.start({
      runner: sandbox.runner,
      binary: resolvePebble(),
      device,
      dir: join(options.dir, "pebble"),
      ...(options.profiles === undefined ? {} : { profiles: options.profiles }),
    }),
  );
  const rootFile = join(options.dir, "pebble-root.pem");
  await writeFile(rootFile, await pebble.rootPem());
  return { device, pebble, rootFile };
}

/**
 * The chart's `acme` block for this CA: its directory, the bundle its own HTTPS is signed by, a
 * contact address; overrides add a profile or limits, or point the directory elsewhere.
 */
export function acmeChartValues(pebble: PebbleCa, overrides: Values = {}): Values {
  return { directoryUrl: pebble.directoryUrl, caBundle: pebble.apiCaPem, email: "ops@example.com", ...overrides };
}
