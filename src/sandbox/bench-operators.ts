// The two operators of bench/operator-scale.ts, started the same way: as plain processes, each in
// a sandbox host namespace of its own on the hub bridge, with a kubeconfig of its own (a client
// certificate, so that the API server's audit log tells their requests apart). Ours runs the
// worktree's source with the chart's default settings and a compile cache, as its image does; Tailscale's is the binary built from the
// pinned module (scripts/build-bins.sh k8s_operator), pointed at the v2 API adapter over Headscale.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { ProcessRunner } from "../shared/exec.ts";
import type { ManagedProcess } from "../shared/process.ts";
import { startAndAwait } from "./started-process.ts";
import { binCacheDir, readPins } from "./binaries.ts";
import { httpGet } from "./https-probe.ts";
import type { SandboxHost } from "./network.ts";
import type { Sandbox } from "./sandbox.ts";
import { CHART_DIR } from "./operator-install.ts";
import { tailscaledEnvironment } from "./tailscaled-env.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** A loaded 2-core machine starts either in well under a minute; this is for the worst case. */
const START_TIMEOUT_MS = 300_000;

export interface BenchOperator {
  /** "ours" or "go": the key of its figures. */
  readonly key: "ours" | "go";
  readonly label: string;
  /** Its namespace (where its proxies' objects go) and its API user (for the audit log). */
  readonly namespace: string;
  readonly user: string;
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

export function goOperatorDir(): string {
  const dir = join(binCacheDir(), `k8s-operator-${readPins()["TAILSCALE_VERSION"] ?? ""}`);
  if (!existsSync(join(dir, "k8s-operator"))) throw new Error(`${dir}/k8s-operator is missing; build it with BUILD_ONLY=k8s_operator scripts/build-bins.sh`);
  return dir;
}

/** The Go operator's CRDs (it watches ProxyClass, ProxyGroup, ...; they must exist before it starts). */
export function goOperatorCrds(): string[] {
  const dir = join(goOperatorDir(), "crds");
  if (!existsSync(dir)) throw new Error(`${dir} is missing; rebuild with BUILD_ONLY=k8s_operator scripts/build-bins.sh (remove the directory first)`);
  return readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort().map((f) => join(dir, f));
}

/** The chart's defaults for what shapes the operator's load: workers, client limits, heap limits. */
function chartDefaults(): { workers: number; qps: number; burst: number; maxOldSpaceSizeMiB: number; maxSemiSpaceSizeMiB: number; mallocArenaMax: number } {
  const values = parse(readFileSync(join(CHART_DIR, "values.yaml"), "utf8")) as {
    workers: number;
    kubeApi: { qps: number; burst: number };
    maxOldSpaceSizeMiB: number;
    maxSemiSpaceSizeMiB: number;
    mallocArenaMax: number;
  };
  const { workers, kubeApi, maxOldSpaceSizeMiB, maxSemiSpaceSizeMiB, mallocArenaMax } = values;
  return { workers, qps: kubeApi.qps, burst: kubeApi.burst, maxOldSpaceSizeMiB, maxSemiSpaceSizeMiB, mallocArenaMax };
}

interface StartOptions {
  readonly sandbox: Sandbox;
  readonly host: SandboxHost;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly user: string;
}

function benchOperator(key: BenchOperator["key"], label: string, options: StartOptions, proc: ManagedProcess): BenchOperator {
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`${label}: no PID`);
  return { key, label, namespace: options.namespace, user: options.user, pid, logFile: proc.logFile ?? "", stop: () => proc.stop(30_000).then(() => undefined) };
}

/**
 * Ours, as its Deployment runs it with one replica (no leader election), against Headscale's API.
 * nodeFlags go to node itself (e.g. --cpu-prof --cpu-prof-dir=...).
 */
