/**
 * A minimal protobuf wire reader for the hot paths of reading a trace back: ftrace bundles,
 * track events and stack samples are millions of small messages, and decoding them field by
 * field into numbers avoids building a message object (and a BigInt) per event. Values above
 * 2^53 lose precision, which no timestamp, pid or iid of a trace comes near.
 */
export class WireError extends Error {
  override name = "WireError";
}

export const Wire = { Varint: 0, Fixed64: 1, Bytes: 2, Fixed32: 5 } as const;

export class WireReader {
  buf: Uint8Array;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** Points the reader at buf[pos, end): reusing one reader allocates nothing per message. */
  reset(buf: Uint8Array, pos: number, end: number): this {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    return this;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    const b = this.buf;
    let p = this.pos;
    let x = b[p++];
    if (x < 0x80) {
      this.pos = p;
      return x;
    }
    x &= 0x7f;
    let shift = 7;
    // The first 28 bits with integer arithmetic, the rest by multiplication (no 32-bit wrap).
    for (; shift < 28; shift += 7) {
      const c = b[p++];
      x |= (c & 0x7f) << shift;
      if (c < 0x80) {
        if (p > this.end) throw new WireError("a varint runs past its message");
        this.pos = p;
        return x;
      }
    }
    let mul = 2 ** 28;
    for (let i = 0; i < 6; i++) {
      const c = b[p++];
      if (c === undefined || p > this.end) throw new WireError("a varint runs past its message");
      x += (c & 0x7f) * mul;
      if (c < 0x80) {
        this.pos = p;
        return x;
      }
      mul *= 128;
    }
    throw new WireError("a varint longer than 10 bytes");
  }

  /** A varint read as int64 would be (negative values are 10-byte two's complement). */
  int64(): number {
    const v = this.varint();
    return v >= 2 ** 63 ? v - 2 ** 64 : v;
  }

  /** The tag's field number; its wire type is left in `wire`. */
  wire = 0;
  tag(): number {
    const t = this.varint();
    this.wire = t & 7;
    return Math.floor(t / 8);
  }

  /** The extent of a length-delimited value: [start, end) in `buf`; the reader moves past it. */
  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) throw new WireError("a length-delimited field runs past its message");
    this.pos = end;
    return [start, end];
  }

  /** The length-delimited value as a sub-array (no copy). */
  sub(): Uint8Array {
    const [s, e] = this.bytes();
    return this.buf.subarray(s, e);
  }

  string(): string {
    const [s, e] = this.bytes();
    return decoder.decode(this.buf.subarray(s, e));
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new WireError("a fixed64 runs past its message");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    switch (wire) {
      case Wire.Varint:
        this.varint();
        break;
      case Wire.Fixed64:
        this.pos += 8;
        break;
      case Wire.Bytes:
        this.bytes();
        break;
      case Wire.Fixed32:
        this.pos += 4;
        break;
      default:
        throw new WireError(`wire type ${wire} (groups are not used by traces)`);
    }
    if (this.pos > this.end) throw new WireError("a field runs past its message");
  }
}

const decoder = new TextDecoder();
