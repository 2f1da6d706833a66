// Test-side access to the run's sandbox: attach once per file, stop what the file created.
import { after } from "node:test";
import { Sandbox } from "../../src/sandbox/sandbox.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";
import type { TailnetDevice } from "../../src/sandbox/tailnet-device.ts";

export async function attachSandbox(): Promise<Sandbox> {
  const sandbox = await Sandbox.attach();
  after(() => sandbox.stop());
  return sandbox;
}

/** Fetches a URL from inside a tailnet device, resolving names through MagicDNS. */
export async function fetchFromDevice(sandbox: Sandbox, device: TailnetDevice, url: string): Promise<string> {
  const { stdout } = await sandbox.runner.run(device.exec(nodeToolArgv("tailnet-client.ts", ["get", url])), { timeoutMs: 20_000 });
  return stdout;
}

export async function resolveFromDevice(sandbox: Sandbox, device: TailnetDevice, name: string): Promise<string[]> {
  const { stdout } = await sandbox.runner.run(device.exec(nodeToolArgv("tailnet-client.ts", ["resolve", name])), { timeoutMs: 20_000 });
  return stdout.trim().split("\n");
}