export async function startOurOperator(options: StartOptions & { readonly nodeFlags?: readonly string[]; readonly env?: NodeJS.ProcessEnv }): Promise<BenchOperator> {
  await mkdir(options.dir, { recursive: true });
  const apiKeyFile = join(options.dir, "api-key");
  await writeFile(apiKeyFile, await options.sandbox.headscaleAdmin.createApiKey(), { mode: 0o600 });
  const chart = chartDefaults();
  const httpPort = 8081;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: options.dir,
    NODE_ENV: "production",
    NODE_OPTIONS: `--max-old-space-size=${String(chart.maxOldSpaceSizeMiB)} --max-semi-space-size=${String(chart.maxSemiSpaceSizeMiB)}`,
    MALLOC_ARENA_MAX: String(chart.mallocArenaMax),
    KUBECONFIG: options.kubeconfig,
    OPERATOR_NAMESPACE: options.namespace,
    LEADER_ELECTION: "false",
    CONTROL_PLANE: "headscale",
    OPERATOR_LOGIN_SERVER: options.sandbox.headscale.url,
    HEADSCALE_API_KEY_FILE: apiKeyFile,
    PROXY_IMAGE: "ghcr.io/tailnet-operator/proxy:bench",
    PROXY_TAGS: "tag:k8s",
    OPERATOR_WORKERS: String(chart.workers),
    KUBE_API_QPS: String(chart.qps),
    KUBE_API_BURST: String(chart.burst),
    OPERATOR_LOGGING: "info",
    OPERATOR_HTTP_ADDR: `${options.host.address}:${String(httpPort)}`,
    // As the image runs it: node's compile cache, filled below the way the image build fills it
    // (`--help`, images/operator/image.yaml), so that the operator never loads the TypeScript stripper.
    NODE_COMPILE_CACHE: join(options.dir, "compile-cache"),
    ...options.env,
  };
  const node = join(REPO, "node_modules", ".bin", "node");
  await new ProcessRunner().run([node, join(REPO, "bin", "tailnet-operator.js"), "--help"], { env });
  const proc = await startAndAwait(
    {
      name: "tailnet-operator (bench)",
      logFile: join(options.dir, "operator.log"),
      argv: options.host.namespace.exec([node, ...(options.nodeFlags ?? []), join(REPO, "bin", "tailnet-operator.js")]),
      env,
      cwd: options.dir,
    },
    async () => (await httpGet(`http://${options.host.address}:${String(httpPort)}/readyz`)).status === 200,
    START_TIMEOUT_MS,
  );
  return benchOperator("ours", "tailnet-operator", options, proc);
}

/** Tailscale's operator, its API and control URL the adapter's, its tsnet state on disk. */
export async function startGoOperator(options: StartOptions & { readonly adapterUrl: string; readonly clientId: string; readonly clientSecret: string }): Promise<BenchOperator> {
  await mkdir(options.dir, { recursive: true });
  await writeFile(join(options.dir, "client_id"), options.clientId, { mode: 0o600 });
  await writeFile(join(options.dir, "client_secret"), options.clientSecret, { mode: 0o600 });
  const logFile = join(options.dir, "operator.log");
  const env: NodeJS.ProcessEnv = {
    ...tailscaledEnvironment(),
    HOME: options.dir,
    // tsnet keeps its state under os.UserConfigDir() when no state Secret is named.
    XDG_CONFIG_HOME: join(options.dir, "config"),
    KUBECONFIG: options.kubeconfig,
    OPERATOR_NAMESPACE: options.namespace,
    OPERATOR_HOSTNAME: "bench-go-operator",
    OPERATOR_LOGIN_SERVER: options.adapterUrl,
    CLIENT_ID_FILE: join(options.dir, "client_id"),
    CLIENT_SECRET_FILE: join(options.dir, "client_secret"),
    OPERATOR_INITIAL_TAGS: "tag:k8s-operator",
    PROXY_TAGS: "tag:k8s",
    PROXY_IMAGE: "tailscale/tailscale:bench",
    OPERATOR_LOGGING: "info",
  };
  const proc = await startAndAwait(
    { name: "k8s-operator (bench)", logFile, argv: options.host.namespace.exec([join(goOperatorDir(), "k8s-operator")]), env, cwd: options.dir },
    // controller-runtime logs this once the Service controller's caches have synced.
    () => Promise.resolve(readFileSync(logFile, "utf8").split("\n").some((line) => line.includes("Starting workers") && line.includes("service-reconciler"))),
    START_TIMEOUT_MS,
  );
  return benchOperator("go", "Tailscale k8s-operator", options, proc);
}
