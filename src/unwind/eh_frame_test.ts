import assert from "node:assert/strict";
import { ElfFile } from "../symbolize/elf_file.ts";
import { EhFrame, EhFrameError, MAX_ENTRY, type RegisterRule, type UnwindRow } from "./eh_frame.ts";
import { CODE_AT, craftElf, registerBomb } from "../../test/crafted_elf.ts";
import { X86_64 } from "./unwind_arch.ts";

// Every expectation comes from binutils (`readelf --debug-dump=frames-interp`) reading the same
// files, so the answers are independent of the parser under test.

const PROG = `
#include <alloca.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

volatile int sink;

__attribute__((noinline, noclone)) int leaf(int x) { return x * 7 + 3; }

/* Uses every callee-saved register, so the CFI saves them all. */
__attribute__((noinline, noclone)) long many(long a, long b, long c, long d) {
  long r = 0;
  for (long i = 0; i < a; i++) {
    long t1 = leaf(i) + b, t2 = leaf(i + 1) * c, t3 = leaf(i + 2) ^ d;
    long t4 = leaf(t1) + t2, t5 = leaf(t3) - t4, t6 = leaf(t5) + t1;
    r += t1 + t2 + t3 + t4 + t5 + t6;
  }
  return r;
}

/* alloca makes the frame variable-sized: the CFA moves to rbp. */
__attribute__((noinline, noclone)) int dyn(int n) {
  char *p = alloca(n + 16);
  memset(p, n, n + 16);
  sink = p[n / 2];
  return leaf(p[n]);
}

__attribute__((noinline, noclone)) long eight(long a, long b, long c, long d, long e, long f,
                                              long g, long h) {
  return a + b + c + d + e + f + g * h;
}

/* An over-aligned local plus arguments passed on the stack make GCC realign through a DRAP
   register: the CFA and rbp become DWARF expressions. */
__attribute__((noinline, noclone)) int realign(int n) {
  char buf[128] __attribute__((aligned(64)));
  memset(buf, n, sizeof buf);
  sink = buf[n & 127];
  return leaf(buf[3]) + (int)(long)buf % 64 + eight(n, 1, 2, 3, 4, 5, buf[7], n);
}

__attribute__((noinline, noclone)) int vsum(int n, ...) {
  va_list ap;
  va_start(ap, n);
  int s = 0;
  for (int i = 0; i < n; i++) s += va_arg(ap, int);
  va_end(ap);
  return s;
}

__attribute__((noinline, noclone)) int recurse(int n) {
  if (n <= 0) return leaf(n);
  int r = recurse(n - 1) + 1;
  sink = r;
  return r;
}

int main(int argc, char **argv) {
  (void)argv;
  printf("%ld %d %d %d %d\\n", many(argc, 2, 3, 4), dyn(argc * 8), realign(argc),
         vsum(3, 1, 2, argc), recurse(argc + 3));
  return 0;
}
`;

const CXX = `
#include <cstdio>
#include <stdexcept>
__attribute__((noinline)) int thrower(int x) {
  if (x > 1) throw std::runtime_error("big");
  return x + 1;
}
int main(int argc, char **) {
  try {
    std::printf("%d\\n", thrower(argc));
  } catch (const std::exception &e) {
    std::puts(e.what());
  }
  return 0;
}
`;

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  // readelf exits 1 on libc.so.6 after printing everything (it misses the separate debug file).
  if (!out.success && !(cmd === "readelf" && out.stdout.length > 0)) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

interface Built {
  o2: string;
  fp: string;
  noHdr: string;
  cxx: string;
}

let built: Built | undefined;

