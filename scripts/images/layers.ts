// One layer of one image for one architecture: its cache key from everything it is made of,
// and, on a miss, its contents assembled and written as a gzip'd tar blob.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keyOf, log, readJson, sha256, sha256File, type CachePaths } from "./cache.ts";
import { closure, downloadDebs, unpackRootfs } from "./debian.ts";
import type { Arch, EntrySpec, ImageSpec, LayerSpec } from "./definitions.ts";
import { appFiles, caBundle, cacheBinary, goBinary, nodeBinary, prodNodeModules } from "./inputs.ts";
import { writeTarBlob, type WrittenBlob } from "./tar.ts";
import { LayerTree } from "./tree.ts";

/**
 * File times in layers that do not change with the product's code (Debian, node, node_modules,
 * binaries): a constant, so their blobs stay the same from one commit to the next and a new
 * release pulls only the app layer. 2024-01-01T00:00:00Z.
 */
export const FIXED_EPOCH = 1_704_067_200;

export interface LayerRef extends WrittenBlob {
  readonly name: string;
  readonly cached: boolean;
}

export interface LayerContext {
  readonly paths: CachePaths;
  /** SOURCE_DATE_EPOCH: file times of the app layer, and the images' creation time. */
  readonly sourceEpoch: number;
  /** Digest of the builder's own code: a change to it rebuilds every layer. */
  readonly builderKey: string;
}

const fileHashes = new Map<string, Promise<string>>();
/** sha256 of a file, remembered for the run (node and tailscaled are hashed once, not per image). */
function hashFile(path: string): Promise<string> {
  const stat = statSync(path);
  const id = `${path}:${stat.size}:${stat.mtimeMs}`;
  let hash = fileHashes.get(id);
  if (hash === undefined) {
    hash = sha256File(path);
    fileHashes.set(id, hash);
  }
  return hash;
}

async function entrySource(image: ImageSpec, entry: EntrySpec, arch: Arch, paths: CachePaths): Promise<string | undefined> {
  const from = entry.from;
  if (from === undefined) return undefined;
  const [kind, ...rest] = from.split(":");
  const spec = rest.join(":");
  if (kind === "image") return join(image.dir, spec);
  if (kind === "bin") return cacheBinary(spec, arch);
  return goBinary(join(image.dir, spec), arch, paths);
}

/** What the layer is made of, as hashes: its key, computed without building anything. */
async function layerInputs(image: ImageSpec, layer: LayerSpec, arch: Arch, ctx: LayerContext): Promise<unknown> {
  const inputs: Record<string, unknown> = { layer, arch };
  if (layer.debian && image.debian) {
    const set = await downloadDebs(arch, image.debian.packages, ctx.paths);
    inputs["debian"] = { debs: closure(set, image.debian.packages, image.debian.omit).map((deb) => deb.sha256), remove: image.debian.remove };
  }
  if (layer.node) inputs["node"] = await hashFile(await nodeBinary(arch, ctx.paths));
  if (layer.nodeModules) inputs["nodeModules"] = (await prodNodeModules(ctx.paths)).key;
  if (layer.app) {
    const files = [...appFiles().entries()].map(([rel, abs]) => [rel, sha256(readFileSync(abs)), (statSync(abs).mode & 0o111) !== 0]);
    inputs["app"] = { files, epoch: ctx.sourceEpoch };
  }
  const sources: string[] = [];
  for (const entry of layer.entries) {
    const source = await entrySource(image, entry, arch, ctx.paths);
    if (source !== undefined) sources.push(await hashFile(source));
  }
  inputs["sources"] = sources;
  return inputs;
}

async function fillTree(tree: LayerTree, image: ImageSpec, layer: LayerSpec, arch: Arch, ctx: LayerContext, scratch: string): Promise<void> {
  if (layer.debian && image.debian) {
    const set = await downloadDebs(arch, image.debian.packages, ctx.paths);
    const debs = closure(set, image.debian.packages, image.debian.omit);
    log(`${image.name} ${arch}: unpacking ${debs.length} Debian packages: ${debs.map((deb) => `${deb.package}=${deb.version}`).join(" ")}`);
    const root = join(scratch, "rootfs");
    await unpackRootfs(set, debs, arch, root, image.debian.remove);
    tree.addTree(root, "", { keepModes: true });
  }
  if (layer.passwd) tree.file("etc/passwd", Buffer.from(`${layer.passwd.join("\n")}\n`));
  if (layer.group) tree.file("etc/group", Buffer.from(`${layer.group.join("\n")}\n`));
  if (layer.node) {
    tree.file("usr/local/bin/node", await nodeBinary(arch, ctx.paths), 0o755);
    tree.file("etc/ssl/certs/ca-certificates.crt", await caBundle());
  }
  if (layer.nodeModules) tree.addTree((await prodNodeModules(ctx.paths)).dir, "app/node_modules");
  if (layer.app) {
    for (const [rel, abs] of appFiles()) tree.file(`app/${rel}`, abs, (statSync(abs).mode & 0o111) !== 0 ? 0o755 : 0o644);
  }
  for (const entry of layer.entries) {
    const owner = entry.owner ?? { uid: 0, gid: 0 };
    if (entry.type === "dir") tree.dir(entry.path, entry.mode ?? 0o755, owner);
    else if (entry.symlink !== undefined) tree.symlink(entry.path, entry.symlink);
    else tree.file(entry.path, (await entrySource(image, entry, arch, ctx.paths)) ?? "", entry.mode ?? 0o644, owner);
  }
}

export const blobDir = (paths: CachePaths): string => join(paths.derived, "blobs");

/** The layer's blob, from the cache when its inputs are unchanged. */
export async function buildLayer(image: ImageSpec, layer: LayerSpec, arch: Arch, ctx: LayerContext): Promise<LayerRef> {
  const mtime = layer.app ? ctx.sourceEpoch : FIXED_EPOCH;
  const key = keyOf({ builder: ctx.builderKey, mtime, inputs: await layerInputs(image, layer, arch, ctx), debian: layer.debian ? image.debian : undefined });
  const index = join(ctx.paths.derived, "layers", `${key}.json`);
  if (existsSync(index)) {
    const known = readJson(index) as WrittenBlob;
    if (existsSync(join(blobDir(ctx.paths), "sha256", known.digest.slice(7)))) return { ...known, name: layer.name, cached: true };
  }
  const scratch = join(ctx.paths.derived, "scratch", `${image.name}-${arch}-${layer.name}-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  try {
    const tree = new LayerTree();
    await fillTree(tree, image, layer, arch, ctx, scratch);
    const written = await writeTarBlob(tree.sorted(), mtime, blobDir(ctx.paths), true);
    mkdirSync(join(ctx.paths.derived, "layers"), { recursive: true });
    writeFileSync(index, `${JSON.stringify(written)}\n`);
    return { ...written, name: layer.name, cached: false };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The builder's sources that decide what goes into a layer (not the checks or the JSON around it). */
const LAYER_SOURCES = new Set(["cache.ts", "debian.ts", "definitions.ts", "elf.ts", "inputs.ts", "layers.ts", "tar.ts", "tree.ts"]);

/** A key of the builder's own sources. */
export function builderKey(dir: string): string {
  const files = readdirSync(dir).filter((file) => LAYER_SOURCES.has(file)).sort();
  return keyOf(files.map((file) => [file, sha256(readFileSync(join(dir, file)))]));
}
