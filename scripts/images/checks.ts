// `--check`: what the built images contain, read back from their layer blobs. Every ELF file is
// of the platform's machine; both platforms of an image hold the same files (up to the
// architecture's library directory); and each image's smoke commands run in a chroot of its
// unpacked layers (arm64 through qemu-user run directly, with no binfmt registration).
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BuildResult, PlatformResult } from "./build.ts";
import { log, run, runBoth, type CachePaths } from "./cache.ts";
import type { Arch, ImageSpec, SmokeSpec } from "./definitions.ts";
import { elfMachine, ELF_MACHINE } from "./elf.ts";
import { HOST_ARCH, qemuAarch64 } from "./inputs.ts";
import { blobDir } from "./layers.ts";
import { readTar, type ReadEntry } from "./tar.ts";
import { CommandError } from "../../src/shared/exec.ts";

/** The image's file system as the runtime would see it: later layers win. */
export function imageFiles(blobs: string, platform: PlatformResult): Map<string, ReadEntry> {
  const files = new Map<string, ReadEntry>();
  for (const layer of platform.built.layers) {
    for (const entry of readTar(readFileSync(join(blobs, "sha256", layer.digest.slice(7))))) files.set(entry.path, entry);
  }
  return files;
}

function checkElf(files: Map<string, ReadEntry>, arch: Arch): string[] {
  const wrong: string[] = [];
  let count = 0;
  for (const entry of files.values()) {
    if (entry.type !== "file") continue;
    const machine = elfMachine(entry.head);
    if (machine === undefined) continue;
    count++;
    if (machine !== ELF_MACHINE[arch]) wrong.push(`${entry.path} (e_machine ${machine})`);
  }
  log(`  ${arch}: ${count} ELF files, ${wrong.length === 0 ? `all ${arch === "amd64" ? "x86-64" : "aarch64"}` : `WRONG: ${wrong.join(", ")}`}`);
  return wrong;
}

/** Paths one architecture has and the other has not, by design of its ABI or its glibc. */
const ARCH_ONLY = [
  // The ELF interpreter's path: /lib64/ld-linux-x86-64.so.2 on amd64, /lib/ld-linux-aarch64.so.1 on arm64.
  /^(usr\/)?lib64(\/|$)/,
  /^usr\/lib\/<ld\.so>$/,
  // glibc's vector math library, built for x86-64 only in Debian 12.
  /^usr\/lib\/<triplet>\/libmvec\.so\.1$/,
];

/** Paths with the architecture's own names replaced, so the two platforms can be compared. */
function normalised(files: Map<string, ReadEntry>): Set<string> {
  const out = new Set<string>();
  for (const path of files.keys()) {
    const generic = path
      .replace(/x86_64-linux-gnu|aarch64-linux-gnu/g, "<triplet>")
      .replace(/ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1/g, "<ld.so>");
    if (ARCH_ONLY.some((re) => re.test(generic))) continue;
    out.add(generic);
  }
  return out;
}

function compareArches(amd64: Map<string, ReadEntry>, arm64: Map<string, ReadEntry>): string[] {
  const a = normalised(amd64);
  const b = normalised(arm64);
  return [...[...a].filter((path) => !b.has(path)).map((path) => `only amd64: ${path}`), ...[...b].filter((path) => !a.has(path)).map((path) => `only arm64: ${path}`)];
}

/** Resolves a command name through the image's PATH inside the unpacked root. */
function resolveIn(root: string, image: ImageSpec, command: string): string {
  if (command.startsWith("/")) return command;
  const path = image.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  for (const dir of path.split(":")) if (existsSync(join(root, dir, command))) return `${dir}/${command}`;
  return command;
}

