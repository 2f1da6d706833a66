// PROXY protocol version 2 (haproxy's binary header), as tailscaled's serve sends it ahead of a
// forwarded connection (TCPForward with ProxyProtocol 2): how a Funnel or tailnet caller's
// address reaches a listener that only ever sees tailscaled on loopback.
import type { Socket } from "node:net";

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_LENGTH = 16;
/** No sender writes more: addresses (at most 216 bytes for unix sockets) plus a few TLVs. */
const MAX_HEADER_LENGTH = 4096;

export interface ProxiedSource {
  readonly address: string;
  readonly port: number;
}

export type ParsedHeader =
  | { readonly kind: "incomplete" }
  | { readonly kind: "invalid"; readonly reason: string }
  /** source is absent for LOCAL (a health check by the sender itself) or an unspecified family. */
  | { readonly kind: "parsed"; readonly length: number; readonly source: ProxiedSource | undefined };

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The canonical short form: the longest run of two or more zero groups becomes "::".
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(":");
  return `${groups.slice(0, best.start).join(":")}::${groups.slice(best.start + best.length).join(":")}`;
}

/** Parses a v2 header at the start of data; "incomplete" until enough bytes have arrived. */
export function parseProxyHeader(data: Buffer): ParsedHeader {
  const signatureBytes = Math.min(data.length, SIGNATURE.length);
  if (!data.subarray(0, signatureBytes).equals(SIGNATURE.subarray(0, signatureBytes))) return { kind: "invalid", reason: "no PROXY protocol v2 signature" };
  if (data.length < FIXED_LENGTH) return { kind: "incomplete" };
  const versionCommand = data.readUInt8(12);
  if (versionCommand >> 4 !== 2) return { kind: "invalid", reason: `PROXY protocol version ${versionCommand >> 4}, not 2` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: "invalid", reason: `unknown PROXY protocol command ${command}` };
  const addressLength = data.readUInt16BE(14);
  const length = FIXED_LENGTH + addressLength;
  if (length > MAX_HEADER_LENGTH) return { kind: "invalid", reason: `PROXY protocol header of ${length} bytes` };
  if (data.length < length) return { kind: "incomplete" };
  if (command === 0) return { kind: "parsed", length, source: undefined };
  const addresses = data.subarray(FIXED_LENGTH, length);
  const familyTransport = data.readUInt8(13);
  switch (familyTransport) {
    case 0x11: // TCP over IPv4
      if (addresses.length < 12) return { kind: "invalid", reason: "short IPv4 address block" };
      return { kind: "parsed", length, source: { address: [...addresses.subarray(0, 4)].join("."), port: addresses.readUInt16BE(8) } };
    case 0x21: // TCP over IPv6
      if (addresses.length < 36) return { kind: "invalid", reason: "short IPv6 address block" };
      return { kind: "parsed", length, source: { address: ipv6(addresses.subarray(0, 16)), port: addresses.readUInt16BE(32) } };
    default:
      return { kind: "parsed", length, source: undefined };
  }
}

/**
 * Reads the header off a fresh socket, then hands the socket on with the rest of its bytes put
 * back. A connection without a valid header is closed: on this listener every connection comes
 * from tailscaled, so anything else is not to be served.
 */
export function acceptProxied(socket: Socket, onReady: (socket: Socket, source: ProxiedSource | undefined) => void, onInvalid: (reason: string) => void): void {
  let buffered = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    const header = parseProxyHeader(buffered);
    if (header.kind === "incomplete") return;
    socket.off("data", onData);
    socket.pause();
    if (header.kind === "invalid") {
      onInvalid(header.reason);
      socket.destroy();
      return;
    }
    const rest = buffered.subarray(header.length);
    if (rest.length > 0) socket.unshift(rest);
    onReady(socket, header.source);
  };
  socket.on("data", onData);
}
