// `make images`: builds the OCI images defined in images/<name>/image.yaml without a container
// engine or a registry, into $CACHE/images (see docs/images.md).
//
//   node scripts/images/build.ts [--only operator,proxy] [--arch amd64] [--check]
//                                [--verify-reproducible] [--wait-bins SECONDS]
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaultPaths, log, readJson, run, sha256File, type CachePaths } from "./cache.ts";
import { checkImages } from "./checks.ts";
import { REPO_ROOT, imageNames, loadImage, testImageNames, type Arch, type ImageSpec } from "./definitions.ts";
import { MissingInput } from "./inputs.ts";
import { blobDir, buildLayer, builderKey, type LayerContext, type LayerRef } from "./layers.ts";
import { refAnnotations, writeArchive, writeImage, writeLayout, type BuiltManifest, type ImageMeta } from "./oci.ts";

export interface PlatformResult {
  readonly image: string;
  readonly arch: Arch;
  readonly built: BuiltManifest;
  readonly tar: string;
  readonly tarBytes: number;
  readonly tarSha256: string;
  readonly seconds: number;
}

export interface BuildResult {
  readonly platforms: PlatformResult[];
  readonly indexes: Map<string, string>;
  readonly missing: string[];
}

const MiB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function sourceEpoch(): Promise<number> {
  const fromEnv = process.env["SOURCE_DATE_EPOCH"];
  if (fromEnv !== undefined && /^\d+$/.test(fromEnv)) return Number(fromEnv);
  return Number((await run(["git", "-C", REPO_ROOT, "log", "-1", "--format=%ct"])).trim());
}

async function imageMeta(epoch: number): Promise<Omit<ImageMeta, "version">> {
  const revision = (await run(["git", "-C", REPO_ROOT, "rev-parse", "HEAD"])).trim();
  const source = process.env["IMAGE_SOURCE"] ?? "https://github.com/tailnet-operator/tailnet-operator";
  return { created: new Date(epoch * 1000).toISOString(), revision, source };
}

async function buildPlatform(image: ImageSpec, arch: Arch, ctx: LayerContext, meta: ImageMeta, outDir: string): Promise<PlatformResult> {
  const started = performance.now();
  const layers: LayerRef[] = [];
  for (const layer of image.layers) layers.push(await buildLayer(image, layer, arch, ctx));
  const built = writeImage(blobDir(ctx.paths), image, arch, layers, meta);
  const tar = join(outDir, `${image.name}-${arch}.oci.tar`);
  const tarBytes = await writeArchive(blobDir(ctx.paths), tar, image, built, ctx.sourceEpoch);
  const seconds = (performance.now() - started) / 1000;
  const fresh = layers.filter((layer) => !layer.cached).map((layer) => layer.name);
  log(`${image.name} ${arch}: ${built.manifest.digest} (${fresh.length > 0 ? `built ${fresh.join(", ")}` : "all layers cached"}, ${seconds.toFixed(1)} s)`);
  return { image: image.name, arch, built, tar, tarBytes, tarSha256: await sha256File(tar), seconds };
}

/** Builds, waiting until the deadline for binaries `make bins` is still building; the reason if it cannot. */
async function buildWhenReady(image: ImageSpec, arch: Arch, deadline: number, build: () => Promise<PlatformResult>): Promise<PlatformResult | string> {
  for (;;) {
    try {
      return await build();
    } catch (error) {
      if (!(error instanceof MissingInput)) throw error;
      if (Date.now() >= deadline) {
        log(`${image.name} ${arch}: SKIPPED: ${error.message}`);
        return `${image.name} ${arch}: ${error.message}`;
      }
      log(`${image.name} ${arch}: waiting: ${error.message}`);
      await sleep(30_000);
    }
  }
}

