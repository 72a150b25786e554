/**
 * Parsed unwind tables by file identity, so each binary's `.eh_frame` is read once however many
 * processes map it and however many samples land in it. Bounded: least recently used tables go
 * first, since a long trace can touch thousands of files but samples concentrate on a few.
 */

import { EhFrame, EhFrameError } from "./eh_frame.ts";
import { ElfError, ElfFile } from "./elf_file.ts";

export const DEFAULT_TABLE_CAPACITY = 256;

export class UnwindTableCache {
  readonly #capacity: number;
  /** Undefined values stand for files known to have no usable table. */
  readonly #tables = new Map<string, EhFrame | undefined>();

  constructor(capacity = DEFAULT_TABLE_CAPACITY) {
    this.#capacity = Math.max(1, capacity);
  }

  get size(): number {
    return this.#tables.size;
  }

  /**
   * The table for `key` (e.g. "dev:inode" or a build id), calling `load` only on a miss. What
   * `load` throws propagates and is not remembered.
   */
  get(key: string, load: () => EhFrame | undefined): EhFrame | undefined {
    if (this.#tables.has(key)) {
      const t = this.#tables.get(key);
      this.#tables.delete(key);
      this.#tables.set(key, t);
      return t;
    }
    const t = load();
    if (this.#tables.size >= this.#capacity) {
      this.#tables.delete(this.#tables.keys().next().value!);
    }
    this.#tables.set(key, t);
    return t;
  }

  /**
   * The table of the ELF file at `path`. A file that cannot be read or whose CFI is corrupt is
   * remembered as having none: it stays bad, and its frames fall back to frame pointers.
   */
  getFile(key: string, path: string): EhFrame | undefined {
    return this.get(key, () => {
      try {
        using elf = ElfFile.open(path);
        return EhFrame.fromElf(elf, path);
      } catch (e) {
        if (e instanceof ElfError || e instanceof EhFrameError) return undefined;
        throw e;
      }
    });
  }
}
