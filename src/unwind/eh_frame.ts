/**
 * `.eh_frame` call frame information: for a code address of one ELF file, the rules that recover
 * the caller's registers (the "unwind row"), as `perf --call-graph dwarf` and libgcc use them.
 *
 * `.eh_frame_hdr` holds a sorted table of (first address, FDE address) for binary search; without
 * it the FDEs are found once by a linear scan of `.eh_frame`. `.eh_frame` itself is never held in
 * memory: a CIE or FDE is read from the file when a lookup reaches it, and the rows of an FDE are
 * computed once and kept in a cache bounded by rows, because a profile hits the same few hundred
 * functions over and over.
 *
 * Any user can write the binaries a traced process maps, so all of it is hostile input: every
 * read is bounds-checked, entries, rows, LEB128s and state stacks are capped, rules are kept only
 * for the registers an unwinder tracks, and every failure throws `EhFrameError` (never a
 * RangeError or a hang). What one FDE can cost is bounded by its capped size.
 */

import { type ByteSource, MemorySource } from "../symbolize/byte_source.ts";
import type { ElfFile } from "../symbolize/elf_file.ts";

/** Call frame information that cannot be read: truncated, out of range, or unsupported. */
export class EhFrameError extends Error {
  override name = "EhFrameError";
}

/** How to compute the canonical frame address (the caller's sp) at a row. */
export type CfaRule =
  | { readonly kind: "register"; readonly register: number; readonly offset: number }
  | { readonly kind: "expression"; readonly expr: Uint8Array };

/** How to recover one register of the caller. Registers without a rule keep their value. */
export type RegisterRule =
  | { readonly kind: "undefined" }
  | { readonly kind: "same" }
  /** Saved at CFA + offset. */
  | { readonly kind: "offset"; readonly offset: number }
  /** The value is CFA + offset. */
  | { readonly kind: "val_offset"; readonly offset: number }
  /** The value is in another register. */
  | { readonly kind: "register"; readonly register: number }
  /** Saved at the address the expression computes (the CFA is pushed first). */
  | { readonly kind: "expression"; readonly expr: Uint8Array }
  /** The value is what the expression computes (the CFA is pushed first). */
  | { readonly kind: "val_expression"; readonly expr: Uint8Array };

export interface Cie {
  /** Offset of the entry in `.eh_frame`. */
  readonly offset: number;
  readonly version: number;
  readonly augmentation: string;
  readonly codeAlign: number;
  readonly dataAlign: number;
  readonly raRegister: number;
  /** DW_EH_PE_* encoding of the FDE pointers ("R"); absptr without one. */
  readonly fdeEncoding: number;
  /** "S": the frames of its FDEs are signal trampolines, whose caller's pc is exact. */
  readonly signalFrame: boolean;
  readonly instructions: Uint8Array;
  /** Address of `instructions[0]`, the base of pc-relative DW_CFA_set_loc. */
  readonly instructionsAddr: number;
}

export interface Fde {
  readonly offset: number;
  readonly cie: Cie;
  readonly pcBegin: number;
  /** Exclusive. */
  readonly pcEnd: number;
  readonly instructions: Uint8Array;
  readonly instructionsAddr: number;
}

/** The unwind rules that hold for the addresses [start, end) of a function. */
export interface UnwindRow {
  readonly start: number;
  readonly end: number;
  readonly cfa: CfaRule;
  /** Rules by DWARF register number; absent registers keep their value in the caller. */
  readonly rules: ReadonlyMap<number, RegisterRule>;
  readonly raRegister: number;
  readonly signalFrame: boolean;
  /**
   * The row in flat form for the unwinder's fast path, made on its first use there (null: its
   * rules need the general path). Declared at creation so that every row has one shape.
   */
  plan: RowPlan | null | undefined;
}

/**
 * A row whose CFA is a register plus an offset and whose every rule saves a register at
 * CFA + offset (or makes it unknown): nearly every row of compiled code.
 */
export interface RowPlan {
  readonly cfaRegister: number;
  readonly cfaOffset: number;
  /** The return address is saved at CFA + raOffset. */
  readonly raOffset: number;
  /** The return address rule is "undefined": the outermost frame, whose walk ends here. */
  readonly outermost: boolean;
  /** Other registers saved at CFA + offsets[i]. */
  readonly saved: Int32Array;
  readonly offsets: Float64Array;
  /** Registers the caller does not have (rule "undefined"). */
  readonly lost: Int32Array;
}

/** The raw sections; `fromElf` fills it from a file, tests may build one by hand. */
export interface EhFrameSections {
  /** The section's bytes, or a source to read them from on demand. */
  readonly ehFrame: Uint8Array | ByteSource;
  /** Link-time address of `.eh_frame`. */
  readonly ehFrameAddr: number;
  readonly hdr?: Uint8Array;
  readonly hdrAddr?: number;
  /** Bases of DW_EH_PE_textrel / DW_EH_PE_datarel inside `.eh_frame` (.text, .got). */
  readonly textAddr?: number;
  readonly dataAddr?: number;
  /** Rules of registers at or above this (and not the return address) are parsed and dropped. */
  readonly trackedRegisters?: number;
}

