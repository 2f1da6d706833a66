// nftables backend: one table per address family that belongs to tailnet-proxy alone, replaced
// in a single `nft -f` transaction, so the rule set is never seen half-applied.
import type { CommandRunner } from "../../shared/exec.ts";
import { FROM_TAILNET_MARK, hostPort, sameFamilyEgress, sameFamilyMappings, type Firewall, type ForwardingRules, type IpFamily } from "./rules.ts";

export const NFT_TABLE = "tailnet-proxy";

const nftFamily = (family: IpFamily): string => (family === 4 ? "ip" : "ip6");

/** The nft script that (re)creates our table for one family. */
export function renderNftables(rules: ForwardingRules, family: IpFamily): string {
  const fam = nftFamily(family);
  const tun = JSON.stringify(rules.tunInterface);
  const mark = `0x${FROM_TAILNET_MARK.toString(16)}`;
  const dnat = sameFamilyMappings(rules, family).map(
    (m) => `    iifname ${tun} ${fam} daddr ${m.tailnetIp} meta mark set meta mark or ${mark} dnat to ${m.destination}`,
  );
  const egress = sameFamilyEgress(rules, family);
  const egressDnat = egress.flatMap((m) =>
    m.ports?.length
      ? m.ports.map((p) => `    iifname != ${tun} ${p.protocol} dport ${p.matchPort} dnat to ${hostPort(m.target, p.targetPort)}`)
      : [`    iifname != ${tun} dnat to ${m.target}`],
  );
  const egressSnat = egress.map((m) => `    oifname ${tun} ${fam} daddr ${m.target} snat to ${m.source}`);
  return [
    // "add" then "delete" makes the delete safe when the table does not exist yet; the whole
    // file is one transaction.
    `add table ${fam} ${NFT_TABLE}`,
    `delete table ${fam} ${NFT_TABLE}`,
    `table ${fam} ${NFT_TABLE} {`,
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    ...dnat,
    ...egressDnat,
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    // Backends reply to the proxy, not to a tailnet address they have no route to.
    `    oifname != ${tun} meta mark & ${mark} == ${mark} masquerade`,
    ...egressSnat,
    "  }",
    "  chain clamp {",
    "    type filter hook forward priority mangle; policy accept;",
    `    oifname ${tun} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu`,
    `    iifname ${tun} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu`,
    "  }",
    "}",
    "",
  ].join("\n");
}

export class NftablesFirewall implements Firewall {
  readonly mode = "nftables" as const;
  private readonly runner: CommandRunner;
  private readonly families: readonly IpFamily[];

  constructor(runner: CommandRunner, families: readonly IpFamily[] = [4, 6]) {
    this.runner = runner;
    this.families = families;
  }

  async apply(rules: ForwardingRules): Promise<void> {
    const script = this.families.map((family) => renderNftables(rules, family)).join("");
    await this.runner.run(["nft", "-f", "-"], { input: script });
  }

  async clear(): Promise<void> {
    const script = this.families.map((family) => `add table ${nftFamily(family)} ${NFT_TABLE}\ndelete table ${nftFamily(family)} ${NFT_TABLE}\n`).join("");
    await this.runner.run(["nft", "-f", "-"], { input: script });
  }
}
