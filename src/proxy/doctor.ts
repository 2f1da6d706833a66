// tailnet-proxy doctor: what the proxy would do on this host, and why. It changes nothing (the
// firewall probes remove the scratch chains they create).
import { existsSync, readFileSync } from "node:fs";
import type { CommandRunner } from "../shared/exec.ts";
import { decideFirewall, probeBackends, FIREWALL_MODES, type BackendProbe, type RequestedFirewallMode } from "./firewall/detect.ts";

/** Linux capability numbers, for naming the bits in CapEff. */
const CAPABILITIES = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
  "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
  "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
  "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
  "PERFMON", "BPF", "CHECKPOINT_RESTORE",
];

export interface DoctorReport {
  readonly firewall: { readonly mode: string | null; readonly reason: string; readonly requested: string };
  readonly backends: readonly BackendProbe[];
  readonly defaultIptables: string | null;
  readonly tun: { readonly path: string; readonly present: boolean };
  readonly ipForwarding: { readonly ipv4: string | null; readonly ipv6: string | null };
  readonly capabilities: readonly string[];
}

function readTrimmed(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

export function effectiveCapabilities(status: string): string[] {
  const hex = /^CapEff:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
  const bits = BigInt(`0x${hex}`);
  return CAPABILITIES.filter((_, bit) => (bits >> BigInt(bit)) & 1n);
}

export async function doctorReport(runner: CommandRunner, requested: RequestedFirewallMode): Promise<DoctorReport> {
  const backends = await probeBackends(runner);
  let mode: string | null = null;
  let reason: string;
  try {
    const decision = decideFirewall(requested, backends);
    mode = decision.mode;
    reason = decision.reason;
  } catch (error) {
    reason = (error as Error).message;
  }
  const defaultIptables = await runner.run(["iptables", "--version"]).then((r) => r.stdout.trim(), () => null);
  return {
    firewall: { mode, reason, requested },
    backends,
    defaultIptables,
    tun: { path: "/dev/net/tun", present: existsSync("/dev/net/tun") },
    ipForwarding: { ipv4: readTrimmed("/proc/sys/net/ipv4/ip_forward"), ipv6: readTrimmed("/proc/sys/net/ipv6/conf/all/forwarding") },
    capabilities: effectiveCapabilities(readTrimmed("/proc/self/status") ?? ""),
  };
}

export async function runDoctor(runner: CommandRunner, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  const requestedRaw = env["TS_DEBUG_FIREWALL_MODE"] ?? "auto";
  if (!(FIREWALL_MODES as readonly string[]).includes(requestedRaw)) {
    process.stderr.write(`tailnet-proxy doctor: TS_DEBUG_FIREWALL_MODE="${requestedRaw}" is not one of ${FIREWALL_MODES.join(", ")}\n`);
    return 2;
  }
  const report = await doctorReport(runner, requestedRaw as RequestedFirewallMode);
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const lines = [
      `firewall:      ${report.firewall.mode ?? "NONE"} (requested ${report.firewall.requested})`,
      `  why:         ${report.firewall.reason}`,
      ...report.backends.map((b) => `  ${b.mode.padEnd(16)} ${b.version ?? "not installed"}; ${b.works ? "works" : `does not work: ${b.error ?? ""}`}; ${b.foreignRules} rules not ours`),
      `iptables:      ${report.defaultIptables ?? "not installed"}`,
      `tun:           ${report.tun.path} ${report.tun.present ? "present" : "missing"}`,
      `forwarding:    ipv4=${report.ipForwarding.ipv4 ?? "?"} ipv6=${report.ipForwarding.ipv6 ?? "?"}`,
      `capabilities:  ${report.capabilities.join(" ") || "(none)"}`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  return report.firewall.mode ? 0 : 1;
}
