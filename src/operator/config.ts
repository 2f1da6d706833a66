// The operator's configuration: environment variables (the Tailscale operator's names where it
// has them), each also settable as a flag (--proxy-tags=... for PROXY_TAGS). Validated once, at
// start; a bad value stops the operator with one message naming every problem.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";
import { FIREWALL_MODES } from "../proxy/firewall/select.ts";
import { projectVersion } from "../shared/cli-info.ts";
import { validateTiming, type LeaderElectionTiming } from "../runtime/leader-election.ts";
import { acmeEnvShape, acmeConfigProblem } from "./acme-settings.ts";

const bool = z.enum(["true", "false"]).transform((v) => v === "true");
const keyValues = z
  .string()
  .transform((value) => Object.fromEntries(value.split(",").map((kv) => kv.trim()).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])))
  .refine((env) => Object.keys(env).every((k) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k)), "must be KEY=VALUE pairs separated by commas");

export const PROXY_FORWARDING_MODES = ["init-container", "pod-sysctls"] as const;
export type ProxyForwarding = (typeof PROXY_FORWARDING_MODES)[number];

const quantities = z.partialRecord(z.enum(["cpu", "memory", "ephemeral-storage"]), z.string().regex(/^[0-9.]+[a-zA-Z]*$/, "must be a quantity like 10m or 64Mi"));
/** Container resources as the Kubernetes API spells them, given as JSON. */
const resources = z
  .string()
  .transform((value, ctx) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be JSON" });
      return z.NEVER;
    }
  })
  .pipe(z.strictObject({ requests: quantities.optional(), limits: quantities.optional() }))
  // The API's shape: absent, not undefined, sections and quantities.
  .transform((r) => JSON.parse(JSON.stringify(r)) as { requests?: Record<string, string>; limits?: Record<string, string> });
/** Measured on a proxy pod serving a Service (docs/proxy.md, bench/proxy-footprint.ts): working set 32 MiB at rest, plus headroom for traffic. */
const DEFAULT_PROXY_RESOURCES = { requests: { cpu: "10m", memory: "64Mi" } };

