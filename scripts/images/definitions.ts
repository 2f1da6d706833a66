// Reads the image definitions, images/<name>/image.yaml, and fills in ${VARIABLES} from
// package.json and scripts/pins.env.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { z } from "zod";

export const ARCHES = ["amd64", "arm64"] as const;
export type Arch = (typeof ARCHES)[number];

const octalMode = z.string().regex(/^[0-7]{3,4}$/).transform((text) => parseInt(text, 8));
const owner = z
  .string()
  .regex(/^\d+:\d+$/)
  .transform((text) => {
    const [uid, gid] = text.split(":").map(Number);
    return { uid: uid ?? 0, gid: gid ?? 0 };
  });

const entrySchema = z
  .object({
    path: z.string().startsWith("/"),
    type: z.enum(["dir"]).optional(),
    symlink: z.string().optional(),
    /** image:<file in the image's directory>, bin:<dir in the binary cache>/<file>, go:<package dir>. */
    from: z.string().regex(/^(image|bin|go):/).optional(),
    mode: octalMode.optional(),
    owner: owner.optional(),
  })
  .strict()
  .refine((entry) => [entry.type, entry.symlink, entry.from].filter((x) => x !== undefined).length === 1, {
    message: "an entry is exactly one of type: dir, symlink: or from:",
  });
export type EntrySpec = z.infer<typeof entrySchema>;

const layerSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9_-]+$/),
    debian: z.boolean().optional(),
    node: z.boolean().optional(),
    nodeModules: z.boolean().optional(),
    app: z.boolean().optional(),
    /**
     * Node's compile cache (TypeScript already stripped) for the modules this command loads, run
     * on the app files with the layer's node at build time: node then never loads its
     * TypeScript stripper (~17 MiB RSS) at run time. Set NODE_COMPILE_CACHE to the image's
     * /app/.node-compile-cache and NODE_COMPILE_CACHE_PORTABLE=1 in env. Host architecture only.
     */
    compileCache: z.array(z.string()).min(1).optional(),
    passwd: z.array(z.string()).optional(),
    group: z.array(z.string()).optional(),
    entries: z.array(entrySchema).default([]),
  })
  .strict();
export type LayerSpec = z.infer<typeof layerSchema>;

const smokeSchema = z
  .object({
    argv: z.array(z.string()).min(1),
    expect: z.string(),
    anyExit: z.boolean().optional(),
    /** Not run under qemu-user (for what it cannot emulate). */
    nativeOnly: z.boolean().optional(),
    /** Run argv as a server and fetch this URL from inside its own network namespace. */
    http: z.url().optional(),
  })
  .strict();
export type SmokeSpec = z.infer<typeof smokeSchema>;

const imageSchema = z
  .object({
    ref: z.string(),
    platforms: z.array(z.enum(ARCHES)).min(1),
    debian: z
      .object({
        packages: z.array(z.string()).min(1),
        omit: z.array(z.string()).default([]),
        remove: z.array(z.string()).default([]),
      })
      .strict()
      .optional(),
    layers: z.array(layerSchema).min(1),
    user: z.string().regex(/^\d+(:\d+)?$/).optional(),
    entrypoint: z.array(z.string()).min(1),
    cmd: z.array(z.string()).optional(),
    workdir: z.string().optional(),
    env: z.record(z.string(), z.string()).default({}),
    labels: z.record(z.string(), z.string()).default({}),
    exposedPorts: z.array(z.string()).default([]),
    stopSignal: z.string().optional(),
    smoke: z.array(smokeSchema).default([]),
  })
  .strict();

export type ImageSpec = z.infer<typeof imageSchema> & {
  readonly name: string;
  /** The image's directory, where image: and go: sources live. */
  readonly dir: string;
};

export const REPO_ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const IMAGES_DIR = join(REPO_ROOT, "images");

export function readPins(): Record<string, string> {
  const pins: Record<string, string> = {};
  for (const line of readFileSync(join(REPO_ROOT, "scripts/pins.env"), "utf8").split("\n")) {
    const match = /^([A-Z0-9_]+)=(\S+)$/.exec(line.trim());
    if (match?.[1] && match[2]) pins[match[1]] = match[2];
  }
  return pins;
}

