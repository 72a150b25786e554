import assert from "node:assert/strict";
import { ElfError, ElfFile, INDEX_NAME_READ_BUDGET, MAX_NAME, PF_X } from "./elf_file.ts";

// Any user can put a file in a traced process's address space, so ElfFile must turn every
// corruption into ElfError (or a plain answer) within bounded work. Mutations are deterministic
// (seeded) and aimed at what the reader trusts: header fields, table counts, offsets and sizes.
// Work is what the reader counts itself (bytes read, comparisons), never time, so that a loaded
// machine cannot fail these tests.
const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";
const PROG = `
#include <stdio.h>
static int __attribute__((noinline)) helper(int x) { return x * 3 + 1; }
int __attribute__((noinline)) work(int n) { int s = 0; for (int i = 0; i < n; i++) s += helper(i); return s; }
int main(int argc, char **argv) { (void)argv; printf("%d\\n", work(argc)); return 0; }
`;

/** mulberry32: small, fast, and the same sequence on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Field {
  name: string;
  at: number;
  width: 1 | 2 | 4 | 8;
}

interface Layout {
  fields: Field[];
  /** Offsets where a truncation cuts exactly at a header, table or section edge. */
  boundaries: number[];
}

/** Locates the fields to corrupt with a parser of its own, independent of the one under test. */
function layoutOf(bytes: Uint8Array): Layout {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fields: Field[] = [];
  const boundaries = new Set<number>();
  const ehdr: [string, number, 1 | 2 | 4 | 8][] = [
    ["e_ident_class", 4, 1],
    ["e_ident_data", 5, 1],
    ["e_type", 16, 2],
    ["e_machine", 18, 2],
    ["e_phoff", 32, 8],
    ["e_shoff", 40, 8],
    ["e_ehsize", 52, 2],
    ["e_phentsize", 54, 2],
    ["e_phnum", 56, 2],
    ["e_shentsize", 58, 2],
    ["e_shnum", 60, 2],
    ["e_shstrndx", 62, 2],
  ];
  for (const [name, at, width] of ehdr) {
    fields.push({ name, at, width });
    boundaries.add(at);
    boundaries.add(at + width);
  }
  const phoff = Number(dv.getBigUint64(32, true));
  const phnum = dv.getUint16(56, true);
  const shoff = Number(dv.getBigUint64(40, true));
  const shnum = dv.getUint16(60, true);
  const phdr: [string, number, 4 | 8][] = [
    ["p_type", 0, 4],
    ["p_flags", 4, 4],
    ["p_offset", 8, 8],
    ["p_vaddr", 16, 8],
    ["p_filesz", 32, 8],
    ["p_memsz", 40, 8],
    ["p_align", 48, 8],
  ];
  for (let i = 0; i < phnum; i++) {
    const base = phoff + i * 56;
    boundaries.add(base);
    boundaries.add(base + 56);
    for (const [name, off, width] of phdr) {
      fields.push({ name: `ph[${i}].${name}`, at: base + off, width });
    }
    if (dv.getUint32(base, true) === 4) {
      const noteAt = Number(dv.getBigUint64(base + 8, true));
      boundaries.add(noteAt);
      boundaries.add(noteAt + 12);
      fields.push({ name: `note@ph[${i}].namesz`, at: noteAt, width: 4 });
      fields.push({ name: `note@ph[${i}].descsz`, at: noteAt + 4, width: 4 });
    }
  }
  const shdr: [string, number, 4 | 8][] = [
    ["sh_name", 0, 4],
    ["sh_type", 4, 4],
    ["sh_flags", 8, 8],
    ["sh_addr", 16, 8],
    ["sh_offset", 24, 8],
    ["sh_size", 32, 8],
    ["sh_link", 40, 4],
    ["sh_info", 44, 4],
    ["sh_entsize", 56, 8],
  ];
  for (let i = 0; i < shnum; i++) {
    const base = shoff + i * 64;
    boundaries.add(base);
    boundaries.add(base + 64);
    for (const [name, off, width] of shdr) {
      fields.push({ name: `sh[${i}].${name}`, at: base + off, width });
    }
    const type = dv.getUint32(base + 4, true);
    const offset = Number(dv.getBigUint64(base + 24, true));
    const size = Number(dv.getBigUint64(base + 32, true));
    if (type !== 8) {
      boundaries.add(offset);
      boundaries.add(offset + size);
    }
    if (type === 2 || type === 11) {
      // Symbol entries: every one of a small table, an even spread of a large one.
      const count = Math.floor(size / 24);
      const step = Math.max(1, Math.floor(count / 120));
      for (let k = 0; k < count; k += step) {
        const at = offset + k * 24;
        const sym = `sh[${i}].sym[${k}]`;
        fields.push({ name: `${sym}.st_name`, at, width: 4 });
        fields.push({ name: `${sym}.st_info`, at: at + 4, width: 1 });
        fields.push({ name: `${sym}.st_shndx`, at: at + 6, width: 2 });
        fields.push({ name: `${sym}.st_value`, at: at + 8, width: 8 });
        fields.push({ name: `${sym}.st_size`, at: at + 16, width: 8 });
      }
    }
  }
  const inFile = [...boundaries].filter((b) => b >= 0 && b < bytes.length);
  return { fields: fields.filter((f) => f.at + f.width <= bytes.length), boundaries: inFile };
}