function build(): Built {
  if (built) return built;
  const dir = Deno.makeTempDirSync({ prefix: "eh_frame_test_" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  Deno.writeTextFileSync(`${dir}/prog.c`, PROG);
  Deno.writeTextFileSync(`${dir}/prog.cc`, CXX);
  const b: Built = {
    o2: `${dir}/prog_o2`,
    fp: `${dir}/prog_fp`,
    noHdr: `${dir}/prog_nohdr`,
    cxx: `${dir}/prog_cxx`,
  };
  run("gcc", ["-O2", "-o", b.o2, `${dir}/prog.c`]);
  run("gcc", ["-O2", "-fno-omit-frame-pointer", "-o", b.fp, `${dir}/prog.c`]);
  run("gcc", ["-O2", "-Wl,--no-eh-frame-hdr", "-o", b.noHdr, `${dir}/prog.c`]);
  run("g++", ["-O2", "-o", b.cxx, `${dir}/prog.cc`]);
  built = b;
  return b;
}

/** One row of readelf's table: the CFA and each printed column, keyed by its header name. */
interface RefRow {
  loc: number;
  cols: Map<string, string>;
}

interface RefFde {
  cie: number;
  pcBegin: number;
  pcEnd: number;
  rows: RefRow[];
}

interface RefFrames {
  augmentations: Set<string>;
  /** CIE offset → augmentation. */
  cies: Map<number, string>;
  fdes: RefFde[];
}

function readelfFrames(path: string): RefFrames {
  const text = run("readelf", ["--debug-dump=frames-interp", path]);
  const cieRows = new Map<number, RefRow[]>();
  const augmentations = new Set<string>();
  const cies = new Map<number, string>();
  const fdes: RefFde[] = [];
  let inEhFrame = false;
  let rows: RefRow[] | undefined;
  let header: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("Contents of the ")) {
      inEhFrame = line.startsWith("Contents of the .eh_frame section");
      rows = undefined;
      continue;
    }
    if (!inEhFrame) continue;
    const entry = /^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ (CIE|FDE) (.*)$/.exec(line);
    if (entry) {
      rows = [];
      if (entry[2] === "CIE") {
        const aug = /"([^"]*)"/.exec(entry[3])![1];
        augmentations.add(aug);
        cies.set(parseInt(entry[1], 16), aug);
        cieRows.set(parseInt(entry[1], 16), rows);
      } else {
        const m = /cie=([0-9a-f]+) pc=([0-9a-f]+)\.\.([0-9a-f]+)/.exec(entry[3])!;
        fdes.push({
          cie: parseInt(m[1], 16),
          pcBegin: parseInt(m[2], 16),
          pcEnd: parseInt(m[3], 16),
          rows,
        });
      }
      continue;
    }
    if (/^\s+LOC\s+CFA/.test(line)) {
      header = line.trim().split(/\s+/);
      continue;
    }
    const row = /^([0-9a-f]{16}) (.*)$/.exec(line);
    if (row && rows) {
      // A register rule prints as "r9 (r9)", with a space inside.
      const values = row[2].match(/r\d+ \([^)]*\)|\S+/g) ?? [];
      const cols = new Map<string, string>();
      for (let i = 0; i < values.length; i++) cols.set(header[i + 1], values[i]);
      rows.push({ loc: parseInt(row[1], 16), cols });
    }
  }
  // An FDE whose instructions are all nops prints no table: its row is the CIE's initial one.
  for (const fde of fdes) {
    if (fde.rows.length === 0) {
      const init = cieRows.get(fde.cie) ?? [];
      for (const r of init.slice(0, 1)) fde.rows.push({ loc: fde.pcBegin, cols: r.cols });
    }
  }
  return { augmentations, cies, fdes };
}

function signed(n: number): string {
  return n >= 0 ? `+${n}` : `${n}`;
}

/** Our rule as readelf prints it. */
function show(rule: RegisterRule | undefined): string {
  if (!rule) return "u";
  switch (rule.kind) {
    case "undefined":
      return "u";
    case "same":
      return "s";
    case "offset":
      return `c${signed(rule.offset)}`;
    case "val_offset":
      return `v${signed(rule.offset)}`;
    case "register":
      return `r${rule.register} (${X86_64.registerNames[rule.register]})`;
    case "expression":
      return "exp";
    case "val_expression":
      return "vexp";
  }
}

function showCfa(row: UnwindRow): string {
  const c = row.cfa;
  return c.kind === "expression" ? "exp" : `${X86_64.registerNames[c.register]}${signed(c.offset)}`;
}

/** Addresses to probe in an FDE: its start, each row's start and the byte after, its last byte. */
function probes(fde: RefFde): number[] {
  const out = new Set<number>([fde.pcBegin, fde.pcEnd - 1]);
  for (const r of fde.rows) {
    if (r.loc < fde.pcEnd) out.add(r.loc);
    if (r.loc + 1 < fde.pcEnd) out.add(r.loc + 1);
  }
  return [...out].sort((a, b) => a - b);
}

