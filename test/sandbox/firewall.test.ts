// The firewall on every host flavour, with real kernel rules and real traffic. Each case is a
// "node" namespace whose tools and existing rules mimic a kind of host; the proxy's firewall
// code runs there against a tailscale0 interface (a veth from a "tailnet client" namespace),
// forwarding to a backend that owns a ClusterIP on the sandbox bridge.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { attachSandbox } from "../helpers/sandbox.ts";
import type { CommandResult, CommandRunner, RunOptions } from "../../src/shared/exec.ts";
import { NetworkNamespace } from "../../src/sandbox/netns.ts";
import { namespacePrefix } from "../../src/sandbox/runs.ts";
import type { SandboxHost } from "../../src/sandbox/network.ts";
import { chooseFirewall, clearStaleRules, applyOrClear } from "../../src/proxy/firewall/select.ts";
import type { ForwardingRules } from "../../src/proxy/firewall/rules.ts";
import { waitFor } from "../../src/shared/clock.ts";
import { ManagedProcess } from "../../src/shared/process.ts";
import { nodeToolArgv } from "../../src/sandbox/tools.ts";

const sandbox = await attachSandbox();
const runner = sandbox.runner;
let caseNumber = 0;
// Inside fd96::/108 (the last 20 bits vary), like a real ClusterIP.
const CLUSTER_IP6 = "fd96::a:10";

/** Runs commands inside a namespace, with a PATH that decides which tools the "host" has. */
class NodeRunner implements CommandRunner {
  readonly ns: string;
  readonly path: string;
  constructor(ns: string, path: string) {
    this.ns = ns;
    this.path = path;
  }
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    return runner.run(["ip", "netns", "exec", this.ns, "env", `PATH=${this.path}`, ...argv], options);
  }
}

const SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** A PATH directory holding only the named tools, some replaced by wrappers that fail like a missing kernel module. */
async function toolDir(name: string, tools: readonly string[], broken: readonly string[] = []): Promise<string> {
  const dir = join(sandbox.run.dir, "fw-tools", name);
  await mkdir(dir, { recursive: true });
  for (const tool of [...tools, "ip", "env", "sysctl"]) {
    const real = (await runner.run(["sh", "-c", `command -v ${tool}`], { env: { PATH: SYSTEM_PATH } })).stdout.trim();
    if (broken.includes(tool)) {
      await writeFile(join(dir, tool), `#!/bin/sh\n[ "$1" = "--version" ] && exec ${real} "$@"\necho "${tool}: can't initialize table \`nat': Table does not exist (do you need to insmod?)" >&2\nexit 3\n`);
      await chmod(join(dir, tool), 0o755);
    } else {
      await symlink(real, join(dir, tool));
    }
  }
  return dir;
}

const ALL_TOOLS = ["nft", "iptables", "ip6tables", "iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy",
  "iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save",
  "iptables-nft-restore", "ip6tables-nft-restore", "iptables-legacy-restore", "ip6tables-legacy-restore"];

interface Node {
  readonly host: SandboxHost;
  readonly client: NetworkNamespace;
  readonly run: NodeRunner;
}

