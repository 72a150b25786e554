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
 * Files are read lazily: `open` reads the headers, the section name table, the notes and
 * .gnu_debuglink (all small); symbol tables only on the first `symbolize`. Binaries of 100+ MB are
 * common (Deno itself), so nothing reads the whole file.
 */

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

// Caps on what a file may make us read or allocate. Real files stay far below them: the largest
// section counts seen are ~70k (-ffunction-sections objects), symbol tables of big C++ binaries
// are tens of MB.
const MAX_PHNUM = 65536;
const MAX_SHNUM = 262144;
const MAX_SHSTRTAB = 16 << 20;
const MAX_NOTE_BYTES = 1 << 20;
const MAX_NOTE_REGIONS = 16;
const MAX_BUILD_ID = 64;
const MAX_DEBUGLINK = 4096;
const MAX_SYMTAB = 256 << 20;
const MAX_STRTAB = 256 << 20;
const MAX_SECTION_BYTES = 256 << 20;
const MAX_NAME = 65536;
// Alias tie-breaks only need to tell names apart by length; beyond this they count as equal,
// which bounds the work a table of identical addresses can cause.
const NAME_CMP_CAP = 256;
const SYMTAB_CHUNK = SYM_SIZE * 65536;

const decoder = new TextDecoder("utf-8", { fatal: false });

/** Where the bytes come from: memory for tests and fuzzing, positioned reads for real files. */
interface ByteSource {
  readonly size: number;
  /** Callers have bounds-checked offset and length against size. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

class MemorySource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {}
}

class FileSource implements ByteSource {
  #file: Deno.FsFile | undefined;
  constructor(file: Deno.FsFile, readonly size: number, private readonly label: string) {
    this.#file = file;
  }
  read(offset: number, length: number): Uint8Array {
    const file = this.#file;
    if (!file) throw new ElfError(`${this.label}: read after close`);
    const out = new Uint8Array(length);
    try {
      file.seekSync(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = file.readSync(out.subarray(got));
        if (n === null || n === 0) {
          throw new ElfError(
            `${this.label}: file ended at ${offset + got} reading ${length} bytes`,
          );
        }
        got += n;
      }
    } catch (e) {
      if (e instanceof ElfError) throw e;
      throw new ElfError(`${this.label}: read of ${length} bytes at ${offset} failed: ${e}`, {
        cause: e,
      });
    }
    return out;
  }
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

interface RawSection extends ElfSection {
  readonly link: number;
  readonly entsize: number;
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
  readonly strtabs: Uint8Array[];
  readonly names: (string | undefined)[];
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

export class ElfFile {
  readonly type: ElfType;
  /** e_machine, e.g. EM_X86_64 or EM_AARCH64. */
  readonly machine: number;
  /** Lower-case hex of NT_GNU_BUILD_ID, or undefined when the file has none. */
  readonly buildId: string | undefined;
  readonly segments: readonly ElfSegment[];
  readonly sections: readonly ElfSection[];
  /** File name from .gnu_debuglink, where a separate debug file would be. */
  readonly debugLink: string | undefined;

  readonly #src: ByteSource;
  readonly #label: string;
  readonly #sections: RawSection[];
  #closed = false;
  #index: SymbolIndex | undefined;

  private constructor(src: ByteSource, label: string) {
    this.#src = src;
    this.#label = label;
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

    this.#sections = shnum > 0 ? this.#readSections(shoff, shnum, shstrndx) : [];
    this.sections = this.#sections;

    let buildId = this.#buildIdFrom(notes);
    if (buildId === undefined) {
      const noteSections = this.#sections
        .filter((s) => s.type === SHT_NOTE)
        .sort((a, b) =>
          Number(b.name === ".note.gnu.build-id") - Number(a.name === ".note.gnu.build-id")
        )
        .slice(0, MAX_NOTE_REGIONS)
        .map((s) => ({ offset: s.offset, size: s.size, align: 4 }));
      buildId = this.#buildIdFrom(noteSections);
    }
    this.buildId = buildId;
    this.debugLink = this.#readDebugLink();
  }

  /** Opens a file and reads its headers; the handle stays open for lazy reads until `close()`. */
  static open(path: string): ElfFile {
    let file: Deno.FsFile;
    let size: number;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (e) {
      throw new ElfError(`${path}: cannot open: ${e}`, { cause: e });
    }
    try {
      const st = file.statSync();
      if (!st.isFile) throw new ElfError(`${path}: not a regular file`);
      size = st.size;
      return new ElfFile(new FileSource(file, size, path), path);
    } catch (e) {
      file.close();
      if (e instanceof ElfError) throw e;
      throw new ElfError(`${path}: ${e}`, { cause: e });
    }
  }

  /** Parses ELF bytes held in memory (tests, fuzzing); the bytes must not change afterwards. */
  static fromBytes(bytes: Uint8Array, label = "<bytes>"): ElfFile {
    return new ElfFile(new MemorySource(bytes), label);
  }