/** Checks every probe of every FDE against readelf; returns how many addresses were compared. */
function compareWithReadelf(table: EhFrame, ref: RefFrames): number {
  let compared = 0;
  for (const fde of ref.fdes) {
    if (fde.pcEnd <= fde.pcBegin) continue;
    for (const addr of probes(fde)) {
      let want: RefRow | undefined;
      for (const r of fde.rows) if (r.loc <= addr) want = r;
      if (!want) continue;
      const where = `0x${addr.toString(16)} (FDE 0x${fde.pcBegin.toString(16)})`;
      const found = table.findFde(addr);
      assert.ok(found, `no FDE for ${where}`);
      assert.equal(found.pcBegin, fde.pcBegin, `FDE start for ${where}`);
      assert.equal(found.pcEnd, fde.pcEnd, `FDE end for ${where}`);
      const row = table.rowAt(addr);
      assert.ok(row, `no row for ${where}`);
      assert.equal(showCfa(row), want.cols.get("CFA"), `CFA at ${where}`);
      for (const [name, value] of want.cols) {
        if (name === "CFA") continue;
        const reg = name === "ra" ? row.raRegister : X86_64.registerNames.indexOf(name);
        if (reg < 0) continue;
        const ours = show(row.rules.get(reg));
        // readelf prints "u" both for explicit DW_CFA_undefined and for "not saved yet".
        assert.equal(ours, value, `${name} at ${where}`);
      }
      compared++;
    }
  }
  return compared;
}

function tableOf(path: string): EhFrame {
  // Not closed: the table reads its file on demand (the test process ends soon anyway).
  const elf = ElfFile.open(path);
  const t = EhFrame.fromElf(elf, path);
  assert.ok(t, `${path} has no .eh_frame`);
  return t;
}

Deno.test("libc.so.6: every FDE and row boundary matches readelf, via .eh_frame_hdr", () => {
  const ref = readelfFrames(LIBC);
  assert.ok(ref.fdes.length > 3000, `readelf listed ${ref.fdes.length} FDEs`);
  // libc has the three CIE kinds the brief names: plain C, C++-style personality, signal frames.
  assert.deepEqual([...ref.augmentations].sort(), ["zPLR", "zR", "zRS"]);
  const table = tableOf(LIBC);
  assert.equal(table.indexed, true);
  const n = compareWithReadelf(table, ref);
  assert.ok(n > 20000, `compared only ${n} addresses`);
  assert.equal([...table.fdes()].length, ref.fdes.length);
});

Deno.test("libc.so.6: rows asked for again, after others took their remembered slots, are right", () => {
  const table = tableOf(LIBC);
  const ref = readelfFrames(LIBC);
  // Thousands of addresses for a table that remembers about a thousand: most are evicted by
  // others before they are asked for again, in the opposite order. Each answer must be the row
  // whose range holds the address, whether it came from memory or not.
  const addrs = ref.fdes.filter((f) => f.pcEnd > f.pcBegin).flatMap((f) => probes(f))
    .slice(0, 8000);
  const check = (a: number) => {
    const row = table.rowAt(a);
    assert.ok(row && row.start <= a && a < row.end, `row for 0x${a.toString(16)}`);
    assert.ok(table.rowsOf(table.findFde(a)!).includes(row));
  };
  for (const a of addrs) check(a);
  for (let i = addrs.length - 1; i >= 0; i--) check(addrs[i]);
});

Deno.test("libc.so.6: the linear scan without .eh_frame_hdr gives the same rows", () => {
  using elf = ElfFile.open(LIBC);
  const eh = elf.sections.find((s) => s.name === ".eh_frame")!;
  const scan = new EhFrame({ ehFrame: elf.sectionBytes(".eh_frame")!, ehFrameAddr: eh.addr });
  assert.equal(scan.indexed, false);
  const ref = readelfFrames(LIBC);
  // Every 10th FDE keeps this quick; the hdr test above covers all of them.
  const n = compareWithReadelf(scan, { ...ref, fdes: ref.fdes.filter((_, i) => i % 10 === 0) });
  assert.ok(n > 2000, `compared only ${n} addresses`);
});

Deno.test("gcc -O2 test program matches readelf, including realigned-stack expressions", () => {
  const b = build();
  const ref = readelfFrames(b.o2);
  const table = tableOf(b.o2);
  assert.equal(table.indexed, true);
  const n = compareWithReadelf(table, ref);
  assert.ok(n > 40, `compared only ${n} addresses`);
  // The realign() prologue is the expression case: CFA = *(rbp - 8), rbp saved at *(rbp + 0).
  using elf = ElfFile.open(b.o2);
  const sym = [...ref.fdes].find((f) => elf.symbolize(f.pcBegin)?.name === "realign");
  assert.ok(sym, "no FDE for realign");
  const exprRows = table.rowsOf(table.findFde(sym.pcBegin)!).filter((r) =>
    r.cfa.kind === "expression"
  );
  assert.ok(exprRows.length > 0, "realign has no CFA expression row");
  const cfa = exprRows[0].cfa;
  assert.equal(cfa.kind, "expression");
  // DW_OP_breg6 (rbp) -8; DW_OP_deref
  assert.deepEqual([...cfa.expr], [0x76, 0x78, 0x06]);
});