/** node: on the bridge, with tailscale0 (100.100.9.1) leading to a client at 100.100.9.2. */
async function makeNode(path: string): Promise<Node> {
  const n = ++caseNumber;
  const host = await sandbox.network.addHost("fwnode");
  const client = await NetworkNamespace.create(runner, `${namespacePrefix(sandbox.run.id)}fwclient${n}`);
  after(() => client.delete());
  await runner.run(["ip", "link", "add", `fwc${n}`, "netns", client.name, "type", "veth", "peer", "name", "tailscale0", "netns", host.namespace.name]);
  const inNode = (...a: string[]): Promise<unknown> => runner.run(host.namespace.exec(a));
  const inClient = (...a: string[]): Promise<unknown> => runner.run(client.exec(a));
  await inNode("ip", "addr", "add", "100.100.9.1/24", "dev", "tailscale0");
  await inNode("ip", "-6", "addr", "add", "fd7a:115c:a1e0::9:1/120", "dev", "tailscale0", "nodad");
  await inNode("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
  await inNode("ip", "link", "set", "tailscale0", "up");
  await inNode("sysctl", "-qw", "net.ipv4.ip_forward=1");
  await inClient("ip", "link", "set", `fwc${n}`, "name", "eth0");
  await inClient("ip", "addr", "add", "100.100.9.2/24", "dev", "eth0");
  await inClient("ip", "-6", "addr", "add", "fd7a:115c:a1e0::9:2/120", "dev", "eth0", "nodad");
  await inClient("ip", "link", "set", "eth0", "up");
  return { host, client, run: new NodeRunner(host.namespace.name, path) };
}

/** The rules that are not ours, as the host's own tools list them (counters left out). */
async function foreignRuleset(node: Node): Promise<string> {
  const dump = async (argv: string[]): Promise<string> => node.run.run(argv).then((r) => r.stdout, () => "");
  const saves = ["iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"];
  const iptables = (await Promise.all(saves.map(async (save) => (await dump([save])).split("\n").map((l) => `${save} ${l}`)))).flat()
    .filter((l) => / -A /.test(l) && !/TNO-/.test(l));
  // Native nftables rules; iptables-nft's own tables are covered by iptables-nft-save above.
  const iptablesNftTables = new Set(["filter", "nat", "mangle", "raw", "security"]);
  const json = (await dump(["nft", "-j", "list", "ruleset"])) || "{}";
  const nft = ((JSON.parse(json) as { nftables?: { rule?: { family: string; table: string; chain: string; expr: unknown } }[] }).nftables ?? [])
    .flatMap((item) => (item.rule ? [item.rule] : []))
    .filter((r) => r.table !== "tailnet-proxy" && !/TNO-/.test(r.chain) && !(["ip", "ip6"].includes(r.family) && iptablesNftTables.has(r.table)))
    .map((r) => `nftables ${r.family} ${r.table} ${r.chain} ${JSON.stringify(r.expr).replace(/"counter":\{[^}]*\}/g, '"counter":{}')}`);
  return [...iptables, ...nft].join("\n");
}

async function curlThroughNode(node: Node): Promise<string> {
  return waitFor("traffic through the node", async () => (await runner.run(node.client.exec(["curl", "-s", "--max-time", "3", "http://100.100.9.1/"]))).stdout, { timeoutMs: 10_000 });
}

async function exercise(node: Node, clusterIp: string, expectedMode: string): Promise<void> {
  const before = await foreignRuleset(node);
  const { firewall, reason, probes } = await chooseFirewall(node.run, "auto", [4, 6]);
  assert.equal(firewall.mode, expectedMode, `chose ${firewall.mode}: ${reason}`);
  await clearStaleRules(node.run, probes, [4, 6]);
  const rules: ForwardingRules = {
    tunInterface: "tailscale0",
    ingress: [
      { tailnetIp: "100.100.9.1", destination: clusterIp },
      { tailnetIp: "fd7a:115c:a1e0::9:1", destination: CLUSTER_IP6 },
    ],
    // Egress: cluster traffic to the node's port 8080 goes to the tailnet target's 8000.
    egress: [{ target: "100.100.9.2", source: "100.100.9.1", ports: [{ protocol: "tcp", matchPort: 8080, targetPort: 8000 }] }],
  };
  await applyOrClear(firewall, rules);
  await applyOrClear(firewall, rules); // twice: changes nothing
  // A restarted proxy (same namespace, rules left by a SIGKILL) detects, clears and applies again.
  const again = await chooseFirewall(node.run, "auto", [4, 6]);
  assert.equal(again.firewall.mode, expectedMode, "our own leftover rules do not sway the choice");
  await clearStaleRules(node.run, again.probes, [4, 6]);
  await applyOrClear(again.firewall, rules);
  const ours = (await node.run.run(["sh", "-c", "iptables-legacy-save 2>/dev/null; iptables-nft-save 2>/dev/null; nft list table ip tailnet-proxy 2>/dev/null; true"])).stdout;
  assert.equal(ours.split("\n").filter((l) => /100\.100\.9\.1.*(dnat to|DNAT --to-destination) 10\.96/.test(l)).length, 1, "our DNAT rule exists exactly once");
  const page = await curlThroughNode(node);
  assert.match(page, /^hello from fw-backend/);
  assert.equal(/remote=(\S+)/.exec(page)?.[1], node.host.address, "masqueraded: the backend answered the node");
  const page6 = await waitFor("IPv6 traffic through the node", async () => (await runner.run(node.client.exec(["curl", "-s", "--max-time", "3", "http://[fd7a:115c:a1e0::9:1]/"]))).stdout, { timeoutMs: 10_000 });
  assert.match(page6, /^hello from fw-backend/);
  assert.equal(/remote=(\S+)/.exec(page6)?.[1], node.host.address6, "IPv6 DNAT and masquerade");

  sandbox.track(ManagedProcess.start({
    name: "tailnet target",
    logFile: join(sandbox.run.dir, `fw-target-${node.host.index}.log`),
    argv: node.client.exec(nodeToolArgv("http-server.ts", ["--name", "tailnet-target", "--listen", "100.100.9.2:8000"])),
  }));
  const egressPage = await waitFor("egress through the node", async () => (await runner.run(["curl", "-s", "--max-time", "3", `http://${node.host.address}:8080/`])).stdout, { timeoutMs: 10_000 });
  assert.match(egressPage, /^hello from tailnet-target/);
  assert.equal(/remote=(\S+)/.exec(egressPage)?.[1], "100.100.9.1", "SNAT: the target saw the proxy's tailnet IP");

  // A new target replaces the old rule rather than adding one.
  await applyOrClear(firewall, { ...rules, ingress: [{ tailnetIp: "100.100.9.1", destination: "10.96.250.99" }] });
  const replaced = (await node.run.run(["sh", "-c", "iptables-legacy-save 2>/dev/null; iptables-nft-save 2>/dev/null; nft list table ip tailnet-proxy 2>/dev/null; true"])).stdout;
  assert.doesNotMatch(replaced, new RegExp(clusterIp.replaceAll(".", "\\.")), "the old target's rule is gone");
  assert.match(replaced, /10\.96\.250\.99/);
  assert.equal(await foreignRuleset(node), before, "rules that are not ours are untouched");
  await firewall.clear();
  assert.equal(await foreignRuleset(node), before);
  const leftovers = (await node.run.run(["sh", "-c", "iptables-legacy-save; ip6tables-legacy-save; iptables-nft-save; ip6tables-nft-save; nft list ruleset; true"]).catch(() => ({ stdout: "" }))).stdout;
  assert.doesNotMatch(leftovers, /TNO-|tailnet-proxy/, "stop leaves none of ours");
}

describe("firewall on every host flavour (auto mode, real rules, real traffic)", async () => {
  const clusterIp = "10.96.250.10";
  await sandbox.addBackend({ name: "fw-backend", ips: [clusterIp, CLUSTER_IP6], ports: [80] });
  const full = await toolDir("full", [...ALL_TOOLS, "sh", "curl"]);

  it("a node whose kube-proxy uses iptables-legacy (Ubuntu 20.04): picks iptables-legacy", async () => {
    const node = await makeNode(full);
    await node.run.run(["iptables-legacy", "-t", "nat", "-N", "KUBE-SERVICES"]);
    await node.run.run(["iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]);
    await node.run.run(["iptables-legacy", "-t", "nat", "-A", "KUBE-SERVICES", "-d", "10.96.0.1/32", "-p", "tcp", "--dport", "443", "-j", "RETURN"]);
    await exercise(node, clusterIp, "iptables-legacy");
  });

  it("a node whose kube-proxy uses iptables-nft (Ubuntu 22.04): picks iptables-nft", async () => {
    const node = await makeNode(full);
    await node.run.run(["iptables-nft", "-t", "nat", "-N", "KUBE-SERVICES"]);
    await node.run.run(["iptables-nft", "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]);
    await exercise(node, clusterIp, "iptables-nft");
  });

  it("a node with only nft and no iptables binary: picks nftables", async () => {
    const node = await makeNode(await toolDir("nft-only", ["nft", "sh", "curl"]));
    await node.run.run(["nft", "-f", "-"], { input: "table inet host-fw {\n chain input { type filter hook input priority 0; tcp dport 22 accept; }\n}\n" });
    await exercise(node, clusterIp, "nftables");
  });

  it("a node where the legacy backend cannot work: never picks it", async () => {
    const node = await makeNode(await toolDir("no-legacy", [...ALL_TOOLS, "sh", "curl"], ["iptables-legacy", "ip6tables-legacy", "iptables-legacy-save", "iptables-legacy-restore"]));
    await exercise(node, clusterIp, "nftables");
    await assert.rejects(chooseFirewall(node.run, "iptables-legacy", [4]), /iptables-legacy was requested, but iptables-legacy does not work here: .*iptables-legacy -w -t nat -N TNO-PROBE/);
  });

  it("a node where nftables cannot work (no nf_tables in the kernel): falls back to iptables-legacy", async () => {
    const broken = ["nft", "iptables-nft", "ip6tables-nft", "iptables-nft-save", "iptables-nft-restore"];
    const node = await makeNode(await toolDir("no-nft", [...ALL_TOOLS, "sh", "curl"], broken));
    await exercise(node, clusterIp, "iptables-legacy");
  });

  it("a rule apply that fails half-way leaves none of our rules and names the backend and command", async () => {
    // iptables-nft whose restore works but whose jump insertion (-I) fails.
    const dir = await toolDir("half-way", [...ALL_TOOLS.filter((t) => t !== "iptables-nft"), "sh", "curl"]);
    await writeFile(join(dir, "iptables-nft"), `#!/bin/sh\nfor a in "$@"; do [ "$a" = "-I" ] && { echo "iptables: Resource temporarily unavailable." >&2; exit 4; }; done\nexec /usr/sbin/iptables-nft "$@"\n`);
    await chmod(join(dir, "iptables-nft"), 0o755);
    const node = await makeNode(dir);
    await node.run.run(["/usr/sbin/iptables-nft", "-t", "nat", "-N", "KUBE-SERVICES"]);
    await node.run.run(["/usr/sbin/iptables-nft", "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]);
    const before = await foreignRuleset(node);
    const { firewall } = await chooseFirewall(node.run, "iptables-nft", [4]);
    await assert.rejects(applyOrClear(firewall, { tunInterface: "tailscale0", ingress: [{ tailnetIp: "100.100.9.1", destination: clusterIp }] }), /firewall \(iptables-nft\): applying the forwarding rules failed, none are left: .*iptables-nft -w -t nat -I PREROUTING 1 -j TNO-PREROUTING/);
    assert.doesNotMatch((await node.run.run(["iptables-nft-save"])).stdout, /TNO-/);
    assert.equal(await foreignRuleset(node), before);
  });

  it("doctor reports the choice as JSON, with only NET_ADMIN and NET_RAW, and changes nothing", async () => {
    const node = await makeNode(full);
    await node.run.run(["iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-s", "10.244.0.0/16", "-j", "MASQUERADE"]);
    const before = await foreignRuleset(node);
    const nftTables = async (): Promise<string> => (await node.run.run(["nft", "list", "tables"])).stdout;
    const tablesBefore = await nftTables();
    const proxy = fileURLToPath(new URL("../../bin/tailnet-proxy.js", import.meta.url));
    const { stdout } = await node.run.run(["/usr/bin/setpriv", "--bounding-set", "-all,+net_admin,+net_raw", "--inh-caps", "-all", "--", process.execPath, proxy, "doctor", "--json"]);
    const report = JSON.parse(stdout) as { firewall: { mode: string; reason: string }; capabilities: string[]; tun: { present: boolean }; backends: { mode: string; works: boolean; foreignRules: number }[] };
    assert.equal(report.firewall.mode, "iptables-legacy");
    assert.match(report.firewall.reason, /only iptables-legacy holds rules \(1\)/);
    assert.deepEqual(report.capabilities, ["NET_ADMIN", "NET_RAW"]);
    assert.ok(report.backends.every((b) => b.works), "every backend works with NET_ADMIN + NET_RAW alone");
    assert.equal(report.tun.present, true);
    assert.equal(await foreignRuleset(node), before);
    assert.equal(await nftTables(), tablesBefore, "no nftables table is left behind (iptables-nft's probe creates `table ip nat`)");
    assert.doesNotMatch((await node.run.run(["sh", "-c", "iptables-legacy-save; iptables-nft-save; nft list ruleset"])).stdout, /TNO-|tno-probe|tailnet-proxy/);
  });
});
