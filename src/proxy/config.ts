// The proxy's configuration: environment variables, validated once at start. Names follow the
// Tailscale operator's containerboot where it has them, so its manifests and habits carry over.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { FIREWALL_MODES } from "./firewall/detect.ts";
import { egressEnvSchema, validateProxyMode } from "./egress-config.ts";

const ipList = z
  .string()
  .transform((value) => value.split(",").map((ip) => ip.trim()).filter(Boolean))
  .pipe(z.array(z.union([z.ipv4(), z.ipv6()])));

export const proxyEnvSchema = z.object({
  TS_KUBE_SECRET: z.string().min(1).describe("state Secret (in the pod's namespace): tailscaled state and device_id/device_fqdn/device_ips"),
  TS_AUTHKEY_FILE: z.string().optional().describe("file holding the auth key for the first login (the config Secret, mounted by the kubelet)"),
  TS_AUTHKEY: z.string().optional().describe("the auth key itself, for compatibility; prefer TS_AUTHKEY_FILE (an environment variable is inherited by children)"),
  TS_HOSTNAME: z.string().min(1).describe("tailnet hostname of this proxy"),
  TS_LOGIN_SERVER: z.url().optional().describe("control server URL (Headscale); Tailscale's when unset"),
  TS_DEST_IP: ipList.default([]).describe("ClusterIP(s) that tailnet traffic is forwarded to (L3 ingress; empty for L7 and egress proxies)"),
  TS_INGRESS_SECRET: z.string().optional().describe("L7 (Ingress): Secret in the pod's namespace with the routing table and certificate; the proxy serves HTTPS itself"),
  ...egressEnvSchema,
  TS_DEBUG_FIREWALL_MODE: z.enum(FIREWALL_MODES).default("auto").describe("firewall backend"),
  TS_LOCAL_ADDR_PORT: z.string().default("[::]:9002").describe("address:port of the health endpoint (/healthz)"),
  TS_SOCKET: z
    .string()
    .default(join(tmpdir(), "tailnet-proxy", "tailscaled.sock"))
    .refine((path) => Buffer.byteLength(path) <= 107, "a unix socket path must be at most 107 bytes; set TS_SOCKET or a shorter TMPDIR")
    .describe("tailscaled LocalAPI socket (default under $TMPDIR)"),
  TS_STATE_DIR: z.string().default(join(tmpdir(), "tailnet-proxy")).describe("tailscaled's scratch directory, default under $TMPDIR (state itself lives in the Secret)"),
  TS_TUN: z.string().default("tailscale0").describe("TUN interface name"),
  POD_NAME: z.string().optional(),
});

export type ProxyConfig = z.infer<typeof proxyEnvSchema>;

export function proxyHelp(): string {
  const rows = Object.entries(proxyEnvSchema.shape).map(([name, schema]) => `  ${name.padEnd(24)} ${schema.description ?? ""}`);
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
  const parsed = proxyEnvSchema.superRefine(validateProxyMode).safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ");
    throw new Error(`invalid proxy configuration: ${problems}`);
  }
  return parsed.data;
}
