// Debian content of an image: mmdebstrap (--variant=extract, which runs nothing from the target
// architecture, so arm64 needs no emulation) resolves and downloads the packages and their
// dependencies once per package list and architecture; the builder then unpacks the ones the
// image needs into a merged-/usr tree and removes what no program reads at run time.
import { readdirSync, rmSync, mkdirSync, writeFileSync, lstatSync, symlinkSync, existsSync } from "node:fs";
import { join } from "node:path";
import { cachedDir, keyOf, log, readJson, run, sha256File, type CachePaths } from "./cache.ts";
import type { Arch } from "./definitions.ts";

const SUITE = "bookworm";
/** The release plus its updates and security fixes, as a Debian 12 machine would have them. */
function sources(): string[] {
  const mirror = process.env["DEBIAN_MIRROR"] ?? "http://deb.debian.org/debian";
  const security = process.env["DEBIAN_SECURITY_MIRROR"] ?? "http://deb.debian.org/debian-security";
  return [`deb ${mirror} ${SUITE} main`, `deb ${mirror} ${SUITE}-updates main`, `deb ${security} ${SUITE}-security main`];
}

export interface DebInfo {
  readonly file: string;
  readonly package: string;
  readonly version: string;
  readonly architecture: string;
  readonly depends: string;
  readonly sha256: string;
}

export interface DebSet {
  readonly dir: string;
  readonly debs: readonly DebInfo[];
}

/** Downloads the packages and all their dependencies (cached by list, architecture and sources). */
export async function downloadDebs(arch: Arch, packages: readonly string[], paths: CachePaths): Promise<DebSet> {
  const wanted = [...new Set(packages)].sort();
  const dir = join(paths.inputs, "debian", `${arch}-${keyOf({ wanted, sources: sources(), suite: SUITE })}`);
  await cachedDir(dir, async (temporary) => {
    log(`debian ${arch}: downloading ${wanted.join(" ")} and their dependencies (mmdebstrap)`);
    const debs = join(temporary, "debs");
    mkdirSync(debs);
    // Output to /dev/null: only the downloaded archives are kept, copied out after extraction.
    await run([
      "mmdebstrap", "--quiet", "--variant=extract", `--architectures=${arch}`, `--include=${wanted.join(",")}`,
      `--extract-hook=cp "$1"/var/cache/apt/archives/*.deb '${debs}/'`,
      SUITE, "/dev/null", ...sources(),
    ]);
    const infos: DebInfo[] = [];
    for (const file of readdirSync(debs).sort()) {
      const fields = await run(["dpkg-deb", "--field", join(debs, file), "Package", "Version", "Architecture", "Depends", "Pre-Depends"]);
      const get = (name: string): string => new RegExp(`^${name}: (.*)$`, "m").exec(fields)?.[1] ?? "";
      const depends = [get("Pre-Depends"), get("Depends")].filter(Boolean).join(", ");
      infos.push({ file, package: get("Package"), version: get("Version"), architecture: get("Architecture"), depends, sha256: await sha256File(join(debs, file)) });
    }
    writeFileSync(join(temporary, "index.json"), `${JSON.stringify(infos, null, 1)}\n`);
  });
  return { dir, debs: readJson(join(dir, "index.json")) as DebInfo[] };
}

/**
 * The packages the image needs: those asked for and, transitively, their hard dependencies,
 * except `omit` (dependencies only maintainer scripts or init scripts use) and what only they need.
 */