function extremes(fileSize: number): bigint[] {
  return [
    0n,
    1n,
    0x7fn,
    0xffn,
    0x7fffn,
    0xffffn,
    0x8000n,
    0x7fffffffn,
    0x80000000n,
    0xffffffffn,
    BigInt(Number.MAX_SAFE_INTEGER),
    0x7fffffffffffffffn,
    0xffffffffffffffffn,
    BigInt(fileSize),
    BigInt(fileSize - 1),
    BigInt(fileSize + 1),
  ];
}

function write(bytes: Uint8Array, f: Field, value: bigint): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (f.width === 8) dv.setBigUint64(f.at, BigInt.asUintN(64, value), true);
  else if (f.width === 4) dv.setUint32(f.at, Number(BigInt.asUintN(32, value)), true);
  else if (f.width === 2) dv.setUint16(f.at, Number(BigInt.asUintN(16, value)), true);
  else dv.setUint8(f.at, Number(BigInt.asUintN(8, value)));
}

interface Tally {
  cases: number;
  ok: number;
  elfErrors: number;
  most: number;
  mostCase: string;
}

/**
 * What one file may cost, whatever its headers claim: its own bytes a few times over (headers,
 * symbol table, section names), the name-reading budget of its index, and each probe's name.
 */
function workBound(fileSize: number, probes: number): number {
  return 4 * fileSize + INDEX_NAME_READ_BUDGET + probes * 2 * MAX_NAME;
}

/** Exercises everything a symbolizer calls; anything but success or ElfError fails the test. */
function exercise(bytes: Uint8Array, probes: number[], desc: string, tally: Tally): void {
  const attempt = (): { work: number; parsed: boolean } => {
    let parsed = false;
    let elf: ElfFile | undefined;
    try {
      elf = ElfFile.fromBytes(bytes, desc);
      void elf.buildId;
      void elf.debugLink;
      void elf.segments.length;
      void elf.sections.length;
      for (const a of probes) elf.symbolize(a)?.name.length;
      for (const a of probes.slice(0, 10)) {
        elf.fileOffsetToVaddr(a);
        elf.vaddrToFileOffset(a);
        elf.isExecutable(a);
      }
      elf.sectionBytes(".eh_frame");
      elf.close();
      parsed = true;
    } catch (e) {
      if (!(e instanceof ElfError)) {
        assert.fail(`${desc}: ${e instanceof Error ? e.stack : e}`);
      }
      assert.ok(e.message.startsWith(desc), `${desc}: ElfError does not name the file: ${e}`);
    }
    return { work: elf?.work ?? 0, parsed };
  };
  const { work, parsed } = attempt();
  const bound = workBound(bytes.length, probes.length);
  assert.ok(work <= bound, `${desc}: work ${work} over the bound ${bound}`);
  tally.cases++;
  if (parsed) tally.ok++;
  else tally.elfErrors++;
  if (work > tally.most) {
    tally.most = work;
    tally.mostCase = desc;
  }
}

interface Plan {
  label: string;
  bytes: Uint8Array;
  seed: number;
  /** Share of field × extreme combinations to run (all for a small file). */
  fieldShare: number;
  randomTruncations: number;
  byteFlips: number;
  combos: number;
}

