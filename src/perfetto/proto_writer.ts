/**
 * A minimal protobuf writer for the hot path (scheduler bundles at millions
 * of events per second): one growable buffer, no allocation per field.
 * Nested messages reserve one length byte and are shifted in the rare case
 * their length needs more, so the output is canonical protobuf.
 * Everything else is written with the generated @bufbuild types.
 */

export const WireType = { Varint: 0, Fixed64: 1, LengthDelimited: 2, Fixed32: 5 } as const;

/**
 * Writes the varint of V (a non-negative integer up to 2^53) at b[p] and
 * returns the position after it; the caller has made room (10 bytes). For
 * hot paths that write a whole message after one ensure(). Above 32 bits it
 * works on two 32-bit halves with integer ops: a float division per 7 bits
 * costs several times as much, and timestamps and track uuids are that large.
 */
export function putVarint(b: Uint8Array, p: number, v: number): number {
  if (v > 0xffffffff) {
    // Its low 28 bits make four full groups; the rest fits a 32-bit integer (v < 2^53).
    const lo = v >>> 0;
    b[p++] = (lo & 0x7f) | 0x80;
    b[p++] = ((lo >>> 7) & 0x7f) | 0x80;
    b[p++] = ((lo >>> 14) & 0x7f) | 0x80;
    b[p++] = ((lo >>> 21) & 0x7f) | 0x80;
    v = ((lo >>> 28) | (((v - lo) / 4294967296) << 4)) >>> 0;
  }
  while (v >= 0x80) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

const encoder = new TextEncoder();

export class ProtoWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initialSize = 1 << 16) {
    this.buf = new Uint8Array(initialSize);
  }

  ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** A non-negative integer up to 2^53. */
  varint(v: number): void {
    this.ensure(10);
    this.pos = putVarint(this.buf, this.pos, v);
  }

  /** Non-negative integers below 2^32: the common case, without float division. */
  varint32(v: number): void {
    this.ensure(5);
    const b = this.buf;
    let p = this.pos;
    while (v >= 0x80) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  varintBig(v: bigint): void {
    this.ensure(10);
    v = BigInt.asUintN(64, v);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  /** int32/int64 semantics: negatives take ten bytes, as protobuf specifies. */
  int(v: number): void {
    if (v >= 0) {
      if (v < 0x80000000) this.varint32(v);
      else this.varint(v);
      return;
    }
    if (v < -Number.MAX_SAFE_INTEGER) {
      this.varintBig(BigInt(v));
      return;
    }
    // Two's complement in two 32-bit words, without a BigInt per value.
    this.ensure(10);
    const b = this.buf;
    let p = this.pos;
    let lo = v >>> 0;
    let hi = Math.floor(v / 4294967296) >>> 0;
    while (hi !== 0 || lo >= 0x80) {
      b[p++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  tag(field: number, wireType: number): void {
    this.varint32((field << 3) | wireType);
  }

  fieldVarint(field: number, v: number): void {
    this.tag(field, WireType.Varint);
    this.varint(v);
  }

  fieldInt(field: number, v: number): void {
    this.tag(field, WireType.Varint);
    this.int(v);
  }

  fieldBytes(field: number, bytes: Uint8Array): void {
    this.tag(field, WireType.LengthDelimited);
    this.varint32(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  fieldString(field: number, s: string): void {
    const m = this.begin(field);
    this.ensure(s.length * 3);
    this.pos += encoder.encodeInto(s, this.buf.subarray(this.pos)).written;
    this.end(m);
  }

  /** Starts a length-delimited field; returns the marker to pass to end(). */
  begin(field: number): number {
    this.tag(field, WireType.LengthDelimited);
    this.ensure(1);
    return this.pos++;
  }

  end(marker: number): void {
    const len = this.pos - marker - 1;
    if (len < 0x80) {
      this.buf[marker] = len;
      return;
    }
    let extra = 0;
    for (let v = len; v >= 0x80; v = Math.floor(v / 0x80)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(marker + 1 + extra, marker + 1, this.pos);
    this.pos += extra;
    let p = marker;
    let v = len;
    while (v >= 0x80) {
      this.buf[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[p] = v;
  }

  /** A copy of what was written; the writer starts over. */
  take(): Uint8Array<ArrayBuffer> {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}
