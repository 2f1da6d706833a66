// The image builder's deterministic parts, without root, network or the cache: layer tars, OCI
// JSON and the image definitions (the full build is `make images`, checked by its --check and
// --verify-reproducible modes).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTar, writeTarBlob } from "../../scripts/images/tar.ts";
import { LayerTree } from "../../scripts/images/tree.ts";
import { imageNames, loadImage } from "../../scripts/images/definitions.ts";
import { closure, type DebSet } from "../../scripts/images/debian.ts";
import { elfMachine, ELF_MACHINE } from "../../scripts/images/elf.ts";
import { platformOf, refAnnotations, writeImage, writeLayout } from "../../scripts/images/oci.ts";
import type { LayerRef } from "../../scripts/images/layers.ts";

const LONG = `node_modules/${"very-long-package-name/".repeat(5)}index.js`;

/** The same small tree, written with the given file time and permission bits on disk. */
function fixture(root: string, mtime: number, fileMode: number): void {
  mkdirSync(join(root, "app/bin"), { recursive: true });
  mkdirSync(join(root, LONG, ".."), { recursive: true });
  writeFileSync(join(root, "app/bin/main.js"), "console.log('hi');\n");
  writeFileSync(join(root, LONG), "export {};\n");
  writeFileSync(join(root, "app/data.txt"), "data\n");
  linkSync(join(root, "app/data.txt"), join(root, "app/data-link.txt"));
  symlinkSync("main.js", join(root, "app/bin/alias.js"));
  chmodSync(join(root, "app/bin/main.js"), 0o755);
  chmodSync(join(root, "app/data.txt"), fileMode);
  for (const file of ["app/bin/main.js", LONG, "app/data.txt"]) utimesSync(join(root, file), mtime, mtime);
}

async function layerOf(root: string, blobs: string): Promise<{ digest: string; diffId: string }> {
  const tree = new LayerTree();
  tree.addTree(root, "");
  tree.dir("home/nonroot", 0o700, { uid: 65532, gid: 65532 });
  tree.file("etc/passwd", Buffer.from("root:x:0:0::/root:/sbin/nologin\n"));
  return writeTarBlob(tree.sorted(), 1_700_000_000, blobs, true);
}

