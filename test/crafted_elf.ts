/**
 * Builds the ELF files a hostile user would map: valid enough to be mapped, executed, sampled
 * and opened by the symbolizer, with one part of our choosing made pathological (a lying symbol
 * table, a sparse string table, an FDE that is a memory bomb, names that are demangling bombs).
 *
 * Layout: one PT_LOAD (R+X) maps the file at vaddr = file offset; code at 0x1000; .eh_frame and
 * .eh_frame_hdr at 0x2000; then .symtab, .strtab, .shstrtab and the section headers. The code is
 * x86-64 and position-independent, so the attacker can map the file anywhere and call into it.
 */

export const CODE_AT = 0x1000;
const EH_AT = 0x2000;

/** x86-64 machine code: `spin(n)` counts n down; `rec(depth, n)` recurses depth times, then spins. */
export const CODE = {
  /** rdi = iterations. */
  spin: 0,
  /** rdi = depth, rsi = iterations at the bottom. */
  rec: 16,
  bytes: new Uint8Array([
    // spin (0x00): dec rdi; jnz spin; ret
    0x48,
    0xff,
    0xcf,
    0x75,
    0xfb,
    0xc3,
    0x90,
    0x90,
    0x90,
    0x90,
    0x90,
    0x90,
    0x90,
    0x90,
    0x90,
    0x90,
    // rec (0x10): test rdi,rdi; jz .bottom; dec rdi; call rec; ret
    0x48,
    0x85,
    0xff, // test rdi, rdi
    0x74,
    0x09, // jz +9 (to 0x1e)
    0x48,
    0xff,
    0xcf, // dec rdi
    0xe8,
    0xf3,
    0xff,
    0xff,
    0xff, // call rec (0x10 - 0x1d)
    0xc3, // ret
    // .bottom (0x1e): mov rdi, rsi; jmp spin
    0x48,
    0x89,
    0xf7, // mov rdi, rsi
    0xeb,
    0xdd, // jmp spin (0x00 - 0x23)
  ]),
};

export interface CraftedSymbol {
  /** Offset into the string table. */
  name: number;
  value: number;
  size: number;
}

export interface CraftOptions {
  symbols?: CraftedSymbol[];
  strtab?: Uint8Array;
  /** Overrides of what the .symtab header says. */
  symtabEntsize?: number;
  symtabLink?: number;
  /** What the .strtab header claims its size is (the file is extended, sparsely, to hold it). */
  strtabClaim?: number;
  /** CFA instructions of the one FDE covering the code; undefined: no .eh_frame. */
  fdeInstructions?: Uint8Array;
  /** Bytes of code the FDE claims to cover (default 0x1000, the code page). */
  fdeRange?: number;
  /** What the .eh_frame header claims its size is (extended sparsely like strtabClaim). */
  ehFrameClaim?: number;
}

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n = Math.floor(n / 128);
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

class Bytes {
  data: number[] = [];
  u8(v: number) {
    this.data.push(v & 0xff);
  }
  u16(v: number) {
    this.u8(v);
    this.u8(v >> 8);
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.u8(Number((BigInt(v) >> BigInt(8 * i)) & 0xffn));
  }
  u64(v: number) {
    this.u32(v % 2 ** 32);
    this.u32(Math.floor(v / 2 ** 32));
  }
  bytes(b: ArrayLike<number>) {
    for (let i = 0; i < b.length; i++) this.data.push(b[i]);
  }
}

/**
 * .eh_frame with one CIE (CFA = rsp + 8, return address at CFA - 8: the state at a function's
 * first instruction) and one FDE over the code, plus an .eh_frame_hdr indexing it.
 */
