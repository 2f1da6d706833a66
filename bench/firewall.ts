// Firewall figures (a benchmark, not a test): per backend, the time to apply, re-apply and
// remove the L3 rule set (median of --rounds), and to apply 1,000 egress port mappings (the
// shared-proxy case). Each backend runs in a fresh namespace of the sandbox.
import { parseArgs } from "node:util";
import { ProcessRunner, type CommandResult, type CommandRunner, type RunOptions } from "../src/shared/exec.ts";
import { currentRun } from "../src/sandbox/hub.ts";
import { NetworkNamespace } from "../src/sandbox/netns.ts";
import { namespacePrefix } from "../src/sandbox/runs.ts";
import { firewallFor } from "../src/proxy/firewall/select.ts";
import { BACKENDS } from "../src/proxy/firewall/detect.ts";
import type { ForwardingRules } from "../src/proxy/firewall/rules.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "15" }, mappings: { type: "string", default: "1000" } } });
const rounds = Number(values.rounds);
const run = currentRun();
const host = new ProcessRunner();

class InNamespace implements CommandRunner {
  readonly ns: NetworkNamespace;
  constructor(ns: NetworkNamespace) {
    this.ns = ns;
  }
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    return host.run(this.ns.exec(argv), options);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

const l3: ForwardingRules = {
  tunInterface: "tailscale0",
  ingress: [
    { tailnetIp: "100.64.0.5", destination: "10.96.0.10" },
    { tailnetIp: "fd7a:115c:a1e0::5", destination: "fd00:96::10" },
  ],
};
const bulk: ForwardingRules = {
  tunInterface: "tailscale0",
  ingress: [],
  egress: Array.from({ length: Number(values.mappings) }, (_, i) => ({
    target: `100.64.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    source: "100.64.255.1",
    ports: [{ protocol: "tcp" as const, matchPort: 10_000 + i, targetPort: 80 }],
  })),
};

process.stdout.write(`firewall backends, median of ${rounds} rounds (ms):\n`);
process.stdout.write(`  ${"backend".padEnd(16)} ${"apply".padStart(8)} ${"re-apply".padStart(9)} ${"remove".padStart(8)}   ${values.mappings} egress mappings\n`);
for (const mode of BACKENDS) {
  const ns = await NetworkNamespace.create(host, `${namespacePrefix(run.id)}fwbench-${mode}`);
  try {
    const firewall = firewallFor(new InNamespace(ns), mode, [4, 6]);
    const apply: number[] = [];
    const reapply: number[] = [];
    const remove: number[] = [];
    for (let i = 0; i < rounds; i++) {
      apply.push(await timed(() => firewall.apply(l3)));
      reapply.push(await timed(() => firewall.apply(l3)));
      remove.push(await timed(() => firewall.clear()));
    }
    const bulkMs = await timed(() => firewall.apply(bulk));
    await firewall.clear();
    const fmt = (ms: number, width: number): string => ms.toFixed(1).padStart(width);
    process.stdout.write(`  ${mode.padEnd(16)} ${fmt(median(apply), 8)} ${fmt(median(reapply), 9)} ${fmt(median(remove), 8)}   ${fmt(bulkMs, 8)}\n`);
  } finally {
    await ns.delete();
  }
}