  /** Idempotent. Lookups keep working if the symbol tables were already loaded. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#src.close();
  }

  [Symbol.dispose](): void {
    this.close();
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
    const name = idx.names[s] ??= this.#decodeName(idx.strtabs[idx.symTable[s]], idx.symNameOff[s]);
    return { name, start: idx.symStart[s], size: idx.symSize[s] };
  }

  /** Contents of the first section with this name; undefined if absent or without file bytes. */
  sectionBytes(name: string): Uint8Array | undefined {
    const s = this.#sections.find((x) => x.name === name);
    if (!s || s.type === SHT_NOBITS) return undefined;
    if (s.size > MAX_SECTION_BYTES) {
      throw new ElfError(`${this.#label}: section ${name} of ${s.size} bytes exceeds cap`);
    }
    return this.#read(s.offset, s.size, `section ${name}`);
  }

  #read(offset: number, length: number, what: string): Uint8Array {
    this.#check(offset, length, what);
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

  #readSections(shoff: number, shnum: number, shstrndx: number): RawSection[] {
    const sh = view(this.#read(shoff, shnum * SHDR_SIZE, "section headers"));
    const names: number[] = [];
    const raw: Omit<RawSection, "name">[] = [];
    for (let i = 0; i < shnum; i++) {
      const o = i * SHDR_SIZE;
      names.push(sh.getUint32(o, true));
      raw.push({
        type: sh.getUint32(o + 4, true),
        flags: u64(sh, o + 8),
        addr: u64(sh, o + 16),
        offset: u64(sh, o + 24),
        size: u64(sh, o + 32),
        link: sh.getUint32(o + 40, true),
        entsize: u64(sh, o + 56),
      });
    }
    let strtab: Uint8Array = new Uint8Array(0);
    if (shstrndx !== 0 && shstrndx < shnum && raw[shstrndx].type !== SHT_NOBITS) {
      const s = raw[shstrndx];
      if (s.size > MAX_SHSTRTAB) {
        throw new ElfError(`${this.#label}: section name table of ${s.size} bytes exceeds cap`);
      }
      strtab = this.#read(s.offset, s.size, "section name table");
    }
    // Hostile files can point thousands of headers at one name; decode each offset once.
    const cache = new Map<number, string>();
    return raw.map((r, i) => {
      const off = names[i];
      let name = cache.get(off);
      if (name === undefined) {
        name = off < strtab.length ? this.#decodeName(strtab, off) : "";
        cache.set(off, name);
      }
      return { name, ...r };
    });
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
    const s = this.#sections.find((x) => x.name === ".gnu_debuglink");
    if (!s || s.type === SHT_NOBITS) return undefined;
    const bytes = this.#read(s.offset, Math.min(s.size, MAX_DEBUGLINK), ".gnu_debuglink");
    const nul = bytes.indexOf(0);
    if (nul <= 0) return undefined;
    return decoder.decode(bytes.subarray(0, nul));
  }