// DW_EH_PE_* pointer encodings: low nibble is the format, bits 4-6 the base, bit 7 indirect.
const PE_OMIT = 0xff;
const PE_ABSPTR = 0x00;
const PE_ULEB128 = 0x01;
const PE_UDATA2 = 0x02;
const PE_UDATA4 = 0x03;
const PE_UDATA8 = 0x04;
const PE_SLEB128 = 0x09;
const PE_SDATA2 = 0x0a;
const PE_SDATA4 = 0x0b;
const PE_SDATA8 = 0x0c;
const PE_PCREL = 0x10;
const PE_TEXTREL = 0x20;
const PE_DATAREL = 0x30;
const PE_FUNCREL = 0x40;
const PE_ALIGNED = 0x50;
const PE_INDIRECT = 0x80;

// Hostile-input caps. Real CFI nests remember_state a few levels and names registers < 130; the
// largest FDE among the libraries of a desktop is ~12 KB.
const MAX_LEB_BYTES = 10;
const MAX_STATE_STACK = 64;
const MAX_REGISTER = 4096;
const MAX_CIE_CACHE = 4096;
const FDE_CACHE_SIZE = 4096;
/**
 * Bytes of one CIE or FDE: everything parsed for a lookup comes from one entry and its CIE, so
 * this bounds the work of one lookup (a 16 KiB FDE takes about a millisecond to run).
 */
export const MAX_ENTRY = 16 << 10;
/** Rows of one FDE, and rows kept by the cache in all (each holds a small rule map). */
const MAX_ROWS = 16384;
const MAX_CACHED_ROWS = 131072;
/** Registers 0..31 cover every general register of x86-64 and AArch64 (and rip, lr, sp). */
export const DEFAULT_TRACKED_REGISTERS = 32;
/** The linear scan of a table without .eh_frame_hdr: bytes read at once, and the whole cap. */
const SCAN_WINDOW = 1 << 20;
const MAX_SCANNED = 256 << 20;
const PE_DATAREL_SDATA4 = PE_DATAREL | PE_SDATA4;

const NO_ROWS: readonly UnwindRow[] = [];
const UNDEFINED_RULE: RegisterRule = { kind: "undefined" };
const SAME_RULE: RegisterRule = { kind: "same" };
const decoder = new TextDecoder("latin1");

interface Bases {
  /** Base of DW_EH_PE_datarel. */
  data: number | undefined;
  text: number | undefined;
}

/** A bounds-checked cursor over [pos, end) of a byte array that sits at link-time `addr`. */
class Reader {
  readonly dv: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly addr: number,
    public pos: number,
    readonly end: number,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(n: number, what: string): number {
    const at = this.pos;
    if (!(n >= 0 && at + n <= this.end)) {
      throw new EhFrameError(`${what} at 0x${at.toString(16)} runs past the entry end`);
    }
    this.pos = at + n;
    return at;
  }
  u8(): number {
    return this.bytes[this.need(1, "u8")];
  }
  u16(): number {
    return this.dv.getUint16(this.need(2, "u16"), true);
  }
  s16(): number {
    return this.dv.getInt16(this.need(2, "s16"), true);
  }
  u32(): number {
    return this.dv.getUint32(this.need(4, "u32"), true);
  }
  s32(): number {
    return this.dv.getInt32(this.need(4, "s32"), true);
  }
  /** Exact below 2^53, which covers user-space addresses; larger stay large and fail later. */
  u64(): number {
    const at = this.need(8, "u64");
    return this.dv.getUint32(at, true) + this.dv.getUint32(at + 4, true) * 0x1_0000_0000;
  }
  s64(): number {
    const at = this.need(8, "s64");
    return this.dv.getUint32(at, true) + this.dv.getInt32(at + 4, true) * 0x1_0000_0000;
  }
  uleb(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < MAX_LEB_BYTES; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new EhFrameError(`LEB128 longer than ${MAX_LEB_BYTES} bytes`);
  }
  sleb(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < MAX_LEB_BYTES; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return (b & 0x40) !== 0 ? v - mul : v;
    }
    throw new EhFrameError(`LEB128 longer than ${MAX_LEB_BYTES} bytes`);
  }
  cstring(): string {
    const nul = this.bytes.subarray(this.pos, this.end).indexOf(0);
    if (nul < 0) throw new EhFrameError(`unterminated string at 0x${this.pos.toString(16)}`);
    const s = decoder.decode(this.bytes.subarray(this.pos, this.pos + nul));
    this.pos += nul + 1;
    return s;
  }
  block(): Uint8Array {
    const n = this.uleb();
    const at = this.need(n, "block");
    return this.bytes.subarray(at, at + n);
  }

  /** Just the value of a pointer's format, without applying a base (pc_range, sizes). */
  raw(format: number): number {
    switch (format) {
      case PE_ABSPTR:
      case PE_UDATA8:
        return this.u64();
      case PE_ULEB128:
        return this.uleb();
      case PE_UDATA2:
        return this.u16();
      case PE_UDATA4:
        return this.u32();
      case PE_SLEB128:
        return this.sleb();
      case PE_SDATA2:
        return this.s16();
      case PE_SDATA4:
        return this.s32();
      case PE_SDATA8:
        return this.s64();
      default:
        throw new EhFrameError(`pointer format 0x${format.toString(16)} unsupported`);
    }
  }

  /** A DW_EH_PE_* encoded pointer with its base applied. */
  encoded(enc: number, bases: Bases): number {
    if (enc === PE_OMIT) throw new EhFrameError("pointer encoding is 'omit'");
    const fieldAddr = this.addr + this.pos;
    let base = 0;
    switch (enc & 0x70) {
      case 0:
        break;
      case PE_PCREL:
        base = fieldAddr;
        break;
      case PE_DATAREL:
        if (bases.data === undefined) throw new EhFrameError("datarel pointer without a base");
        base = bases.data;
        break;
      case PE_TEXTREL:
        if (bases.text === undefined) throw new EhFrameError("textrel pointer without a base");
        base = bases.text;
        break;
      case PE_ALIGNED: {
        const pad = (8 - (fieldAddr % 8)) % 8;
        this.need(pad, "alignment");
        return this.u64();
      }
      case PE_FUNCREL:
        // Only meaningful for LSDA entries, which are skipped; never for code addresses.
        throw new EhFrameError("funcrel pointer unsupported here");
      default:
        throw new EhFrameError(`pointer base 0x${(enc & 0x70).toString(16)} unsupported`);
    }
    const v = this.raw(enc & 0x0f) + base;
    if ((enc & PE_INDIRECT) !== 0) {
      // The pointer lives in a relocated data slot (.got) whose run-time content the file does
      // not hold. Compilers use it for personality routines only, which are skipped.
      throw new EhFrameError("indirect pointer unsupported for code addresses");
    }
    return v;
  }

  /** Skips an encoded pointer (personality, LSDA) without interpreting it. */
  skipEncoded(enc: number): void {
    if (enc === PE_OMIT) return;
    if ((enc & 0x70) === PE_ALIGNED) {
      const pad = (8 - ((this.addr + this.pos) % 8)) % 8;
      this.need(pad + 8, "aligned pointer");
      return;
    }
    this.raw(enc & 0x0f);
  }
}

