// A small tar writer and reader. Layers are written here rather than by GNU tar so that every
// header field (owner, mode, mtime, order) is chosen by the builder, the output does not depend
// on the host's tar version or umask, and a layer can be built without root.
import { createReadStream, createWriteStream, mkdirSync, renameSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip, gunzipSync } from "node:zlib";

interface EntryBase {
  /** Path inside the image, without a leading slash. */
  readonly path: string;
  readonly uid: number;
  readonly gid: number;
}
export type TarEntry =
  | (EntryBase & { readonly type: "dir"; readonly mode: number })
  | (EntryBase & { readonly type: "file"; readonly mode: number; readonly source: string | Buffer })
  | (EntryBase & { readonly type: "symlink"; readonly target: string })
  | (EntryBase & { readonly type: "hardlink"; readonly target: string });

const BLOCK = 512;

function octal(value: number, width: number): string {
  const text = value.toString(8);
  if (text.length > width - 1) throw new Error(`tar: ${value} does not fit a ${width}-byte field`);
  return text.padStart(width - 1, "0") + "\0";
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself, so it is found by fixed-point iteration.
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body);
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

interface HeaderFields {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly typeflag: string;
  readonly linkname: string;
}

function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name, 0, 100, "utf8");
  block.write(octal(fields.mode, 8), 100, "ascii");
  block.write(octal(fields.uid, 8), 108, "ascii");
  block.write(octal(fields.gid, 8), 116, "ascii");
  block.write(octal(fields.size, 12), 124, "ascii");
  block.write(octal(fields.mtime, 12), 136, "ascii");
  block.write("        ", 148, "ascii");
  block.write(fields.typeflag, 156, "ascii");
  block.write(fields.linkname, 157, 100, "utf8");
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return block;
}

const TYPEFLAG = { file: "0", hardlink: "1", symlink: "2", dir: "5" } as const;

/** Header blocks of one entry: a pax header first when a name or link target is too long. */
function entryHeaders(entry: TarEntry, size: number, mtime: number): Buffer[] {
  const name = entry.type === "dir" ? `${entry.path}/` : entry.path;
  const linkname = entry.type === "symlink" || entry.type === "hardlink" ? entry.target : "";
  const blocks: Buffer[] = [];
  const records: string[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord("path", name));
  if (Buffer.byteLength(linkname) > 100) records.push(paxRecord("linkpath", linkname));
  if (records.length > 0) {
    const body = Buffer.from(records.join(""));
    const base = entry.path.split("/").pop() ?? "";
    blocks.push(header({ name: `PaxHeaders/${base}`.slice(0, 99), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, typeflag: "x", linkname: "" }));
    blocks.push(body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK));
  }
  const mode = entry.type === "dir" || entry.type === "file" ? entry.mode : 0o777;
  blocks.push(header({ name, mode, uid: entry.uid, gid: entry.gid, size, mtime, typeflag: TYPEFLAG[entry.type], linkname }));
  return blocks;
}

async function* tarStream(entries: readonly TarEntry[], mtime: number): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    if (entry.type !== "file") {
      yield* entryHeaders(entry, 0, mtime);
      continue;
    }
    const size = Buffer.isBuffer(entry.source) ? entry.source.length : statSync(entry.source).size;
    yield* entryHeaders(entry, size, mtime);
    if (Buffer.isBuffer(entry.source)) {
      yield entry.source;
    } else {
      let read = 0;
      for await (const chunk of createReadStream(entry.source)) {
        read += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (read !== size) throw new Error(`tar: ${entry.source} changed while it was read`);
    }
    yield Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
  }
  yield Buffer.alloc(BLOCK * 2);
}

class Digester extends Transform {
  private readonly hash = createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
  private result: string | undefined;
  digest(): string {
    this.result ??= `sha256:${this.hash.digest("hex")}`;
    return this.result;
  }
}

export interface WrittenBlob {
  /** Digest and size of the bytes written (the compressed layer when compressed). */
  readonly digest: string;
  readonly size: number;
  /** Digest and size of the uncompressed tar (the layer's diff_id). */
  readonly diffId: string;
  readonly uncompressedSize: number;
}

/**
 * Writes the entries, in the given order, as one tar under blobDir/sha256/<hex>.
 * gzip from Node's own zlib: no name or time in its header, so equal tars give equal blobs.
 */
export async function writeTarBlob(entries: readonly TarEntry[], mtime: number, blobDir: string, gzip: boolean): Promise<WrittenBlob> {
  mkdirSync(join(blobDir, "sha256"), { recursive: true });
  const temporary = join(blobDir, `.tmp-${process.pid}-${Date.now()}`);
  const raw = new Digester();
  const out = new Digester();
  const source = Readable.from(tarStream(entries, mtime));
  if (gzip) await pipeline(source, raw, createGzip({ level: 6 }), out, createWriteStream(temporary));
  else await pipeline(source, raw, createWriteStream(temporary));
  const written = gzip ? out : raw;
  const digest = written.digest();
  const path = join(blobDir, "sha256", digest.slice("sha256:".length));
  mkdirSync(dirname(path), { recursive: true });
  renameSync(temporary, path);
  return { digest, size: written.bytes, diffId: raw.digest(), uncompressedSize: raw.bytes };
}

export interface ReadEntry {
  readonly path: string;
  readonly type: "file" | "dir" | "symlink" | "hardlink" | "other";
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly linkname: string;
  /** The file's first bytes (up to 64), enough to recognise an ELF header. */
  readonly head: Buffer;
  readonly size: number;
}

function field(block: Buffer, offset: number, length: number): string {
  const raw = block.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString("utf8");
}

function parsePax(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString("ascii"));
    if (!(length > 0)) break;
    const record = body.subarray(space + 1, at + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    records.set(record.slice(0, equals), record.slice(equals + 1));
    at += length;
  }
  return records;
}

/** Lists a tar (gzip-compressed or not): enough for the builder's checks, not a general reader. */
export function readTar(data: Buffer): ReadEntry[] {
  const tar = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : data;
  const entries: ReadEntry[] = [];
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (let at = 0; at + BLOCK <= tar.length; ) {
    const block = tar.subarray(at, at + BLOCK);
    if (block.every((byte) => byte === 0)) break;
    const size = parseInt(field(block, 124, 12).trim() || "0", 8);
    const typeflag = field(block, 156, 1) || "0";
    const body = tar.subarray(at + BLOCK, at + BLOCK + size);
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === "x") {
      pax = parsePax(body);
      continue;
    }
    if (typeflag === "L" || typeflag === "K") {
      const text = body.toString("utf8").replace(/\0+$/, "");
      if (typeflag === "L") longName = text;
      else longLink = text;
      continue;
    }
    const prefix = field(block, 345, 155);
    const name = pax.get("path") ?? longName ?? (prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100));
    const type = typeflag === "0" || typeflag === "7" ? "file" : typeflag === "5" ? "dir" : typeflag === "2" ? "symlink" : typeflag === "1" ? "hardlink" : "other";
    entries.push({
      path: name.replace(/^\.\//, "").replace(/\/$/, ""),
      type,
      mode: parseInt(field(block, 100, 8).trim() || "0", 8),
      uid: parseInt(field(block, 108, 8).trim() || "0", 8),
      gid: parseInt(field(block, 116, 8).trim() || "0", 8),
      mtime: parseInt(field(block, 136, 12).trim() || "0", 8),
      linkname: pax.get("linkpath") ?? longLink ?? field(block, 157, 100),
      head: Buffer.from(body.subarray(0, 64)),
      size,
    });
    pax = new Map();
    longName = undefined;
    longLink = undefined;
  }
  return entries;
}