export const operatorEnvSchema = z.object({
  OPERATOR_NAMESPACE: z.string().min(1).default("tailscale").describe("namespace of the operator and of every proxy"),
  OPERATOR_LOGIN_SERVER: z.url().optional().describe("control server URL: Headscale's, or a custom one for Tailscale (also the proxies' --login-server)"),
  CONTROL_PLANE: z.enum(["tailscale", "headscale"]).default("tailscale").describe("which control-plane API to use"),
  CLIENT_ID_FILE: z.string().optional().describe("tailscale: file holding the OAuth client ID"),
  CLIENT_SECRET_FILE: z.string().optional().describe("tailscale: file holding the OAuth client secret"),
  TAILSCALE_API_URL: z.url().default("https://api.tailscale.com").describe("tailscale: API base URL"),
  HEADSCALE_API_KEY_FILE: z.string().optional().describe("headscale: file holding an API key"),
  PROXY_IMAGE: z.string().default(`ghcr.io/tailnet-operator/proxy:${projectVersion()}`).describe("image of the proxy pods (a fully qualified reference)"),
  PROXY_TAGS: z.string().default("tag:k8s").describe("default tags of proxies (comma-separated); tailscale.com/tags overrides"),
  PROXY_FIREWALL_MODE: z.enum(FIREWALL_MODES).default("auto").describe("firewall backend of the proxies"),
  PROXY_ENV: keyValues.default({}).describe("extra environment for proxy containers, KEY=VALUE,..."),
  PROXY_FORWARDING: z
    .enum(PROXY_FORWARDING_MODES)
    .default("init-container")
    .describe("how proxies turn on IP forwarding: init-container (a privileged init container; any kubelet) or pod-sysctls (no privileged container; the kubelet must allow the forwarding sysctls)"),
  PROXY_RESOURCES: resources.default(DEFAULT_PROXY_RESOURCES).describe("resources of the proxy container, as JSON ({\"requests\":{\"memory\":\"64Mi\"}})"),
  OPERATOR_DEFAULT_LOAD_BALANCER: bool.default(false).describe("also claim LoadBalancer Services with no loadBalancerClass"),
  OPERATOR_DEPLOYMENT: z
    .string()
    .optional()
    .describe("the operator's own Deployment: uninstall scales it to zero first (so that it does not re-create what uninstall removes); Events about the API server proxy are recorded on it"),
  APISERVER_PROXY: z
    .enum(["false", "true", "auth", "noauth"])
    .default("false")
    .transform((v) => (v === "true" ? "auth" : v))
    .describe("API server proxy on the tailnet: false, auth (tailnet identities impersonated; `true` means the same, as in Tailscale's operator) or noauth (callers' own credentials pass)"),
  APISERVER_PROXY_HOSTNAME: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "must be a DNS label")
    .default("tailscale-operator")
    .describe("API server proxy: its device's hostname (its MagicDNS name is <hostname>.<tailnet domain>)"),
  APISERVER_PROXY_TAGS: z.string().optional().describe("API server proxy: its device's tags (comma-separated); PROXY_TAGS when unset"),
  APISERVER_PROXY_TLS_SECRET: z.string().optional().describe("API server proxy: a kubernetes.io/tls Secret in the operator's namespace to serve HTTPS with (else the control plane's certificate)"),
  APISERVER_PROXY_HTTP: bool.default(false).describe("API server proxy: serve plain HTTP on port 80 instead of HTTPS (the tailnet's WireGuard still encrypts the traffic)"),
  APISERVER_PROXY_SERVICE_ACCOUNT: z
    .string()
    .optional()
    .describe("API server proxy: the ServiceAccount (in the operator's namespace) it runs as; needed for auth, where it must be allowed to impersonate users and groups and nothing else"),
  OPERATOR_LOGGING: z.enum(["debug", "info", "warn", "error"]).default("info").describe("log level"),
  CLUSTER_DOMAIN: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, "must be a DNS name like cluster.local")
    .optional()
    .describe("the cluster's DNS domain, for egress Services' ExternalName; read from /etc/resolv.conf when unset, else cluster.local"),
  OPERATOR_HTTP_ADDR: z.string().default("[::]:8081").describe("address:port for /healthz, /readyz and /metrics"),
  KUBE_API_QPS: z.coerce.number().min(0).max(10_000).default(20).describe("client-side limit of requests per second to each Kubernetes API resource (token bucket as client-go's, one per resource as controller-runtime's clients; 0 turns it off)"),
  KUBE_API_BURST: z.coerce.number().int().min(1).max(10_000).default(30).describe("requests to one Kubernetes API resource allowed at once before KUBE_API_QPS applies"),
  OPERATOR_WORKERS: z.coerce.number().int().min(1).max(64).default(4).describe("reconciles run in parallel"),
  LEADER_ELECTION: bool.default(true).describe("use a Lease so that only one replica acts"),
  ORPHAN_KEY_SWEEP: bool.default(false).describe("revoke unused single-use auth keys with the proxy tags (PROXY_TAGS, APISERVER_PROXY_TAGS) that no proxy's Secret holds, left by an operator stopped between minting and storing a key; only where no other tool mints keys with those tags (ADR 0022)"),
  ORPHAN_KEY_SWEEP_TAGS: z.string().default("").describe("more tags the key sweep may revoke keys with (comma-separated): tags users give proxies through tailscale.com/tags for which no other tool mints single-use keys; never taken from annotations themselves (ADR 0022)"),
  LEADER_ELECTION_ID: z.string().default(hostname()).describe("this replica's identity in the Lease (each process adds _ and a random suffix)"),
  LEASE_DURATION_SECONDS: z.coerce.number().int().min(2).default(15).describe("leader election: how long a standby waits, from the last change it saw to the Lease, before it takes over"),
  RENEW_DEADLINE_SECONDS: z.coerce.number().positive().default(10).describe("leader election: how long the leader keeps failing to renew before it stops acting (< LEASE_DURATION_SECONDS)"),
  RETRY_PERIOD_SECONDS: z.coerce.number().positive().default(2).describe("leader election: time between attempts to take or renew the Lease (< RENEW_DEADLINE_SECONDS)"),
  ...acmeEnvShape,
});