export function closure(set: DebSet, packages: readonly string[], omit: readonly string[]): DebInfo[] {
  const byName = new Map(set.debs.map((deb) => [deb.package, deb]));
  const chosen = new Map<string, DebInfo>();
  const visit = (name: string): void => {
    if (chosen.has(name) || omit.includes(name)) return;
    const deb = byName.get(name);
    if (deb === undefined) throw new Error(`debian: ${name} was not downloaded`);
    chosen.set(name, deb);
    for (const clause of deb.depends.split(",").map((text) => text.trim()).filter(Boolean)) {
      const alternatives = clause.split("|").map((alt) => alt.trim().split(/[\s(:]/)[0] ?? "");
      const present = alternatives.find((alt) => byName.has(alt) || omit.includes(alt));
      if (present !== undefined) visit(present);
      // A clause none of whose alternatives was downloaded is a virtual package another one provides.
    }
  };
  for (const name of packages) visit(name);
  return [...chosen.values()].sort((a, b) => a.package.localeCompare(b.package));
}

/** Removed from every Debian tree: documentation, translations, package state, init integration. */
const REMOVE = [
  "usr/share/doc/*/*",
  "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/linda",
  "usr/share/bug", "usr/share/gdb", "usr/share/gcc", "usr/share/bash-completion", "usr/share/zsh",
  "usr/share/menu", "usr/share/apport", "usr/share/debconf", "usr/share/initramfs-tools",
  // glibc's iconv modules and tools; node, nginx and the firewall tools never load or run them.
  "usr/lib/*/gconv",
  "usr/bin/ldd", "usr/bin/iconv", "usr/bin/locale", "usr/bin/localedef", "usr/bin/getent", "usr/bin/getconf",
  "usr/bin/catchsegv", "usr/bin/pldd", "usr/bin/sprof", "usr/bin/tzselect", "usr/bin/zdump", "usr/bin/gencat",
  "usr/sbin/iconvconfig", "usr/sbin/zic", "usr/sbin/ldconfig",
  "etc/cron.*", "etc/logrotate.d", "etc/init.d", "etc/rc?.d", "etc/default", "etc/systemd", "etc/ufw",
  "usr/lib/systemd", "usr/lib/tmpfiles.d", "usr/lib/sysctl.d",
  "var/cache/*", "var/log/*", "var/lib/*",
];
/** Kept although REMOVE matches: the licences of what the image redistributes. */
const KEEP = ["usr/share/doc/*/copyright"];

function globRegExp(glob: string): RegExp {
  const body = glob.split("*").map((part) => part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\?/g, "[^/]")).join("[^/]*");
  return new RegExp(`^${body}$`);
}

function prune(root: string, remove: readonly RegExp[], keep: readonly RegExp[]): void {
  const walk = (relative: string): void => {
    for (const name of readdirSync(join(root, relative)).sort()) {
      const rel = relative ? `${relative}/${name}` : name;
      const isDir = lstatSync(join(root, rel)).isDirectory();
      if (keep.some((re) => re.test(rel))) continue;
      if (remove.some((re) => re.test(rel))) rmSync(join(root, rel), { recursive: true, force: true });
      else if (isDir) walk(rel);
    }
  };
  walk("");
}

/**
 * Unpacks the packages into `root` with /usr merged (bin, sbin and lib are links into /usr, as on
 * an installed Debian 12), writes /var/lib/dpkg/status.d/<package> so image scanners can see
 * what is inside, and prunes.
 */
export async function unpackRootfs(set: DebSet, debs: readonly DebInfo[], arch: Arch, root: string, extraRemove: readonly string[]): Promise<void> {
  rmSync(root, { recursive: true, force: true });
  const links = ["bin", "sbin", "lib", ...(arch === "amd64" ? ["lib64"] : [])];
  for (const link of links) {
    mkdirSync(join(root, "usr", link), { recursive: true });
    symlinkSync(`usr/${link}`, join(root, link));
  }
  await run([
    "bash", "-c",
    'set -euo pipefail; root=$1; shift; for deb; do dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink --no-same-owner -C "$root"; done',
    "unpack", root, ...debs.map((deb) => join(set.dir, "debs", deb.file)),
  ]);
  prune(root, [...REMOVE, ...extraRemove].map(globRegExp), KEEP.map(globRegExp));
  const status = join(root, "var/lib/dpkg/status.d");
  mkdirSync(status, { recursive: true });
  for (const deb of debs) {
    const control = await run(["dpkg-deb", "--field", join(set.dir, "debs", deb.file)]);
    writeFileSync(join(status, deb.package), control.endsWith("\n") ? control : `${control}\n`);
  }
  if (!existsSync(join(root, "usr"))) throw new Error(`debian: nothing unpacked into ${root}`);
}
