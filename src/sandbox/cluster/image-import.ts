// Images for the node's containerd, without a registry: `make images` writes single-platform
// OCI archives and an images.json index; each archive is imported into containerd's k8s.io
// namespace (the one the CRI uses) under its full reference, so the kubelet finds it and a pod
// with imagePullPolicy IfNotPresent (and a non-latest tag) never tries to pull.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { CommandRunner } from "../../shared/exec.ts";
import { binCacheDir } from "../binaries.ts";

/** Overrides where images.json is read from (default: <cache>/images/images.json). */
export const IMAGES_ENV = "TNO_SANDBOX_IMAGES";

export interface PlatformImage {
  readonly manifest: string;
  readonly tar: string;
  readonly bytes: number;
}

export interface ImageEntry {
  readonly ref: string;
  readonly index?: string;
  readonly platforms: Readonly<Record<string, PlatformImage | undefined>>;
}

export type ImageIndex = Readonly<Record<string, ImageEntry | undefined>>;

export function imagesJsonPath(): string {
  return process.env[IMAGES_ENV] ?? join(dirname(binCacheDir()), "images", "images.json");
}

export function readImageIndex(path = imagesJsonPath()): ImageIndex {
  if (!existsSync(path)) {
    throw new Error(`no ${path}: build the images with \`make images\` (or point ${IMAGES_ENV} at an images.json)`);
  }
  return JSON.parse(readFileSync(path, "utf8")) as ImageIndex;
}

/** The image named in images.json (pause, coredns, operator, ...); throws when it is not built. */
export function requireImage(index: ImageIndex, name: string, arch = "amd64"): { ref: string; tar: string } {
  const entry = index[name];
  const platform = entry?.platforms[arch];
  if (!entry || !platform) throw new Error(`images.json has no ${arch} image "${name}"; run \`make images\``);
  return { ref: entry.ref, tar: platform.tar };
}

/** Every image of the index built for arch. */
export function imagesFor(index: ImageIndex, arch = "amd64"): { name: string; ref: string; tar: string }[] {
  const out: { name: string; ref: string; tar: string }[] = [];
  for (const [name, entry] of Object.entries(index)) {
    const platform = entry?.platforms[arch];
    if (entry && platform) out.push({ name, ref: entry.ref, tar: platform.tar });
  }
  return out;
}

/**
 * Imports one OCI archive with ctr and checks that ref is listed afterwards. An archive whose
 * index names the image only by tag (org.opencontainers.image.ref.name = "3.10") is imported
 * again with ref as the index name.
 */
export async function importImage(runner: CommandRunner, ctr: (args: readonly string[]) => string[], tar: string, ref?: string): Promise<void> {
  const base = ["-n", "k8s.io", "images", "import", "--platform", "linux/amd64"];
  await runner.run(ctr([...base, tar]), { timeoutMs: 180_000 });
  if (ref === undefined) return;
  const listed = async (): Promise<boolean> => (await runner.run(ctr(["-n", "k8s.io", "images", "ls", "-q"]))).stdout.split("\n").includes(ref);
  if (await listed()) return;
  await runner.run(ctr([...base, "--index-name", ref, tar]), { timeoutMs: 180_000 });
  if (!(await listed())) throw new Error(`importing ${tar} did not list ${ref} in containerd`);
}
