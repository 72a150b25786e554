/**
 * The raw records a drain worker forwards to the main thread (stacks, probe hits), through memory
 * both threads share. A transferred buffer cannot come back to a worker that never yields (it
 * blocks in epoll_wait), so each flush used to take fresh memory: at a few MB/s of stack copies
 * that was thousands of page faults a second, and as many pages unmapped again. Here the worker
 * writes records into one ring it owns; the main thread copies each flush out into one buffer it
 * reuses and hands the space back at once. When the main thread is behind and the ring is full,
 * records go to a private buffer for that flush instead: nothing waits and nothing is lost.
 */
import { ByteQueue } from "../records/record_decoder.ts";

/** Ring capacity per worker: a 250 ms flush of 2 CPUs' Python stacks is about 2.5 MB. */
export const FORWARD_RING_BYTES = 4 << 20;
/** One BigInt64 slot before the data: the position up to which the reader has released. */
const HEADER = 8;

/** What one flush forwards: views of the ring in order, then what did not fit. */
export interface ForwardedBatch {
  parts: Uint8Array[];
  overflow: Uint8Array<ArrayBuffer>;
  /** The writer's position after this batch: the reader releases up to it. */
  end: number;
  /** Bytes in parts and overflow together. */
  length: number;
}

export function forwardRing(capacity = FORWARD_RING_BYTES): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER + capacity);
}

/** The worker's side: whole records, 8-aligned, headers included. */
export class ForwardWriter {
  readonly #data: Uint8Array;
  readonly #shared: BigInt64Array;
  readonly #cap: number;
  /** Positions count bytes ever written (never wrapping: 2^53 bytes). */
  #pos = 0;
  /** The reader's release position as last read: shared memory is read only when it is short. */
  #released = 0;
  #partStart = 0;
  #parts: Uint8Array[] = [];
  #length = 0;
  #overflow = new ByteQueue();
  /** Set once a record of this batch overflowed: the rest follow it, in order. */
  #overflowing = false;
  /** Records that went to the private buffer (the reader was behind). */
  overflowed = 0;

  constructor(ring: SharedArrayBuffer) {
    this.#shared = new BigInt64Array(ring, 0, 1);
    this.#data = new Uint8Array(ring, HEADER);
    this.#cap = this.#data.length;
  }

  get length(): number {
    return this.#length;
  }

  push(src: Uint8Array, off: number, size: number): void {
    const padded = (size + 7) & ~7;
    this.#length += padded;
    if (!this.#overflowing) {
      const at = this.#pos % this.#cap;
      const skip = at + padded > this.#cap ? this.#cap - at : 0;
      const need = this.#pos + skip + padded - this.#cap;
      if (need > this.#released) this.#released = Number(Atomics.load(this.#shared, 0));
      if (need <= this.#released) {
        if (skip || at === 0) {
          // A part is one contiguous view: one ends where the ring starts over.
          this.#closePart();
          this.#pos += skip;
          this.#partStart = this.#pos;
        }
        const to = this.#pos % this.#cap;
        this.#data.set(src.subarray(off, off + size), to);
        this.#data.fill(0, to + size, to + padded);
        this.#pos += padded;
        return;
      }
      this.#overflowing = true;
    }
    this.overflowed++;
    this.#overflow.push(src, off, size);
  }

  /** The records since the last take, and resets for the next batch. */
  take(): ForwardedBatch {
    this.#closePart();
    const batch: ForwardedBatch = {
      parts: this.#parts,
      overflow: this.#overflow.take(),
      end: this.#pos,
      length: this.#length,
    };
    this.#parts = [];
    this.#partStart = this.#pos;
    this.#length = 0;
    this.#overflowing = false;
    return batch;
  }

  #closePart(): void {
    if (this.#pos === this.#partStart) return;
    const at = this.#partStart % this.#cap;
    this.#parts.push(this.#data.subarray(at, at + this.#pos - this.#partStart));
  }
}

/** The main thread's side of one ring: one private buffer, reused for every batch. */
export class ForwardReader {
  readonly #released: BigInt64Array;
  #buf = new Uint8Array(1 << 16);

  constructor(ring: SharedArrayBuffer) {
    this.#released = new BigInt64Array(ring, 0, 1);
  }

  /**
   * BATCH's records, copied into memory of this thread's own, with the ring space released. The
   * view is valid until the next read: what a consumer keeps, it copies.
   */
  read(batch: ForwardedBatch): Uint8Array {
    if (batch.length > this.#buf.length) {
      this.#buf = new Uint8Array(Math.max(batch.length, this.#buf.length * 2));
    }
    let at = 0;
    for (const p of batch.parts) {
      this.#buf.set(p, at);
      at += p.length;
    }
    Atomics.store(this.#released, 0, BigInt(batch.end));
    this.#buf.set(batch.overflow, at);
    at += batch.overflow.length;
    return this.#buf.subarray(0, at);
  }
}
