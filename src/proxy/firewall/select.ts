// Chooses the firewall backend. An explicit mode wins (TS_DEBUG_FIREWALL_MODE values of the
// Tailscale operator are accepted); "auto" prefers nftables when it works. The full host
// detection (existing rules, probes per backend) belongs to the firewall issue.
import type { CommandRunner } from "../../shared/exec.ts";
import type { Firewall, IpFamily } from "./rules.ts";
import { NftablesFirewall } from "./nftables.ts";
import { IptablesFirewall } from "./iptables.ts";

export const FIREWALL_MODES = ["auto", "nftables", "iptables", "iptables-nft", "iptables-legacy"] as const;
export type RequestedFirewallMode = (typeof FIREWALL_MODES)[number];

export interface FirewallChoice {
  readonly firewall: Firewall;
  readonly reason: string;
}

export async function chooseFirewall(runner: CommandRunner, requested: RequestedFirewallMode, families: readonly IpFamily[]): Promise<FirewallChoice> {
  switch (requested) {
    case "nftables":
      return { firewall: new NftablesFirewall(runner, families), reason: "requested nftables" };
    case "iptables":
    case "iptables-nft":
      return { firewall: new IptablesFirewall(runner, "nft", families), reason: `requested ${requested}` };
    case "iptables-legacy":
      return { firewall: new IptablesFirewall(runner, "legacy", families), reason: "requested iptables-legacy" };
    case "auto": {
      const nftWorks = await runner.run(["nft", "list", "tables"]).then(() => true, () => false);
      return nftWorks
        ? { firewall: new NftablesFirewall(runner, families), reason: "auto: nft works in this namespace" }
        : { firewall: new IptablesFirewall(runner, "nft", families), reason: "auto: nft unavailable, using iptables-nft" };
    }
  }
}
