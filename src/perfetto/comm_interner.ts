/**
 * Maps the 16 raw bytes of a task comm to a small id without building a
 * string per event: an open-addressing table keyed by the four 32-bit words
 * the comm occupies in the record. Strings are decoded once per distinct comm.
 */

const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

export class CommInterner {
  #mask: number;
  /** Per slot: 4 comm words, then id + 1 (0 = empty). */
  #slots: Int32Array;
  #count = 0;
  /** UTF-8 bytes of each comm, valid even when the kernel's bytes were not. */
  readonly bytes: Uint8Array[] = [];
  readonly strings: string[] = [];

  constructor(initialSlots = 1024) {
    this.#mask = initialSlots - 1;
    this.#slots = new Int32Array(initialSlots * 5);
  }

  get size(): number {
    return this.#count;
  }

  /**
   * The id of the comm whose bytes start at byte offset `off` (4-aligned) of
   * the array that `words` views.
   */
  intern(words: Int32Array, bytes: Uint8Array, off: number): number {
    const w = off >> 2;
    const a = words[w], b = words[w + 1], c = words[w + 2], d = words[w + 3];
    let h = Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b) ^ d, 0xc2b2ae35);
    h ^= h >>> 15;
    const slots = this.#slots;
    for (let i = h & this.#mask;; i = (i + 1) & this.#mask) {
      const s = i * 5;
      const id1 = slots[s + 4];
      if (id1 === 0) return this.#insert(s, a, b, c, d, bytes, off);
      if (slots[s] === a && slots[s + 1] === b && slots[s + 2] === c && slots[s + 3] === d) {
        return id1 - 1;
      }
    }
  }

  /** The id of a comm given as a string (rare paths: names from /proc). */
  internString(name: string): number {
    const raw = new Uint8Array(16);
    encoder.encodeInto(name.slice(0, 15), raw.subarray(0, 15));
    return this.intern(new Int32Array(raw.buffer), raw, 0);
  }

  #insert(
    s: number,
    a: number,
    b: number,
    c: number,
    d: number,
    bytes: Uint8Array,
    off: number,
  ): number {
    const id = this.#count++;
    const slots = this.#slots;
    slots[s] = a;
    slots[s + 1] = b;
    slots[s + 2] = c;
    slots[s + 3] = d;
    slots[s + 4] = id + 1;
    let end = off;
    while (end < off + 16 && bytes[end] !== 0) end++;
    const str = decoder.decode(bytes.subarray(off, end));
    this.strings.push(str);
    this.bytes.push(encoder.encode(str));
    if (this.#count * 2 > this.#mask + 1) this.#grow();
    return id;
  }

  #grow(): void {
    const old = this.#slots;
    const size = (this.#mask + 1) * 2;
    this.#mask = size - 1;
    this.#slots = new Int32Array(size * 5);
    for (let s = 0; s < old.length; s += 5) {
      if (old[s + 4] === 0) continue;
      const a = old[s], b = old[s + 1], c = old[s + 2], d = old[s + 3];
      let h = Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b) ^ d, 0xc2b2ae35);
      h ^= h >>> 15;
      for (let i = h & this.#mask;; i = (i + 1) & this.#mask) {
        if (this.#slots[i * 5 + 4] === 0) {
          this.#slots.set(old.subarray(s, s + 5), i * 5);
          break;
        }
      }
    }
  }
}