function ehFrame(instructions: Uint8Array, range: number): { eh: Uint8Array; hdr: Uint8Array } {
  const cie = new Bytes();
  const cieBody = [
    0,
    0,
    0,
    0, // CIE id
    1, // version
    0x7a,
    0x52,
    0, // "zR"
    ...uleb(1), // code alignment
    ...sleb(-8), // data alignment
    16, // return address register (rip)
    ...uleb(1), // augmentation data length
    0x1b, // FDE pointers: pcrel sdata4
    0x0c,
    7,
    8, // DW_CFA_def_cfa rsp+8
    0x90,
    1, // DW_CFA_offset rip at CFA-8
    0,
    0, // padding (nops)
  ];
  cie.u32(cieBody.length);
  cie.bytes(cieBody);
  const fdeAt = cie.data.length;
  const fde = new Bytes();
  const body = new Bytes();
  body.u32(fdeAt + 4); // CIE pointer: from this field back to the CIE
  const pcBeginField = EH_AT + fdeAt + 8;
  body.u32((CODE_AT - pcBeginField) >>> 0); // pc_begin, pcrel
  body.u32(range); // pc_range
  body.bytes(uleb(0)); // augmentation data
  body.bytes(instructions);
  fde.u32(body.data.length);
  fde.bytes(body.data);
  const eh = new Uint8Array([...cie.data, ...fde.data, 0, 0, 0, 0]);
  const hdrAt = EH_AT + eh.length;
  const hdr = new Bytes();
  hdr.u8(1);
  hdr.u8(0x1b); // eh_frame_ptr: pcrel sdata4
  hdr.u8(0x03); // fde_count: udata4
  hdr.u8(0x3b); // table: datarel sdata4
  hdr.u32((EH_AT - (hdrAt + 4)) >>> 0);
  hdr.u32(1);
  hdr.u32(CODE_AT - hdrAt);
  hdr.u32(EH_AT + fdeAt - hdrAt);
  return { eh, hdr: new Uint8Array(hdr.data) };
}

/** The file's bytes, and the size to extend it to (sparsely) when a header claims more. */
export function craftElf(opts: CraftOptions = {}): { bytes: Uint8Array; size: number } {
  const symbols = opts.symbols ?? [{ name: 1, value: CODE_AT, size: CODE.bytes.length }];
  const strtab = opts.strtab ?? new TextEncoder().encode("\0hostile_code\0");
  const shstr = new TextEncoder().encode(
    "\0.text\0.symtab\0.strtab\0.shstrtab\0.eh_frame\0.eh_frame_hdr\0",
  );
  const names = { text: 1, symtab: 7, strtab: 15, shstrtab: 23, eh: 33, hdr: 43 };
  const eh = opts.fdeInstructions
    ? ehFrame(opts.fdeInstructions, opts.fdeRange ?? 0x1000)
    : undefined;
  const ehEnd = eh ? EH_AT + eh.eh.length + eh.hdr.length : EH_AT;
  const symAt = (ehEnd + 7) & ~7;
  const symSize = (symbols.length + 1) * 24;
  const strAt = symAt + symSize;
  const shstrAt = strAt + strtab.length;
  const shAt = (shstrAt + shstr.length + 7) & ~7;
  const sections = eh ? 7 : 5;
  const fileLen = shAt + sections * 64;
  const out = new Uint8Array(fileLen);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 3, true); // ET_DYN
  dv.setUint16(18, 62, true); // x86-64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 64n, true); // phoff
  dv.setBigUint64(40, BigInt(shAt), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, sections, true);
  dv.setUint16(62, 4, true); // shstrndx
  // PT_LOAD R+X: the whole file at vaddr = offset.
  dv.setUint32(64, 1, true);
  dv.setUint32(68, 5, true);
  dv.setBigUint64(64 + 16, 0n, true);
  dv.setBigUint64(64 + 32, BigInt(fileLen), true);
  dv.setBigUint64(64 + 40, BigInt(fileLen), true);
  dv.setBigUint64(64 + 48, 0x1000n, true);
  out.set(CODE.bytes, CODE_AT);
  if (eh) {
    out.set(eh.eh, EH_AT);
    out.set(eh.hdr, EH_AT + eh.eh.length);
  }
  symbols.forEach((s, i) => {
    const o = symAt + (i + 1) * 24;
    dv.setUint32(o, s.name, true);
    dv.setUint8(o + 4, 0x12); // GLOBAL FUNC
    dv.setUint16(o + 6, 1, true); // .text
    dv.setBigUint64(o + 8, BigInt(s.value), true);
    dv.setBigUint64(o + 16, BigInt(s.size), true);
  });
  out.set(strtab, strAt);
  out.set(shstr, shstrAt);
  let size = fileLen;
  const section = (
    i: number,
    name: number,
    type: number,
    flags: number,
    addr: number,
    offset: number,
    len: number,
    link = 0,
    entsize = 0,
  ) => {
    const o = shAt + i * 64;
    dv.setUint32(o, name, true);
    dv.setUint32(o + 4, type, true);
    dv.setBigUint64(o + 8, BigInt(flags), true);
    dv.setBigUint64(o + 16, BigInt(addr), true);
    dv.setBigUint64(o + 24, BigInt(offset), true);
    dv.setBigUint64(o + 32, BigInt(len), true);
    dv.setUint32(o + 40, link, true);
    dv.setBigUint64(o + 56, BigInt(entsize), true);
    size = Math.max(size, offset + len);
  };
  section(1, names.text, 1, 0x6, CODE_AT, CODE_AT, 0x1000);
  section(2, names.symtab, 2, 0, 0, symAt, symSize, opts.symtabLink ?? 3, opts.symtabEntsize ?? 24);
  section(3, names.strtab, 3, 0, 0, strAt, opts.strtabClaim ?? strtab.length);
  section(4, names.shstrtab, 3, 0, 0, shstrAt, shstr.length);
  if (eh) {
    section(5, names.eh, 1, 0x2, EH_AT, EH_AT, opts.ehFrameClaim ?? eh.eh.length);
    section(6, names.hdr, 1, 0x2, EH_AT + eh.eh.length, EH_AT + eh.eh.length, eh.hdr.length);
  }
  return { bytes: out, size };
}

