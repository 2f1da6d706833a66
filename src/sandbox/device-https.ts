// A verified HTTPS GET from inside a tailnet device (tools/https-client.ts): the name resolves
// through the device's MagicDNS and the served certificate must chain to the given root, as a
// user's laptop would see it.
import type { CommandRunner } from "../shared/exec.ts";
import type { TailnetDevice } from "./tailnet-device.ts";
import { nodeToolArgv } from "./tools.ts";

export interface DeviceHttpsAnswer {
  readonly status: number;
  readonly body: string;
  /** The served certificate's serial: lower-case hex without leading zeros, as Pebble logs it. */
  readonly serial: string;
}

export async function httpsFromDevice(runner: CommandRunner, device: TailnetDevice, url: string, caFile: string): Promise<DeviceHttpsAnswer> {
  const { stdout } = await runner.run(device.exec(nodeToolArgv("https-client.ts", ["get", url, "--ca", caFile])), { timeoutMs: 20_000 });
  const answer = JSON.parse(stdout) as { status: number; body: string; serial?: string };
  // OpenSSL gives serials in upper case with leading zeros.
  return { status: answer.status, body: answer.body, serial: (answer.serial ?? "").toLowerCase().replace(/^0+/, "") };
}