Deno.test("-fno-omit-frame-pointer program matches readelf (CFA on rbp)", () => {
  const b = build();
  const ref = readelfFrames(b.fp);
  const table = tableOf(b.fp);
  compareWithReadelf(table, ref);
  using elf = ElfFile.open(b.fp);
  const fde = ref.fdes.find((f) => elf.symbolize(f.pcBegin)?.name === "recurse")!;
  // push rbp; mov rsp, rbp: the body's CFA is rbp+16 with rbp saved at CFA-16.
  const body = table.rowsOf(table.findFde(fde.pcBegin)!).find((r) => showCfa(r) === "rbp+16");
  assert.ok(body, "recurse has no rbp-based row");
  assert.equal(show(body.rules.get(6)), "c-16");
  assert.equal(show(body.rules.get(16)), "c-8");
});

Deno.test("program linked with --no-eh-frame-hdr: the linear scan matches readelf", () => {
  const b = build();
  using elf = ElfFile.open(b.noHdr);
  assert.equal(elf.sections.find((s) => s.name === ".eh_frame_hdr"), undefined);
  const table = tableOf(b.noHdr);
  assert.equal(table.indexed, false);
  const n = compareWithReadelf(table, readelfFrames(b.noHdr));
  assert.ok(n > 40, `compared only ${n} addresses`);
});

Deno.test("C++ program (zPLR CIE with personality and LSDA) matches readelf", () => {
  const b = build();
  const ref = readelfFrames(b.cxx);
  assert.ok(ref.augmentations.has("zPLR"), [...ref.augmentations].join());
  const n = compareWithReadelf(tableOf(b.cxx), ref);
  assert.ok(n > 10, `compared only ${n} addresses`);
});

Deno.test("addresses outside every FDE find nothing", () => {
  const table = tableOf(LIBC);
  const ref = readelfFrames(LIBC);
  const sorted = [...ref.fdes].sort((a, b) => a.pcBegin - b.pcBegin);
  assert.equal(table.findFde(0), undefined);
  assert.equal(table.rowAt(sorted[0].pcBegin - 1), undefined);
  assert.equal(table.findFde(sorted.at(-1)!.pcEnd + 0x100000), undefined);
  // Gaps between consecutive FDEs (alignment padding) have no FDE either.
  let gaps = 0;
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].pcBegin > sorted[i - 1].pcEnd) {
      assert.equal(table.findFde(sorted[i - 1].pcEnd), undefined);
      gaps++;
    }
  }
  assert.ok(gaps > 100, `only ${gaps} gaps`);
});

Deno.test("signal-frame CIE: __restore_rt's row restores every register from the ucontext", () => {
  using elf = ElfFile.open(LIBC);
  const table = EhFrame.fromElf(elf)!;
  const ref = readelfFrames(LIBC);
  // __restore_rt is a local symbol and Debian strips .symtab: find it by its "zRS" CIE.
  const signal = ref.fdes.filter((f) => ref.cies.get(f.cie)?.includes("S"));
  assert.equal(signal.length, 1);
  const fde = signal[0];
  // Its code is "mov $15, %rax; syscall" (rt_sigreturn), one byte into the FDE: the FDE starts
  // at a nop before the symbol so that a lookup of "return address - 1" lands inside it.
  const text = elf.sections.find((s) => s.name === ".text")!;
  const at = fde.pcBegin + 1 - text.addr;
  assert.deepEqual(
    [...elf.sectionBytes(".text")!.subarray(at, at + 9)],
    [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05],
  );
  const row = table.rowAt(fde.pcBegin + 1)!;
  assert.equal(row.signalFrame, true);
  assert.equal(row.cfa.kind, "expression");
  for (let r = 0; r <= 16; r++) assert.equal(row.rules.get(r)?.kind, "expression", `reg ${r}`);
  // Ordinary functions are not signal frames.
  assert.equal(table.rowAt(ref.fdes[1].pcBegin)!.signalFrame, false);
});