async function smoke(root: string, image: ImageSpec, arch: Arch, test: SmokeSpec, qemu: string | undefined): Promise<string | undefined> {
  const program = resolveIn(root, image, test.argv[0] ?? "");
  const argv = [...(arch === "arm64" && qemu ? ["/.qemu-aarch64-static"] : []), program, ...test.argv.slice(1)];
  const user = image.user?.includes(":") ? image.user : `${image.user ?? "0"}:${image.user ?? "0"}`;
  // A private mount namespace: /proc and /dev are mounted for the command only and vanish with it.
  // Output goes through a pipe, as under a container runtime (Node's own stdio would be a socket,
  // which a program cannot reopen as /dev/stdout).
  const script = 'set -e; r=$1; u=$2; shift 2; mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; chroot --userspec="$u" "$r" "$@" 2>&1 | cat; exit "${PIPESTATUS[0]}"';
  const env = { PATH: image.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...image.env, HOME: image.env["HOME"] ?? "/" };
  // A server is started in a network namespace of its own (only loopback, nothing reaches the
  // host's network), fetched from there with the host's curl, then stopped.
  const serve = 'set -e; r=$1; u=$2; url=$3; shift 3; mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; ip link set lo up; ' +
    'chroot --userspec="$u" "$r" "$@" >"$r/tmp/.smoke.log" 2>&1 & pid=$! out=; ' +
    'for _ in $(seq 50); do out=$(curl -fsS --max-time 2 "$url" 2>&1) && break; sleep 0.2; done; ' +
    'kill -TERM "$pid"; wait "$pid" || true; echo "$out"; cat "$r/tmp/.smoke.log"';
  const namespaces = test.http === undefined ? ["--mount", "--propagation", "private", "--fork"] : ["--mount", "--propagation", "private", "--net", "--pid", "--mount-proc", "--fork"];
  const args = test.http === undefined ? [script, "smoke", root, user] : [serve, "smoke", root, user, test.http];
  let output: string;
  let exit = 0;
  try {
    const result = await runBoth(["unshare", ...namespaces, "--", "bash", "-c", ...args, ...argv], { env, timeoutMs: 120_000 });
    output = `${result.stdout}${result.stderr}`;
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    output = `${error.stdout}${error.stderr}`;
    exit = error.exitCode ?? -1;
  }
  const shown = `${image.name} ${arch}: ${test.argv.join(" ")}`;
  if (exit !== 0 && !test.anyExit) return `${shown}: exit ${exit}: ${output.trim().slice(0, 400)}`;
  if (!new RegExp(test.expect, "m").test(output)) return `${shown}: output does not match /${test.expect}/: ${output.trim().slice(0, 400)}`;
  log(`  ok ${shown} -> ${output.trim().split("\n")[0]?.slice(0, 100) ?? ""}`);
  return undefined;
}

async function smokeRuns(image: ImageSpec, platform: PlatformResult, paths: CachePaths, qemu: string | undefined): Promise<string[]> {
  const root = mkdtempSync(join(process.env["TMPDIR"] ?? tmpdir(), `tailnet-operator-image-${image.name}-${platform.arch}-`));
  const failures: string[] = [];
  try {
    // mkdtemp makes it 0700; the image's root is 0755, which a non-root user needs to reach anything.
    chmodSync(root, 0o755);
    for (const layer of platform.built.layers) {
      await run(["tar", "-xzf", join(blobDir(paths), "sha256", layer.digest.slice(7)), "-C", root, "--numeric-owner", "--same-owner", "--same-permissions"]);
    }
    mkdirSync(join(root, "proc"), { recursive: true });
    mkdirSync(join(root, "dev"), { recursive: true });
    if (platform.arch === "arm64") {
      if (qemu === undefined) return [];
      copyFileSync(qemu, join(root, ".qemu-aarch64-static"));
    }
    const tests: SmokeSpec[] = [...image.smoke];
    if (image.layers.some((layer) => layer.node)) {
      tests.push({ argv: ["/usr/local/bin/node", "-p", "`${process.version} ${process.arch} ${require('node:tls').rootCertificates.length} roots`"], expect: platform.arch === "arm64" ? " arm64 " : " x64 " });
    }
    for (const test of tests) {
      if (test.nativeOnly && platform.arch !== HOST_ARCH) {
        log(`  skipped under qemu: ${image.name} ${platform.arch}: ${test.argv.join(" ")}`);
        continue;
      }
      const failure = await smoke(root, image, platform.arch, test, qemu);
      if (failure !== undefined) failures.push(failure);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return failures;
}

export async function checkImages(images: readonly ImageSpec[], result: BuildResult, paths: CachePaths): Promise<boolean> {
  const problems: string[] = [];
  const blobs = blobDir(paths);
  const isRoot = process.getuid?.() === 0;
  const qemu = result.platforms.some((p) => p.arch === "arm64") ? await qemuAarch64(paths) : undefined;
  for (const image of images) {
    const platforms = result.platforms.filter((p) => p.image === image.name);
    if (platforms.length === 0) continue;
    log(`check ${image.name}`);
    const files = new Map(platforms.map((p) => [p.arch, imageFiles(blobs, p)]));
    for (const p of platforms) problems.push(...checkElf(files.get(p.arch) ?? new Map<string, ReadEntry>(), p.arch).map((line) => `${image.name} ${p.arch}: not ${p.arch}: ${line}`));
    const amd64 = files.get("amd64");
    const arm64 = files.get("arm64");
    if (amd64 && arm64) {
      const diff = compareArches(amd64, arm64);
      log(`  file lists amd64/arm64: ${diff.length === 0 ? `same (${amd64.size} / ${arm64.size} entries)` : `${diff.length} differences`}`);
      problems.push(...diff.map((line) => `${image.name}: ${line}`));
    }
    if (!isRoot) {
      log("  smoke runs skipped: chroot needs root");
      continue;
    }
    for (const p of platforms) problems.push(...(await smokeRuns(image, p, paths, qemu)));
  }
  for (const problem of problems) process.stderr.write(`[images] CHECK FAILED: ${problem}\n`);
  process.stdout.write(`checks: ${problems.length === 0 ? "all passed" : `${problems.length} failed`}\n`);
  return problems.length === 0;
}