/** Builds every platform of the images; amd64 first everywhere, since arm64 inputs come last. */
export async function buildAll(images: readonly ImageSpec[], arches: readonly Arch[], paths: CachePaths, waitSeconds: number): Promise<BuildResult> {
  const epoch = await sourceEpoch();
  const base = await imageMeta(epoch);
  const ctx: LayerContext = { paths, sourceEpoch: epoch, builderKey: builderKey(new URL(".", import.meta.url).pathname) };
  mkdirSync(paths.out, { recursive: true });
  const platforms: PlatformResult[] = [];
  const missing: string[] = [];
  const deadline = Date.now() + waitSeconds * 1000;
  for (const arch of arches) {
    for (const image of images) {
      if (!image.platforms.includes(arch)) continue;
      const version = /:([^/:]+)$/.exec(image.ref)?.[1] ?? "latest";
      const built = await buildWhenReady(image, arch, deadline, () => buildPlatform(image, arch, ctx, { ...base, version }, paths.out));
      if (typeof built === "string") missing.push(built);
      else platforms.push(built);
    }
  }
  const indexes = new Map<string, string>();
  for (const image of images) {
    const builds = platforms.filter((p) => p.image === image.name).map((p) => p.built);
    if (builds.length === 0 || builds.length < image.platforms.filter((arch) => arches.includes(arch)).length) continue;
    indexes.set(image.name, writeLayout(blobDir(paths), join(paths.out, `${image.name}.oci`), image, builds).digest);
  }
  return { platforms, indexes, missing };
}

interface ImagesJson {
  [name: string]: { ref: string; index?: string; platforms: Record<string, { manifest: string; tar: string; bytes: number; compressed: number; uncompressed: number }> };
}

function writeImagesJson(paths: CachePaths, images: readonly ImageSpec[], result: BuildResult): void {
  const file = join(paths.out, "images.json");
  const all: ImagesJson = existsSync(file) ? (readJson(file) as ImagesJson) : {};
  for (const image of images) {
    const index = result.indexes.get(image.name);
    const platforms: ImagesJson[string]["platforms"] = {};
    for (const p of result.platforms.filter((p) => p.image === image.name)) {
      platforms[p.arch] = {
        manifest: p.built.manifest.digest,
        tar: p.tar,
        bytes: p.tarBytes,
        compressed: p.built.layers.reduce((sum, layer) => sum + layer.size, 0),
        uncompressed: p.built.layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
      };
    }
    if (Object.keys(platforms).length === 0) continue;
    // Without every platform there is no multi-platform index yet; the archives are usable already.
    all[image.name] = index === undefined ? { ref: image.ref, platforms } : { ref: image.ref, index, platforms };
  }
  const sorted = Object.fromEntries(Object.entries(all).sort(([a], [b]) => (a < b ? -1 : 1)));
  writeFileSync(file, `${JSON.stringify(sorted, null, 2)}\n`);
}

function printTable(result: BuildResult, totalSeconds: number): void {
  const rows = [["image", "arch", "layers", "compressed MiB", "uncompressed MiB", "archive MiB", "seconds", "manifest"]];
  for (const p of result.platforms) {
    const compressed = p.built.layers.reduce((sum, layer) => sum + layer.size, 0) + p.built.config.size + p.built.manifest.size;
    const uncompressed = p.built.layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0);
    const cached = p.built.layers.filter((layer) => layer.cached).length;
    rows.push([p.image, p.arch, `${p.built.layers.length} (${cached} cached)`, mib(compressed), mib(uncompressed), mib(p.tarBytes), p.seconds.toFixed(1), p.built.manifest.digest.slice(0, 19)]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length))) ?? [];
  for (const row of rows) process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ")}\n`);
  process.stdout.write(`built in ${totalSeconds.toFixed(1)} s\n`);
  for (const p of result.platforms) {
    const compressed = p.built.layers.reduce((sum, layer) => sum + layer.size, 0) + p.built.config.size + p.built.manifest.size;
    process.stdout.write(`BENCH ${JSON.stringify({ name: `image_size_${p.image}_${p.arch}`, value: Number(mib(compressed)), unit: "MiB" })}\n`);
  }
  process.stdout.write(`BENCH ${JSON.stringify({ name: "images_build_seconds", value: Number(totalSeconds.toFixed(1)), unit: "s" })}\n`);
}

/** After a build of everything: drops blobs and layer records no image of this build uses. */
function collectGarbage(paths: CachePaths, result: BuildResult): void {
  const used = new Set<string>([...result.indexes.values()]);
  for (const p of result.platforms) for (const digest of [p.built.manifest.digest, p.built.config.digest, ...p.built.layers.map((l) => l.digest)]) used.add(digest);
  const blobs = join(blobDir(paths), "sha256");
  let freed = 0;
  for (const hex of readdirSync(blobs)) {
    if (used.has(`sha256:${hex}`)) continue;
    freed += statSync(join(blobs, hex)).size;
    rmSync(join(blobs, hex), { force: true });
  }
  const layers = join(paths.derived, "layers");
  for (const file of existsSync(layers) ? readdirSync(layers) : []) {
    if (!used.has((readJson(join(layers, file)) as { digest: string }).digest)) rmSync(join(layers, file));
  }
  if (freed > 0) log(`cache: removed ${mib(freed)} MiB of blobs no image uses any more`);
}

