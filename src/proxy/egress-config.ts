// The egress part of the proxy's configuration: a tailnet target (an IP or a MagicDNS name) and
// the ports cluster traffic is forwarded on. A proxy is either ingress (TS_DEST_IP) or egress.
import { z } from "zod";
import { EGRESS_ENV } from "../shared/egress.ts";

const portNumber = z.number().int().min(1).max(65535);
const egressPorts = z
  .string()
  .transform((value, ctx) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be JSON" });
      return z.NEVER;
    }
  })
  .pipe(z.array(z.strictObject({ protocol: z.enum(["tcp", "udp"]), matchPort: portNumber, targetPort: portNumber })).min(1));

export const egressEnvSchema = {
  [EGRESS_ENV.targetIp]: z.union([z.ipv4(), z.ipv6()]).optional().describe("egress: the tailnet IP (or subnet-routed address) cluster traffic goes to"),
  [EGRESS_ENV.targetFqdn]: z
    .string()
    .min(1)
    .transform((name) => name.toLowerCase().replace(/\.$/, ""))
    .optional()
    .describe("egress: the MagicDNS name of the target, resolved from tailscaled's peers and followed"),
  [EGRESS_ENV.ports]: egressPorts.optional().describe('egress: JSON [{"protocol":"tcp","matchPort":80,"targetPort":8080}, ...]'),
} as const;

interface ModeFields {
  TS_DEST_IP: readonly string[];
  TS_INGRESS_SECRET?: string | undefined;
  TS_TAILNET_TARGET_IP?: string | undefined;
  TS_TAILNET_TARGET_FQDN?: string | undefined;
  TS_EGRESS_PORTS?: unknown;
}

/** Exactly one of: ClusterIPs to forward to (ingress), a target IP, a target name. */
export function validateProxyMode(config: ModeFields, ctx: z.RefinementCtx): void {
  const modes = [config.TS_DEST_IP.length > 0, config.TS_INGRESS_SECRET !== undefined, config.TS_TAILNET_TARGET_IP !== undefined, config.TS_TAILNET_TARGET_FQDN !== undefined].filter(Boolean).length;
  if (modes !== 1) ctx.addIssue({ code: "custom", path: ["TS_DEST_IP"], message: `set exactly one of TS_DEST_IP (L3), TS_INGRESS_SECRET (L7), ${EGRESS_ENV.targetIp} and ${EGRESS_ENV.targetFqdn} (egress)` });
  const egress = config.TS_TAILNET_TARGET_IP !== undefined || config.TS_TAILNET_TARGET_FQDN !== undefined;
  if (egress && config.TS_EGRESS_PORTS === undefined) ctx.addIssue({ code: "custom", path: [EGRESS_ENV.ports], message: "an egress proxy needs the ports to forward" });
}
