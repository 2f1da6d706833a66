// The proxy's configuration: environment variables, validated once at start. Names follow the
// Tailscale operator's containerboot where it has them, so its manifests and habits carry over.
// Validated by hand rather than with zod: a dozen variables do not justify the ~16 MiB RSS that
// loading zod costs in every proxy pod (docs/adr/0013). Adding a variable is one entry below.
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIREWALL_MODES, type RequestedFirewallMode } from "./firewall/detect.ts";
import type { EgressPort } from "../shared/egress.ts";
import { InvalidValue, parseEgressPorts, parseTargetFqdn, parseTargetIp, proxyModeProblems } from "./egress-config.ts";

export interface ProxyConfig {
  readonly TS_KUBE_SECRET: string;
  readonly TS_AUTHKEY_FILE: string | undefined;
  readonly TS_AUTHKEY: string | undefined;
  readonly TS_HOSTNAME: string;
  readonly TS_LOGIN_SERVER: string | undefined;
  readonly TS_DEST_IP: readonly string[];
  readonly TS_INGRESS_SECRET: string | undefined;
  readonly TS_TAILNET_TARGET_IP: string | undefined;
  readonly TS_TAILNET_TARGET_FQDN: string | undefined;
  readonly TS_EGRESS_PORTS: readonly EgressPort[] | undefined;
  readonly TS_DEBUG_FIREWALL_MODE: RequestedFirewallMode;
  readonly TS_LOCAL_ADDR_PORT: string;
  readonly TS_SOCKET: string;
  readonly TS_STATE_DIR: string;
  readonly TS_TUN: string;
  readonly POD_NAME: string | undefined;
}

/** A variable's parser: the raw value (undefined when unset) to the value, or throws why not. */
type Parse<T> = (raw: string | undefined) => T;

interface Variable<T> {
  readonly description: string;
  readonly parse: Parse<T>;
}


const required: Parse<string> = (raw) => {
  if (raw === undefined || raw === "") throw new InvalidValue("required");
  return raw;
};
const optional: Parse<string | undefined> = (raw) => (raw === "" ? undefined : raw);
const withDefault =
  (fallback: string, check: (value: string) => void = () => undefined): Parse<string> =>
  (raw) => {
    const value = raw === undefined || raw === "" ? fallback : raw;
    check(value);
    return value;
  };
const url: Parse<string | undefined> = (raw) => {
  if (raw === undefined || raw === "") return undefined;
  if (!URL.canParse(raw)) throw new InvalidValue(`"${raw}" is not a URL`);
  return raw;
};
const ipList: Parse<readonly string[]> = (raw) => {
  const ips = (raw ?? "").split(",").map((ip) => ip.trim()).filter(Boolean);
  const bad = ips.filter((ip) => isIP(ip) === 0);
  if (bad.length > 0) throw new InvalidValue(`not an IP address: ${bad.join(", ")}`);
  return ips;
};
const firewallMode: Parse<RequestedFirewallMode> = (raw) => {
  const value = raw === undefined || raw === "" ? "auto" : raw;
  if (!(FIREWALL_MODES as readonly string[]).includes(value)) throw new InvalidValue(`"${value}" is not one of ${FIREWALL_MODES.join(", ")}`);
  return value as RequestedFirewallMode;
};
const socketPath = (path: string): void => {
  if (Buffer.byteLength(path) > 107) throw new InvalidValue("a unix socket path must be at most 107 bytes; set TS_SOCKET or a shorter TMPDIR");
};

const scratchDir = join(tmpdir(), "tailnet-proxy");

export const PROXY_VARIABLES: { readonly [K in keyof ProxyConfig]: Variable<ProxyConfig[K]> } = {
  TS_KUBE_SECRET: { parse: required, description: "state Secret (in the pod's namespace): tailscaled state and device_id/device_fqdn/device_ips" },
  TS_AUTHKEY_FILE: { parse: optional, description: "file holding the auth key for the first login (the config Secret, mounted by the kubelet)" },
  TS_AUTHKEY: { parse: optional, description: "the auth key itself, for compatibility; prefer TS_AUTHKEY_FILE (an environment variable is inherited by children)" },
  TS_HOSTNAME: { parse: required, description: "tailnet hostname of this proxy" },
  TS_LOGIN_SERVER: { parse: url, description: "control server URL (Headscale); Tailscale's when unset" },
  TS_DEST_IP: { parse: ipList, description: "L3: ClusterIP(s) that tailnet traffic is forwarded to" },
  TS_INGRESS_SECRET: { parse: optional, description: "L7 (Ingress): Secret in the pod's namespace with the routing table and certificate; the proxy serves HTTPS itself" },
  TS_TAILNET_TARGET_IP: { parse: parseTargetIp, description: "egress: the tailnet IP (or subnet-routed address) cluster traffic goes to" },
  TS_TAILNET_TARGET_FQDN: { parse: parseTargetFqdn, description: "egress: the MagicDNS name of the target, resolved from tailscaled's peers and followed" },
  TS_EGRESS_PORTS: { parse: parseEgressPorts, description: 'egress: JSON [{"protocol":"tcp","matchPort":80,"targetPort":8080}, ...]' },
  TS_DEBUG_FIREWALL_MODE: { parse: firewallMode, description: `firewall backend: ${FIREWALL_MODES.join(", ")} (default auto)` },
  TS_LOCAL_ADDR_PORT: { parse: withDefault("[::]:9002"), description: "address:port of the health endpoint (/healthz); default [::]:9002" },
  TS_SOCKET: { parse: withDefault(join(scratchDir, "tailscaled.sock"), socketPath), description: "tailscaled LocalAPI socket (default under $TMPDIR)" },
  TS_STATE_DIR: { parse: withDefault(scratchDir), description: "tailscaled's scratch directory, default under $TMPDIR (state itself lives in the Secret)" },
  TS_TUN: { parse: withDefault("tailscale0"), description: "TUN interface name" },
  POD_NAME: { parse: optional, description: "the pod's name (the downward API)" },
};

export function proxyHelp(): string {
  const rows = Object.entries(PROXY_VARIABLES).map(([name, variable]) => `  ${name.padEnd(24)} ${variable.description}`);
  return `tailnet-proxy: runs tailscaled in a proxy pod, forwards tailnet traffic to a Service, reports the device

Usage: tailnet-proxy [--help] [--version]
       tailnet-proxy doctor [--json]   what the proxy would do on this host; changes nothing
       tailnet-proxy init NAME=VALUE...  set the forwarding sysctls (privileged init container)

Configuration (environment):
${rows.join("\n")}
`;
}

/** Parses the environment; throws one error listing every problem. */
export function loadProxyConfig(env: NodeJS.ProcessEnv): ProxyConfig {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(PROXY_VARIABLES) as [string, Variable<unknown>][]) {
    try {
      config[name] = variable.parse(env[name]);
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
  }
  // The combination is judged too, so that one message lists everything (a field that failed
  // to parse counts as unset).
  const parsed = config as Partial<ProxyConfig>;
  problems.push(...proxyModeProblems({ ...(config as unknown as ProxyConfig), TS_DEST_IP: parsed.TS_DEST_IP ?? [] }));
  if (problems.length > 0) throw new Error(`invalid proxy configuration: ${problems.join("; ")}`);
  return config as unknown as ProxyConfig;
}