function fuzz(plan: Plan, tally: Tally): void {
  const { label, bytes } = plan;
  const rand = prng(plan.seed);
  const { fields, boundaries } = layoutOf(bytes);
  const orig = ElfFile.fromBytes(bytes);
  const probes: number[] = [];
  const exec = orig.segments.filter((s) => (s.flags & PF_X) !== 0);
  for (let i = 0; i < 100; i++) {
    const seg = exec[i % exec.length];
    probes.push(seg.vaddr + Math.floor(rand() * seg.memsz));
  }
  // The unmutated file must work, and with symbols, or the mutations prove little.
  assert.ok(probes.some((a) => orig.symbolize(a) !== undefined), `${label}: no symbols to fuzz`);

  for (const cut of boundaries) {
    exercise(bytes.subarray(0, cut), probes, `${label}: cut@${cut}`, tally);
  }
  for (let i = 0; i < plan.randomTruncations; i++) {
    const cut = Math.floor(rand() * bytes.length);
    exercise(bytes.subarray(0, cut), probes, `${label}: cut@${cut}`, tally);
  }

  // Mutated in place and restored, so a 2 MB file is not copied thousands of times.
  const values = extremes(bytes.length);
  for (const f of fields) {
    for (const v of values) {
      if (rand() >= plan.fieldShare) continue;
      const saved = bytes.slice(f.at, f.at + f.width);
      write(bytes, f, v);
      exercise(bytes, probes, `${label}: ${f.name}=0x${v.toString(16)}`, tally);
      bytes.set(saved, f.at);
    }
  }

  // Random bytes, mostly in the first pages and the section headers where the structure is.
  const hot = [0, 4096, Math.max(0, bytes.length - 4096)];
  for (let i = 0; i < plan.byteFlips; i++) {
    const k = 1 + Math.floor(rand() * 8);
    const saved: [number, number][] = [];
    for (let j = 0; j < k; j++) {
      const at = rand() < 0.7
        ? Math.min(bytes.length - 1, hot[Math.floor(rand() * 3)] + Math.floor(rand() * 4096))
        : Math.floor(rand() * bytes.length);
      saved.push([at, bytes[at]]);
      bytes[at] = Math.floor(rand() * 256);
    }
    exercise(bytes, probes, `${label}: flips ${saved.map(([a]) => a).join(",")}`, tally);
    for (const [at, b] of saved.reverse()) bytes[at] = b;
  }

  // Several fields at once: a consistent-looking lie (count and offset together) gets further.
  for (let i = 0; i < plan.combos; i++) {
    const k = 2 + Math.floor(rand() * 4);
    const saved: [number, Uint8Array][] = [];
    const names: string[] = [];
    for (let j = 0; j < k; j++) {
      const f = fields[Math.floor(rand() * fields.length)];
      const v = values[Math.floor(rand() * values.length)];
      saved.push([f.at, bytes.slice(f.at, f.at + f.width)]);
      write(bytes, f, v);
      names.push(`${f.name}=0x${v.toString(16)}`);
    }
    exercise(bytes, probes, `${label}: ${names.join(" ")}`, tally);
    for (const [at, b] of saved.reverse()) bytes.set(b, at);
  }
}

function compileProgram(): Uint8Array {
  const dir = Deno.makeTempDirSync({ prefix: "elf_fuzz_" });
  Deno.writeTextFileSync(`${dir}/p.c`, PROG);
  const out = new Deno.Command("gcc", {
    args: ["-O2", "-Wl,--build-id", "-o", `${dir}/p`, `${dir}/p.c`],
    stderr: "piped",
  }).outputSync();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const bytes = Deno.readFileSync(`${dir}/p`);
  Deno.removeSync(dir, { recursive: true });
  return bytes;
}

Deno.test("mutated ELF files parse or throw ElfError, each within bounded work", () => {
  const tally: Tally = { cases: 0, ok: 0, elfErrors: 0, most: 0, mostCase: "" };
  const prog = compileProgram();
  const libc = Deno.readFileSync(LIBC);
  const libcCopy = libc.slice();

  fuzz({
    label: "prog",
    bytes: prog,
    seed: 1,
    fieldShare: 1,
    randomTruncations: 300,
    byteFlips: 3000,
    combos: 2000,
  }, tally);
  fuzz({
    label: "libc",
    bytes: libc,
    seed: 2,
    fieldShare: 0.12,
    randomTruncations: 200,
    byteFlips: 800,
    combos: 600,
  }, tally);
  assert.deepEqual(libc, libcCopy, "mutations were restored");

  console.log(
    `${tally.cases} cases: ${tally.ok} parsed, ${tally.elfErrors} ElfError; ` +
      `most work ${tally.most} (${tally.mostCase})`,
  );
  assert.ok(tally.cases > 5000, `${tally.cases} cases`);
  assert.ok(tally.elfErrors > 100 && tally.ok > 100, "mutations both broke and spared files");
});

interface CraftedSymbol {
  name: number;
  value: number;
  size: number;
  info?: number;
}

/**
 * A minimal ELF64 shared object: one executable PT_LOAD, a .text section, and a .symtab whose
 * string table is given, so tests can build pathological tables no compiler would emit.
 */
