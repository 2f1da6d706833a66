// What the layers are made of besides Debian packages: node per architecture, the production
// node_modules, the product code, Go programs, binaries from scripts/build-bins.sh, and the
// few host-runnable tools (a cross strip, qemu-user) fetched as .debs into the cache.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { cacheRoot, cachedDir, keyOf, log, readJson, run, sha256, type CachePaths } from "./cache.ts";
import { REPO_ROOT, type Arch } from "./definitions.ts";
import { elfMachine, ELF_MACHINE } from "./elf.ts";

export const HOST_ARCH: Arch = process.arch === "arm64" ? "arm64" : "amd64";
const NPM_ARCH: Record<Arch, string> = { amd64: "x64", arm64: "arm64" };
const HOST_NODE = join(REPO_ROOT, "node_modules/node/bin/node");

export function nodeVersion(): string {
  return (readJson(join(REPO_ROOT, "node_modules/node/package.json")) as { version: string }).version;
}

/** A Debian package unpacked into the cache, for a tool that runs on this host. */
async function hostTool(paths: CachePaths, pkg: string): Promise<string> {
  return cachedDir(join(paths.inputs, "tools", pkg), async (temporary) => {
    log(`tools: apt-get download ${pkg} (unpacked into the cache, nothing is installed)`);
    await run(["apt-get", "download", "-q", pkg], { cwd: temporary });
    const deb = readdirSync(temporary).find((file) => file.endsWith(".deb"));
    if (deb === undefined) throw new Error(`tools: apt-get download ${pkg} gave no .deb`);
    await run(["dpkg-deb", "-x", join(temporary, deb), join(temporary, "root")]);
    rmSync(join(temporary, deb));
  });
}

/** qemu-aarch64-static, unpacked but not registered with binfmt: run explicitly, it changes nothing. */
export async function qemuAarch64(paths: CachePaths): Promise<string | undefined> {
  try {
    return join(await hostTool(paths, "qemu-user-static"), "root/usr/bin/qemu-aarch64-static");
  } catch (error) {
    log(`tools: no qemu-aarch64-static (${error instanceof Error ? error.message : String(error)}); arm64 smoke runs skipped`);
    return undefined;
  }
}

/** The host's strip only knows x86 objects (it writes a zero machine into an aarch64 ELF). */
async function stripCommand(arch: Arch, paths: CachePaths): Promise<{ argv: string[]; env: NodeJS.ProcessEnv }> {
  if (arch === HOST_ARCH) return { argv: ["strip"], env: process.env };
  const root = join(await hostTool(paths, "binutils-aarch64-linux-gnu"), "root");
  const libDir = join(root, "usr/lib/x86_64-linux-gnu");
  return { argv: [join(root, "usr/bin/aarch64-linux-gnu-strip")], env: { ...process.env, LD_LIBRARY_PATH: libDir } };
}

async function nodePackage(arch: Arch, version: string, paths: CachePaths): Promise<string> {
  if (arch === HOST_ARCH) return HOST_NODE;
  const name = `node-linux-${NPM_ARCH[arch]}@${version}`;
  const pins = readJson(join(REPO_ROOT, "images/node.lock.json")) as Record<string, string>;
  const pinned = pins[name];
  if (pinned === undefined) throw new Error(`images/node.lock.json has no ${name}; add it from: npm view ${name} dist.integrity`);
  const dir = await cachedDir(join(paths.inputs, "npm", name.replace("@", "-")), async (temporary) => {
    log(`node ${arch}: npm pack ${name}`);
    await run(["npm", "pack", "--silent", name, "--pack-destination", temporary]);
    const tgz = readdirSync(temporary).find((file) => file.endsWith(".tgz")) ?? "";
    const integrity = `sha512-${createHash("sha512").update(readFileSync(join(temporary, tgz))).digest("base64")}`;
    if (integrity !== pinned) throw new Error(`${name}: integrity ${integrity} is not the pinned ${pinned}`);
    await run(["tar", "-xzf", join(temporary, tgz), "-C", temporary, "package/bin/node", "package/LICENSE"]);
    rmSync(join(temporary, tgz));
  });
  return join(dir, "package/bin/node");
}

/**
 * node for the architecture, with its symbol table and debug info stripped (18 MiB of its
 * 121 MiB; what Debian does to its own node). It is checked to be the right machine after.
 */
export async function nodeBinary(arch: Arch, paths: CachePaths): Promise<string> {
  const version = nodeVersion();
  const source = await nodePackage(arch, version, paths);
  const dir = await cachedDir(join(paths.derived, "node", `${version}-${arch}`), async (temporary) => {
    log(`node ${arch}: stripping ${version}`);
    const strip = await stripCommand(arch, paths);
    await run([...strip.argv, "--strip-all", "-o", join(temporary, "node"), source], { env: strip.env });
    const machine = elfMachine(readFileSync(join(temporary, "node")).subarray(0, 64));
    if (machine !== ELF_MACHINE[arch]) throw new Error(`node ${arch}: stripped binary has ELF machine ${machine}`);
  });
  return join(dir, "node");
}

