// Installs tailnet-operator into the sandbox cluster the way a user does: `helm upgrade --install`
// of deploy/chart with the locally built images (already in the node's containerd under the
// chart's default references), Headscale as the control plane, and proxy settings that keep
// tailscaled offline-safe. Helm's own files stay in the run directory.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import type { CommandResult } from "../shared/exec.ts";
import { binCacheDir, readPins } from "./binaries.ts";
import type { Sandbox } from "./sandbox.ts";
import { OFFLINE_TAILSCALED_KNOBS } from "./tailscaled-env.ts";

export const CHART_DIR = fileURLToPath(new URL("../../deploy/chart/tailnet-operator", import.meta.url));
export const OPERATOR_NAMESPACE = "tailscale";
export const RELEASE = "tailnet-operator";

/** Chart values, as YAML would give them. */
export type Values = Record<string, unknown>;

export function helmBinary(): string {
  return join(binCacheDir(), `helm-${readPins()["HELM_VERSION"] ?? ""}`, "helm");
}

/** Helm, pointed at the sandbox cluster, with its cache and config in the run directory. */
export class SandboxHelm {
  private readonly sandbox: Sandbox;
  private readonly home: string;

  constructor(sandbox: Sandbox) {
    this.sandbox = sandbox;
    this.home = join(sandbox.run.dir, "helm");
  }

  async run(args: readonly string[], timeoutMs = 300_000): Promise<CommandResult> {
    await mkdir(this.home, { recursive: true });
    return this.sandbox.runner.run([helmBinary(), "--kubeconfig", this.sandbox.kube.adminKubeconfig, ...args], {
      timeoutMs,
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        HOME: this.home,
        HELM_CACHE_HOME: join(this.home, "cache"),
        HELM_CONFIG_HOME: join(this.home, "config"),
        HELM_DATA_HOME: join(this.home, "data"),
      },
    });
  }

  /** Writes values to a file (never on the command line: they hold the API key). */
  async valuesFile(name: string, values: Values): Promise<string> {
    const file = join(this.home, `${name}.values.yaml`);
    await mkdir(this.home, { recursive: true });
    await writeFile(file, stringify(values), { mode: 0o600 });
    return file;
  }
}

/** Values for the sandbox: Headscale, a fresh API key, offline knobs for every proxy. */
export async function sandboxValues(sandbox: Sandbox, overrides: Values = {}): Promise<Values> {
  const apiKey = await sandbox.headscaleAdmin.createApiKey();
  return deepMerge(
    {
      controlPlane: { type: "headscale", loginServer: sandbox.headscale.url, headscale: { apiKey } },
      proxy: { env: OFFLINE_TAILSCALED_KNOBS },
      // One core per replica is not there to spare on a 2-core machine; requests stay small.
      resources: { requests: { cpu: "10m", memory: "64Mi" } },
    },
    overrides,
  );
}

export interface InstallOptions {
  readonly values?: Values;
  readonly namespace?: string;
  readonly release?: string;
}

/**
 * `helm upgrade --install --wait` of the chart; the namespace is created first with the Pod
 * Security label the proxies need, as docs/install.md tells users to.
 */
export async function installOperator(sandbox: Sandbox, options: InstallOptions = {}): Promise<CommandResult> {
  const namespace = options.namespace ?? OPERATOR_NAMESPACE;
  const helm = new SandboxHelm(sandbox);
  const objects = KubernetesObjectApi.makeApiClient(sandbox.kubeConfig());
  const ns = { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: { "pod-security.kubernetes.io/enforce": "privileged" } } };
  await objects.patch(ns, undefined, undefined, "sandbox", true, PatchStrategy.ServerSideApply);
  const values = await helm.valuesFile(options.release ?? RELEASE, await sandboxValues(sandbox, options.values));
  return helm.run(["upgrade", "--install", options.release ?? RELEASE, CHART_DIR, "-n", namespace, "-f", values, "--wait", "--timeout", "4m"]);
}

function deepMerge(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key];
    out[key] = isObject(prior) && isObject(value) ? deepMerge(prior, value) : value;
  }
  return out;
}

const isObject = (value: unknown): value is Values => typeof value === "object" && value !== null && !Array.isArray(value);
