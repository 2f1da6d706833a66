// Chooses the firewall backend from what this network namespace and its tools actually do, so
// a proxy never programs iptables-legacy on an nf_tables host (or the reverse) and silently
// forwards nothing. An explicit mode wins; "auto" follows the rules that are already there;
// a backend whose kernel side does not work is never chosen.
import type { CommandRunner } from "../../shared/exec.ts";
import type { FirewallMode } from "./rules.ts";
import { NFT_TABLE } from "./nftables.ts";

/** Modes the proxy accepts (TS_DEBUG_FIREWALL_MODE); "iptables" is the Tailscale operator's. */
export const FIREWALL_MODES = ["auto", "nftables", "iptables", "iptables-nft", "iptables-legacy"] as const;
export type RequestedFirewallMode = (typeof FIREWALL_MODES)[number];

export const BACKENDS: readonly FirewallMode[] = ["nftables", "iptables-nft", "iptables-legacy"];

export interface BackendProbe {
  readonly mode: FirewallMode;
  /** The tool's version line, or undefined if the binary is missing. */
  readonly version: string | undefined;
  /** Whether a scratch chain could be created and deleted in the nat table. */
  readonly works: boolean;
  /** Rules that are not ours (kube-proxy, a CNI, the host). */
  readonly foreignRules: number;
  /** Rules of ours, left by an earlier proxy in this namespace. */
  readonly ownRules: number;
  /** Why it does not work: the failing command and what it said. */
  readonly error?: string;
}

export interface FirewallDecision {
  readonly mode: FirewallMode;
  readonly reason: string;
}

export class FirewallDetectionError extends Error {
  override readonly name = "FirewallDetectionError";
}

const OUR_IPTABLES_CHAIN = /TNO-/;