/** Rule state while executing CFA instructions; `rules` is copied on write once a row took it. */
interface State {
  cfa: CfaRule;
  rules: Map<number, RegisterRule>;
  shared: boolean;
}

interface CachedFde {
  readonly fde: Fde;
  rows: readonly UnwindRow[] | undefined;
}

interface CieState {
  cfa: CfaRule;
  rules: Map<number, RegisterRule>;
}

/**
 * Addresses whose row a table remembers, direct-mapped (a newer address takes an older one's
 * slot): 24 KiB per open file, made on its first lookup. A Map would cost a call out of compiled
 * code per lookup, and a walk makes one per frame.
 */
const ROW_SLOTS = 1024;

/** The per-file unwind table. */
export class EhFrame {
  readonly #src: ByteSource;
  readonly #size: number;
  readonly #tracked: number;
  /** The last window read by the linear scan (only while it runs). */
  #window: { at: number; bytes: Uint8Array } | undefined;
  #cachedRows = 0;
  /**
   * Work done so far: bytes of .eh_frame read plus CFA instructions executed plus search steps.
   * What guards against hostile input bound, and what tests check instead of time.
   * A field, not a getter: a walk reads it twice per frame, and a getter is a call there.
   * Only the table writes it.
   */
  work = 0;
  readonly #addr: number;
  readonly #bases: Bases;
  readonly #label: string;
  readonly #cies = new Map<number, Cie | EhFrameError>();
  readonly #cieStates = new Map<Cie, CieState>();
  /** Parsed FDEs (and rows) by offset, least recently used first. */
  readonly #fdeCache = new Map<number, CachedFde>();
  /** Rows by address already looked up (null: none covers it). */
  #rowPcs: Float64Array | undefined;
  #rows: (UnwindRow | null | undefined)[] = [];

  // The .eh_frame_hdr search table, when usable.
  readonly #hdr: Reader | undefined;
  readonly #tableAt: number;
  readonly #tableEnc: number;
  readonly #entrySize: number;
  readonly #fdeCount: number;

  // The linear-scan index, built on first use when there is no usable hdr table.
  #scanStart: Float64Array | undefined;
  #scanEnd: Float64Array | undefined;
  #scanOffset: Float64Array | undefined;