describe("image layers", () => {
  it("are byte-identical from equal content, whatever the files' times and modes on disk", async () => {
    const dir = mkdtempSync(join(tmpdir(), "images-test-"));
    try {
      fixture(join(dir, "a"), 1_000_000, 0o600);
      fixture(join(dir, "b"), 2_000_000, 0o664);
      const a = await layerOf(join(dir, "a"), join(dir, "blobs-a"));
      const b = await layerOf(join(dir, "b"), join(dir, "blobs-b"));
      assert.equal(a.digest, b.digest);
      assert.equal(a.diffId, b.diffId);
      assert.notEqual(a.digest, a.diffId, "the blob is compressed, the diff_id is not");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("hold sorted entries with parents, long names, links, owners and the fixed time", async () => {
    const dir = mkdtempSync(join(tmpdir(), "images-test-"));
    try {
      fixture(join(dir, "a"), 1_000_000, 0o600);
      const { digest } = await layerOf(join(dir, "a"), join(dir, "blobs"));
      const entries = readTar(readFileSync(join(dir, "blobs", "sha256", digest.slice(7))));
      const paths = entries.map((entry) => entry.path);
      assert.deepEqual(paths, [...paths].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
      for (const parent of ["app", "app/bin", "etc", "home", "node_modules"]) assert.ok(paths.includes(parent), parent);
      const byPath = new Map(entries.map((entry) => [entry.path, entry]));
      assert.equal(byPath.get(LONG)?.type, "file");
      assert.equal(byPath.get("app/bin/alias.js")?.linkname, "main.js");
      // The first of the two names in byte order holds the data ("-" sorts before ".").
      assert.equal(byPath.get("app/data.txt")?.type, "hardlink");
      assert.equal(byPath.get("app/data.txt")?.linkname, "app/data-link.txt");
      assert.equal(byPath.get("app/data-link.txt")?.mode, 0o644);
      assert.equal(byPath.get("app/bin/main.js")?.mode, 0o755);
      assert.equal(byPath.get("home/nonroot")?.uid, 65532);
      assert.ok(entries.every((entry) => entry.mtime === 1_700_000_000));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("OCI JSON", () => {
  it("names arm64's variant and gives equal digests for equal images", () => {
    const dir = mkdtempSync(join(tmpdir(), "images-test-"));
    try {
      assert.deepEqual(platformOf("arm64"), { architecture: "arm64", os: "linux", variant: "v8" });
      const image = loadImage("operator");
      const layer: LayerRef = { name: "base", cached: false, digest: `sha256:${"1".repeat(64)}`, size: 10, diffId: `sha256:${"2".repeat(64)}`, uncompressedSize: 20 };
      mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
      writeFileSync(join(dir, "blobs", "sha256", "1".repeat(64)), "");
      const meta = { created: "2024-01-01T00:00:00.000Z", version: "0.1.0", revision: "abc", source: "https://example.test" };
      const first = writeImage(join(dir, "blobs"), image, "arm64", [layer], meta);
      const second = writeImage(join(dir, "blobs"), image, "arm64", [layer], meta);
      assert.deepEqual(first, second);
      const config = JSON.parse(readFileSync(join(dir, "blobs", "sha256", first.config.digest.slice(7)), "utf8")) as Record<string, unknown>;
      assert.equal(config["variant"], "v8");
      assert.deepEqual((config["rootfs"] as { diff_ids: string[] }).diff_ids, [layer.diffId]);
      const index = writeLayout(join(dir, "blobs"), join(dir, "operator.oci"), image, [first]);
      const layout = JSON.parse(readFileSync(join(dir, "operator.oci", "index.json"), "utf8")) as { manifests: { digest: string; annotations: Partial<Record<string, string>> }[] };
      const entry = layout.manifests[0];
      assert.ok(entry);
      assert.equal(entry.digest, index.digest);
      assert.equal(entry.annotations["io.containerd.image.name"], image.ref);
      assert.deepEqual(refAnnotations("registry.k8s.io/pause:3.10")["org.opencontainers.image.ref.name"], "3.10");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("image definitions", () => {
  it("parse, and keep the contract's references, entrypoints and users", () => {
    const names = imageNames();
    assert.deepEqual(names, ["coredns", "nginx", "operator", "pause", "proxy"]);
    const images = new Map(names.map((name) => [name, loadImage(name)]));
    const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
    assert.equal(images.get("operator")?.ref, `ghcr.io/tailnet-operator/operator:${version}`);
    assert.equal(images.get("proxy")?.ref, `ghcr.io/tailnet-operator/proxy:${version}`);
    assert.deepEqual(images.get("operator")?.entrypoint, ["/usr/local/bin/node", "/app/bin/tailnet-operator.js"]);
    assert.deepEqual(images.get("proxy")?.entrypoint, ["/usr/local/bin/node", "/app/bin/tailnet-proxy.js"]);
    assert.equal(images.get("operator")?.user, "65532:65532");
    assert.equal(images.get("proxy")?.user, "0:0");
    assert.deepEqual(images.get("proxy")?.platforms, ["amd64", "arm64"]);
    assert.equal(images.get("nginx")?.ref, "docker.io/library/nginx:1.20-alpine");
  });
});

describe("Debian dependency closure", () => {
  it("follows hard dependencies and leaves out omitted packages and what only they need", () => {
    const deb = (name: string, depends: string): DebSet["debs"][number] => ({ file: `${name}.deb`, package: name, version: "1", architecture: "amd64", depends, sha256: name });
    const set: DebSet = {
      dir: "/nowhere",
      debs: [deb("nginx", "libc6 (>= 2.34), nginx-common (= 1), iproute2"), deb("nginx-common", "debconf (>= 0.5) | debconf-2.0"), deb("debconf", "perl-base"), deb("perl-base", "libc6"), deb("iproute2", "libelf1"), deb("libelf1", "libc6"), deb("libc6", "libgcc-s1"), deb("libgcc-s1", "libc6")],
    };
    assert.deepEqual(closure(set, ["nginx"], ["debconf", "iproute2"]).map((d) => d.package), ["libc6", "libgcc-s1", "nginx", "nginx-common"]);
  });
});

describe("ELF headers", () => {
  it("tell x86-64 from aarch64", () => {
    const header = (machine: number): Buffer => {
      const bytes = Buffer.alloc(64);
      bytes.writeUInt32BE(0x7f454c46, 0);
      bytes[5] = 1;
      bytes.writeUInt16LE(machine, 18);
      return bytes;
    };
    assert.equal(elfMachine(header(62)), ELF_MACHINE.amd64);
    assert.equal(elfMachine(header(183)), ELF_MACHINE.arm64);
    assert.equal(elfMachine(Buffer.from("#!/bin/sh\n")), undefined);
  });
});
