// The two fields of a TLS ClientHello that decide whether a connection is an ACME TLS-ALPN-01
// validation (RFC 8737): the server name (SNI) and the offered ALPN protocols. Node picks a
// certificate by SNI before it sees ALPN, so the proxy reads the hello itself, then hands the
// unread bytes back to the TLS server (or to the challenge answer).

/** A record carries at most 2^14 bytes of plaintext; no ClientHello we answer spans more. */
const MAX_RECORD = 5 + 16_384;
const HANDSHAKE_RECORD = 0x16;
const CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;
const EXTENSION_ALPN = 0x0010;

export type ParsedHello =
  | { readonly kind: "incomplete" }
  | { readonly kind: "not-a-hello" }
  | { readonly kind: "hello"; readonly serverName: string | undefined; readonly alpn: readonly string[] };

/** A cursor over a byte range that reports running past its end instead of throwing. */
class Reader {
  private offset: number;
  private readonly end: number;
  private readonly data: Buffer;
  overrun = false;

  constructor(data: Buffer, start: number, end: number) {
    this.data = data;
    this.offset = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private take(n: number): number {
    if (this.overrun || n > this.remaining) {
      this.overrun = true;
      return -1;
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(): number {
    const at = this.take(1);
    return at < 0 ? 0 : this.data.readUInt8(at);
  }

  u16(): number {
    const at = this.take(2);
    return at < 0 ? 0 : this.data.readUInt16BE(at);
  }

  skip(n: number): void {
    this.take(n);
  }

  /** A sub-reader over the next n bytes (a length-prefixed vector). */
  sub(n: number): Reader {
    const at = this.take(n);
    return at < 0 ? Object.assign(new Reader(this.data, 0, 0), { overrun: true }) : new Reader(this.data, at, at + n);
  }

  text(n: number): string {
    const at = this.take(n);
    return at < 0 ? "" : this.data.toString("latin1", at, at + n);
  }
}

/** The host_name entries of a server_name extension (RFC 6066), or undefined if it is malformed. */
function hostNames(body: Reader): string[] | undefined {
  const list = body.sub(body.u16());
  const names: string[] = [];
  while (list.remaining > 0 && !list.overrun) {
    const nameType = list.u8();
    const name = list.text(list.u16());
    if (nameType === 0) names.push(name);
  }
  return list.overrun ? undefined : names;
}

/**
 * Parses the ClientHello at the start of data (the first TLS record); "incomplete" until that
 * record has fully arrived, "not-a-hello" for anything else (plain HTTP, a record too large, a
 * hello split across records, which no ACME validator sends).
 */
export function parseClientHello(data: Buffer): ParsedHello {
  if (data.length === 0) return { kind: "incomplete" };
  if (data.readUInt8(0) !== HANDSHAKE_RECORD) return { kind: "not-a-hello" };
  if (data.length < 5) return { kind: "incomplete" };
  const recordLength = data.readUInt16BE(3);
  if (5 + recordLength > MAX_RECORD) return { kind: "not-a-hello" };
  if (data.length < 5 + recordLength) return { kind: "incomplete" };
  const record = new Reader(data, 5, 5 + recordLength);
  if (record.u8() !== CLIENT_HELLO) return { kind: "not-a-hello" };
  const helloLength = (record.u8() << 16) | record.u16();
  if (helloLength > record.remaining) return { kind: "not-a-hello" };
  const hello = record.sub(helloLength);
  hello.skip(2 + 32); // legacy_version, random
  hello.skip(hello.u8()); // legacy_session_id
  hello.skip(hello.u16()); // cipher_suites
  hello.skip(hello.u8()); // legacy_compression_methods
  let serverName: string | undefined;
  const alpn: string[] = [];
  if (hello.remaining > 0) {
    const extensions = hello.sub(hello.u16());
    while (extensions.remaining > 0 && !extensions.overrun) {
      const type = extensions.u16();
      const body = extensions.sub(extensions.u16());
      if (type === EXTENSION_SERVER_NAME) {
        const names = hostNames(body);
        if (names === undefined) return { kind: "not-a-hello" };
        serverName ??= names[0];
      } else if (type === EXTENSION_ALPN) {
        const protocols = body.sub(body.u16());
        while (protocols.remaining > 0 && !protocols.overrun) alpn.push(protocols.text(protocols.u8()));
        if (protocols.overrun) return { kind: "not-a-hello" };
      }
    }
    if (extensions.overrun) return { kind: "not-a-hello" };
  }
  if (hello.overrun || record.overrun) return { kind: "not-a-hello" };
  return { kind: "hello", serverName: serverName?.toLowerCase(), alpn };
}
