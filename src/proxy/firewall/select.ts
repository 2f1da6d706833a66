// Builds the chosen backend. detect.ts decides which one; this only wires it up.
import type { CommandRunner } from "../../shared/exec.ts";
import type { Firewall, FirewallMode, ForwardingRules, IpFamily } from "./rules.ts";
import { NftablesFirewall } from "./nftables.ts";
import { IptablesFirewall } from "./iptables.ts";
import { decideFirewall, probeBackends, type BackendProbe, type RequestedFirewallMode } from "./detect.ts";

export { FIREWALL_MODES, type RequestedFirewallMode } from "./detect.ts";

export function firewallFor(runner: CommandRunner, mode: FirewallMode, families: readonly IpFamily[]): Firewall {
  switch (mode) {
    case "nftables":
      return new NftablesFirewall(runner, families);
    case "iptables-nft":
      return new IptablesFirewall(runner, "nft", families);
    case "iptables-legacy":
      return new IptablesFirewall(runner, "legacy", families);
  }
}

export interface FirewallChoice {
  readonly firewall: Firewall;
  readonly reason: string;
  readonly probes: readonly BackendProbe[];
}

export async function chooseFirewall(runner: CommandRunner, requested: RequestedFirewallMode, families: readonly IpFamily[]): Promise<FirewallChoice> {
  const probes = await probeBackends(runner);
  const decision = decideFirewall(requested, probes);
  return { firewall: firewallFor(runner, decision.mode, families), reason: decision.reason, probes };
}

/** Removes rules a previous instance of the proxy left in any backend (after a SIGKILL). */
export async function clearStaleRules(runner: CommandRunner, probes: readonly BackendProbe[], families: readonly IpFamily[]): Promise<void> {
  for (const probe of probes) {
    if (probe.works && probe.ownRules > 0) await firewallFor(runner, probe.mode, families).clear();
  }
}

/** Applies the rules; if that fails half-way, removes ours so no partial rule set stays. */
export async function applyOrClear(firewall: Firewall, rules: ForwardingRules): Promise<void> {
  try {
    await firewall.apply(rules);
  } catch (error) {
    await firewall.clear().catch(() => undefined);
    throw new Error(`firewall (${firewall.mode}): applying the forwarding rules failed, none are left: ${(error as Error).message}`, { cause: error });
  }
}
