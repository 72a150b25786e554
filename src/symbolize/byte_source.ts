/**
 * Random access to the bytes of a file or of memory, read on demand: parsers of untrusted
 * binaries read only what a lookup needs, never a whole section because a header says it is big.
 */

export interface ByteSource {
  readonly size: number;
  /** `length` bytes at `offset`; callers have checked the range against `size`. */
  read(offset: number, length: number): Uint8Array;
}

export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}

/** The part [offset, offset + size) of another source, addressed from 0. */
export class SliceSource implements ByteSource {
  constructor(
    private readonly inner: ByteSource,
    private readonly offset: number,
    readonly size: number,
  ) {}
  read(offset: number, length: number): Uint8Array {
    return this.inner.read(this.offset + offset, length);
  }
}

/**
 * Fixed-size blocks of a source kept in a small LRU: string tables are read where names are
 * looked up, and names that are looked up together tend to sit together.
 */
export class BlockCache {
  readonly #src: ByteSource;
  readonly #blockSize: number;
  readonly #maxBlocks: number;
  readonly #blocks = new Map<number, Uint8Array>();

  constructor(src: ByteSource, blockSize = 16384, maxBlocks = 16) {
    this.#src = src;
    this.#blockSize = blockSize;
    this.#maxBlocks = maxBlocks;
  }

  get size(): number {
    return this.#src.size;
  }

  /** Up to `length` bytes at `offset` (fewer at the end of the source). */
  bytes(offset: number, length: number): Uint8Array {
    const end = Math.min(this.#src.size, offset + length);
    if (!(offset >= 0 && offset < end)) return new Uint8Array(0);
    const first = Math.floor(offset / this.#blockSize);
    if (Math.floor((end - 1) / this.#blockSize) !== first) {
      return this.#src.read(offset, end - offset); // across a boundary: rare, read it directly
    }
    let block = this.#blocks.get(first);
    if (block) {
      this.#blocks.delete(first);
    } else {
      const at = first * this.#blockSize;
      block = this.#src.read(at, Math.min(this.#blockSize, this.#src.size - at));
      if (this.#blocks.size >= this.#maxBlocks) {
        this.#blocks.delete(this.#blocks.keys().next().value!);
      }
    }
    this.#blocks.set(first, block);
    const o = offset - first * this.#blockSize;
    return block.subarray(o, o + (end - offset));
  }

  /** Bytes held in memory. */
  get retainedBytes(): number {
    return this.#blocks.size * this.#blockSize;
  }
}
