// Which npm packages each entry point's process loads, recorded by a module load hook around the
// real entry point: every package stays resident in every proxy pod (docs/adr/0013), and
// @kubernetes/client-node alone is ~80 MiB RSS.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MARK = "LOADED-PACKAGES ";

/** Records the URL of every module loaded; prints them as the process exits. */
const HOOK = `
import { registerHooks } from "node:module";
import { writeSync } from "node:fs";
const loaded = [];
registerHooks({
  load(url, context, next) {
    loaded.push(url);
    return next(url, context);
  },
});
process.on("exit", () => { writeSync(2, "\\n${MARK}" + JSON.stringify(loaded) + "\\n"); });
`;

interface Loaded {
  /** npm packages, sorted. */
  readonly packages: string[];
  /** Every module's URL. */
  readonly modules: string[];
}

/** What a node process loads: preloads (--import) first, then the entry point with its arguments. */
function modulesLoaded(preloads: readonly string[], entry: readonly string[]): Promise<Loaded> {
  const argv = ["--import", `data:text/javascript,${encodeURIComponent(HOOK)}`, ...preloads.flatMap((p) => ["--import", `./${p}`]), ...entry];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { cwd: ROOT, env: { PATH: process.env["PATH"] ?? "" }, timeout: 60_000 }, (error, _stdout, stderr) => {
      const line = stderr.split("\n").find((l) => l.startsWith(MARK));
      if (line === undefined) {
        reject(error ?? new Error(`no ${MARK.trim()} line: ${stderr}`));
        return;
      }
      const modules = JSON.parse(line.slice(MARK.length)) as string[];
      const packages = new Set(modules.map((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1]).filter((name) => name !== undefined));
      resolve({ packages: [...packages].sort(), modules });
    });
  });
}

/** What an Ingress proxy may load (zod: the ingress config's schema, shared with the operator; undici: its upstream connections). */
const L7_ALLOWED = new Set(["undici", "zod"]);

describe("packages loaded by the proxy", { timeout: 120_000 }, () => {
  it("none in the L3 proxy (bin/tailnet-proxy.js)", async () => {
    const { packages, modules } = await modulesLoaded([], ["bin/tailnet-proxy.js", "--help"]);
    assert.ok(modules.some((url) => url.endsWith("/src/proxy/main.ts")), "the hook sees the proxy's modules");
    assert.deepEqual(packages, []);
  });

  it("neither @kubernetes/client-node nor the ACME client in the L7 proxy (bin/tailnet-proxy.js with the Ingress runner)", async () => {
    // main.ts imports ./l7/run-ingress.ts when TS_INGRESS_SECRET is set, which needs a pod to
    // run: it is preloaded here, so the process holds everything an L7 proxy loads at start.
    const { packages, modules } = await modulesLoaded(["src/proxy/l7/run-ingress.ts"], ["bin/tailnet-proxy.js", "--help"]);
    assert.ok(modules.some((url) => url.endsWith("/src/proxy/l7/ingress-secret.ts")), "the hook sees the Ingress runner's modules");
    assert.deepEqual(packages.filter((name) => !L7_ALLOWED.has(name)), [], `loaded: ${packages.join(", ")}`);
  });
});