  #decodeName(strtab: Uint8Array, off: number): string {
    const window = strtab.subarray(off, off + MAX_NAME);
    const nul = window.indexOf(0);
    return decoder.decode(nul < 0 ? window : window.subarray(0, nul));
  }

  #buildIndex(): SymbolIndex {
    const sections = this.#sections;
    const strtabs: Uint8Array[] = [];
    // A valid file has at most one of each; taking only the first bounds the work a file with
    // many fake symbol tables can cause.
    const tables = [
      sections.find((s) => s.type === SHT_SYMTAB),
      sections.find((s) => s.type === SHT_DYNSYM),
    ].filter((s) => s !== undefined);
    // Everything about a table is checked before anything is sized from it: a lying sh_size
    // must not allocate hundreds of MB only to fail afterwards.
    const total: number[] = [];
    for (const sec of tables) {
      if (sec.entsize !== SYM_SIZE && sec.entsize !== 0) {
        throw new ElfError(`${this.#label}: symbol table ${sec.name} entry size ${sec.entsize}`);
      }
      if (sec.size > MAX_SYMTAB) {
        throw new ElfError(
          `${this.#label}: symbol table ${sec.name} of ${sec.size} bytes exceeds cap`,
        );
      }
      const bytes = Math.floor(sec.size / SYM_SIZE) * SYM_SIZE;
      this.#check(sec.offset, bytes, `symbol table ${sec.name}`);
      total.push(bytes);
      const str = sec.link < sections.length ? sections[sec.link] : undefined;
      if (!str || str.type !== SHT_STRTAB) {
        throw new ElfError(
          `${this.#label}: symbol table ${sec.name} links to bad section ${sec.link}`,
        );
      }
      if (str.size > MAX_STRTAB) {
        throw new ElfError(
          `${this.#label}: string table ${str.name} of ${str.size} bytes exceeds cap`,
        );
      }
      strtabs.push(this.#read(str.offset, str.size, `string table of ${sec.name}`));
    }
    // Typed arrays keep the symbols of a large C++ library out of the garbage collector's way.
    let capacity = 0;
    for (const bytes of total) capacity += bytes / SYM_SIZE;
    const start = new Float64Array(capacity);
    const size = new Float64Array(capacity);
    const nameOff = new Uint32Array(capacity);
    const table = new Uint8Array(capacity);
    const rank = new Uint8Array(capacity);
    const shndxOf = new Uint16Array(capacity);
    let n = 0;
    for (let t = 0; t < tables.length; t++) {
      const sec = tables[t];
      const strtab = strtabs[t];
      for (let chunkAt = 0; chunkAt < total[t]; chunkAt += SYMTAB_CHUNK) {
        const len = Math.min(SYMTAB_CHUNK, total[t] - chunkAt);
        const dv = view(this.#read(sec.offset + chunkAt, len, `symbol table ${sec.name}`));
        for (let o = 0; o < len; o += SYM_SIZE) {
          const info = dv.getUint8(o + 4);
          const type = info & 0xf;
          const shndx = dv.getUint16(o + 6, true);
          if (shndx === SHN_UNDEF || (shndx >= SHN_LORESERVE && shndx !== SHN_ABS)) continue;
          if (shndx !== SHN_ABS && shndx >= sections.length) continue;
          const value = u64(dv, o + 8);
          const sz = u64(dv, o + 16);
          if (type === STT_NOTYPE) {
            if (sz === 0 || shndx === SHN_ABS) continue;
            if ((sections[shndx].flags & SHF_EXECINSTR) === 0) continue;
          } else if (type !== STT_FUNC && type !== STT_GNU_IFUNC) {
            continue;
          }
          if (value + sz > Number.MAX_SAFE_INTEGER) continue;
          const nOff = dv.getUint32(o, true);
          if (nOff >= strtab.length) continue;
          start[n] = value;
          size[n] = sz;
          nameOff[n] = nOff;
          table[n] = t;
          rank[n] = bindRank(info >> 4);
          shndxOf[n] = shndx;
          n++;
        }
      }
    }

    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => start[a] - start[b] || a - b);

    const nameLen = new Int32Array(n).fill(-1);
    const lenOf = (i: number): number => {
      if (nameLen[i] < 0) {
        const w = strtabs[table[i]].subarray(nameOff[i], nameOff[i] + NAME_CMP_CAP);
        const nul = w.indexOf(0);
        nameLen[i] = nul < 0 ? w.length : nul;
      }
      return nameLen[i];
    };
    // Negative when alias a is the better name for the address than alias b.
    const better = (a: number, b: number): number => {
      if (rank[a] !== rank[b]) return rank[a] - rank[b];
      const sa = strtabs[table[a]];
      const sb = strtabs[table[b]];
      const ua = lenOf(a) > 0 && sa[nameOff[a]] === 0x5f ? 1 : 0;
      const ub = lenOf(b) > 0 && sb[nameOff[b]] === 0x5f ? 1 : 0;
      if (ua !== ub) return ua - ub;
      const la = lenOf(a);
      const lb = lenOf(b);
      if (la !== lb) return la - lb;
      for (let k = 0; k < la; k++) {
        const d = sa[nameOff[a] + k] - sb[nameOff[b] + k];
        if (d !== 0) return d;
      }
      return a - b;
    };

    // One winner per address; its coverage is the largest size among the aliases, since an
    // unsized alias (e.g. an assembler label) must not shrink a sized function.
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
        if (better(c, best) < 0) best = c;
        if (size[c] > maxSize) maxSize = size[c];
      }
      uSym[m] = best;
      uSize[m] = maxSize;
      m++;
      i = j;
    }

    const symStart = new Float64Array(m);
    const symSize = new Float64Array(m);
    const symNameOff = new Uint32Array(m);
    const symTable = new Uint8Array(m);
    const symEnd = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      const s = uSym[k];
      const st = start[s];
      let end = st + uSize[k];
      if (uSize[k] === 0) {
        // An unsized symbol runs to the next symbol, but never past the end of its section:
        // beyond that there is no code of it.
        const next = k + 1 < m ? start[uSym[k + 1]] : Infinity;
        end = Math.min(next, this.#sectionEnd(st, shndxOf[s]));
      }
      symStart[k] = st;
      symEnd[k] = end;
      symSize[k] = Math.max(0, end - st);
      symNameOff[k] = nameOff[s];
      symTable[k] = table[s];
    }

    // Sized symbols can nest (a local label-function inside a bigger one): flatten to disjoint
    // ranges where the innermost (latest-starting) symbol wins and the outer one resumes after
    // it. Each symbol opens one range and closing it resumes at most one, so 2m bounds them.
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

    return {
      rangeStart: rs.slice(0, r),
      rangeEnd: re.slice(0, r),
      rangeSym: rsym.slice(0, r),
      symStart,
      symSize,
      symNameOff,
      symTable,
      strtabs,
      names: new Array(m),
    };
  }

  #sectionEnd(addr: number, shndx: number): number {
    if (shndx === SHN_ABS || shndx >= this.#sections.length) return addr;
    const s = this.#sections[shndx];
    return addr >= s.addr && addr - s.addr < s.size ? s.addr + s.size : addr;
  }
}
