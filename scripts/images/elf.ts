// Which machine an ELF file is built for, from its header (no `file` or readelf needed).
import type { Arch } from "./definitions.ts";

export const ELF_MACHINE: Record<Arch, number> = { amd64: 62, arm64: 183 };

/** e_machine of an ELF header, or undefined when the bytes are not an ELF file. */
export function elfMachine(head: Buffer): number | undefined {
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  // EI_DATA (byte 5): 1 = little endian, 2 = big endian.
  return head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
}
