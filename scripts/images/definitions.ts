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

export function loadImage(name: string, vars: Record<string, string> = variables()): ImageSpec {
  const dir = join(IMAGES_DIR, name);
  const file = join(dir, "image.yaml");
  const parsed = imageSchema.safeParse(substitute(parse(readFileSync(file, "utf8")), vars, file));
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
