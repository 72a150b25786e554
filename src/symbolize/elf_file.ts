/**
 * ELF64 little-endian reader for symbolizing user-space stack frames on this machine.
 *
 * Any user can create the binaries a traced process maps, so every file is hostile input: each read
 * is bounds-checked against the file size, every count the file supplies is capped, and every loop
 * advances by a fixed minimum. The rule for what fails: a read outside the file, a header that is
 * not ELF64 little-endian, an impossible entry size, or a table larger than its cap throws
 * `ElfError`; garbage inside a table that could be read (a symbol whose name is out of range, a
 * malformed note) is skipped, because one bad entry should not cost the rest of the file's symbols.
 *
 * What a file costs is bounded by what it holds, not by what its headers claim: nothing reads a
 * whole section because it is said to be large. `open` reads the headers, the section headers, the
 * section names and the notes (all capped); the symbol table is streamed once on the first
 * `symbolize`, keeping only function symbols, within a read budget; names are read where a lookup
 * needs them. A sparse file that claims a 256 MiB string table costs the few blocks looked at.
 */
import { BlockCache, type ByteSource, MemorySource, SliceSource } from "./byte_source.ts";
import { RegularFile, type RegularFileOptions } from "../ffi/regular_file.ts";

/** A file that is not a readable ELF64 little-endian object, or is truncated or corrupt. */
export class ElfError extends Error {
  override name = "ElfError";
}

export type ElfType = "exec" | "dyn" | "rel" | "core" | "other";

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;

export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;

export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;

/** A PT_LOAD program header. */
export interface ElfSegment {
  readonly vaddr: number;
  readonly memsz: number;
  readonly offset: number;
  readonly filesz: number;
  /** PF_X | PF_W | PF_R bits. */
  readonly flags: number;
}

export interface ElfSection {
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
}

export interface ElfSymbol {
  readonly name: string;
  readonly start: number;
  /** The extent the symbol is taken to cover: st_size, or up to the next symbol when that is 0. */
  readonly size: number;
}

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;

const PT_LOAD = 1;
const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;

const STT_NOTYPE = 0;
const STT_OBJECT = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const STB_LOCAL = 0;
const STB_GLOBAL = 1;
const STB_WEAK = 2;

const SHN_UNDEF = 0;
const SHN_LORESERVE = 0xff00;
const SHN_ABS = 0xfff1;
const SHN_XINDEX = 0xffff;
const PN_XNUM = 0xffff;

// Caps on what a file may make us read or keep. Mapped binaries have a dozen segments and a few
// dozen sections; symbol tables of the biggest C++ libraries on a desktop are tens of MB.
const MAX_PHNUM = 4096;
const MAX_LOADS = 256;
const MAX_SHNUM = 65536;
const MAX_SHSTRTAB = 1 << 20;
const MAX_NOTE_BYTES = 1 << 20;
const MAX_NOTE_REGIONS = 16;
const MAX_BUILD_ID = 64;
const MAX_DEBUGLINK = 4096;
const MAX_SYMTAB = 256 << 20;
const MAX_SECTION_BYTES = 256 << 20;
/** Function symbols kept from one file (a symbol costs ~70 bytes in the index). */
const MAX_FUNCTIONS = 4 << 20;
/** Bytes read to build one file's index besides its symbol table: alias tie-breaks read names. */
export const INDEX_NAME_READ_BUDGET = 64 << 20;
export const MAX_NAME = 65536;
// Alias tie-breaks only need to tell names apart by length; beyond this they count as equal,
// which bounds the work a table of identical addresses can cause.
const NAME_CMP_CAP = 256;
const SYMTAB_CHUNK = SYM_SIZE * 65536;

const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

