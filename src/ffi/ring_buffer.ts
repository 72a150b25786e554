/**
 * A BPF ring buffer mapped into this thread: records are read straight from
 * the shared memory, no callback per record.
 *
 * Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (ours to write),
 * page 1 producer_pos, then the data area, which the kernel offers twice in a
 * row so that a wrapping record reads contiguously. We map it once: the kernel
 * maps every page of a mapping at mmap time, so the second copy would count
 * the whole ring twice in our resident memory, and the rare record that wraps
 * is cheaper to copy (see `wrapped`).
 */
import type { RecordMemory } from "../records/record_decoder.ts";
import { check, lastErrno, loadLibc } from "./library.ts";

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

export const RINGBUF_BUSY_BIT = 0x80000000;
export const RINGBUF_DISCARD_BIT = 0x40000000;
export const RINGBUF_HDR_SIZE = 8;

function scratchOf(len: number): RecordMemory {
  const buf = new ArrayBuffer((len + 7) & ~7);
  return { bytes: new Uint8Array(buf), u32: new Uint32Array(buf), i32: new Int32Array(buf) };
}

export class RingBuffer {
  readonly size: number;
  /** The data area, size bytes long. */
  readonly bytes: Uint8Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  #consumer: BigUint64Array;
  #producer: BigUint64Array;
  #consumerPtr: Deno.PointerObject | null;
  #dataPtr: Deno.PointerObject | null;
  #page: number;
  #scratch = scratchOf(64 << 10);

  constructor(fd: number, size: number) {
    const libc = loadLibc();
    this.size = size;
    this.#page = libc.getpagesize();
    const consumerPtr = libc.mmap(
      null,
      BigInt(this.#page),
      PROT_READ | PROT_WRITE,
      MAP_SHARED,
      fd,
      0n,
    );
    if (consumerPtr === null || Deno.UnsafePointer.value(consumerPtr) === MAP_FAILED) {
      check(-lastErrno(), "mmap of the ring buffer's consumer page");
    }
    const dataLen = this.#page + size;
    const dataPtr = libc.mmap(null, BigInt(dataLen), PROT_READ, MAP_SHARED, fd, BigInt(this.#page));
    if (dataPtr === null || Deno.UnsafePointer.value(dataPtr) === MAP_FAILED) {
      const errno = lastErrno();
      libc.munmap(consumerPtr, BigInt(this.#page));
      check(-errno, "mmap of the ring buffer's data");
    }
    this.#consumerPtr = consumerPtr!;
    this.#dataPtr = dataPtr!;
    this.#consumer = new BigUint64Array(
      Deno.UnsafePointerView.getArrayBuffer(this.#consumerPtr, 8),
    );
    const all = Deno.UnsafePointerView.getArrayBuffer(this.#dataPtr, dataLen);
    this.#producer = new BigUint64Array(all, 0, 1);
    this.bytes = new Uint8Array(all, this.#page, size);
    this.u32 = new Uint32Array(all, this.#page, size / 4);
    this.i32 = new Int32Array(all, this.#page, size / 4);
  }

  /**
   * A record of `len` bytes at `off` that runs past the end of the data area, copied whole to
   * offset 0 of a scratch memory (valid until the next call).
   */
  wrapped(off: number, len: number): RecordMemory {
    if (this.#scratch.bytes.length < len) this.#scratch = scratchOf(len);
    const first = this.size - off;
    this.#scratch.bytes.set(this.bytes.subarray(off, this.size), 0);
    this.#scratch.bytes.set(this.bytes.subarray(0, len - first), first);
    return this.#scratch;
  }

  /** Positions grow past 2^32: keep them as Numbers, never use bit operators on them. */
  consumerPos(): number {
    return Number(Atomics.load(this.#consumer, 0));
  }

  producerPos(): number {
    return Number(Atomics.load(this.#producer, 0));
  }

  /** Hands the space up to pos back to the kernel. */
  publish(pos: number): void {
    Atomics.store(this.#consumer, 0, BigInt(pos));
  }

  close(): void {
    const libc = loadLibc();
    if (this.#dataPtr) {
      libc.munmap(this.#dataPtr, BigInt(this.#page + this.size));
      this.#dataPtr = null;
    }
    if (this.#consumerPtr) {
      libc.munmap(this.#consumerPtr, BigInt(this.#page));
      this.#consumerPtr = null;
    }
  }
}
