// The sandbox's CoreDNS is built with only the plugins its Corefile uses (scripts/build-bins.sh):
// a directive added here without its plugin there would fail only when a sandbox starts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { corefile } from "./cluster-dns.ts";

/** The directives of the server block: the first word of each line at nesting depth one. */
function directives(config: string): string[] {
  const found: string[] = [];
  let depth = 0;
  for (const line of config.split("\n").map((l) => l.trim()).filter(Boolean)) {
    if (depth === 1 && line !== "}") found.push(line.split(/\s+/)[0] ?? "");
    depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
  }
  return found;
}

describe("cluster DNS", () => {
  it("uses only plugins the sandbox's CoreDNS build compiles in", () => {
    const script = readFileSync(new URL("../../../scripts/build-bins.sh", import.meta.url), "utf8");
    const built = /^COREDNS_PLUGINS=\(([^)]*)\)/m.exec(script)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
    const used = directives(corefile("cluster.local"));
    assert.ok(used.length >= 5, `parsed the Corefile's directives: ${used.join(" ")}`);
    assert.deepEqual(used.filter((d) => !built.includes(d)), [], `COREDNS_PLUGINS in scripts/build-bins.sh is ${built.join(" ")}`);
  });
});