/** Writes a crafted file, extended with a hole to `size` (a sparse file: a few KB on disk). */
export function writeCrafted(path: string, elf: { bytes: Uint8Array; size: number }): void {
  Deno.writeFileSync(path, elf.bytes);
  if (elf.size > elf.bytes.length) Deno.truncateSync(path, elf.size);
}

/**
 * CFA instructions that give `registers` registers a rule, then alternate a one-byte advance with
 * a new rule: a reader that copies every register's rule into every row needs rows × registers.
 */
export function registerBomb(rows: number, registers = 1500): Uint8Array {
  const out: number[] = [];
  for (let reg = 17; reg < 17 + registers; reg++) out.push(0x05, ...uleb(reg), ...uleb(1));
  for (let i = 0; i < rows; i++) out.push(0x41, 0x05, ...uleb(17 + (i % registers)), ...uleb(2));
  return new Uint8Array(out);
}

/**
 * CFA instructions whose CFA and 16 registers are `ops`-operation DWARF expressions (nops, then
 * the real value): correct, and ruinous to evaluate frame after frame.
 */
export function expressionBomb(ops = 800): Uint8Array {
  const nops = new Array(ops - 2).fill(0x96);
  // DW_CFA_def_cfa_expression: nops…, DW_OP_breg7 (rsp) +8
  const cfa = [...nops, 0x77, 8];
  const out: number[] = [0x0f, ...uleb(cfa.length), ...cfa];
  // Return address at CFA - 8, kept as an offset rule so the walk goes on.
  out.push(0x90, 1);
  for (let reg = 0; reg < 16; reg++) {
    if (reg === 7) continue;
    // DW_CFA_val_expression reg: nops…, DW_OP_lit0
    const e = [...nops, 0x96, 0x30];
    out.push(0x16, ...uleb(reg), ...uleb(e.length), ...e);
  }
  return new Uint8Array(out);
}

/**
 * A C++ name of 418 bytes whose back-references double 40 times: printed, 2^40 times the name
 * of its first template.
 */
export function demanglingBomb(levels = 40): string {
  let m = "_Z1f1aIiiE";
  for (let k = 0; k < levels; k++) {
    const prev = `S${k === 0 ? "0" : k.toString(36).toUpperCase()}_`;
    m += `S_I${prev}${prev}E`;
  }
  return m;
}

/** The unprivileged user the attacks run as. */
export const NOBODY = 65534;

/**
 * Writes a crafted file in `dir` as the attacker would own it: extended with a hole to what its
 * headers claim (a sparse file), or not (`claimBeyondFile`: its tables then point past its end).
 */
export function plant(
  dir: string,
  name: string,
  opts: CraftOptions = {},
  claimBeyondFile = false,
): string {
  const path = `${dir}/${name}`;
  const elf = craftElf(opts);
  if (claimBeyondFile) Deno.writeFileSync(path, elf.bytes);
  else writeCrafted(path, elf);
  Deno.chmodSync(path, 0o755);
  Deno.chownSync(path, NOBODY, NOBODY);
  return path;
}
