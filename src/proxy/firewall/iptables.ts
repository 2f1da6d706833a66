// iptables backend, for both the nf_tables and the legacy flavour (they differ only in the
// binaries). Our rules live in chains of our own, rebuilt with one `iptables-restore --noflush`
// per table and family; the built-in chains only get one jump each, added if missing.
import type { CommandRunner } from "../../shared/exec.ts";
import { FROM_TAILNET_MARK, hostPort, sameFamilyEgress, sameFamilyMappings, type Firewall, type ForwardingRules, type IpFamily } from "./rules.ts";

export type IptablesFlavour = "nft" | "legacy";

const CHAINS = {
  nat: [
    ["TNO-PREROUTING", "PREROUTING"],
    ["TNO-POSTROUTING", "POSTROUTING"],
  ],
  mangle: [["TNO-FORWARD", "FORWARD"]],
} as const;

/** iptables-restore input that declares (and so empties) our chains and fills them. */
export function renderIptables(rules: ForwardingRules, family: IpFamily): string {
  const tun = rules.tunInterface;
  const mark = `0x${FROM_TAILNET_MARK.toString(16)}`;
  const nat = sameFamilyMappings(rules, family).flatMap((m) => [
    `-A TNO-PREROUTING -i ${tun} -d ${m.tailnetIp} -j MARK --set-xmark ${mark}/${mark}`,
    `-A TNO-PREROUTING -i ${tun} -d ${m.tailnetIp} -j DNAT --to-destination ${m.destination}`,
  ]);
  const egress = sameFamilyEgress(rules, family);
  const egressDnat = egress.flatMap((m) =>
    m.ports?.length
      ? m.ports.map((p) => `-A TNO-PREROUTING ! -i ${tun} -p ${p.protocol} -m ${p.protocol} --dport ${p.matchPort} -j DNAT --to-destination ${hostPort(m.target, p.targetPort)}`)
      : [`-A TNO-PREROUTING ! -i ${tun} -j DNAT --to-destination ${m.target}`],
  );
  const egressSnat = egress.map((m) => `-A TNO-POSTROUTING -o ${tun} -d ${m.target} -j SNAT --to-source ${m.source}`);
  return [
    "*nat",
    ":TNO-PREROUTING - [0:0]",
    ":TNO-POSTROUTING - [0:0]",
    ...nat,
    ...egressDnat,
    `-A TNO-POSTROUTING ! -o ${tun} -m mark --mark ${mark}/${mark} -j MASQUERADE`,
    ...egressSnat,
    "COMMIT",
    "*mangle",
    ":TNO-FORWARD - [0:0]",
    `-A TNO-FORWARD -o ${tun} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`,
    `-A TNO-FORWARD -i ${tun} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`,
    "COMMIT",
    "",
  ].join("\n");
}

export class IptablesFirewall implements Firewall {
  readonly mode: "iptables-nft" | "iptables-legacy";
  private readonly runner: CommandRunner;
  private readonly flavour: IptablesFlavour;
  private readonly families: readonly IpFamily[];

  constructor(runner: CommandRunner, flavour: IptablesFlavour, families: readonly IpFamily[] = [4, 6]) {
    this.runner = runner;
    this.flavour = flavour;
    this.families = families;
    this.mode = flavour === "nft" ? "iptables-nft" : "iptables-legacy";
  }

  private binary(family: IpFamily, restore = false): string {
    return `${family === 4 ? "iptables" : "ip6tables"}-${this.flavour}${restore ? "-restore" : ""}`;
  }

  async apply(rules: ForwardingRules): Promise<void> {
    for (const family of this.families) {
      await this.runner.run([this.binary(family, true), "--noflush"], { input: renderIptables(rules, family) });
      for (const [table, chains] of Object.entries(CHAINS)) {
        for (const [ours, builtin] of chains) await this.ensureJump(family, table, builtin, ours);
      }
    }
  }

  private async ensureJump(family: IpFamily, table: string, builtin: string, chain: string): Promise<void> {
    const bin = this.binary(family);
    try {
      await this.runner.run([bin, "-w", "-t", table, "-C", builtin, "-j", chain]);
    } catch {
      await this.runner.run([bin, "-w", "-t", table, "-I", builtin, "1", "-j", chain]);
    }
  }

  async clear(): Promise<void> {
    for (const family of this.families) {
      const bin = this.binary(family);
      for (const [table, chains] of Object.entries(CHAINS)) {
        for (const [ours, builtin] of chains) {
          // Delete every copy of our jump, then our chain; a missing one is already clear.
          while (await this.runner.run([bin, "-w", "-t", table, "-D", builtin, "-j", ours]).then(() => true, () => false));
          await this.runner.run([bin, "-w", "-t", table, "-F", ours]).catch(() => undefined);
          await this.runner.run([bin, "-w", "-t", table, "-X", ours]).catch(() => undefined);
        }
      }
    }
  }
}
