// Sandbox figures (a benchmark, not a test): cold build time per binary (recorded by
// scripts/build-bins.sh), warm start-up of the whole sandbox (apiserver + etcd + Headscale + two
// devices joined), and the peak memory of every sandbox process. Runs N rounds, prints medians.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Sandbox } from "../src/sandbox/sandbox.ts";
import { binCacheDir } from "../src/sandbox/binaries.ts";
import { listNamespaces, namespacePids } from "../src/sandbox/netns.ts";
import { namespacePrefix } from "../src/sandbox/runs.ts";
import { ProcessRunner } from "../src/shared/exec.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" } } });
const rounds = Number(values.rounds);
const runner = new ProcessRunner();

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Peak resident set (VmHWM, KiB) of each process, by program name. */
function peakRssByProgram(pids: readonly number[]): Map<string, number> {
  const peaks = new Map<string, number>();
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const name = /^Name:\s+(\S+)/m.exec(status)?.[1] ?? "?";
      const hwm = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      peaks.set(name, (peaks.get(name) ?? 0) + hwm);
    } catch {
      // Exited meanwhile.
    }
  }
  return peaks;
}

process.stdout.write("cold build time per binary (from scripts/build-bins.sh):\n");
const cache = binCacheDir();
for (const dir of existsSync(cache) ? readdirSync(cache).sort() : []) {
  const file = join(cache, dir, ".build-seconds");
  const seconds = existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : Number.NaN;
  process.stdout.write(`  ${dir.padEnd(28)} ${Number.isNaN(seconds) ? "(not recorded)" : `${seconds} s`}\n`);
  if (!Number.isNaN(seconds)) process.stdout.write(`BENCH ${JSON.stringify({ name: `cold_build_${dir}`, value: seconds, unit: "s" })}\n`);
}

const starts: number[] = [];
const joins: number[] = [];
let peaks = new Map<string, number>();
for (let round = 0; round < rounds; round++) {
  // Each round is a fresh sandbox in the same hub: Sandbox.start() expects a new bridge.
  await runner.run(["ip", "link", "del", "br0"]).catch(() => undefined);
  const t0 = performance.now();
  const sandbox = await Sandbox.start();
  const t1 = performance.now();
  await Promise.all([sandbox.addDevice("bench-a", { tags: ["tag:k8s"] }), sandbox.addDevice("bench-b", { tags: ["tag:k8s"] })]);
  const t2 = performance.now();
  starts.push(t1 - t0);
  joins.push(t2 - t0);
  const pids = [...(await namespacePids(runner, sandbox.run.hubNamespace))];
  for (const ns of await listNamespaces(runner, namespacePrefix(sandbox.run.id))) {
    if (ns !== sandbox.run.hubNamespace) pids.push(...(await namespacePids(runner, ns)));
  }
  peaks = peakRssByProgram(pids.filter((pid) => pid !== process.pid));
  await sandbox.stop();
  await runner.run(["rm", "-rf", ...["kube", "headscale", "devices", "nodes", "cluster"].map((d) => join(sandbox.run.dir, d))]);
}

process.stdout.write(`\nwarm start-up, median of ${rounds} rounds:\n`);
process.stdout.write(`  cluster ready (control plane, node Ready, images imported, CoreDNS) + Headscale  ${(median(starts) / 1000).toFixed(2)} s\n`);
process.stdout.write(`  ... plus two devices joined (total)    ${(median(joins) / 1000).toFixed(2)} s\n`);
process.stdout.write(`BENCH ${JSON.stringify({ name: "sandbox_cluster_start", value: Number((median(starts) / 1000).toFixed(2)), unit: "s" })}\n`);
process.stdout.write("\npeak RSS of sandbox processes (last round, VmHWM summed per program):\n");
let total = 0;
for (const [name, kib] of [...peaks].sort((a, b) => b[1] - a[1])) {
  total += kib;
  process.stdout.write(`  ${name.padEnd(20)} ${(kib / 1024).toFixed(0).padStart(6)} MiB\n`);
}
process.stdout.write(`  ${"total".padEnd(20)} ${(total / 1024).toFixed(0).padStart(6)} MiB\n`);
process.stdout.write(`BENCH ${JSON.stringify({ name: "sandbox_peak_rss_total", value: Math.round(total / 1024), unit: "MiB" })}\n`);
