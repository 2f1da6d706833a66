import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { decideFirewall, FirewallDetectionError, type BackendProbe } from "./detect.ts";
import type { FirewallMode } from "./rules.ts";

function probes(spec: Partial<Record<FirewallMode, { works?: boolean; rules?: number }>>): BackendProbe[] {
  return (["nftables", "iptables-nft", "iptables-legacy"] as const).map((mode) => {
    const s = spec[mode];
    return s
      ? { mode, version: "v1", works: s.works ?? true, foreignRules: s.rules ?? 0, ownRules: 0, ...(s.works === false ? { error: `${mode}: probe failed` } : {}) }
      : { mode, version: undefined, works: false, foreignRules: 0, ownRules: 0, error: `${mode}: binary not found` };
  });
}

const all = { nftables: {}, "iptables-nft": {}, "iptables-legacy": {} };

describe("decideFirewall", () => {
  it("follows the only backend that holds rules: the Ubuntu 20.04 (legacy) and 22.04 (nf_tables) hosts", () => {
    assert.equal(decideFirewall("auto", probes({ ...all, "iptables-legacy": { rules: 40 } })).mode, "iptables-legacy");
    assert.equal(decideFirewall("auto", probes({ ...all, "iptables-nft": { rules: 40 } })).mode, "iptables-nft");
    assert.equal(decideFirewall("auto", probes({ ...all, nftables: { rules: 3 } })).mode, "nftables");
    assert.match(decideFirewall("auto", probes({ ...all, "iptables-legacy": { rules: 40 } })).reason, /only iptables-legacy holds rules \(40\)/);
  });

  it("prefers nftables, then iptables-nft, then legacy, among backends that work", () => {
    assert.equal(decideFirewall("auto", probes(all)).mode, "nftables");
    assert.equal(decideFirewall("auto", probes({ "iptables-nft": {}, "iptables-legacy": {} })).mode, "iptables-nft");
    assert.equal(decideFirewall("auto", probes({ nftables: { works: false }, "iptables-nft": { works: false }, "iptables-legacy": {} })).mode, "iptables-legacy");
    assert.equal(decideFirewall("auto", probes({ ...all, nftables: { rules: 2 }, "iptables-legacy": { rules: 5 } })).mode, "nftables");
  });

  it("never chooses a backend that does not work, even if rules seem to be there", () => {
    const decision = decideFirewall("auto", probes({ ...all, "iptables-legacy": { works: false, rules: 9 } }));
    assert.equal(decision.mode, "nftables");
    assert.match(decision.reason, /rules only in iptables-legacy, which does not work/);
  });

  it("honours an explicit mode, and refuses one whose backend does not work, naming it", () => {
    assert.equal(decideFirewall("iptables-legacy", probes(all)).mode, "iptables-legacy");
    assert.throws(() => decideFirewall("nftables", probes({ nftables: { works: false }, "iptables-nft": {} })), (error: unknown) => {
      return error instanceof FirewallDetectionError && /nftables was requested, but nftables does not work here: nftables: probe failed/.test(error.message);
    });
    assert.throws(() => decideFirewall("auto", probes({})), /no firewall backend works here/);
  });

  it("maps the Tailscale operator's 'iptables' to the host's iptables flavour", () => {
    assert.equal(decideFirewall("iptables", probes({ ...all, "iptables-legacy": { rules: 12 } })).mode, "iptables-legacy");
    assert.equal(decideFirewall("iptables", probes(all)).mode, "iptables-nft");
  });
});
