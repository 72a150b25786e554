/**
 * Reads a trace file packet by packet without holding it: the top-level `Trace.packet` fields are
 * cut out of a sliding window, compressed_packets (field 50) are inflated one at a time, and a
 * whole-file gzip (`.pb.gz`) is decompressed on the way in. Memory stays at one window plus the
 * largest packet, so a trace larger than memory can be read.
 *
 * The file is opened as root from a path a user gave, so it is opened without blocking (a FIFO
 * or device is refused, not waited on). A file that ends inside a packet is not an error of the
 * reader: `end` says where the last whole packet ended and why reading stopped, so that callers
 * can say what a killed recording still holds.
 */
import { inflateSync } from "node:zlib";
import { RegularFile } from "../ffi/regular_file.ts";

export class TraceReadError extends Error {
  override name = "TraceReadError";
}

/** One TracePacket's bytes, with where it sits in the file. */
export interface StreamedPacket {
  /** Index among all packets read, compressed ones counted by the packets inside them. */
  index: number;
  /** Byte offset of the top-level packet in the (decompressed) file. */
  offset: number;
  /** Index inside its compressed_packets wrapper; -1 for a plain packet. */
  inner: number;
  bytes: Uint8Array;
}

export interface StreamEnd {
  /** Bytes of the (decompressed) file consumed as whole packets. */
  wholeBytes: number;
  /** Total bytes seen. */
  totalBytes: number;
  packets: number;
  compressedWrappers: number;
  /** Why the file is not a complete trace; undefined when it is. */
  problem: string | undefined;
}

/** Larger packets are not ours and would cost memory a crafted file chooses. */
const MAX_PACKET = 64 << 20;
/** compressed_packets inflate to at most this (our writer uses 1 MiB chunks). */
const MAX_INFLATED = 256 << 20;
const CHUNK = 1 << 20;

async function* fileChunks(path: string): AsyncGenerator<Uint8Array> {
  let file: RegularFile;
  try {
    file = RegularFile.open(path, { links: "follow" });
  } catch (e) {
    throw new TraceReadError(`cannot read trace ${path}: ${(e as Error).message}`);
  }
  try {
    const size = file.identity.size;
    for (let at = 0; at < size; at += CHUNK) yield file.read(at, Math.min(CHUNK, size - at));
  } finally {
    file.close();
  }
}

async function* gunzip(chunks: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  const ds = new DecompressionStream("gzip");
  const writer = ds.writable.getWriter();
  const pump = (async () => {
    try {
      for await (const c of chunks) await writer.write(c as Uint8Array<ArrayBuffer>);
      await writer.close();
    } catch (e) {
      await writer.abort(e).catch(() => {});
    }
  })();
  try {
    for await (const c of ds.readable) yield c;
  } catch (e) {
    throw new TraceReadError(`the gzip stream is damaged: ${(e as Error).message}`);
  } finally {
    await pump;
  }
}

/** A varint at `at` of `buf` (below `end`): [value, next] or undefined when it runs past the end. */
function varint(buf: Uint8Array, at: number, end: number): [number, number] | undefined {
  let v = 0, mul = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= end) return undefined;
    const b = buf[at++];
    v += (b & 0x7f) * mul;
    if (b < 0x80) return [v, at];
    mul *= 128;
  }
  return [Number.MAX_SAFE_INTEGER, at];
}

/** The bytes of length-delimited field `field` of a message, or undefined. */
function lengthField(msg: Uint8Array, field: number): Uint8Array | undefined {
  let at = 0;
  while (at < msg.length) {
    const tag = varint(msg, at, msg.length);
    if (!tag) return undefined;
    at = tag[1];
    const wire = tag[0] & 7;
    if (wire === 0) {
      const v = varint(msg, at, msg.length);
      if (!v) return undefined;
      at = v[1];
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint(msg, at, msg.length);
      if (!len || len[1] + len[0] > msg.length) return undefined;
      if (Math.floor(tag[0] / 8) === field) return msg.subarray(len[1], len[1] + len[0]);
      at = len[1] + len[0];
    } else return undefined;
  }
  return undefined;
}

export class TraceStream {
  readonly path: string;
  /** Set once iteration has finished. */
  end: StreamEnd | undefined;

  constructor(path: string) {
    this.path = path;
  }