/** Builds twice from the same inputs into fresh derived caches and compares every digest. */
async function verifyReproducible(images: readonly ImageSpec[], arches: readonly Arch[], paths: CachePaths): Promise<boolean> {
  const runs: BuildResult[] = [];
  const scratch = mkdtempSync(join(process.env["TMPDIR"] ?? tmpdir(), "tailnet-operator-images-repro-"));
  try {
    for (const name of ["a", "b"]) {
      log(`reproducibility: build ${name} (derived cache emptied: node strip, Go build, layers, JSON)`);
      const fresh: CachePaths = { out: join(scratch, name, "out"), inputs: paths.inputs, derived: join(scratch, name, "derived") };
      runs.push(await buildAll(images, arches, fresh, 0));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const [a, b] = runs;
  let same = true;
  for (const pa of a?.platforms ?? []) {
    const pb = b?.platforms.find((p) => p.image === pa.image && p.arch === pa.arch);
    const digests = (p: PlatformResult | undefined): string[] => (p ? [p.built.manifest.digest, p.built.config.digest, ...p.built.layers.map((l) => l.digest), p.tarSha256] : []);
    const equal = JSON.stringify(digests(pa)) === JSON.stringify(digests(pb));
    same &&= equal;
    process.stdout.write(`reproducible ${pa.image} ${pa.arch}: ${equal ? "yes" : "NO"} manifest ${pa.built.manifest.digest}${equal ? "" : ` vs ${pb?.built.manifest.digest ?? "missing"}`}\n`);
  }
  for (const [name, index] of a?.indexes ?? []) {
    const equal = b?.indexes.get(name) === index;
    same &&= equal;
    process.stdout.write(`reproducible ${name} index: ${equal ? "yes" : "NO"} ${index}\n`);
  }
  // Informative: the last `make images` output, built from the same inputs unless the tree or HEAD moved since.
  const last = join(paths.out, "images.json");
  if (existsSync(last)) {
    const known = readJson(last) as ImagesJson;
    for (const p of a?.platforms ?? []) {
      const previous = known[p.image]?.platforms[p.arch]?.manifest;
      if (previous !== undefined) process.stdout.write(`  ${p.image} ${p.arch} vs ${last}: ${previous === p.built.manifest.digest ? "same manifest" : "different manifest (the tree, HEAD or cached inputs changed since)"}\n`);
    }
  }
  return same && (a?.platforms.length ?? 0) > 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: "string" },
      arch: { type: "string" },
      check: { type: "boolean", default: false },
      "verify-reproducible": { type: "boolean", default: false },
      "wait-bins": { type: "string", default: "0" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write("usage: build.ts [--only a,b] [--arch amd64|arm64] [--check] [--verify-reproducible] [--wait-bins SECONDS]\n");
    return;
  }
  const names = values.only?.split(",").filter(Boolean) ?? [...imageNames(), ...testImageNames()];
  const images = names.map((name) => loadImage(name));
  const arches = (values.arch?.split(",") ?? ["amd64", "arm64"]).filter((arch): arch is Arch => arch === "amd64" || arch === "arm64");
  const paths = defaultPaths();
  if (values["verify-reproducible"]) {
    const ok = await verifyReproducible(images, arches, paths);
    process.stdout.write(`reproducibility: ${ok ? "every digest matched" : "FAILED"}\n`);
    if (!ok) process.exitCode = 1;
    return;
  }
  const started = performance.now();
  const result = await buildAll(images, arches, paths, Number(values["wait-bins"]));
  writeImagesJson(paths, images, result);
  if (values.only === undefined && values.arch === undefined && result.missing.length === 0) collectGarbage(paths, result);
  printTable(result, (performance.now() - started) / 1000);
  log(`wrote ${join(paths.out, "images.json")}`);
  for (const image of images) {
    const index = result.indexes.get(image.name);
    if (index !== undefined) log(`${refAnnotations(image.ref)["io.containerd.image.name"] ?? image.ref} = ${index}`);
  }
  if (values.check) {
    const ok = await checkImages(images, result, paths);
    if (!ok) process.exitCode = 1;
  }
  if (result.missing.length > 0) {
    process.stderr.write(`[images] not built (inputs missing):\n${result.missing.map((line) => `  ${line}`).join("\n")}\n`);
    process.exitCode = 1;
  }
}

await main();
