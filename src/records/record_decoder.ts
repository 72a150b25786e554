/**
 * Reads BPF records (layouts in records.ts / bpf/systing.h) straight from
 * ring-buffer memory: checks each header, counts what BPF reported lost, and
 * hands the record to its kind's decoder (the recorders' and the process
 * table's, put together by src/pipeline/decoding.ts).
 */
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import type { FtraceBundleBuilder } from "../perfetto/ftrace_bundle_builder.ts";
import { RECORD_KIND_COUNT, RecordKind } from "./records.ts";

/** The header every record starts with (struct rec_hdr). */
const HDR_SIZE = 16;

/** A record's fixed-width view: byte, u32 and i32 arrays over the same memory. */
export interface RecordMemory {
  bytes: Uint8Array;
  u32: Uint32Array;
  i32: Int32Array;
}

/** Decodes one record (`size` bytes at byte `off` of `mem`); false when it is malformed. */
export type Decode = (
  mem: RecordMemory,
  off: number,
  size: number,
  ts: number,
  cpu: FtraceBundleBuilder,
) => boolean;

/** A recorder's decoders by the kinds they take. */
export type DecoderTable = Partial<Record<RecordKind, Decode>>;

const nothing: Decode = () => false;

export class RecordDecoder {
  #base: TimestampBase;
  #table: Decode[];
  /** Events decoded per kind (index = RecordKind). */
  readonly counts = new Float64Array(RECORD_KIND_COUNT);
  /** Records whose size or kind did not match (a build mismatch, or a kind no decoder takes). */
  malformed = 0;
  /** Reservations BPF reported as failed via the record headers, per CPU. */
  readonly lostByCpu: Float64Array;

  constructor(table: DecoderTable, base: bigint, cpus: number) {
    this.#base = new TimestampBase(base);
    // Every slot a function (kinds nobody decodes are malformed): one packed array, no holes.
    this.#table = Array.from(
      { length: RECORD_KIND_COUNT },
      (_, k) => table[k as keyof DecoderTable] ?? nothing,
    );
    this.lostByCpu = new Float64Array(cpus);
  }

  /**
   * Decodes the record whose header starts at byte `off` (8-aligned) of
   * `mem`, `len` bytes long.
   */
  decode(mem: RecordMemory, off: number, len: number, b: FtraceBundleBuilder): void {
    const u32 = mem.u32;
    const w = off >> 2;
    const head = u32[w];
    const kind = head & 0xffff;
    const size = head >>> 16;
    if (size > len) {
      // A record claiming more than BPF reserved means the layouts disagree.
      this.malformed++;
      return;
    }
    const lost = u32[w + 1];
    if (lost !== 0) {
      this.lostByCpu[b.cpu] += lost;
      b.markLost();
    }
    if (kind === RecordKind.Batch) {
      this.#batch(mem, off, size, b);
      return;
    }
    if (
      kind < RECORD_KIND_COUNT &&
      this.#table[kind](mem, off, size, this.#base.relative(u32[w + 2], u32[w + 3]), b)
    ) {
      this.counts[kind]++;
    } else {
      this.malformed++;
    }
  }

  /** The records of a batch, in order; a record that does not fit ends it as malformed. */
  #batch(mem: RecordMemory, off: number, size: number, b: FtraceBundleBuilder): void {
    const end = off + size;
    let at = off + HDR_SIZE;
    while (at < end) {
      const inner = mem.u32[at >> 2] >>> 16;
      if (
        inner < HDR_SIZE || at + inner > end || (mem.u32[at >> 2] & 0xffff) === RecordKind.Batch
      ) {
        this.malformed++;
        return;
      }
      this.decode(mem, at, inner, b);
      at += (inner + 7) & ~7;
    }
  }
}

/** A growable byte buffer of whole records, 8-aligned, handed out and reset by take(). */
export class ByteQueue {
  #buf = new Uint8Array(1 << 16);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  push(src: Uint8Array, off: number, size: number): void {
    const padded = (size + 7) & ~7;
    if (this.#len + padded > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + padded));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#buf.set(src.subarray(off, off + size), this.#len);
    this.#len += padded;
  }

  take(): Uint8Array<ArrayBuffer> {
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    return out;
  }
}