Deno.test("a file without .eh_frame has no table; hand-made bad input throws EhFrameError", () => {
  const b = build();
  using elf = ElfFile.open(b.o2);
  assert.ok(EhFrame.fromElf(elf));
  // A CIE whose length runs past the section.
  const bad = new Uint8Array([0xf0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  assert.throws(() => [...new EhFrame({ ehFrame: bad, ehFrameAddr: 0 }).fdes()], EhFrameError);
  // An .eh_frame_hdr of version 2.
  const hdr = new Uint8Array([2, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.throws(
    () => new EhFrame({ ehFrame: new Uint8Array(4), ehFrameAddr: 0, hdr, hdrAddr: 0 }),
    EhFrameError,
  );
  // remember_state nested without bound, and restore_state without remember_state.
  const fde = (instrs: number[]) => {
    const cie = [1, 0x7a, 0x52, 0, 1, 0x78, 16, 1, 0x1b, 0x0c, 7, 8, 0x90, 1];
    while ((cie.length + 4) % 4 !== 0) cie.push(0);
    const body = [0, 0, 0, 0, 0x10, 0, 0, 0, 0, ...instrs];
    const cieLen = cie.length + 4;
    const bytes = [cieLen, 0, 0, 0, 0, 0, 0, 0, ...cie];
    const fdeAt = bytes.length;
    const ptr = fdeAt + 4;
    bytes.push(body.length + 4, 0, 0, 0, ptr, 0, 0, 0, ...body, 0, 0, 0, 0);
    // pc_begin pcrel sdata4 0 → the field's own address; pc_range 16.
    return new EhFrame({ ehFrame: new Uint8Array(bytes), ehFrameAddr: 0x1000 });
  };
  const ok = fde([0x41, 0x0e, 16]); // advance 1; def_cfa_offset 16
  const okFde = [...ok.fdes()][0];
  assert.equal(okFde.pcEnd - okFde.pcBegin, 16);
  assert.equal(showCfa(ok.rowAt(okFde.pcBegin)!), "rsp+8");
  assert.equal(showCfa(ok.rowAt(okFde.pcBegin + 1)!), "rsp+16");
  assert.equal(show(ok.rowAt(okFde.pcBegin + 15)!.rules.get(16)), "c-8");
  const deep = fde(new Array(100).fill(0x0a));
  assert.throws(() => deep.rowAt([...deep.fdes()][0].pcBegin), EhFrameError);
  const unbalanced = fde([0x0b]);
  assert.throws(() => unbalanced.rowAt([...unbalanced.fdes()][0].pcBegin), EhFrameError);
});

Deno.test("an FDE with rules for 1500 registers and a row per byte stays small and bounded", () => {
  // Rules for registers 17..1516, then a row per byte of 1500 bytes of code, each adding a rule:
  // a reader copying every register's rule into every row would hold 2.25M rules.
  const instructions = registerBomb(1500);
  assert.ok(instructions.length <= MAX_ENTRY && instructions.length > 12_000);
  const elf = ElfFile.fromBytes(craftElf({ fdeInstructions: instructions }).bytes);
  const table = EhFrame.fromElf(elf)!;
  const fde = table.findFde(CODE_AT)!;
  const rows = table.rowsOf(fde);
  assert.equal(rows.length, 1501);
  // Only the registers an unwinder tracks (and the return address) keep their rules.
  for (const r of [rows[0], rows[700], rows[1500]]) {
    assert.ok(r.rules.size <= 17, `${r.rules.size} rules`);
    assert.equal(show(r.rules.get(16)), "c-8");
  }
  // The work is the entry read once and its instructions run once.
  assert.ok(table.work < 3 * instructions.length, `work ${table.work}`);
  const again = table.work;
  table.rowAt(CODE_AT + 1000);
  assert.ok(table.work - again < 64, "a cached FDE's rows are not computed again");
  // A bigger entry than any real FDE is an error, not more work.
  const big = ElfFile.fromBytes(craftElf({ fdeInstructions: registerBomb(4096, 4000) }).bytes);
  assert.throws(() => EhFrame.fromElf(big)!.rowAt(CODE_AT), /exceeds/);
  // More rows than any real function has is an error, not a bigger table.
  const tooMany = ElfFile.fromBytes(
    craftElf({ fdeInstructions: new Uint8Array(16_384).fill(0x41), fdeRange: 0x10000 }).bytes,
  );
  assert.throws(() => EhFrame.fromElf(tooMany)!.rowAt(CODE_AT), EhFrameError);
});
