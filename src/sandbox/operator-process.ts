// Runs the real tailnet-operator program against the sandbox: Headscale as its control plane,
// the sandbox API server through an admin kubeconfig, and proxy settings that keep tailscaled
// offline-safe. Used by the end-to-end tests and by make demo.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ManagedProcess } from "../shared/process.ts";
import { waitFor } from "../shared/clock.ts";
import type { Sandbox } from "./sandbox.ts";
import { httpGet } from "./https-probe.ts";
import { OFFLINE_TAILSCALED_KNOBS } from "./tailscaled-env.ts";

/** The proxies' tailscaled gets the same offline knobs as the sandbox's devices, via PROXY_ENV. */
const SANDBOX_PROXY_ENV = Object.entries(OFFLINE_TAILSCALED_KNOBS).map(([k, v]) => `${k}=${v}`).join(",");

export interface OperatorProcessOptions {
  readonly id: string;
  readonly httpPort: number;
  readonly extraEnv?: Readonly<Record<string, string>>;
}

export interface OperatorProcess {
  readonly process: ManagedProcess;
  readonly httpUrl: string;
  stop(): Promise<unknown>;
}

export async function startOperator(sandbox: Sandbox, options: OperatorProcessOptions): Promise<OperatorProcess> {
  const apiKeyFile = join(sandbox.run.dir, `operator-${options.id}.apikey`);
  await writeFile(apiKeyFile, await sandbox.headscaleAdmin.createApiKey(), { mode: 0o600 });
  const proc = ManagedProcess.start({
    name: `tailnet-operator ${options.id}`,
    logFile: join(sandbox.run.dir, `operator-${options.id}.log`),
    group: true,
    argv: [process.execPath, fileURLToPath(new URL("../../bin/tailnet-operator.js", import.meta.url))],
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      KUBECONFIG: sandbox.kube.adminKubeconfig,
      CONTROL_PLANE: "headscale",
      OPERATOR_LOGIN_SERVER: sandbox.headscale.url,
      HEADSCALE_API_KEY_FILE: apiKeyFile,
      PROXY_ENV: SANDBOX_PROXY_ENV,
      OPERATOR_HTTP_ADDR: `127.0.0.1:${options.httpPort}`,
      LEADER_ELECTION_ID: options.id,
      ...options.extraEnv,
    },
  });
  const httpUrl = `http://127.0.0.1:${options.httpPort}`;
  await waitFor(`operator ${options.id} to serve /healthz`, async () => {
    if (!proc.running) throw new Error(`operator exited:\n${proc.logTail()}`);
    return (await httpGet(`${httpUrl}/healthz`)).status === 200 ? true : undefined;
  }, { timeoutMs: 20_000 });
  return { process: proc, httpUrl, stop: () => proc.stop(15_000) };
}