/**
 * Root certificates as a PEM bundle at the path Go and OpenSSL read (tailscaled needs one):
 * node's own Mozilla set, so the image needs no ca-certificates package and its maintainer scripts.
 */
export async function caBundle(): Promise<Buffer> {
  const pem = await run([HOST_NODE, "-e", "process.stdout.write(require('node:tls').rootCertificates.join('\\n') + '\\n')"]);
  return Buffer.from(pem);
}

/** Files in node_modules that nothing loads at run time: types, source maps, docs. */
const PRUNE_FILE = /(\.d\.[mc]?ts|\.map|\.md|\.markdown)$/i;
const KEEP_FILE = /^(licen[cs]e|copying|notice)/i;

/**
 * Production dependencies, installed once per package-lock.json. They are pure JavaScript (checked:
 * no .node addon, no binding.gyp), so one install serves both architectures.
 */
export async function prodNodeModules(paths: CachePaths): Promise<{ dir: string; key: string }> {
  const lock = readFileSync(join(REPO_ROOT, "package-lock.json"));
  const key = sha256(lock).slice(0, 20);
  const dir = await cachedDir(join(paths.inputs, "node_modules", key), async (temporary) => {
    log("node_modules: npm ci --omit=dev");
    copyFileSync(join(REPO_ROOT, "package.json"), join(temporary, "package.json"));
    writeFileSync(join(temporary, "package-lock.json"), lock);
    await run(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: temporary });
    const native: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir).sort()) {
        const path = join(dir, name);
        const stat = statSync(path, { throwIfNoEntry: false });
        if (stat === undefined) continue;
        if (stat.isDirectory()) {
          // Bare-runtime addons (bare-*/prebuilds/*.bare) of tar-fs's optional bare-fs; Node never loads them.
          if (name === "prebuilds" && readdirSync(path, { recursive: true }).every((file) => typeof file === "string" && (!file.includes(".") || file.endsWith(".bare")))) {
            rmSync(path, { recursive: true });
            continue;
          }
          walk(path);
        } else if (name.endsWith(".node") || name === "binding.gyp") {
          native.push(relative(temporary, path));
        } else if (PRUNE_FILE.test(name) && !KEEP_FILE.test(name)) {
          rmSync(path);
        }
      }
    };
    walk(join(temporary, "node_modules"));
    if (native.length > 0) throw new Error(`node_modules has native addons, which need a per-architecture install: ${native.join(", ")}`);
  });
  return { dir: join(dir, "node_modules"), key };
}

/** The product code: what bin/ needs to run, not the sandbox, the demo or tests. */
export const APP_DIRS = ["bin", "src/shared", "src/runtime", "src/kube", "src/control", "src/operator", "src/proxy"];
const APP_FILE = /\.(ts|js|json)$/;
const TEST_FILE = /\.test\.ts$/;

/** Product files as image paths under /app mapped to repository files. */
export function appFiles(): Map<string, string> {
  const files = new Map<string, string>([["package.json", join(REPO_ROOT, "package.json")]]);
  for (const dir of APP_DIRS) {
    for (const entry of readdirSync(join(REPO_ROOT, dir), { recursive: true })) {
      const rel = `${dir}/${String(entry)}`;
      if (APP_FILE.test(rel) && !TEST_FILE.test(rel) && statSync(join(REPO_ROOT, rel)).isFile()) files.set(rel, join(REPO_ROOT, rel));
    }
  }
  return new Map([...files.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** A static Go program from an image directory, built reproducibly (no VCS stamp, no build ID). */
export async function goBinary(packageDir: string, arch: Arch, paths: CachePaths): Promise<string> {
  const sources = readdirSync(packageDir).filter((file) => /\.(go|mod|sum)$/.test(file)).sort();
  const goVersion = (await run(["go", "env", "GOVERSION"])).trim();
  const contents = sources.map((file) => [file, sha256(readFileSync(join(packageDir, file)))]);
  const dir = await cachedDir(join(paths.derived, "go", keyOf({ contents, goVersion, arch })), async (temporary) => {
    log(`go: building ${relative(REPO_ROOT, packageDir)} for ${arch}`);
    await run(["go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", join(temporary, "program"), "."], {
      cwd: packageDir,
      env: { ...process.env, CGO_ENABLED: "0", GOOS: "linux", GOARCH: arch, GOTOOLCHAIN: "local", GOFLAGS: "-p=1" },
    });
  });
  return join(dir, "program");
}

/** A binary built by scripts/build-bins.sh; a foreign architecture's directory is suffixed. */
export function cacheBinary(spec: string, arch: Arch): string {
  const [dir, ...file] = spec.split("/");
  const name = arch === HOST_ARCH ? (dir ?? "") : `${dir ?? ""}-${arch}`;
  const base = join(cacheRoot(), "bin", name);
  if (!existsSync(join(base, ".done"))) throw new MissingInput(`${base} is not built yet (make bins; .done marker missing)`);
  return join(base, ...file);
}

export class MissingInput extends Error {
  override readonly name = "MissingInput";
}

export function ensureDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}