  async *packets(): AsyncGenerator<StreamedPacket> {
    const file = fileChunks(this.path);
    const first = await file.next();
    if (first.done) {
      this.end = {
        wholeBytes: 0,
        totalBytes: 0,
        packets: 0,
        compressedWrappers: 0,
        problem: "the file is empty",
      };
      return;
    }
    const head = first.value;
    const replay = (async function* () {
      yield head;
      yield* file;
    })();
    const raw = head[0] === 0x1f && head[1] === 0x8b ? gunzip(replay) : replay;

    let buf = new Uint8Array(0);
    let start = 0; // first unconsumed byte of buf
    let base = 0; // file offset of buf[0]
    let index = 0, wrappers = 0;
    let problem: string | undefined;
    /** Why decompressing the whole-file gzip stopped early: a cut-off .pb.gz, not unreadable. */
    let damaged: string | undefined;
    let eof = false;
    const need = async (n: number): Promise<boolean> => {
      while (buf.length - start < n && !eof) {
        let next: IteratorResult<Uint8Array>;
        try {
          next = await raw.next();
        } catch (e) {
          if (!(e instanceof TraceReadError)) throw e;
          damaged = `${e.message} after ${base + buf.length} decompressed bytes`;
          eof = true;
          break;
        }
        if (next.done) {
          eof = true;
          break;
        }
        const rest = buf.subarray(start);
        const merged = new Uint8Array(rest.length + next.value.length);
        merged.set(rest);
        merged.set(next.value, rest.length);
        base += start;
        buf = merged;
        start = 0;
      }
      return buf.length - start >= n;
    };

    while (await need(1)) {
      await need(20);
      const offset = base + start;
      const end = buf.length;
      const tag = varint(buf, start, end);
      if (!tag) {
        problem = `the file ends inside a packet header at offset ${offset}`;
        break;
      }
      if (tag[0] !== (1 << 3 | 2)) {
        problem = `offset ${offset}: field ${Math.floor(tag[0] / 8)} wire type ${
          tag[0] & 7
        } where a packet (field 1, length-delimited) must be`;
        break;
      }
      const len = varint(buf, tag[1], end);
      if (!len) {
        problem = `the file ends inside a packet header at offset ${offset}`;
        break;
      }
      if (len[0] > MAX_PACKET) {
        problem = `offset ${offset}: a packet of ${len[0]} bytes, more than any trace carries`;
        break;
      }
      const headerLen = len[1] - start;
      if (!(await need(headerLen + len[0]))) {
        problem = `the file ends inside the packet at offset ${offset} (${
          buf.length - start - headerLen
        } of its ${len[0]} bytes are there): a recording that was cut off`;
        break;
      }
      const bodyAt = start + headerLen;
      const body = buf.subarray(bodyAt, bodyAt + len[0]);
      start = bodyAt + len[0];
      const compressed = lengthField(body, 50);
      if (compressed === undefined) {
        yield { index: index++, offset, inner: -1, bytes: body };
        continue;
      }
      wrappers++;
      let inflated: Uint8Array;
      try {
        inflated = inflateSync(compressed, { maxOutputLength: MAX_INFLATED });
      } catch (e) {
        problem = `offset ${offset}: compressed_packets do not inflate (${(e as Error).message})`;
        break;
      }
      let at = 0, inner = 0;
      while (at < inflated.length) {
        const t = varint(inflated, at, inflated.length);
        const l = t && varint(inflated, t[1], inflated.length);
        if (!t || !l || t[0] !== (1 << 3 | 2) || l[1] + l[0] > inflated.length) {
          problem = `offset ${offset}: compressed packet ${inner} is malformed`;
          break;
        }
        yield {
          index: index++,
          offset,
          inner: inner++,
          bytes: inflated.subarray(l[1], l[1] + l[0]),
        };
        at = l[1] + l[0];
      }
      if (problem) break;
    }
    // Drain the rest to learn the full size, without keeping it.
    let total = base + buf.length;
    if (!eof) {
      try {
        for await (const c of raw) total += c.length;
      } catch (e) {
        if (!(e instanceof TraceReadError)) throw e;
        damaged = `${e.message} after ${total} decompressed bytes`;
      }
    }
    if (damaged) problem = problem ? `${damaged}; ${problem}` : damaged;
    this.end = {
      wholeBytes: base + start,
      totalBytes: total,
      packets: index,
      compressedWrappers: wrappers,
      problem,
    };
  }
}
