// The egress part of the proxy's configuration: a tailnet target (an IP or a MagicDNS name) and
// the ports cluster traffic is forwarded on, parsed by hand like the rest (docs/adr/0013), and
// the rule that a proxy has exactly one job: L3 (TS_DEST_IP), L7 (TS_INGRESS_SECRET) or egress.
import { isIP } from "node:net";
import { EGRESS_ENV, type EgressPort } from "../shared/egress.ts";

/** Thrown by a parser; the message says what is wrong with the value. */
export class InvalidValue extends Error {}

export function parseTargetIp(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (isIP(raw) === 0) throw new InvalidValue(`"${raw}" is not an IP address`);
  return raw;
}

export function parseTargetFqdn(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  return raw.toLowerCase().replace(/\.$/, "");
}

const isPort = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;

export function parseEgressPorts(raw: string | undefined): readonly EgressPort[] | undefined {
  if (raw === undefined || raw === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidValue("must be JSON");
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new InvalidValue('must be a non-empty JSON array like [{"protocol":"tcp","matchPort":80,"targetPort":8080}]');
  return parsed.map((entry: unknown, i) => {
    const port = entry as Partial<Record<string, unknown>> | null;
    const keys = port && typeof port === "object" ? Object.keys(port).sort().join(",") : "";
    if (keys !== "matchPort,protocol,targetPort" || (port?.["protocol"] !== "tcp" && port?.["protocol"] !== "udp") || !isPort(port["matchPort"]) || !isPort(port["targetPort"])) {
      throw new InvalidValue(`entry ${String(i)} must be {"protocol":"tcp"|"udp","matchPort":1-65535,"targetPort":1-65535}`);
    }
    return { protocol: port["protocol"], matchPort: port["matchPort"], targetPort: port["targetPort"] };
  });
}

interface ModeFields {
  readonly TS_DEST_IP: readonly string[];
  readonly TS_INGRESS_SECRET: string | undefined;
  readonly TS_TAILNET_TARGET_IP: string | undefined;
  readonly TS_TAILNET_TARGET_FQDN: string | undefined;
  readonly TS_EGRESS_PORTS: readonly EgressPort[] | undefined;
}

/** What is wrong with the combination of modes, if anything. */
export function proxyModeProblems(config: ModeFields): string[] {
  const problems: string[] = [];
  const modes = [config.TS_DEST_IP.length > 0, config.TS_INGRESS_SECRET !== undefined, config.TS_TAILNET_TARGET_IP !== undefined, config.TS_TAILNET_TARGET_FQDN !== undefined].filter(Boolean).length;
  if (modes !== 1) problems.push(`TS_DEST_IP: set exactly one of TS_DEST_IP (L3), TS_INGRESS_SECRET (L7), ${EGRESS_ENV.targetIp} and ${EGRESS_ENV.targetFqdn} (egress)`);
  const egress = config.TS_TAILNET_TARGET_IP !== undefined || config.TS_TAILNET_TARGET_FQDN !== undefined;
  if (egress && config.TS_EGRESS_PORTS === undefined) problems.push(`${EGRESS_ENV.ports}: an egress proxy needs the ports to forward`);
  return problems;
}