async function firstLine(runner: CommandRunner, argv: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await runner.run(argv, { timeoutMs: 10_000 });
    return (stdout || stderr).trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

interface RuleCounts {
  readonly foreign: number;
  readonly own: number;
}

/** -A lines of both families' saves: ours (our chains and the jumps into them) and the rest. */
async function iptablesRules(runner: CommandRunner, flavour: "nft" | "legacy"): Promise<RuleCounts> {
  const counts = { foreign: 0, own: 0 };
  for (const bin of [`iptables-${flavour}-save`, `ip6tables-${flavour}-save`]) {
    try {
      const { stdout } = await runner.run([bin], { timeoutMs: 10_000 });
      for (const line of stdout.split("\n")) {
        if (line.startsWith("-A ")) counts[OUR_IPTABLES_CHAIN.test(line) ? "own" : "foreign"]++;
      }
    } catch {
      // Missing binary or family: no rules there.
    }
  }
  return counts;
}

/** Tables iptables-nft manages; their rules are counted through iptables-nft-save instead. */
const IPTABLES_NFT_TABLES = new Set(["filter", "nat", "mangle", "raw", "security"]);

/** Rules in nftables proper (not in the tables iptables-nft manages): ours and the rest. */
async function nftablesRules(runner: CommandRunner): Promise<RuleCounts> {
  try {
    const { stdout } = await runner.run(["nft", "-j", "list", "ruleset"], { timeoutMs: 10_000 });
    const items = (JSON.parse(stdout) as { nftables?: { rule?: { family: string; table: string } }[] }).nftables ?? [];
    const rules = items.flatMap((item) => (item.rule ? [item.rule] : []));
    const nftOwned = rules.filter((rule) => !((rule.family === "ip" || rule.family === "ip6") && IPTABLES_NFT_TABLES.has(rule.table)));
    const own = nftOwned.filter((rule) => rule.table === NFT_TABLE).length;
    return { foreign: nftOwned.length - own, own };
  } catch {
    return { foreign: 0, own: 0 };
  }
}

/** The nftables `ip nat` table: absent, empty (no chains), in use, or unknown (no nft). */
async function nftNatTable(runner: CommandRunner): Promise<"absent" | "empty" | "used" | "unknown"> {
  try {
    const { stdout } = await runner.run(["nft", "-j", "list", "table", "ip", "nat"], { timeoutMs: 10_000 });
    const items = (JSON.parse(stdout) as { nftables?: { chain?: unknown }[] }).nftables ?? [];
    return items.some((item) => item.chain) ? "used" : "empty";
  } catch (error) {
    // nft says "No such file or directory" for a missing table; anything else (no nft binary,
    // no permission) means we cannot tell, and then we touch nothing.
    return /No such file or directory/i.test((error as Error).message) ? "absent" : "unknown";
  }
}

async function probeWorks(runner: CommandRunner, mode: FirewallMode): Promise<string | undefined> {
  // Unique enough for a scratch name in one pod's namespace; node:crypto's ESM import would load
  // WebCrypto for six hex digits.
  const scratch = `tno-probe-${Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0")}`;
  try {
    if (mode === "nftables") {
      // One transaction: create a nat base chain and delete it again.
      await runner.run(["nft", "-f", "-"], {
        input: `add table ip ${scratch}\nadd chain ip ${scratch} probe { type nat hook prerouting priority dstnat; }\ndelete table ip ${scratch}\n`,
        timeoutMs: 10_000,
      });
    } else {
      const bin = mode === "iptables-nft" ? "iptables-nft" : "iptables-legacy";
      const chain = scratch.toUpperCase();
      // iptables-nft creates `table ip nat` on first use and -X leaves it behind: note whether
      // it was there, so that a probe leaves no trace.
      const natBefore = mode === "iptables-nft" ? await nftNatTable(runner) : "unknown";
      await runner.run([bin, "-w", "-t", "nat", "-N", chain], { timeoutMs: 10_000 });
      await runner.run([bin, "-w", "-t", "nat", "-X", chain], { timeoutMs: 10_000 });
      if (natBefore === "absent" && (await nftNatTable(runner)) === "empty") await runner.run(["nft", "delete", "table", "ip", "nat"], { timeoutMs: 10_000 });
    }
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Looks at every backend; changes nothing (probes remove what they create). */
export async function probeBackends(runner: CommandRunner): Promise<BackendProbe[]> {
  const [nftVersion, iptNftVersion, iptLegacyVersion] = await Promise.all([
    firstLine(runner, ["nft", "--version"]),
    firstLine(runner, ["iptables-nft", "--version"]),
    firstLine(runner, ["iptables-legacy", "--version"]),
  ]);
  const probe = async (mode: FirewallMode, version: string | undefined, count: () => Promise<RuleCounts>): Promise<BackendProbe> => {
    if (!version) return { mode, version, works: false, foreignRules: 0, ownRules: 0, error: `${mode}: binary not found` };
    const [error, rules] = await Promise.all([probeWorks(runner, mode), count()]);
    return { mode, version, works: error === undefined, foreignRules: rules.foreign, ownRules: rules.own, ...(error ? { error } : {}) };
  };
  // The backends are independent: look at all three at once (this is on the proxy's start path).
  return Promise.all([
    probe("nftables", nftVersion, () => nftablesRules(runner)),
    probe("iptables-nft", iptNftVersion, () => iptablesRules(runner, "nft")),
    probe("iptables-legacy", iptLegacyVersion, () => iptablesRules(runner, "legacy")),
  ]);
}

/** The decision, from the probes alone (pure, so every case is unit-tested). */
export function decideFirewall(requested: RequestedFirewallMode, probes: readonly BackendProbe[]): FirewallDecision {
  const byMode = (mode: FirewallMode): BackendProbe => probes.find((p) => p.mode === mode) ?? { mode, version: undefined, works: false, foreignRules: 0, ownRules: 0 };
  const explicit = (mode: FirewallMode, why: string): FirewallDecision => {
    const probe = byMode(mode);
    if (!probe.works) throw new FirewallDetectionError(`${why}, but ${mode} does not work here: ${probe.error ?? "unknown error"}`);
    return { mode, reason: why };
  };
  switch (requested) {
    case "nftables":
    case "iptables-nft":
    case "iptables-legacy":
      return explicit(requested, `${requested} was requested`);
    case "iptables": {
      // The Tailscale operator's "iptables": whichever iptables flavour the host uses.
      const legacy = byMode("iptables-legacy");
      const flavour = legacy.foreignRules > 0 && byMode("iptables-nft").foreignRules === 0 ? "iptables-legacy" : byMode("iptables-nft").works ? "iptables-nft" : "iptables-legacy";
      return explicit(flavour, `iptables was requested; the host's iptables flavour is ${flavour}`);
    }
    case "auto":
      break;
  }
  const working = BACKENDS.map(byMode).filter((p) => p.works);
  const withRules = BACKENDS.map(byMode).filter((p) => p.foreignRules > 0);
  if (withRules.length === 1 && withRules[0]?.works) {
    const only = withRules[0];
    return { mode: only.mode, reason: `auto: only ${only.mode} holds rules (${only.foreignRules}), so the host uses it` };
  }
  const first = working[0];
  if (!first) {
    throw new FirewallDetectionError(`no firewall backend works here: ${BACKENDS.map(byMode).map((p) => p.error ?? `${p.mode}: failed`).join("; ")}`);
  }
  const rulesNote = withRules.length > 1 ? `rules in ${withRules.map((p) => p.mode).join(" and ")}` : withRules.length === 1 ? `rules only in ${withRules[0]?.mode ?? ""}, which does not work` : "no rules yet";
  return { mode: first.mode, reason: `auto: ${rulesNote}; ${first.mode} is the first backend that works (nftables, iptables-nft, iptables-legacy)` };
}
