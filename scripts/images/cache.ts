// Where the image builder keeps what it downloads and derives, and the small helpers it shares.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { ProcessRunner, type CommandResult, type RunOptions } from "../../src/shared/exec.ts";

export function cacheRoot(): string {
  return process.env["TAILNET_OPERATOR_CACHE"] ?? join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "tailnet-operator");
}

export interface CachePaths {
  /** The output: <name>-<arch>.oci.tar, <name>.oci/, images.json. */
  readonly out: string;
  /** Downloads and installs that only depend on what they are keyed by (debs, npm packages, tools). */
  readonly inputs: string;
  /** What the builder derives from inputs (stripped node, Go builds, layer and JSON blobs). */
  readonly derived: string;
}

export function defaultPaths(): CachePaths {
  const out = join(cacheRoot(), "images");
  return { out, inputs: join(out, "cache"), derived: join(out, "cache", "derived") };
}

export const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A short, stable key of any JSON-able value. */
export const keyOf = (value: unknown): string => sha256(JSON.stringify(value)).slice(0, 20);

const runner = new ProcessRunner();

/** Runs a command, failing with its output; long timeouts because downloads and builds are slow. */
export async function run(argv: readonly string[], options: RunOptions & { cwd?: string } = {}): Promise<string> {
  return (await runBoth(argv, options)).stdout;
}

/** run, keeping what the command wrote to stderr too. */
export function runBoth(argv: readonly string[], options: RunOptions & { cwd?: string } = {}): Promise<CommandResult> {
  const { cwd, ...rest } = options;
  const full = cwd === undefined ? argv : ["env", "-C", cwd, ...argv];
  return runner.run(full, { timeoutMs: 30 * 60_000, ...rest });
}

export function log(message: string): void {
  process.stderr.write(`[images] ${message}\n`);
}

/**
 * A cache directory filled once: `fill` writes into a temporary sibling, which becomes `dir`
 * only when it succeeds, so an interrupted build is redone, never half-used.
 */
export async function cachedDir(dir: string, fill: (temporary: string) => Promise<void>): Promise<string> {
  if (existsSync(join(dir, ".done"))) return dir;
  const temporary = `${dir}.tmp-${process.pid}`;
  rmSync(temporary, { recursive: true, force: true });
  mkdirSync(temporary, { recursive: true });
  await fill(temporary);
  writeFileSync(join(temporary, ".done"), "");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  renameSync(temporary, dir);
  return dir;
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, "utf8"));
}
