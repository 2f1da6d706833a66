// OCI image JSON (config, manifest, index) and the two output forms: a one-platform archive
// for `ctr images import`, and an OCI layout directory holding the multi-platform index.
import { linkSync, mkdirSync, renameSync, rmSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "./cache.ts";
import type { Arch, ImageSpec } from "./definitions.ts";
import type { LayerRef } from "./layers.ts";
import { writeTarBlob, type TarEntry } from "./tar.ts";

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Record<string, string>;
}
export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

export const platformOf = (arch: Arch): Platform => (arch === "arm64" ? { architecture: "arm64", os: "linux", variant: "v8" } : { architecture: "amd64", os: "linux" });

/** Writes JSON as a content-addressed blob; key order is the caller's, so equal input, equal bytes. */
export function writeJsonBlob(blobs: string, mediaType: string, value: unknown): Descriptor {
  const bytes = Buffer.from(JSON.stringify(value));
  const hex = sha256(bytes);
  mkdirSync(join(blobs, "sha256"), { recursive: true });
  const path = join(blobs, "sha256", hex);
  if (!existsSync(path)) {
    writeFileSync(`${path}.tmp`, bytes);
    renameSync(`${path}.tmp`, path);
  }
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

export interface ImageMeta {
  readonly created: string;
  readonly version: string;
  readonly revision: string;
  readonly source: string;
}

const sortedRecord = (record: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));

export interface BuiltManifest {
  readonly arch: Arch;
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: readonly LayerRef[];
}

export function writeImage(blobs: string, image: ImageSpec, arch: Arch, layers: readonly LayerRef[], meta: ImageMeta): BuiltManifest {
  const labels = sortedRecord({
    "org.opencontainers.image.created": meta.created,
    "org.opencontainers.image.version": meta.version,
    "org.opencontainers.image.revision": meta.revision,
    "org.opencontainers.image.source": meta.source,
    ...image.labels,
  });
  const config: Record<string, unknown> = {};
  if (image.user !== undefined) config["User"] = image.user;
  if (image.exposedPorts.length > 0) config["ExposedPorts"] = Object.fromEntries(image.exposedPorts.map((port) => [port, {}]));
  config["Env"] = Object.entries(image.env).map(([key, value]) => `${key}=${value}`);
  config["Entrypoint"] = image.entrypoint;
  if (image.cmd !== undefined) config["Cmd"] = image.cmd;
  if (image.workdir !== undefined) config["WorkingDir"] = image.workdir;
  config["Labels"] = labels;
  if (image.stopSignal !== undefined) config["StopSignal"] = image.stopSignal;
  const configBlob = writeJsonBlob(blobs, MEDIA.config, {
    created: meta.created,
    ...platformOf(arch),
    config,
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.diffId) },
    history: layers.map((layer) => ({ created: meta.created, created_by: `scripts/images/build.ts: ${image.name} layer ${layer.name}` })),
  });
  const manifest = writeJsonBlob(blobs, MEDIA.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: configBlob,
    layers: layers.map((layer) => ({ mediaType: MEDIA.layer, digest: layer.digest, size: layer.size })),
  });
  return { arch, manifest, config: configBlob, layers };
}

/** Annotations that name the image for ctr (full reference) and for skopeo/oras (the tag). */
export function refAnnotations(ref: string): Record<string, string> {
  const tag = /:([^/:]+)$/.exec(ref)?.[1] ?? "latest";
  return { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag };
}

const OCI_LAYOUT = Buffer.from('{"imageLayoutVersion":"1.0.0"}');

function blobPaths(built: BuiltManifest): string[] {
  return [built.manifest.digest, built.config.digest, ...built.layers.map((layer) => layer.digest)];
}

/** <name>-<arch>.oci.tar: oci-layout, index.json naming the one manifest, and its blobs. */
export async function writeArchive(blobs: string, path: string, image: ImageSpec, built: BuiltManifest, mtime: number): Promise<number> {
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{ ...built.manifest, platform: platformOf(built.arch), annotations: refAnnotations(image.ref) }],
  };
  const root = { uid: 0, gid: 0 };
  const digests = [...new Set(blobPaths(built))].sort();
  const entries: TarEntry[] = [
    { type: "dir", path: "blobs", mode: 0o755, ...root },
    { type: "dir", path: "blobs/sha256", mode: 0o755, ...root },
    ...digests.map((digest): TarEntry => ({ type: "file", path: `blobs/sha256/${digest.slice(7)}`, mode: 0o644, source: join(blobs, "sha256", digest.slice(7)), ...root })),
    { type: "file", path: "index.json", mode: 0o644, source: Buffer.from(JSON.stringify(index)), ...root },
    { type: "file", path: "oci-layout", mode: 0o644, source: OCI_LAYOUT, ...root },
  ];
  const staging = `${path}.d`;
  rmSync(staging, { recursive: true, force: true });
  const written = await writeTarBlob(entries, mtime, staging, false);
  renameSync(join(staging, "sha256", written.digest.slice(7)), path);
  rmSync(staging, { recursive: true, force: true });
  return written.size;
}

/** <name>.oci/: an OCI layout whose index.json names one image index over every platform built. */
export function writeLayout(blobs: string, dir: string, image: ImageSpec, builds: readonly BuiltManifest[]): Descriptor {
  const imageIndex = writeJsonBlob(blobs, MEDIA.index, {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: builds.map((built) => ({ ...built.manifest, platform: platformOf(built.arch) })),
  });
  const temporary = `${dir}.tmp-${process.pid}`;
  rmSync(temporary, { recursive: true, force: true });
  mkdirSync(join(temporary, "blobs", "sha256"), { recursive: true });
  for (const digest of new Set([imageIndex.digest, ...builds.flatMap(blobPaths)])) {
    const hex = digest.slice(7);
    // Hard links: the layout costs no space beside the cache (a copy if they are on different filesystems).
    try {
      linkSync(join(blobs, "sha256", hex), join(temporary, "blobs", "sha256", hex));
    } catch {
      copyFileSync(join(blobs, "sha256", hex), join(temporary, "blobs", "sha256", hex));
    }
  }
  writeFileSync(join(temporary, "oci-layout"), OCI_LAYOUT);
  writeFileSync(join(temporary, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [{ ...imageIndex, annotations: refAnnotations(image.ref) }] }));
  rmSync(dir, { recursive: true, force: true });
  renameSync(temporary, dir);
  return imageIndex;
}