export type OperatorConfig = z.infer<typeof operatorEnvSchema>;

export function operatorHelp(): string {
  const rows = Object.entries(operatorEnvSchema.shape).map(([name, schema]) => `  ${name.padEnd(32)} --${name.toLowerCase().replaceAll("_", "-")}\n      ${schema.description ?? ""}`);
  return `tailnet-operator: puts Kubernetes Services on a tailnet (Tailscale or Headscale)

Usage: tailnet-operator [--flag=value ...] [--help] [--version]
       tailnet-operator uninstall [--flag=value ...]
           remove every proxy and its device, and release every Service (the chart runs this
           before helm uninstall removes the operator)

The Kubernetes API is found through KUBECONFIG, or in-cluster. Configuration (environment
variable, then its flag; a flag wins):
${rows.join("\n")}
`;
}

/** Environment overlaid with --flag=value arguments. */
export function configInput(env: NodeJS.ProcessEnv, argv: readonly string[]): Record<string, string | undefined> {
  const input: Record<string, string | undefined> = { ...env };
  for (const arg of argv) {
    const match = /^--([a-z0-9-]+)=(.*)$/.exec(arg);
    if (!match?.[1]) throw new Error(`unknown argument ${arg}; see --help`);
    const key = match[1].toUpperCase().replaceAll("-", "_");
    if (!(key in operatorEnvSchema.shape)) throw new Error(`unknown flag --${match[1]}; see --help`);
    input[key] = match[2];
  }
  return input;
}

export function loadOperatorConfig(input: Record<string, string | undefined>): OperatorConfig {
  const parsed = operatorEnvSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const config = parsed.data;
  if (config.CONTROL_PLANE === "headscale" && (!config.HEADSCALE_API_KEY_FILE || !config.OPERATOR_LOGIN_SERVER)) {
    throw new Error("invalid configuration: CONTROL_PLANE=headscale needs HEADSCALE_API_KEY_FILE and OPERATOR_LOGIN_SERVER");
  }
  if (config.CONTROL_PLANE === "tailscale" && (!config.CLIENT_ID_FILE || !config.CLIENT_SECRET_FILE)) {
    throw new Error("invalid configuration: CONTROL_PLANE=tailscale needs CLIENT_ID_FILE and CLIENT_SECRET_FILE (an OAuth client)");
  }
  if (config.APISERVER_PROXY === "auth" && !config.APISERVER_PROXY_SERVICE_ACCOUNT) {
    throw new Error("invalid configuration: APISERVER_PROXY=auth needs APISERVER_PROXY_SERVICE_ACCOUNT, a ServiceAccount allowed to impersonate users and groups (the chart creates it)");
  }
  if (config.APISERVER_PROXY_HTTP && config.APISERVER_PROXY_TLS_SECRET) {
    throw new Error("invalid configuration: APISERVER_PROXY_HTTP and APISERVER_PROXY_TLS_SECRET exclude each other (plain HTTP serves no certificate)");
  }
  const acmeProblem = acmeConfigProblem(config);
  if (acmeProblem) throw new Error(`invalid configuration: ${acmeProblem}`);
  const timingProblem = validateTiming(leaderElectionTiming(config));
  if (config.LEADER_ELECTION && timingProblem) {
    throw new Error(`invalid configuration: LEASE_DURATION_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_PERIOD_SECONDS: ${timingProblem}`);
  }
  return config;
}

export function leaderElectionTiming(config: OperatorConfig): LeaderElectionTiming {
  return { leaseDurationMs: config.LEASE_DURATION_SECONDS * 1000, renewDeadlineMs: config.RENEW_DEADLINE_SECONDS * 1000, retryPeriodMs: config.RETRY_PERIOD_SECONDS * 1000 };
}

/** Reads a credential file, trimmed; the error names the file, never its content. */
export function readCredential(path: string, what: string): string {
  try {
    const value = readFileSync(path, "utf8").trim();
    if (!value) throw new Error("file is empty");
    return value;
  } catch (error) {
    throw new Error(`cannot read ${what} from ${path}: ${(error as Error).message}`);
  }
}
