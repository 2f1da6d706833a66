// Node's compile cache for an image, generated at build time: node keeps the TypeScript it has
// stripped there, and a process that finds every module in it never loads the stripper (amaro,
// a WebAssembly build of swc that stays resident: ~17 MiB RSS, ~12 MiB of it private). The
// proxy runs once per exposed Service, so that is paid per Service (docs/adr/0013).
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { run } from "./cache.ts";
import { appFiles } from "./inputs.ts";

/**
 * Entries holding V8 code cache rather than stripped source: their payload (after node's 20-byte
 * entry header) starts with V8's serialized-code magic, 0xC0DExxxx little-endian. V8 code cache
 * differs from run to run, so it is left out (the layer stays reproducible); node writes it at
 * run time where it can.
 */
function isV8CodeCache(entry: Buffer): boolean {
  return entry.length >= 24 && entry[22] === 0xde && entry[23] === 0xc0;
}

/**
 * Runs `node argv...` (argv: the script and its arguments) in a copy of the app files (and a link
 * to nodeModules, if given) with a portable compile cache (paths relative
 * to the cache, so it is valid under /app), and returns the cache directory, holding only the
 * stripped-TypeScript entries.
 */
export async function compileCacheTree(node: string, argv: readonly string[], scratch: string, nodeModules?: string): Promise<string> {
  const app = join(scratch, "app");
  for (const [rel, abs] of appFiles()) {
    mkdirSync(dirname(join(app, rel)), { recursive: true });
    copyFileSync(abs, join(app, rel));
  }
  // The image's production modules, for a command that imports them (the operator loads
  // client-node at once); their entries are JavaScript's V8 code cache, left out below.
  if (nodeModules) symlinkSync(nodeModules, join(app, "node_modules"));
  const cache = join(app, ".node-compile-cache");
  await run([node, ...argv], { cwd: app, env: { PATH: process.env["PATH"] ?? "", NODE_COMPILE_CACHE: cache, NODE_COMPILE_CACHE_PORTABLE: "1" } });
  let kept = 0;
  for (const entry of readdirSync(cache, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if (isV8CodeCache(readFileSync(path))) rmSync(path);
    else kept++;
  }
  // A format change in node would otherwise silently give an image that strips at start-up.
  if (kept === 0) throw new Error(`compile cache for ${argv.join(" ")}: node wrote no stripped-TypeScript entries (a new node cache format?)`);
  return cache;
}