function craft(symbols: CraftedSymbol[], strtab: Uint8Array): Uint8Array {
  const shstr = new TextEncoder().encode("\0.text\0.symtab\0.strtab\0.shstrtab\0");
  const symAt = 0x200;
  const strAt = symAt + (symbols.length + 1) * 24;
  const shstrAt = strAt + strtab.length;
  const shAt = (shstrAt + shstr.length + 7) & ~7;
  const bytes = new Uint8Array(shAt + 5 * 64);
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 3, true);
  dv.setUint16(18, 62, true);
  dv.setBigUint64(32, 64n, true);
  dv.setBigUint64(40, BigInt(shAt), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, 5, true);
  dv.setUint16(62, 4, true);
  dv.setUint32(64, 1, true);
  dv.setUint32(68, 5, true);
  dv.setBigUint64(64 + 16, 0x1000n, true);
  dv.setBigUint64(64 + 32, 0x100000n, true);
  dv.setBigUint64(64 + 40, 0x100000n, true);
  symbols.forEach((s, i) => {
    const o = symAt + (i + 1) * 24;
    dv.setUint32(o, s.name, true);
    dv.setUint8(o + 4, s.info ?? 0x12);
    dv.setUint16(o + 6, 1, true);
    dv.setBigUint64(o + 8, BigInt(s.value), true);
    dv.setBigUint64(o + 16, BigInt(s.size), true);
  });
  bytes.set(strtab, strAt);
  bytes.set(shstr, shstrAt);
  const section =
    (i: number, name: number, type: number, flags: number, addr: number) =>
    (offset: number, size: number, link = 0, entsize = 0) => {
      const o = shAt + i * 64;
      dv.setUint32(o, name, true);
      dv.setUint32(o + 4, type, true);
      dv.setBigUint64(o + 8, BigInt(flags), true);
      dv.setBigUint64(o + 16, BigInt(addr), true);
      dv.setBigUint64(o + 24, BigInt(offset), true);
      dv.setBigUint64(o + 32, BigInt(size), true);
      dv.setUint32(o + 40, link, true);
      dv.setBigUint64(o + 56, BigInt(entsize), true);
    };
  section(1, 1, 1, 0x6, 0x1000)(0, 0x100000);
  section(2, 7, 2, 0, 0)(symAt, (symbols.length + 1) * 24, 3, 24);
  section(3, 15, 3, 0, 0)(strAt, strtab.length);
  section(4, 23, 3, 0, 0)(shstrAt, shstr.length);
  return bytes;
}

Deno.test("crafted: the minimal file builder yields a readable file", () => {
  const strtab = new TextEncoder().encode("\0one\0two\0");
  const elf = ElfFile.fromBytes(craft([
    { name: 1, value: 0x1000, size: 0x10 },
    { name: 5, value: 0x1010, size: 0 },
  ], strtab));
  assert.deepEqual(elf.symbolize(0x1008), { name: "one", start: 0x1000, size: 0x10 });
  // Unsized: runs to the end of .text (0x1000 + 0x100000).
  assert.deepEqual(elf.symbolize(0x1010), { name: "two", start: 0x1010, size: 0x100000 - 0x10 });
  assert.equal(elf.symbolize(0x101000), undefined);
});

Deno.test("crafted: 80k aliases at one address with unterminated names stay fast", () => {
  const n = 80_000;
  // No NUL anywhere: every name runs to the end of the table, the tie-break must not.
  const strtab = new Uint8Array(n + 300_000).fill(0x61);
  const syms = Array.from({ length: n }, (_, i) => ({ name: i + 1, value: 0x2000, size: 64 }));
  const bytes = craft(syms, strtab);
  const elf = ElfFile.fromBytes(bytes);
  const got = elf.symbolize(0x2010);
  assert.ok(got);
  assert.equal(got.start, 0x2000);
  // All names tie within the 256 bytes the tie-break compares, so the first symbol wins, and its
  // decoded name stops at the 64 KiB cap.
  assert.equal(got.name.length, 65536);
  // Each comparison looks at 256 bytes at most, read through 16 KiB blocks: the file a few times
  // over, not n × the table.
  assert.ok(elf.work < 8 * bytes.length, `work ${elf.work} for a ${bytes.length}-byte file`);
});

Deno.test("crafted: 80k nested symbols resolve to the innermost", () => {
  const n = 80_000;
  const strtab = new TextEncoder().encode("\0f\0");
  const syms = Array.from({ length: n }, (_, i) => ({
    name: 1,
    value: 0x1000 + i,
    size: 2 * (n - i),
  }));
  const bytes = craft(syms, strtab);
  const elf = ElfFile.fromBytes(bytes);
  elf.symbolize(0);
  assert.deepEqual(elf.symbolize(0x1000 + 5), { name: "f", start: 0x1000 + 5, size: 2 * (n - 5) });
  // Past the innermost symbol's end, the one around it resumes: symbol i ends at 0x1000+2n-i.
  assert.equal(elf.symbolize(0x1000 + 2 * n - 1)?.start, 0x1000);
  assert.equal(elf.symbolize(0x1000 + 2 * n), undefined);
});
