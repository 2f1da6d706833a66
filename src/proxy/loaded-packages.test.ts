// Which npm packages each entry point's process loads, recorded by a module load hook around the
// real entry point: every package stays resident in every proxy pod (docs/adr/0013), and
// @kubernetes/client-node alone is ~80 MiB RSS.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MARK = "LOADED-PACKAGES ";

/** Records the URL of every module loaded from node_modules; prints them as the process exits. */
const HOOK = `
import { registerHooks } from "node:module";
import { writeSync } from "node:fs";
const loaded = new Set();
registerHooks({
  load(url, context, next) {
    const match = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(url);
    if (match) loaded.add(match[1]);
    return next(url, context);
  },
});
process.on("exit", () => { writeSync(2, "\\n${MARK}" + JSON.stringify([...loaded].sort()) + "\\n"); });
`;

/** The npm packages a node process loads: preloads (--import) first, then the entry point with its arguments. */
function packagesLoaded(preloads: readonly string[], entry: readonly string[]): Promise<string[]> {
  const argv = ["--import", `data:text/javascript,${encodeURIComponent(HOOK)}`, ...preloads.flatMap((p) => ["--import", `./${p}`]), ...entry];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { cwd: ROOT, env: { PATH: process.env["PATH"] ?? "" }, timeout: 60_000 }, (error, _stdout, stderr) => {
      const line = stderr.split("\n").find((l) => l.startsWith(MARK));
      if (line === undefined) {
        reject(error ?? new Error(`no ${MARK.trim()} line: ${stderr}`));
        return;
      }
      resolve(JSON.parse(line.slice(MARK.length)) as string[]);
    });
  });
}

describe("packages loaded by the proxy", { timeout: 120_000 }, () => {
  it("none in the L3 proxy (bin/tailnet-proxy.js)", async () => {
    assert.deepEqual(await packagesLoaded([], ["bin/tailnet-proxy.js", "--help"]), []);
  });

  it("no @kubernetes/client-node in the L7 proxy (bin/tailnet-proxy.js with the Ingress runner main.ts imports)", async () => {
    // main.ts imports ./l7/run-ingress.ts when TS_INGRESS_SECRET is set, which needs a pod to
    // run: it is preloaded here, so the process holds everything an L7 proxy loads statically.
    const loaded = await packagesLoaded(["src/proxy/l7/run-ingress.ts"], ["bin/tailnet-proxy.js", "--help"]);
    assert.ok(loaded.length > 0, "the hook sees the L7 runner's packages (acme-client and others)");
    assert.ok(!loaded.includes("@kubernetes/client-node"), `loaded: ${loaded.join(", ")}`);
  });
});
