/**
 * Classifies the first bytes of a connection without consuming them: plain HTTP, or a TLS ClientHello
 * and its SNI. Pure and bounds-checked: every input gives an answer, never an exception.
 */

export type Classification =
  | { kind: "need-more" }
  | { kind: "http" }
  | { kind: "tls"; sni: string | null }
  | { kind: "invalid"; reason: string };

/**
 * Largest plaintext TLS record payload (RFC 8446 §5.1, RFC 5246 §6.2.1: 2^14). A ClientHello is always
 * sent in plaintext records, so the 2048-byte expansion allowed for encrypted records does not apply.
 */
export const MAX_RECORD_PAYLOAD = 16384;
/** The most bytes classify() ever needs: one maximal record plus its 5-byte header. */
export const MAX_HELLO_BYTES = MAX_RECORD_PAYLOAD + 5;

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;

/** Decides what a connection speaks from its first bytes (the first TLS record only). */
export function classify(buf: Buffer): Classification {
  if (buf.length === 0) return { kind: "need-more" };
  if (buf[0] !== HANDSHAKE) return { kind: "http" };
  if (buf.length < 5) return { kind: "need-more" };
  if (buf[1] !== 0x03) return { kind: "invalid", reason: "not a TLS record version" };
  const recordLength = buf.readUInt16BE(3);
  // Refused before the record arrives, so a hostile client cannot make us buffer more than one record.
  if (recordLength > MAX_RECORD_PAYLOAD) return { kind: "invalid", reason: "record too large" };
  if (buf.length < 5 + recordLength) return { kind: "need-more" };
  return parseRecord(buf.subarray(5, 5 + recordLength));
}

/** The handshake record: a 4-byte handshake header, then the ClientHello body. */
function parseRecord(rec: Buffer): Classification {
  if (rec.length < 4) return invalid("handshake header truncated");
  if (rec[0] !== CLIENT_HELLO) return invalid("not a ClientHello");
  const bodyLength = rec.readUIntBE(1, 3);
  // A ClientHello split across several records is legal TLS, but no real client sends one (even a
  // post-quantum hello fits in one record) and only the first record is peeked: refusing it is safe.
  if (bodyLength > rec.length - 4) return invalid("ClientHello longer than its record (split hellos are not supported)");
  // Parse within the body only, so bytes of a following handshake message are never taken for extensions.
  return parseHello(rec.subarray(4, 4 + bodyLength));
}

function parseHello(body: Buffer): Classification {
  const r = new Reader(body);
  r.skip(2 + 32); // legacy_version, random
  r.skip(r.u8() ?? -1); // session id
  r.skip(r.u16() ?? -1); // cipher suites
  r.skip(r.u8() ?? -1); // compression methods
  if (r.failed) return invalid("truncated ClientHello");
  if (r.remaining() === 0) return { kind: "tls", sni: null };
  const extensionsLength = r.u16();
  if (extensionsLength === null || extensionsLength > r.remaining()) return invalid("truncated extensions");
  const end = r.offset + extensionsLength;
  while (r.offset + 4 <= end) {
    const type = r.u16()!;
    const length = r.u16()!;
    if (r.offset + length > end) return invalid("extension overruns");
    if (type === EXT_SERVER_NAME) return serverName(body.subarray(r.offset, r.offset + length));
    r.skip(length);
  }
  return { kind: "tls", sni: null };
}

function serverName(ext: Buffer): Classification {
  const r = new Reader(ext);
  const listLength = r.u16();
  if (listLength === null || listLength > r.remaining()) return invalid("bad server_name list");
  while (r.remaining() >= 3) {
    const nameType = r.u8()!;
    const length = r.u16()!;
    if (length > r.remaining()) return invalid("bad server_name entry");
    if (nameType === 0) {
      const name = ext.toString("latin1", r.offset, r.offset + length);
      return /^[\x21-\x7e]+$/.test(name) ? { kind: "tls", sni: name } : invalid("server_name is not printable");
    }
    r.skip(length);
  }
  return { kind: "tls", sni: null };
}

const invalid = (reason: string): Classification => ({ kind: "invalid", reason });

/** A cursor that records overruns instead of throwing. */
class Reader {
  offset = 0;
  failed = false;
  constructor(private readonly buf: Buffer) {}

  remaining(): number {
    return this.failed ? 0 : this.buf.length - this.offset;
  }

  u8(): number | null {
    return this.take(1) ? this.buf[this.offset - 1]! : null;
  }

  u16(): number | null {
    return this.take(2) ? this.buf.readUInt16BE(this.offset - 2) : null;
  }

  u24(): number | null {
    return this.take(3) ? this.buf.readUIntBE(this.offset - 3, 3) : null;
  }

  skip(n: number): void {
    this.take(n);
  }

  private take(n: number): boolean {
    if (this.failed || n < 0 || this.offset + n > this.buf.length) {
      this.failed = true;
      return false;
    }
    this.offset += n;
    return true;
  }
}