  constructor(sections: EhFrameSections, label = "<eh_frame>") {
    const eh = sections.ehFrame;
    this.#src = eh instanceof Uint8Array ? new MemorySource(eh) : eh;
    this.#size = this.#src.size;
    this.#tracked = sections.trackedRegisters ?? DEFAULT_TRACKED_REGISTERS;
    this.#addr = sections.ehFrameAddr;
    this.#label = label;
    this.#bases = { data: sections.dataAddr, text: sections.textAddr };
    let hdr: Reader | undefined;
    let tableAt = 0;
    let tableEnc = PE_OMIT;
    let entrySize = 0;
    let fdeCount = 0;
    if (sections.hdr && sections.hdr.length > 0) {
      const hdrAddr = sections.hdrAddr ?? 0;
      const r = new Reader(sections.hdr, hdrAddr, 0, sections.hdr.length);
      const version = r.u8();
      if (version !== 1) throw this.#error(`.eh_frame_hdr version ${version}, expected 1`);
      const ptrEnc = r.u8();
      const countEnc = r.u8();
      tableEnc = r.u8();
      const hdrBases = { data: hdrAddr, text: this.#bases.text };
      if (ptrEnc !== PE_OMIT) r.encoded(ptrEnc, hdrBases);
      entrySize = fixedSize(tableEnc);
      // A table we cannot binary-search (no count, variable-size entries) is only an index:
      // the linear scan finds the same FDEs.
      if (countEnc !== PE_OMIT && entrySize > 0) {
        fdeCount = r.encoded(countEnc, hdrBases);
        tableAt = r.pos;
        if (!(fdeCount >= 0 && fdeCount * 2 * entrySize <= sections.hdr.length - tableAt)) {
          throw this.#error(`.eh_frame_hdr claims ${fdeCount} entries that do not fit it`);
        }
        hdr = r;
      }
    }
    this.#hdr = hdr;
    this.#tableAt = tableAt;
    this.#tableEnc = tableEnc;
    this.#entrySize = entrySize;
    this.#fdeCount = fdeCount;
  }

  /**
   * The file's table, or undefined when it has no `.eh_frame` (e.g. frame-pointer binaries).
   * `.eh_frame` stays in the file; only `.eh_frame_hdr`'s search table is read, and its size is
   * checked against the FDEs it can describe before it is.
   */
  static fromElf(elf: ElfFile, label = "<elf>", trackedRegisters?: number): EhFrame | undefined {
    try {
      const eh = elf.section(".eh_frame");
      if (!eh || eh.size === 0) return undefined;
      const ehFrame = elf.sectionSource(".eh_frame");
      if (!ehFrame) return undefined;
      const hdrSec = elf.section(".eh_frame_hdr");
      // An entry of the table describes one FDE of at least 8 bytes in 8 bytes: a table larger
      // than .eh_frame describes FDEs that cannot exist.
      const hdr = hdrSec && hdrSec.size <= eh.size + 64
        ? elf.sectionBytes(".eh_frame_hdr")
        : undefined;
      return new EhFrame({
        ehFrame,
        ehFrameAddr: eh.addr,
        hdr,
        hdrAddr: hdrSec?.addr,
        textAddr: elf.section(".text")?.addr,
        // i386 convention (DT_PLTGOT); x86-64 compilers never use datarel inside .eh_frame.
        dataAddr: (elf.section(".got.plt") ?? elf.section(".got"))?.addr,
        trackedRegisters,
      }, label);
    } catch (e) {
      if (e instanceof EhFrameError) throw e;
      throw new EhFrameError(`${label}: ${e instanceof Error ? e.message : e}`, { cause: e });
    }
  }

  /** A rough count of the bytes this table keeps in memory (for cache budgets). */
  get retainedBytes(): number {
    return 1024 + (this.#hdr?.bytes.length ?? 0) + (this.#scanStart?.length ?? 0) * 24 +
      this.#fdeCache.size * 200 + this.#cachedRows * 120 + (this.#rowPcs ? ROW_SLOTS * 16 : 0);
  }

  /** Whether lookups binary-search `.eh_frame_hdr` (else a linear scan built the index). */
  get indexed(): boolean {
    return this.#hdr !== undefined;
  }

  /** The FDE whose [pcBegin, pcEnd) holds the link-time address, or undefined. */
  findFde(vaddr: number): Fde | undefined {
    const offset = this.#hdr ? this.#candidateInHdr(vaddr) : this.#candidateInScan(vaddr);
    if (offset === undefined) return undefined;
    const fde = this.#cached(offset).fde;
    return vaddr >= fde.pcBegin && vaddr < fde.pcEnd ? fde : undefined;
  }

  /** The unwind row for a link-time address, or undefined when no FDE covers it. */
  rowAt(vaddr: number): UnwindRow | undefined {
    // The same return addresses come back sample after sample: answer those from memory.
    let pcs = this.#rowPcs;
    if (pcs === undefined) {
      pcs = this.#rowPcs = new Float64Array(ROW_SLOTS).fill(NaN);
      this.#rows = new Array(ROW_SLOTS).fill(undefined);
    }
    const slot = (vaddr ^ (vaddr >>> 10)) & (ROW_SLOTS - 1);
    if (pcs[slot] === vaddr) return this.#rows[slot] ?? undefined;
    const offset = this.#hdr ? this.#candidateInHdr(vaddr) : this.#candidateInScan(vaddr);
    let row: UnwindRow | undefined;
    if (offset !== undefined) {
      const c = this.#cached(offset);
      if (vaddr >= c.fde.pcBegin && vaddr < c.fde.pcEnd) row = rowIn(this.#rowsOf(c), vaddr);
    }
    pcs[slot] = vaddr;
    this.#rows[slot] = row ?? null;
    return row;
  }

  /** Every row of an FDE, in address order, covering [pcBegin, pcEnd) without gaps. */
  rowsOf(fde: Fde): readonly UnwindRow[] {
    const c = this.#cached(fde.offset);
    return this.#rowsOf(c);
  }

  /** All FDEs in section order (a linear scan; for tests and tools). */
  *fdes(): Generator<Fde> {
    let pos = 0;
    while (pos < this.#size) {
      const e = this.#entryAt(pos);
      if (!e) return;
      if (e.isFde) yield this.#parseFde(pos);
      pos = e.next;
    }
  }

  #error(message: string): EhFrameError {
    return new EhFrameError(`${this.#label}: ${message}`);
  }

  /** The parsed FDE at an offset and, once asked for, its rows; least recently used evicted. */
  #cached(offset: number): CachedFde {
    const hit = this.#fdeCache.get(offset);
    if (hit) {
      this.#fdeCache.delete(offset);
      this.#fdeCache.set(offset, hit);
      return hit;
    }
    const c: CachedFde = { fde: this.#parseFde(offset), rows: undefined };
    this.#fdeCache.set(offset, c);
    this.#trimCache();
    return c;
  }

  /** The rows of a cached FDE, computed on first use; the cache stays within its row budget. */
  #rowsOf(c: CachedFde): readonly UnwindRow[] {
    if (c.rows) return c.rows;
    c.rows = this.#execute(c.fde);
    this.#cachedRows += c.rows.length;
    this.#trimCache();
    return c.rows;
  }

  #trimCache(): void {
    while (
      this.#fdeCache.size > 1 &&
      (this.#fdeCache.size > FDE_CACHE_SIZE || this.#cachedRows > MAX_CACHED_ROWS)
    ) {
      const [offset, oldest] = this.#fdeCache.entries().next().value!;
      this.#fdeCache.delete(offset);
      this.#cachedRows -= oldest.rows?.length ?? 0;
    }
  }

  /** The offset of the last FDE in the hdr table starting at or before vaddr. */
  #candidateInHdr(vaddr: number): number | undefined {
    const r = this.#hdr!;
    const size = this.#entrySize;
    const tableAt = this.#tableAt;
    let lo = 0;
    let hi = this.#fdeCount;
    let fdeAddr: number;
    if (this.#tableEnc === PE_DATAREL_SDATA4) {
      // What every GNU and LLVM linker writes: read it directly, this runs once per frame.
      const dv = r.dv;
      const base = r.addr;
      while (lo < hi) {
        this.work++;
        const mid = (lo + hi) >>> 1;
        if (base + dv.getInt32(tableAt + mid * 8, true) <= vaddr) lo = mid + 1;
        else hi = mid;
      }
      if (lo === 0) return undefined;
      fdeAddr = base + dv.getInt32(tableAt + (lo - 1) * 8 + 4, true);
    } else {
      const bases = { data: r.addr, text: this.#bases.text };
      const at = (i: number, field: number) => {
        r.pos = tableAt + (2 * i + field) * size;
        return r.encoded(this.#tableEnc, bases);
      };
      while (lo < hi) {
        this.work++;
        const mid = (lo + hi) >>> 1;
        if (at(mid, 0) <= vaddr) lo = mid + 1;
        else hi = mid;
      }
      if (lo === 0) return undefined;
      fdeAddr = at(lo - 1, 1);
    }
    const offset = fdeAddr - this.#addr;
    if (!(offset >= 0 && offset < this.#size)) {
      throw this.#error(`.eh_frame_hdr points at 0x${fdeAddr.toString(16)}, outside .eh_frame`);
    }
    return offset;
  }

  #candidateInScan(vaddr: number): number | undefined {
    if (!this.#scanStart) this.#buildScan();
    const starts = this.#scanStart!;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid] <= vaddr) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0 || !(vaddr < this.#scanEnd![lo - 1])) return undefined;
    return this.#scanOffset![lo - 1];
  }

  #buildScan(): void {
    const found: { start: number; end: number; offset: number }[] = [];
    // A corrupt entry costs only itself, or (when its length is unusable) what follows it; the
    // FDEs before it stay usable. The scan runs once either way: redoing it per lookup would
    // turn one bad file into a CPU sink.
    let pos = 0;
    const limit = Math.min(this.#size, MAX_SCANNED);
    this.#window = { at: 0, bytes: new Uint8Array(0) };
    try {
      while (pos < limit) {
        let e;
        try {
          e = this.#entryAt(pos);
        } catch (err) {
          if (err instanceof EhFrameError) break;
          throw err;
        }
        if (!e) break;
        if (e.isFde) {
          try {
            const fde = this.#parseFde(pos);
            // Empty FDEs are what linkers leave of discarded functions; they cover nothing.
            if (fde.pcEnd > fde.pcBegin) {
              found.push({ start: fde.pcBegin, end: fde.pcEnd, offset: fde.offset });
            }
          } catch (err) {
            if (!(err instanceof EhFrameError)) throw err;
          }
        }
        pos = e.next;
      }
    } finally {
      this.#window = undefined;
    }
    found.sort((a, b) => a.start - b.start || a.offset - b.offset);
    this.#scanStart = Float64Array.from(found, (f) => f.start);
    this.#scanEnd = Float64Array.from(found, (f) => f.end);
    this.#scanOffset = Float64Array.from(found, (f) => f.offset);
  }

  /**
   * `length` bytes of .eh_frame at `pos`: from the scan's window while the linear scan runs
   * (read a megabyte at a time), else read exactly.
   */
  #bytesAt(pos: number, length: number): Uint8Array {
    if (!(pos >= 0 && length >= 0 && pos + length <= this.#size)) {
      throw this.#error(`read of ${length} bytes at 0x${pos.toString(16)} outside .eh_frame`);
    }
    this.work += length;
    const w = this.#window;
    if (!w) {
      try {
        return this.#src.read(pos, length);
      } catch (e) {
        throw this.#error(e instanceof Error ? e.message : String(e));
      }
    }
    if (!(pos >= w.at && pos + length <= w.at + w.bytes.length)) {
      const n = Math.min(this.#size - pos, Math.max(length, SCAN_WINDOW));
      try {
        w.bytes = this.#src.read(pos, n);
      } catch (e) {
        throw this.#error(e instanceof Error ? e.message : String(e));
      }
      w.at = pos;
    }
    return w.bytes.subarray(pos - w.at, pos - w.at + length);
  }

  /** Length and kind of the entry at `pos`; undefined at the zero terminator. */
  #entryAt(
    pos: number,
  ): { isFde: boolean; idPos: number; id: number; body: number; next: number } | undefined {
    // Enough for the widest header: 0xffffffff, a 64-bit length and a 64-bit id.
    const head = this.#bytesAt(pos, Math.min(20, this.#size - pos));
    const r = new Reader(head, this.#addr + pos, 0, head.length);
    let length = r.u32();
    if (length === 0) return undefined;
    let wide = false;
    if (length === 0xffffffff) {
      length = r.u64();
      wide = true;
    }
    const idPos = pos + r.pos;
    if (!(length <= this.#size - idPos)) {
      throw this.#error(`entry at 0x${pos.toString(16)} of ${length} bytes overruns .eh_frame`);
    }
    if (length > MAX_ENTRY) {
      throw this.#error(`entry at 0x${pos.toString(16)} of ${length} bytes exceeds ${MAX_ENTRY}`);
    }
    const next = idPos + length;
    const id = wide ? r.u64() : r.u32();
    return { isFde: id !== 0, idPos, id, body: pos + r.pos, next };
  }

  /** A reader over the whole entry [pos, next), positioned at `from`. */
  #entryReader(pos: number, from: number, next: number): Reader {
    // A copy: CIEs and FDEs outlive the scan's window, and keep only their own bytes.
    const bytes = this.#bytesAt(pos, next - pos).slice();
    return new Reader(bytes, this.#addr + pos, from - pos, next - pos);
  }

  #parseCie(offset: number): Cie {
    const cached = this.#cies.get(offset);
    if (cached instanceof EhFrameError) throw cached;
    if (cached) return cached;
    try {
      const cie = this.#readCie(offset);
      this.#remember(offset, cie);
      return cie;
    } catch (e) {
      // Thousands of FDEs can share one broken CIE; building an error (and its stack) per FDE
      // would make a corrupt file expensive.
      if (e instanceof EhFrameError) this.#remember(offset, e);
      throw e;
    }
  }

  #remember(offset: number, cie: Cie | EhFrameError): void {
    if (this.#cies.size >= MAX_CIE_CACHE) this.#cies.clear();
    this.#cies.set(offset, cie);
  }

  #readCie(offset: number): Cie {
    const e = this.#entryAt(offset);
    if (!e || e.isFde) throw this.#error(`no CIE at 0x${offset.toString(16)}`);
    const r = this.#entryReader(offset, e.body, e.next);
    const version = r.u8();
    if (version !== 1 && version !== 3 && version !== 4) {
      throw this.#error(`CIE at 0x${offset.toString(16)}: version ${version}`);
    }
    const augmentation = r.cstring();
    if (augmentation.includes("eh")) r.u64(); // pre-GCC-3 exception table pointer
    if (version === 4) r.need(2, "address and segment sizes");
    const codeAlign = r.uleb();
    const dataAlign = r.sleb();
    const raRegister = version === 1 ? r.u8() : r.uleb();
    let fdeEncoding = PE_ABSPTR;
    let signalFrame = false;
    if (augmentation.startsWith("z")) {
      const augLen = r.uleb();
      const augEnd = r.pos + augLen;
      r.need(augLen, "augmentation data");
      const a = new Reader(r.bytes, r.addr, augEnd - augLen, augEnd);
      for (const c of augmentation.slice(1)) {
        if (c === "L") a.u8(); // LSDA encoding: the FDE's augmentation data is skipped whole
        else if (c === "P") a.skipEncoded(a.u8());
        else if (c === "R") fdeEncoding = a.u8();
        else if (c === "S") signalFrame = true;
        else if (c === "B" || c === "G") continue; // AArch64 BTI / MTE markers, no data
        else break; // unknown: the length still lets us skip its data
      }
    } else if (augmentation !== "" && augmentation !== "eh") {
      // Without "z" an unknown augmentation has data of unknown size: nothing after it is safe.
      throw this.#error(`CIE at 0x${offset.toString(16)}: augmentation "${augmentation}"`);
    }
    const cie: Cie = {
      offset,
      version,
      augmentation,
      codeAlign,
      dataAlign,
      raRegister,
      fdeEncoding,
      signalFrame,
      instructions: r.bytes.subarray(r.pos, r.end),
      instructionsAddr: r.addr + r.pos,
    };
    return cie;
  }

  #parseFde(offset: number): Fde {
    const e = this.#entryAt(offset);
    if (!e || !e.isFde) throw this.#error(`no FDE at 0x${offset.toString(16)}`);
    const ciePos = e.idPos - e.id;
    if (!(ciePos >= 0)) throw this.#error(`FDE at 0x${offset.toString(16)}: bad CIE pointer`);
    const cie = this.#parseCie(ciePos);
    const r = this.#entryReader(offset, e.body, e.next);
    const pcBegin = r.encoded(cie.fdeEncoding, this.#bases);
    const pcRange = r.raw(cie.fdeEncoding & 0x0f);
    if (cie.augmentation.startsWith("z")) r.need(r.uleb(), "FDE augmentation data");
    return {
      offset,
      cie,
      pcBegin,
      pcEnd: pcBegin + pcRange,
      instructions: r.bytes.subarray(r.pos, r.end),
      instructionsAddr: r.addr + r.pos,
    };
  }

  #cieState(cie: Cie): CieState {
    let s = this.#cieStates.get(cie);
    if (!s) {
      const st: State = {
        cfa: { kind: "register", register: 0, offset: 0 },
        rules: new Map(),
        shared: false,
      };
      this.#run(cie, cie.instructions, cie.instructionsAddr, st, undefined, 0, 0, undefined);
      s = { cfa: st.cfa, rules: st.rules };
      if (this.#cieStates.size >= MAX_CIE_CACHE) this.#cieStates.clear();
      this.#cieStates.set(cie, s);
    }
    return s;
  }

  #execute(fde: Fde): readonly UnwindRow[] {
    if (!(fde.pcEnd > fde.pcBegin)) return NO_ROWS;
    const init = this.#cieState(fde.cie);
    const st: State = { cfa: init.cfa, rules: init.rules, shared: true };
    const rows: UnwindRow[] = [];
    this.#run(
      fde.cie,
      fde.instructions,
      fde.instructionsAddr,
      st,
      init,
      fde.pcBegin,
      fde.pcEnd,
      rows,
    );
    return rows;
  }

  /**
   * Executes CFA instructions. With `rows`, each advance past `loc` closes a row; the final row
   * runs to `pcEnd`. Without (CIE initial instructions) advances are ignored.
   */
  #run(
    cie: Cie,
    code: Uint8Array,
    codeAddr: number,
    st: State,
    init: CieState | undefined,
    pcBegin: number,
    pcEnd: number,
    rows: UnwindRow[] | undefined,
  ): void {
    const r = new Reader(code, codeAddr, 0, code.length);
    const caf = cie.codeAlign;
    const daf = cie.dataAlign;
    // `+ 0` turns the -0 of 0 * -8 into 0, so offsets compare and print as binutils does.
    const f = (n: number) => n * daf + 0;
    const saved: { cfa: CfaRule; rules: Map<number, RegisterRule> }[] = [];
    let loc = pcBegin;

    const tracked = this.#tracked;
    const set = (reg: number, rule: RegisterRule | undefined) => {
      if (!(reg >= 0 && reg <= MAX_REGISTER)) throw this.#error(`register ${reg} out of range`);
      // A rule for a register no unwinder reads (vector registers, or thousands of made-up
      // ones) would only be copied into every row.
      if (reg >= tracked && reg !== cie.raRegister) return;
      if (st.shared) {
        st.rules = new Map(st.rules);
        st.shared = false;
      }
      if (rule) st.rules.set(reg, rule);
      else st.rules.delete(reg);
    };
    const restore = (reg: number) => {
      // In the CIE's own instructions there is no initial state yet: the register is unsaved.
      set(reg, init?.rules.get(reg));
    };
    const setCfa = (register: number, offset: number) => {
      if (!(register >= 0 && register <= MAX_REGISTER)) {
        throw this.#error(`CFA register ${register} out of range`);
      }
      st.cfa = { kind: "register", register, offset };
    };
    const cfaRegister = () => st.cfa.kind === "register" ? st.cfa.register : 0;
    const cfaOffset = () => st.cfa.kind === "register" ? st.cfa.offset : 0;
    // Returns false once the location passed the end of the FDE: later rules cannot matter.
    const advance = (to: number): boolean => {
      if (!rows) return true;
      if (!(to >= loc)) throw this.#error(`CFA location moves backwards to ${to}`);
      if (to === loc) return true;
      if (rows.length >= MAX_ROWS) throw this.#error(`FDE has more than ${MAX_ROWS} rows`);
      st.shared = true;
      rows.push(row(loc, Math.min(to, pcEnd)));
      loc = to;
      return loc < pcEnd;
    };
    const row = (start: number, end: number): UnwindRow => ({
      start,
      end,
      cfa: st.cfa,
      rules: st.rules,
      raRegister: cie.raRegister,
      signalFrame: cie.signalFrame,
      plan: undefined,
    });

    while (r.pos < r.end) {
      this.work++;
      const op = r.u8();
      const low = op & 0x3f;
      switch (op >> 6) {
        case 1: // DW_CFA_advance_loc
          if (!advance(loc + low * caf)) return;
          continue;
        case 2: // DW_CFA_offset
          set(low, { kind: "offset", offset: f(r.uleb()) });
          continue;
        case 3: // DW_CFA_restore
          restore(low);
          continue;
      }
      switch (op) {
        case 0x00: // DW_CFA_nop
          break;
        case 0x01: // DW_CFA_set_loc
          if (!advance(r.encoded(cie.fdeEncoding, this.#bases))) return;
          break;
        case 0x02: // DW_CFA_advance_loc1
          if (!advance(loc + r.u8() * caf)) return;
          break;
        case 0x03: // DW_CFA_advance_loc2
          if (!advance(loc + r.u16() * caf)) return;
          break;
        case 0x04: // DW_CFA_advance_loc4
          if (!advance(loc + r.u32() * caf)) return;
          break;
        case 0x05: // DW_CFA_offset_extended
          set(r.uleb(), { kind: "offset", offset: f(r.uleb()) });
          break;
        case 0x06: // DW_CFA_restore_extended
          restore(r.uleb());
          break;
        case 0x07: // DW_CFA_undefined
          set(r.uleb(), UNDEFINED_RULE);
          break;
        case 0x08: // DW_CFA_same_value
          set(r.uleb(), SAME_RULE);
          break;
        case 0x09: { // DW_CFA_register
          const reg = r.uleb();
          const from = r.uleb();
          if (from > MAX_REGISTER) throw this.#error(`register ${from} out of range`);
          set(reg, { kind: "register", register: from });
          break;
        }
        case 0x0a: // DW_CFA_remember_state
          if (saved.length >= MAX_STATE_STACK) {
            throw this.#error(`remember_state nested deeper than ${MAX_STATE_STACK}`);
          }
          st.shared = true;
          saved.push({ cfa: st.cfa, rules: st.rules });
          break;
        case 0x0b: { // DW_CFA_restore_state (the CFA is restored too, as GCC and binutils do)
          const s = saved.pop();
          if (!s) throw this.#error("restore_state without remember_state");
          st.cfa = s.cfa;
          st.rules = s.rules;
          st.shared = true;
          break;
        }
        case 0x0c: // DW_CFA_def_cfa
          setCfa(r.uleb(), r.uleb());
          break;
        case 0x0d: // DW_CFA_def_cfa_register
          setCfa(r.uleb(), cfaOffset());
          break;
        case 0x0e: // DW_CFA_def_cfa_offset
          setCfa(cfaRegister(), r.uleb());
          break;
        case 0x0f: // DW_CFA_def_cfa_expression
          st.cfa = { kind: "expression", expr: r.block() };
          break;
        case 0x10: { // DW_CFA_expression
          const reg = r.uleb();
          set(reg, { kind: "expression", expr: r.block() });
          break;
        }
        case 0x11: // DW_CFA_offset_extended_sf
          set(r.uleb(), { kind: "offset", offset: f(r.sleb()) });
          break;
        case 0x12: // DW_CFA_def_cfa_sf
          setCfa(r.uleb(), f(r.sleb()));
          break;
        case 0x13: // DW_CFA_def_cfa_offset_sf
          setCfa(cfaRegister(), f(r.sleb()));
          break;
        case 0x14: // DW_CFA_val_offset
          set(r.uleb(), { kind: "val_offset", offset: f(r.uleb()) });
          break;
        case 0x15: // DW_CFA_val_offset_sf
          set(r.uleb(), { kind: "val_offset", offset: f(r.sleb()) });
          break;
        case 0x16: { // DW_CFA_val_expression
          const reg = r.uleb();
          set(reg, { kind: "val_expression", expr: r.block() });
          break;
        }
        case 0x1d: // DW_CFA_MIPS_advance_loc8
          if (!advance(loc + r.u64() * caf)) return;
          break;
        case 0x2e: // DW_CFA_GNU_args_size: only matters to exception landing pads
          r.uleb();
          break;
        case 0x2f: // DW_CFA_GNU_negative_offset_extended
          set(r.uleb(), { kind: "offset", offset: f(-r.uleb()) });
          break;
        default:
          // 0x2d is DW_CFA_GNU_window_save (SPARC) / DW_CFA_AARCH64_negate_ra_state, which
          // changes how the return address is signed: an AArch64 port must handle it here.
          throw this.#error(`unsupported CFA instruction 0x${op.toString(16)}`);
      }
    }
    if (rows && loc < pcEnd) {
      st.shared = true;
      rows.push(row(loc, pcEnd));
    }
  }
}

/** The row of `rows` (sorted, contiguous) that holds vaddr. */
export function rowIn(rows: readonly UnwindRow[], vaddr: number): UnwindRow | undefined {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (rows[mid].start <= vaddr) lo = mid + 1;
    else hi = mid;
  }
  const row = lo > 0 ? rows[lo - 1] : undefined;
  return row && vaddr < row.end ? row : undefined;
}

/** Size of a fixed-size pointer format, 0 for variable-size or unknown ones. */
function fixedSize(enc: number): number {
  if (enc === PE_OMIT || (enc & PE_INDIRECT) !== 0) return 0;
  switch (enc & 0x0f) {
    case PE_UDATA2:
    case PE_SDATA2:
      return 2;
    case PE_UDATA4:
    case PE_SDATA4:
      return 4;
    case PE_ABSPTR:
    case PE_UDATA8:
    case PE_SDATA8:
      return (enc & 0x70) === PE_ALIGNED ? 0 : 8;
    default:
      return 0;
  }
}
