// The contents of one layer as a map of image paths, filled from directories on disk and from
// the image definition, then listed in the one order every build uses.
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { TarEntry } from "./tar.ts";

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}
const ROOT: Owner = { uid: 0, gid: 0 };

export interface AddTreeOptions {
  /** Keep each file's mode from disk (Debian packages); otherwise 0755/0644 by the exec bit. */
  readonly keepModes?: boolean;
  /** Skip a path (relative to the tree's root) and, for a directory, all below it. */
  readonly skip?: (relative: string, isDir: boolean) => boolean;
}

const normalisePath = (path: string): string => path.replace(/^\/+/, "").replace(/\/+$/, "");

export class LayerTree {
  private readonly entries = new Map<string, TarEntry>();
  /** Device:inode of files added from disk, to store hard links as links. */
  private readonly inodes = new Map<string, string>();

  add(entry: TarEntry): void {
    const path = normalisePath(entry.path);
    if (path === "") return;
    this.entries.set(path, { ...entry, path });
  }

  dir(path: string, mode = 0o755, owner: Owner = ROOT): void {
    this.add({ type: "dir", path, mode, ...owner });
  }

  file(path: string, source: string | Buffer, mode = 0o644, owner: Owner = ROOT): void {
    this.add({ type: "file", path, mode, source, ...owner });
  }

  symlink(path: string, target: string): void {
    this.add({ type: "symlink", path, target, ...ROOT });
  }

  has(path: string): boolean {
    return this.entries.has(normalisePath(path));
  }

  paths(): string[] {
    return [...this.entries.keys()];
  }

  /** Adds everything below `root` under image path `prefix`, owned by root. */
  addTree(root: string, prefix: string, options: AddTreeOptions = {}): void {
    const walk = (relative: string): void => {
      const names = readdirSync(join(root, relative)).sort();
      for (const name of names) {
        const rel = relative ? `${relative}/${name}` : name;
        const abs = join(root, rel);
        const stat = lstatSync(abs);
        if (options.skip?.(rel, stat.isDirectory())) continue;
        const path = prefix ? `${normalisePath(prefix)}/${rel}` : rel;
        const exec = (stat.mode & 0o111) !== 0;
        if (stat.isDirectory()) {
          this.dir(path, options.keepModes ? stat.mode & 0o7777 : 0o755);
          walk(rel);
        } else if (stat.isSymbolicLink()) {
          this.symlink(path, readlinkSync(abs));
        } else if (stat.isFile()) {
          this.file(path, abs, options.keepModes ? stat.mode & 0o7777 : exec ? 0o755 : 0o644);
          if (stat.nlink > 1) this.inodes.set(normalisePath(path), `${stat.dev}:${stat.ino}`);
        }
        // Sockets, fifos and device nodes never belong in a layer (the runtime provides /dev).
      }
    };
    walk("");
  }

  /** Entries in byte order of their paths, with missing parent directories added as root 0755. */
  sorted(): TarEntry[] {
    for (const path of [...this.entries.keys()]) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join("/");
        if (!this.entries.has(parent)) this.dir(parent);
      }
    }
    const paths = [...this.entries.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const firstOfInode = new Map<string, string>();
    return paths.map((path) => {
      const entry = this.entries.get(path);
      if (entry === undefined) throw new Error(`tree: ${path} vanished`);
      const inode = this.inodes.get(path);
      if (entry.type !== "file" || inode === undefined) return entry;
      const first = firstOfInode.get(inode);
      if (first === undefined) {
        firstOfInode.set(inode, path);
        return entry;
      }
      return { type: "hardlink", path, target: first, uid: entry.uid, gid: entry.gid };
    });
  }
}