export function projectVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** Variables usable as ${NAME} in image.yaml: the pins, VERSION, and each pin without its "v". */
export function variables(): Record<string, string> {
  const vars: Record<string, string> = { VERSION: projectVersion() };
  for (const [key, value] of Object.entries(readPins())) {
    vars[key] = value;
    vars[`${key}_NUMBER`] = value.replace(/^v/, "");
  }
  return vars;
}

function substitute(value: unknown, vars: Record<string, string>, where: string): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
      const found = vars[name];
      if (found === undefined) throw new Error(`${where}: unknown variable \${${name}}`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((item) => substitute(item, vars, where));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item, vars, where)]));
  }
  return value;
}

/** Test-only images (sandbox tests), built beside the others but kept out of imageNames(). */
export const TEST_IMAGES_DIR = join(IMAGES_DIR, "test");

function imageDir(name: string): string {
  const top = join(IMAGES_DIR, name);
  return existsSync(join(top, "image.yaml")) ? top : join(TEST_IMAGES_DIR, name);
}

type RawImage = Record<string, unknown>;

/**
 * image.yaml with `extends: <image>` is that image plus its own layers on top (so the base's
 * layers are the same blobs), with its own ref, platforms, smoke commands and extra labels.
 */
function resolveExtends(raw: RawImage, vars: Record<string, string>, file: string, seen: readonly string[]): RawImage {
  const base = raw["extends"];
  if (base === undefined) return raw;
  if (typeof base !== "string" || seen.includes(base)) throw new Error(`${file}: extends: must name another image, without cycles`);
  const baseFile = join(imageDir(base), "image.yaml");
  const baseRaw = resolveExtends(substitute(parse(readFileSync(baseFile, "utf8")), vars, baseFile) as RawImage, vars, baseFile, [...seen, base]);
  const baseLayers = (baseRaw["layers"] ?? []) as { entries?: { from?: string }[] }[];
  // image: and go: sources are relative to an image's own directory: not valid in another's.
  if (baseLayers.some((layer) => (layer.entries ?? []).some((entry) => /^(image|go):/.test(entry.from ?? "")))) {
    throw new Error(`${file}: cannot extend ${base}, whose layers take files from its own directory`);
  }
  const own = { ...raw };
  delete own["extends"];
  const { layers = [], labels = {} } = own;
  return {
    ...baseRaw,
    ...own,
    layers: [...baseLayers, ...(layers as unknown[])],
    labels: { ...(baseRaw["labels"] as object | undefined), ...(labels as object) },
  };
}

export function loadImage(name: string, vars: Record<string, string> = variables()): ImageSpec {
  const dir = imageDir(name);
  const file = join(dir, "image.yaml");
  const raw = substitute(parse(readFileSync(file, "utf8")), vars, file) as RawImage;
  const parsed = imageSchema.safeParse(resolveExtends(raw, vars, file, [name]));
  if (!parsed.success) throw new Error(`${file}: ${z.prettifyError(parsed.error)}`);
  const layers = parsed.data.layers;
  if (new Set(layers.map((layer) => layer.name)).size !== layers.length) throw new Error(`${file}: layer names repeat`);
  if (layers.some((layer) => layer.debian) && parsed.data.debian === undefined) throw new Error(`${file}: a layer takes debian: but the image has no debian packages`);
  return { ...parsed.data, name, dir };
}

/** Every image defined under images/, in a stable order. */
export function imageNames(): string[] {
  return readdirSync(IMAGES_DIR)
    .filter((name) => existsSync(join(IMAGES_DIR, name, "image.yaml")))
    .sort();
}

/** The test-only images under images/test/ (see docs/images.md), in a stable order. */
export function testImageNames(): string[] {
  if (!existsSync(TEST_IMAGES_DIR)) return [];
  return readdirSync(TEST_IMAGES_DIR)
    .filter((name) => existsSync(join(TEST_IMAGES_DIR, name, "image.yaml")))
    .sort();
}