class FileSource implements ByteSource {
  constructor(readonly file: RegularFile, readonly size: number) {}
  read(offset: number, length: number): Uint8Array {
    try {
      return this.file.read(offset, length);
    } catch (e) {
      throw new ElfError(`${this.file.path}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Counts down the bytes one operation may read, so a hostile layout cannot make it read more. */
class BudgetedSource implements ByteSource {
  #left: number;
  constructor(
    private readonly inner: ByteSource,
    private readonly budget: number,
    private readonly what: string,
  ) {
    this.#left = budget;
  }
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, length: number): Uint8Array {
    this.#left -= length;
    if (this.#left < 0) throw new ElfError(`${this.what} needs more than ${this.budget} bytes`);
    return this.inner.read(offset, length);
  }
}

/** Function symbols after dedup, flattened into non-overlapping ranges for binary search. */
interface SymbolIndex {
  readonly rangeStart: Float64Array;
  readonly rangeEnd: Float64Array;
  readonly rangeSym: Int32Array;
  readonly symStart: Float64Array;
  readonly symSize: Float64Array;
  readonly symNameOff: Uint32Array;
  readonly symTable: Uint8Array;
  readonly strtabs: BlockCache[];
  readonly names: Map<number, string>;
}

function u64(dv: DataView, at: number): number {
  // Exact below 2^53, which covers every user-space address; larger values stay integral and
  // so still fail the bounds checks they should.
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 0x1_0000_0000;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function bindRank(bind: number): number {
  if (bind === STB_GLOBAL) return 0;
  if (bind === STB_WEAK) return 1;
  if (bind === STB_LOCAL) return 2;
  return 3;
}

/** Growable typed columns for the symbols a table yields: memory follows what is kept. */
class Columns {
  n = 0;
  start = new Float64Array(1024);
  size = new Float64Array(1024);
  nameOff = new Uint32Array(1024);
  table = new Uint8Array(1024);
  rank = new Uint8Array(1024);
  shndx = new Uint16Array(1024);
  /** 1 for an assembler label (unsized NOTYPE in code): it names only what no function covers. */
  label = new Uint8Array(1024);

  push(
    start: number,
    size: number,
    nameOff: number,
    table: number,
    rank: number,
    shndx: number,
    label: number,
  ) {
    if (this.n === this.start.length) this.#grow();
    const i = this.n++;
    this.start[i] = start;
    this.size[i] = size;
    this.nameOff[i] = nameOff;
    this.table[i] = table;
    this.rank[i] = rank;
    this.shndx[i] = shndx;
    this.label[i] = label;
  }

  #grow(): void {
    const cap = this.start.length * 2;
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.start = f64(this.start);
    this.size = f64(this.size);
    const nameOff = new Uint32Array(cap);
    nameOff.set(this.nameOff);
    this.nameOff = nameOff;
    const table = new Uint8Array(cap);
    table.set(this.table);
    this.table = table;
    const rank = new Uint8Array(cap);
    rank.set(this.rank);
    this.rank = rank;
    const shndx = new Uint16Array(cap);
    shndx.set(this.shndx);
    this.shndx = shndx;
    const label = new Uint8Array(cap);
    label.set(this.label);
    this.label = label;
  }
}

/** The section header table, kept as columns: thousands of hostile headers cost no objects. */
interface SectionTable {
  readonly count: number;
  readonly nameOff: Uint32Array;
  readonly type: Uint32Array;
  readonly link: Uint32Array;
  readonly flags: Float64Array;
  readonly addr: Float64Array;
  readonly offset: Float64Array;
  readonly size: Float64Array;
  readonly entsize: Float64Array;
  readonly names: Uint8Array;
}

export class ElfFile {
  readonly type: ElfType;
  /** e_machine, e.g. EM_X86_64 or EM_AARCH64. */
  readonly machine: number;
  /** Lower-case hex of NT_GNU_BUILD_ID, or undefined when the file has none. */
  readonly buildId: string | undefined;
  readonly segments: readonly ElfSegment[];
  /** File name from .gnu_debuglink, where a separate debug file would be. */
  readonly debugLink: string | undefined;
  /** The file's size in bytes. */
  readonly size: number;
  /** e_entry: where a process (or the dynamic loader) starts running it; 0 for none. */
  readonly entry: number;

  readonly #src: ByteSource;
  readonly #file: RegularFile | undefined;
  readonly #label: string;
  readonly #sh: SectionTable;
  #closed = false;
  #index: SymbolIndex | undefined;
  #work = 0;

  private constructor(src: ByteSource, label: string, file?: RegularFile) {
    this.#src = src;
    this.#file = file;
    this.#label = label;
    this.size = src.size;
    const hdr = this.#read(0, EHDR_SIZE, "ELF header");
    if (hdr[0] !== 0x7f || hdr[1] !== 0x45 || hdr[2] !== 0x4c || hdr[3] !== 0x46) {
      throw new ElfError(`${label}: not an ELF file (bad magic)`);
    }
    if (hdr[4] !== 2) throw new ElfError(`${label}: ELF class ${hdr[4]} unsupported (need ELF64)`);
    if (hdr[5] !== 1) throw new ElfError(`${label}: byte order ${hdr[5]} unsupported (need LE)`);
    const dv = view(hdr);
    const eType = dv.getUint16(16, true);
    this.type = eType === 1
      ? "rel"
      : eType === 2
      ? "exec"
      : eType === 3
      ? "dyn"
      : eType === 4
      ? "core"
      : "other";
    this.machine = dv.getUint16(18, true);
    this.entry = u64(dv, 24);
    const phoff = u64(dv, 32);
    const shoff = u64(dv, 40);
    const phentsize = dv.getUint16(54, true);
    let phnum = dv.getUint16(56, true);
    const shentsize = dv.getUint16(58, true);
    let shnum = dv.getUint16(60, true);
    let shstrndx = dv.getUint16(62, true);

    // Counts that do not fit 16 bits live in section header 0 (ELF extended numbering).
    if (shoff !== 0) {
      if (shentsize !== SHDR_SIZE) {
        throw new ElfError(`${label}: section header size ${shentsize}, expected ${SHDR_SIZE}`);
      }
      const sh0 = view(this.#read(shoff, SHDR_SIZE, "section header 0"));
      if (shnum === 0) shnum = Math.min(u64(sh0, 32), MAX_SHNUM + 1);
      if (shstrndx === SHN_XINDEX) shstrndx = sh0.getUint32(40, true);
      if (phnum === PN_XNUM) phnum = sh0.getUint32(44, true);
    } else {
      shnum = 0;
    }
    if (shnum > MAX_SHNUM) {
      throw new ElfError(`${label}: ${shnum} sections exceed cap ${MAX_SHNUM}`);
    }
    if (phnum > MAX_PHNUM) {
      throw new ElfError(`${label}: ${phnum} segments exceed cap ${MAX_PHNUM}`);
    }

    const segments: ElfSegment[] = [];
    const notes: { offset: number; size: number; align: number }[] = [];
    if (phnum > 0) {
      if (phentsize !== PHDR_SIZE) {
        throw new ElfError(`${label}: program header size ${phentsize}, expected ${PHDR_SIZE}`);
      }
      const ph = view(this.#read(phoff, phnum * PHDR_SIZE, "program headers"));
      for (let i = 0; i < phnum; i++) {
        const o = i * PHDR_SIZE;
        const pType = ph.getUint32(o, true);
        if (pType === PT_LOAD) {
          // Every address lookup walks the segments: their number must stay small.
          if (segments.length >= MAX_LOADS) {
            throw new ElfError(`${label}: more than ${MAX_LOADS} PT_LOAD segments`);
          }
          segments.push({
            flags: ph.getUint32(o + 4, true),
            offset: u64(ph, o + 8),
            vaddr: u64(ph, o + 16),
            filesz: u64(ph, o + 32),
            memsz: u64(ph, o + 40),
          });
        } else if (pType === PT_NOTE && notes.length < MAX_NOTE_REGIONS) {
          notes.push({ offset: u64(ph, o + 8), size: u64(ph, o + 32), align: u64(ph, o + 48) });
        }
      }
    }
    this.segments = segments;
    this.#sh = this.#readSections(shoff, shnum, shstrndx);

    let buildId = this.#buildIdFrom(notes);
    if (buildId === undefined) {
      const noteSections: { offset: number; size: number; align: number }[] = [];
      const named = this.#find(".note.gnu.build-id");
      if (named >= 0 && this.#sh.type[named] === SHT_NOTE) {
        noteSections.push({ offset: this.#sh.offset[named], size: this.#sh.size[named], align: 4 });
      }
      for (let i = 0; i < this.#sh.count && noteSections.length < MAX_NOTE_REGIONS; i++) {
        if (this.#sh.type[i] === SHT_NOTE && i !== named) {
          noteSections.push({ offset: this.#sh.offset[i], size: this.#sh.size[i], align: 4 });
        }
      }
      buildId = this.#buildIdFrom(noteSections);
    }
    this.buildId = buildId;
    this.debugLink = this.#readDebugLink();
  }

  /**
   * Opens a regular file (see RegularFile: never a FIFO or device) and reads its headers; the file
   * stays open for lazy reads until `close()`. Symlinks are followed unless `options` say
   * otherwise: paths that other users can change must be opened with `links: "refuse"`.
   */
  static open(path: string, options: RegularFileOptions = { links: "follow" }): ElfFile {
    let file: RegularFile;
    try {
      file = RegularFile.open(path, options);
    } catch (e) {
      throw new ElfError(`${path}: cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      return new ElfFile(new FileSource(file, file.identity.size), path, file);
    } catch (e) {
      file.close();
      if (e instanceof ElfError) throw e;
      throw new ElfError(`${path}: ${e}`, { cause: e });
    }
  }

  /** Parses ELF bytes held in memory (tests, fuzzing, the vDSO); they must not change later. */
  static fromBytes(bytes: Uint8Array, label = "<bytes>"): ElfFile {
    return new ElfFile(new MemorySource(bytes), label);
  }

  /** Idempotent. Lookups of names already read keep working; anything else throws ElfError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The identity of the opened file (undefined for bytes in memory). */
  get identity(): RegularFile["identity"] | undefined {
    return this.#file?.identity;
  }

  /**
   * Work done so far: bytes read (from the file or memory) plus alias comparisons. What bounds a
   * hostile file's cost, and what tests check instead of time.
   */
  get work(): number {
    return this.#work;
  }

  /** A rough count of the bytes this reader keeps in memory (for cache budgets). */
  get retainedBytes(): number {
    let n = 1024 + this.#sh.count * 60 + this.#sh.names.length;
    const idx = this.#index;
    if (idx) {
      n += idx.rangeStart.length * 20 + idx.symStart.length * 29;
      for (const s of idx.strtabs) n += s.retainedBytes;
      n += idx.names.size * 80;
    }
    return n;
  }

  /** The link-time address of a file offset, via the PT_LOAD segment whose file bytes hold it. */
  fileOffsetToVaddr(offset: number): number | undefined {
    for (const s of this.segments) {
      if (offset >= s.offset && offset - s.offset < s.filesz) return s.vaddr + (offset - s.offset);
    }
    return undefined;
  }

  /** The file offset of a link-time address; undefined in .bss-like parts that have no bytes. */
  vaddrToFileOffset(vaddr: number): number | undefined {
    for (const s of this.segments) {
      if (vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz) return s.offset + (vaddr - s.vaddr);
    }
    return undefined;
  }

  isExecutable(vaddr: number): boolean {
    for (const s of this.segments) {
      if ((s.flags & PF_X) !== 0 && vaddr >= s.vaddr && vaddr - s.vaddr < s.memsz) return true;
    }
    return false;
  }

  /** The function covering a link-time address, or undefined (the caller labels module+offset). */
  symbolize(vaddr: number): ElfSymbol | undefined {
    const idx = this.#index ??= this.#buildIndex();
    const starts = idx.rangeStart;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid] <= vaddr) lo = mid + 1;
      else hi = mid;
    }
    const r = lo - 1;
    if (r < 0 || !(vaddr < idx.rangeEnd[r])) return undefined;
    const s = idx.rangeSym[r];
    let name = idx.names.get(s);
    if (name === undefined) {
      this.#check(0, 0, "symbol name");
      name = this.#nameIn(idx.strtabs[idx.symTable[s]], idx.symNameOff[s]);
      idx.names.set(s, name);
    }
    return { name, start: idx.symStart[s], size: idx.symSize[s] };
  }

  /** LENGTH bytes of the file at OFFSET, checked against its size and counted as work. */
  bytesAt(offset: number, length: number): Uint8Array {
    return this.#read(offset, length, "data");
  }

  /**
   * A defined data or function symbol by its exact name, from the dynamic symbol table (what a
   * library exports) or else the full one: one pass, bounded by the tables' capped sizes.
   */
  lookupSymbol(name: string): { value: number; size: number } | undefined {
    const sh = this.#sh;
    const want = new TextEncoder().encode(name);
    for (const type of [SHT_DYNSYM, SHT_SYMTAB]) {
      let t = -1;
      for (let i = 0; i < sh.count && t < 0; i++) if (sh.type[i] === type) t = i;
      if (t < 0 || sh.size[t] > MAX_SYMTAB) continue;
      const link = sh.link[t];
      if (!(link < sh.count) || sh.type[link] !== SHT_STRTAB || sh.size[link] > MAX_SYMTAB) {
        continue;
      }
      const strtab = this.#read(sh.offset[link], sh.size[link], `string table of ${type}`);
      const bytes = Math.floor(sh.size[t] / SYM_SIZE) * SYM_SIZE;
      for (let chunkAt = 0; chunkAt < bytes; chunkAt += SYMTAB_CHUNK) {
        const len = Math.min(SYMTAB_CHUNK, bytes - chunkAt);
        const dv = view(this.#read(sh.offset[t] + chunkAt, len, `symbol table ${t}`));
        for (let o = 0; o < len; o += SYM_SIZE) {
          const kind = dv.getUint8(o + 4) & 0xf;
          if (kind !== STT_OBJECT && kind !== STT_FUNC) continue;
          if (dv.getUint16(o + 6, true) === SHN_UNDEF) continue;
          const at = dv.getUint32(o, true);
          if (at + want.length >= strtab.length || strtab[at + want.length] !== 0) continue;
          let same = true;
          for (let i = 0; i < want.length && same; i++) same = strtab[at + i] === want[i];
          if (same) return { value: u64(dv, o + 8), size: u64(dv, o + 16) };
        }
      }
    }
    return undefined;
  }

  /** Every section header, decoded (for tests and tools; lookups use `section`). */
  get sections(): readonly ElfSection[] {
    const out: ElfSection[] = [];
    for (let i = 0; i < this.#sh.count; i++) out.push(this.#section(i));
    return out;
  }

  /** The first section with this name, or undefined. */
  section(name: string): ElfSection | undefined {
    const i = this.#find(name);
    return i < 0 ? undefined : this.#section(i);
  }

  /**
   * The bytes of the first section with this name, read on demand; undefined if absent or
   * without file bytes (SHT_NOBITS).
   */
  sectionSource(name: string): ByteSource | undefined {
    const i = this.#find(name);
    if (i < 0 || this.#sh.type[i] === SHT_NOBITS) return undefined;
    const offset = this.#sh.offset[i];
    const size = this.#sh.size[i];
    if (size > MAX_SECTION_BYTES) {
      throw new ElfError(`${this.#label}: section ${name} of ${size} bytes exceeds cap`);
    }
    this.#check(offset, size, `section ${name}`);
    return new SliceSource(
      { size: this.#src.size, read: (o, l) => this.#read(o, l, name) },
      offset,
      size,
    );
  }

  /** Contents of the first section with this name, read whole (small sections, tests). */
  sectionBytes(name: string): Uint8Array | undefined {
    const src = this.sectionSource(name);
    return src?.read(0, src.size);
  }

  #section(i: number): ElfSection {
    const sh = this.#sh;
    const off = sh.nameOff[i];
    return {
      name: off < sh.names.length ? this.#decodeName(sh.names, off) : "",
      type: sh.type[i],
      flags: sh.flags[i],
      addr: sh.addr[i],
      offset: sh.offset[i],
      size: sh.size[i],
    };
  }

  /** Index of the first section named `name`, comparing bytes in place; -1 when none. */
  #find(name: string): number {
    const want = encoder.encode(name);
    const sh = this.#sh;
    const names = sh.names;
    outer: for (let i = 0; i < sh.count; i++) {
      const off = sh.nameOff[i];
      if (off + want.length >= names.length || names[off + want.length] !== 0) continue;
      for (let k = 0; k < want.length; k++) if (names[off + k] !== want[k]) continue outer;
      return i;
    }
    return -1;
  }

  #read(offset: number, length: number, what: string): Uint8Array {
    this.#check(offset, length, what);
    this.#work += length;
    return this.#src.read(offset, length);
  }

  #check(offset: number, length: number, what: string): void {
    if (this.#closed) throw new ElfError(`${this.#label}: ${what}: file is closed`);
    const size = this.#src.size;
    if (!(offset >= 0 && length >= 0 && offset <= size && length <= size - offset)) {
      throw new ElfError(
        `${this.#label}: ${what} at offset ${hex(offset)} size ${hex(length)} ` +
          `is outside the file of ${size} bytes`,
      );
    }
  }

  #readSections(shoff: number, shnum: number, shstrndx: number): SectionTable {
    const sh = view(
      shnum > 0 ? this.#read(shoff, shnum * SHDR_SIZE, "section headers") : new Uint8Array(0),
    );
    const t: SectionTable = {
      count: shnum,
      nameOff: new Uint32Array(shnum),
      type: new Uint32Array(shnum),
      link: new Uint32Array(shnum),
      flags: new Float64Array(shnum),
      addr: new Float64Array(shnum),
      offset: new Float64Array(shnum),
      size: new Float64Array(shnum),
      entsize: new Float64Array(shnum),
      names: new Uint8Array(0),
    };
    for (let i = 0; i < shnum; i++) {
      const o = i * SHDR_SIZE;
      t.nameOff[i] = sh.getUint32(o, true);
      t.type[i] = sh.getUint32(o + 4, true);
      t.flags[i] = u64(sh, o + 8);
      t.addr[i] = u64(sh, o + 16);
      t.offset[i] = u64(sh, o + 24);
      t.size[i] = u64(sh, o + 32);
      t.link[i] = sh.getUint32(o + 40, true);
      t.entsize[i] = u64(sh, o + 56);
    }
    if (shstrndx !== 0 && shstrndx < shnum && t.type[shstrndx] !== SHT_NOBITS) {
      const size = t.size[shstrndx];
      if (size > MAX_SHSTRTAB) {
        throw new ElfError(`${this.#label}: section name table of ${size} bytes exceeds cap`);
      }
      return { ...t, names: this.#read(t.offset[shstrndx], size, "section name table") };
    }
    return t;
  }

  #buildIdFrom(regions: { offset: number; size: number; align: number }[]): string | undefined {
    for (const region of regions) {
      const len = Math.min(region.size, MAX_NOTE_BYTES);
      const bytes = this.#read(region.offset, len, "note");
      const dv = view(bytes);
      const align = region.align === 8 ? 8 : 4;
      const pad = (n: number) => (n + align - 1) & ~(align - 1);
      let pos = 0;
      while (pos + 12 <= len) {
        const namesz = dv.getUint32(pos, true);
        const descsz = dv.getUint32(pos + 4, true);
        const type = dv.getUint32(pos + 8, true);
        if (namesz > len || descsz > len) break;
        const nameAt = pos + 12;
        const descAt = nameAt + pad(namesz);
        if (descAt + descsz > len) break;
        if (
          type === NT_GNU_BUILD_ID && namesz === 4 && bytes[nameAt] === 0x47 &&
          bytes[nameAt + 1] === 0x4e && bytes[nameAt + 2] === 0x55 && bytes[nameAt + 3] === 0 &&
          descsz > 0 && descsz <= MAX_BUILD_ID
        ) {
          let id = "";
          for (let i = 0; i < descsz; i++) id += bytes[descAt + i].toString(16).padStart(2, "0");
          return id;
        }
        pos = descAt + pad(descsz);
      }
    }
    return undefined;
  }

  #readDebugLink(): string | undefined {
    const i = this.#find(".gnu_debuglink");
    if (i < 0 || this.#sh.type[i] === SHT_NOBITS) return undefined;
    const bytes = this.#read(
      this.#sh.offset[i],
      Math.min(this.#sh.size[i], MAX_DEBUGLINK),
      ".gnu_debuglink",
    );
    const nul = bytes.indexOf(0);
    if (nul <= 0) return undefined;
    return decoder.decode(bytes.subarray(0, nul));
  }

  #decodeName(strtab: Uint8Array, off: number): string {
    const window = strtab.subarray(off, off + MAX_NAME);
    const nul = window.indexOf(0);
    return decoder.decode(nul < 0 ? window : window.subarray(0, nul));
  }

  /** A NUL-terminated name of a string table, read where it is (at most MAX_NAME bytes). */
  #nameIn(strtab: BlockCache, off: number): string {
    let want = NAME_CMP_CAP;
    for (;;) {
      const bytes = strtab.bytes(off, want);
      const nul = bytes.indexOf(0);
      if (nul >= 0) return decoder.decode(bytes.subarray(0, nul));
      if (bytes.length < want || want >= MAX_NAME) return decoder.decode(bytes);
      want = Math.min(MAX_NAME, want * 16);
    }
  }

  #buildIndex(): SymbolIndex {
    const sh = this.#sh;
    // A valid file has at most one of each; taking only the first bounds the work a file with
    // many fake symbol tables can cause.
    const tables: number[] = [];
    for (const type of [SHT_SYMTAB, SHT_DYNSYM]) {
      for (let i = 0; i < sh.count; i++) {
        if (sh.type[i] === type) {
          tables.push(i);
          break;
        }
      }
    }
    // Everything about a table is checked before anything is read from it.
    const total: number[] = [];
    const strtabs: BlockCache[] = [];
    const names = new BudgetedSource(
      { size: this.#src.size, read: (o, l) => this.#read(o, l, "string table") },
      INDEX_NAME_READ_BUDGET,
      `${this.#label}: reading symbol names`,
    );
    for (const t of tables) {
      const label = `symbol table ${t}`;
      if (sh.entsize[t] !== SYM_SIZE && sh.entsize[t] !== 0) {
        throw new ElfError(`${this.#label}: ${label} entry size ${sh.entsize[t]}`);
      }
      if (sh.size[t] > MAX_SYMTAB) {
        throw new ElfError(`${this.#label}: ${label} of ${sh.size[t]} bytes exceeds cap`);
      }
      const bytes = Math.floor(sh.size[t] / SYM_SIZE) * SYM_SIZE;
      this.#check(sh.offset[t], bytes, label);
      total.push(bytes);
      const link = sh.link[t];
      if (!(link < sh.count) || sh.type[link] !== SHT_STRTAB) {
        throw new ElfError(`${this.#label}: ${label} links to bad section ${link}`);
      }
      this.#check(sh.offset[link], sh.size[link], `string table of ${label}`);
      // Names are read where they are needed: a string table is never loaded whole.
      strtabs.push(new BlockCache(new SliceSource(names, sh.offset[link], sh.size[link])));
    }
    const cols = new Columns();
    for (let t = 0; t < tables.length; t++) {
      const sec = tables[t];
      const strtabSize = strtabs[t].size;
      for (let chunkAt = 0; chunkAt < total[t]; chunkAt += SYMTAB_CHUNK) {
        const len = Math.min(SYMTAB_CHUNK, total[t] - chunkAt);
        const dv = view(this.#read(sh.offset[sec] + chunkAt, len, `symbol table ${sec}`));
        if (!scanSymbols(dv, len, t, strtabSize, sh, cols)) {
          throw new ElfError(`${this.#label}: more than ${MAX_FUNCTIONS} function symbols`);
        }
      }
    }
    const n = cols.n;
    const { start, size, nameOff, table, rank, shndx: shndxOf, label } = cols;

    let labels = 0;
    for (let i = 0; i < n; i++) labels += label[i];
    const order = new Int32Array(n - labels);
    const labelOrder = new Int32Array(labels);
    for (let i = 0, o = 0, l = 0; i < n; i++) {
      if (label[i]) labelOrder[l++] = i;
      else order[o++] = i;
    }
    order.sort((a, b) => start[a] - start[b] || a - b);
    labelOrder.sort((a, b) => start[a] - start[b] || a - b);

    const ranker = new AliasRanker(rank, table, nameOff, strtabs, n);
    const { uSym, uSize, m } = pickAliases(order, start, size, ranker);
    const { uSym: lSym, m: lm } = pickAliases(labelOrder, start, size, ranker);
    this.#work += ranker.comparisons;

    // Functions first (0..m-1), then labels (m..m+lm-1).
    const symStart = new Float64Array(m + lm);
    const symSize = new Float64Array(m + lm);
    const symNameOff = new Uint32Array(m + lm);
    const symTable = new Uint8Array(m + lm);
    const symEnd = new Float64Array(m);
    for (let k = 0, nextLabel = 0; k < m; k++) {
      const s = uSym[k];
      const st = start[s];
      let end = st + uSize[k];
      while (nextLabel < lm && start[lSym[nextLabel]] <= st) nextLabel++;
      if (uSize[k] === 0) {
        // An unsized symbol runs to the next symbol (a label too), but never past the end of
        // its section: beyond that there is no code of it.
        const next = Math.min(
          k + 1 < m ? start[uSym[k + 1]] : Infinity,
          nextLabel < lm ? start[lSym[nextLabel]] : Infinity,
        );
        end = Math.min(next, this.#sectionEnd(st, shndxOf[s]));
      }
      symStart[k] = st;
      symEnd[k] = end;
      symSize[k] = Math.max(0, end - st);
      symNameOff[k] = nameOff[s];
      symTable[k] = table[s];
    }

    const flat = flattenRanges(symStart, symEnd, m);
    // A label runs to the next symbol of either kind, but never past its section, and names
    // only the addresses no function covers there (a label inside a function is not its name).
    const labelStart = new Float64Array(lm);
    const labelEnd = new Float64Array(lm);
    for (let k = 0, next = 0; k < lm; k++) {
      const s = lSym[k];
      const st = start[s];
      while (next < m && symStart[next] <= st) next++;
      const end = Math.min(
        k + 1 < lm ? start[lSym[k + 1]] : Infinity,
        next < m ? symStart[next] : Infinity,
        this.#sectionEnd(st, shndxOf[s]),
      );
      labelStart[k] = st;
      labelEnd[k] = end;
      symStart[m + k] = st;
      symSize[m + k] = Math.max(0, end - st);
      symNameOff[m + k] = nameOff[s];
      symTable[m + k] = table[s];
    }
    const { rs, re, rsym, r } = withLabels(flat, labelStart, labelEnd, m);

    // Later name reads (lookups) are not part of the build's budget, and keep few blocks.
    const lookupStrtabs = tables.map((t) => {
      const link = sh.link[t];
      return new BlockCache(
        new SliceSource(
          { size: this.#src.size, read: (o, l) => this.#read(o, l, "symbol name") },
          sh.offset[link],
          sh.size[link],
        ),
        4096,
        8,
      );
    });
    return {
      rangeStart: rs.slice(0, r),
      rangeEnd: re.slice(0, r),
      rangeSym: rsym.slice(0, r),
      symStart,
      symSize,
      symNameOff,
      symTable,
      strtabs: lookupStrtabs,
      names: new Map(),
    };
  }

  #sectionEnd(addr: number, shndx: number): number {
    if (shndx === SHN_ABS || shndx >= this.#sh.count) return addr;
    const start = this.#sh.addr[shndx];
    const size = this.#sh.size[shndx];
    return addr >= start && addr - start < size ? start + size : addr;
  }
}

/**
 * Sized symbols can nest (a local label-function inside a bigger one): flatten to disjoint
 * ranges where the innermost (latest-starting) symbol wins and the outer one resumes after it.
 * Each symbol opens one range and closing it resumes at most one, so 2m bounds them.
 */
function flattenRanges(symStart: Float64Array, symEnd: Float64Array, m: number) {
  const rs = new Float64Array(2 * m);
  const re = new Float64Array(2 * m);
  const rsym = new Int32Array(2 * m);
  let r = 0;
  const emit = (a: number, b: number, k: number) => {
    if (a >= b) return;
    if (r > 0 && rsym[r - 1] === k && re[r - 1] === a) {
      re[r - 1] = b;
    } else {
      rs[r] = a;
      re[r] = b;
      rsym[r] = k;
      r++;
    }
  };
  const stack = new Int32Array(m);
  let depth = 0;
  let cursor = -Infinity;
  const popUntil = (limit: number) => {
    while (depth > 0 && symEnd[stack[depth - 1]] <= limit) {
      const top = stack[--depth];
      if (cursor < symEnd[top]) {
        emit(cursor, symEnd[top], top);
        cursor = symEnd[top];
      }
    }
  };
  for (let k = 0; k < m; k++) {
    if (symEnd[k] <= symStart[k]) continue;
    popUntil(symStart[k]);
    if (depth > 0 && cursor < symStart[k]) emit(cursor, symStart[k], stack[depth - 1]);
    cursor = symStart[k];
    stack[depth++] = k;
  }
  popUntil(Infinity);
  return { rs, re, rsym, r };
}

/**
 * FLAT's ranges (disjoint, sorted) with the labels' ranges (disjoint, sorted; label k is symbol
 * FIRST + k) filling what FLAT leaves uncovered. Linear in both.
 */
function withLabels(
  flat: { rs: Float64Array; re: Float64Array; rsym: Int32Array; r: number },
  labelStart: Float64Array,
  labelEnd: Float64Array,
  first: number,
) {
  const lm = labelStart.length;
  if (lm === 0) return flat;
  // Each label range is split at most once per function range inside it, plus once.
  const cap = 2 * flat.r + lm;
  const rs = new Float64Array(cap);
  const re = new Float64Array(cap);
  const rsym = new Int32Array(cap);
  let r = 0;
  let i = 0; // the next function range
  let done = -Infinity; // where the last range taken ends
  const take = (a: number, b: number, sym: number) => {
    rs[r] = a;
    re[r] = b;
    rsym[r] = sym;
    r++;
    done = b;
  };
  for (let k = 0; k < lm; k++) {
    // A function range taken for an earlier label may reach into this one.
    let a = Math.max(labelStart[k], done);
    const b = labelEnd[k];
    // Function ranges that end before this label's: they come first.
    for (; i < flat.r && flat.re[i] <= a; i++) take(flat.rs[i], flat.re[i], flat.rsym[i]);
    while (a < b) {
      if (i < flat.r && flat.rs[i] <= a) {
        // Covered by a function from a on: that range, then go on after it.
        a = flat.re[i];
        take(flat.rs[i], flat.re[i], flat.rsym[i]);
        i++;
        continue;
      }
      const gapEnd = i < flat.r ? Math.min(b, flat.rs[i]) : b;
      take(a, gapEnd, first + k);
      a = gapEnd;
    }
  }
  for (; i < flat.r; i++) take(flat.rs[i], flat.re[i], flat.rsym[i]);
  return { rs, re, rsym, r };
}

/**
 * Appends the function symbols of one chunk of a symbol table (LEN bytes, table T) to COLS;
 * false when that would pass MAX_FUNCTIONS. Apart from the index build so that the compiler
 * optimizes this loop alone (compiling the whole build took 80 ms).
 */
function scanSymbols(
  dv: DataView,
  len: number,
  t: number,
  strtabSize: number,
  sh: SectionTable,
  cols: Columns,
): boolean {
  for (let o = 0; o < len; o += SYM_SIZE) {
    const info = dv.getUint8(o + 4);
    const type = info & 0xf;
    const shndx = dv.getUint16(o + 6, true);
    if (shndx === SHN_UNDEF || (shndx >= SHN_LORESERVE && shndx !== SHN_ABS)) continue;
    if (shndx !== SHN_ABS && shndx >= sh.count) continue;
    const value = u64(dv, o + 8);
    const sz = u64(dv, o + 16);
    let label = 0;
    if (type === STT_NOTYPE) {
      if (shndx === SHN_ABS) continue;
      if ((sh.flags[shndx] & SHF_EXECINSTR) === 0) continue;
      if (sz === 0) label = 1;
    } else if (type !== STT_FUNC && type !== STT_GNU_IFUNC) {
      continue;
    }
    if (value + sz > Number.MAX_SAFE_INTEGER) continue;
    const nOff = dv.getUint32(o, true);
    if (nOff >= strtabSize) continue;
    if (cols.n >= MAX_FUNCTIONS) return false;
    cols.push(value, sz, nOff, t, bindRank(info >> 4), shndx, label);
  }
  return true;
}

/**
 * One symbol per address among ORDER (symbols sorted by START): the best-named alias, covering
 * the largest SIZE among them, since an unsized alias (e.g. an assembler label) must not shrink a
 * sized function. A function of its own, as scanSymbols.
 */
function pickAliases(
  order: Int32Array,
  start: Float64Array,
  size: Float64Array,
  ranker: AliasRanker,
): { uSym: Int32Array; uSize: Float64Array; m: number } {
  const n = order.length;
  const uSym = new Int32Array(n);
  const uSize = new Float64Array(n);
  let m = 0;
  for (let i = 0; i < n;) {
    const s0 = start[order[i]];
    let best = order[i];
    let maxSize = size[best];
    let j = i + 1;
    for (; j < n && start[order[j]] === s0; j++) {
      const c = order[j];
      if (ranker.better(c, best) < 0) best = c;
      if (size[c] > maxSize) maxSize = size[c];
    }
    uSym[m] = best;
    uSize[m] = maxSize;
    m++;
    i = j;
  }
  return { uSym, uSize, m };
}

/**
 * Orders the aliases of one address by how good a name each is (a class, not a closure per
 * file: the optimized alias loop then always calls the same function).
 */
class AliasRanker {
  comparisons = 0;
  readonly #nameLen: Int32Array;

  constructor(
    readonly rank: Uint8Array,
    readonly table: Uint8Array,
    readonly nameOff: Uint32Array,
    readonly strtabs: BlockCache[],
    n: number,
  ) {
    this.#nameLen = new Int32Array(n).fill(-1);
  }

  #nameBytes(i: number): Uint8Array {
    return this.strtabs[this.table[i]].bytes(this.nameOff[i], NAME_CMP_CAP);
  }

  #lenOf(i: number): number {
    if (this.#nameLen[i] < 0) {
      const w = this.#nameBytes(i);
      const nul = w.indexOf(0);
      this.#nameLen[i] = nul < 0 ? w.length : nul;
    }
    return this.#nameLen[i];
  }

  /** Negative when alias a is the better name for the address than alias b. */
  better(a: number, b: number): number {
    this.comparisons++;
    const rank = this.rank;
    if (rank[a] !== rank[b]) return rank[a] - rank[b];
    const la = this.#lenOf(a);
    const lb = this.#lenOf(b);
    const sa = this.#nameBytes(a);
    const ua = la > 0 && sa[0] === 0x5f ? 1 : 0;
    const sb = this.#nameBytes(b);
    const ub = lb > 0 && sb[0] === 0x5f ? 1 : 0;
    if (ua !== ub) return ua - ub;
    if (la !== lb) return la - lb;
    for (let k = 0; k < la; k++) {
      const d = sa[k] - sb[k];
      if (d !== 0) return d;
    }
    return a - b;
  }
}
