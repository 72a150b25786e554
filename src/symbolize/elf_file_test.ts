import assert from "node:assert/strict";
import { ElfError, ElfFile, EM_X86_64, PF_R, PF_W, PF_X } from "./elf_file.ts";

// Everything here is checked against binutils reading the same files, so the expectations are
// independent of the reader under test.

const PROG = `
#include <stdio.h>

static int __attribute__((noinline, noclone)) local_helper(int x) { return x * 3 + 1; }

int __attribute__((noinline, noclone)) alpha(int n) {
  int s = 0;
  for (int i = 0; i < n; i++) {
    s += local_helper(i) ^ (s << 1);
    if (s > 1000) s -= 77;
  }
  return s;
}
/* Aliases: the global name wins over weak and local ones, then the shorter, then no underscore. */
int alpha_alias_long(int n) __attribute__((alias("alpha")));
int _alpha(int n) __attribute__((alias("alpha")));

int __attribute__((noinline, noclone)) beta(int n) { return alpha(n) * 7 + local_helper(n); }
static int beta_local(int n) __attribute__((alias("beta"), used));
extern int beta_weak(int n) __attribute__((weak, alias("beta")));

/*
 * Assembler labels (unsized NOTYPE in code), as the dynamic loader's _start and _dl_start_user
 * are: they name what no function covers, up to the next symbol; one inside a function does not
 * rename it. Then a sized NOTYPE symbol (counts: it is in an executable section) and an unsized
 * function.
 */
__asm__(".text\\n"
        ".p2align 4\\n"
        ".globl asm_entry\\nasm_entry:\\n nop\\n nop\\n"
        ".globl asm_entry_user\\nasm_entry_user:\\n nop\\n ret\\n"
        ".p2align 4\\n"
        ".globl asm_sized_fn\\n.type asm_sized_fn, @function\\n"
        "asm_sized_fn:\\n nop\\n.globl asm_inner\\nasm_inner:\\n nop\\n ret\\n.size asm_sized_fn, 3\\n"
        ".p2align 4\\n"
        ".globl asm_notype\\n.type asm_notype, @notype\\n"
        "asm_notype:\\n ret\\n nop\\n nop\\n.size asm_notype, 3\\n"
        ".p2align 4\\n"
        ".globl asm_unsized\\n.type asm_unsized, @function\\n"
        "asm_unsized:\\n nop\\n nop\\n nop\\n ret\\n");
extern void asm_notype(void);
extern void asm_unsized(void);

int main(int argc, char **argv) {
  (void)argv;
  asm_notype();
  asm_unsized();
  printf("%d\\n", beta(argc) + alpha_alias_long(argc) + _alpha(argc) + beta_weak(argc));
  return 0;
}
`;

const LIB = `
static int __attribute__((noinline, noclone)) lib_internal(int x) { return x ^ 0x5a5a; }
__attribute__((visibility("hidden"), noinline, noclone)) int lib_hidden(int x) { return x + 11; }
int lib_add(int a, int b) { return lib_internal(a) + lib_hidden(b); }
int lib_mul(int a, int b) { return lib_internal(a * b) * 3; }
`;

const LIBC = "/lib/x86_64-linux-gnu/libc.so.6";

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

interface Built {
  pie: string;
  nopie: string;
  stripped: string;
  lib: string;
  libStripped: string;
  withLink: string;
}

let built: Built | undefined;

/** Compiles the test programs once per test run. */
function build(): Built {
  if (built) return built;
  const dir = Deno.makeTempDirSync({ prefix: "elf_file_test_" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  Deno.writeTextFileSync(`${dir}/prog.c`, PROG);
  Deno.writeTextFileSync(`${dir}/lib.c`, LIB);
  const b: Built = {
    pie: `${dir}/prog_pie`,
    nopie: `${dir}/prog_nopie`,
    stripped: `${dir}/prog_stripped`,
    lib: `${dir}/lib.so`,
    libStripped: `${dir}/lib_stripped.so`,
    withLink: `${dir}/prog_link`,
  };
  const cc = ["-O2", "-Wl,--build-id"];
  run("gcc", [...cc, "-o", b.pie, `${dir}/prog.c`]);
  run("gcc", [...cc, "-no-pie", "-o", b.nopie, `${dir}/prog.c`]);
  run("gcc", [...cc, "-s", "-o", b.stripped, `${dir}/prog.c`]);
  run("gcc", [...cc, "-shared", "-fPIC", "-o", b.lib, `${dir}/lib.c`]);
  run("gcc", [...cc, "-shared", "-fPIC", "-s", "-o", b.libStripped, `${dir}/lib.c`]);
  run("objcopy", ["--only-keep-debug", b.pie, `${dir}/prog.debug`]);
  run("objcopy", ["--strip-debug", `--add-gnu-debuglink=${dir}/prog.debug`, b.pie, b.withLink]);
  built = b;
  return b;
}

interface RefSection {
  index: number;
  name: string;
  addr: number;
  offset: number;
  size: number;
  flags: string;
}

function readelfSections(path: string): RefSection[] {
  const out: RefSection[] = [];
  for (const line of run("readelf", ["-SW", path]).split("\n")) {
    const m =
      /^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([A-Za-z]*)\s+\d+/
        .exec(line);
    if (!m || m[1] === "0") continue;
    out.push({
      index: Number(m[1]),
      name: m[2],
      addr: parseInt(m[3], 16),
      offset: parseInt(m[4], 16),
      size: parseInt(m[5], 16),
      flags: m[6],
    });
  }
  return out;
}

interface RefSymbol {
  name: string;
  start: number;
  size: number;
  bind: string;
  shndx: number;
  /** An assembler label: unsized NOTYPE in code. */
  label: boolean;
}

/** Function symbols as the reader should see them, from `readelf -Ws` (both tables). */
function readelfFunctions(path: string): RefSymbol[] {
  const sections = readelfSections(path);
  const seen = new Set<string>();
  const out: RefSymbol[] = [];
  for (const line of run("readelf", ["-Ws", path]).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^\d+:$/.test(f[0]) || !/^\d+$/.test(f[6])) continue;
    const [, value, size, type, bind, , ndx, rawName] = f;
    const shndx = Number(ndx);
    const sz = Number(size);
    const exec = sections.find((s) => s.index === shndx)?.flags.includes("X") ?? false;
    if (type !== "FUNC" && type !== "IFUNC" && !(type === "NOTYPE" && exec)) continue;
    const name = rawName.replace(/@.*$/, "");
    const start = parseInt(value, 16);
    const key = `${start}:${name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ name, start, size: sz, bind, shndx, label: type === "NOTYPE" && sz === 0 });
  }
  return out;
}

/**
 * What symbolize must answer, straight from the rules: sized symbols cover [start, start+size),
 * unsized ones up to the next symbol but not past their section; the latest start wins. Where no
 * function does, an assembler label covers up to the next symbol of either kind.
 */
function oracle(
  all: RefSymbol[],
  sections: RefSection[],
  addr: number,
): { start: number; names: string[] } | undefined {
  const fn = functionOracle(all, sections, addr);
  if (fn) return fn;
  const labels = all.filter((s) => s.label);
  const best = Math.max(...labels.filter((s) => s.start <= addr).map((s) => s.start));
  if (best === -Infinity) return undefined;
  const next = Math.min(...all.filter((s) => s.start > best).map((s) => s.start));
  const sec = sections.find((s) => s.index === labels.find((l) => l.start === best)!.shndx)!;
  if (!(addr < Math.min(next, sec.addr + sec.size))) return undefined;
  return { start: best, names: labels.filter((s) => s.start === best).map((s) => s.name) };
}

/** The function covering ADDR, where unsized ones end at the next symbol of either kind. */
function functionOracle(
  all: RefSymbol[],
  sections: RefSection[],
  addr: number,
): { start: number; names: string[] } | undefined {
  const allStarts = [...new Set(all.map((s) => s.start))].sort((a, b) => a - b);
  const syms = all.filter((s) => !s.label);
  const starts = [...new Set(syms.map((s) => s.start))].sort((a, b) => a - b);
  let best: number | undefined;
  for (const start of starts) {
    if (start > addr) break;
    const group = syms.filter((s) => s.start === start);
    const size = Math.max(...group.map((s) => s.size));
    let end = start + size;
    if (size === 0) {
      const next = allStarts.find((x) => x > start) ?? Infinity;
      const sec = sections.find((s) => s.index === group[0].shndx)!;
      end = Math.min(next, sec.addr + sec.size);
    }
    if (addr < end) best = start;
  }
  if (best === undefined) return undefined;
  return { start: best, names: syms.filter((s) => s.start === best).map((s) => s.name) };
}

function checkAgainstReadelf(path: string): number {
  const syms = readelfFunctions(path);
  const sections = readelfSections(path);
  using elf = ElfFile.open(path);
  let checked = 0;
  for (const s of syms) {
    const effective = Math.max(...syms.filter((x) => x.start === s.start).map((x) => x.size));
    const probes = [s.start, s.start + Math.floor(effective / 2)];
    if (effective > 0) probes.push(s.start + effective - 1, s.start + effective);
    for (const addr of probes) {
      const want = oracle(syms, sections, addr);
      const got = elf.symbolize(addr);
      const where = `${path} ${s.name} probe ${addr.toString(16)}`;
      if (want === undefined) {
        assert.equal(got, undefined, where);
        continue;
      }
      assert.ok(got, where);
      assert.equal(got.start, want.start, where);
      assert.ok(want.names.includes(got.name), `${where}: ${got.name} not in ${want.names}`);
      checked++;
    }
    if (s.size > 0) {
      const got = elf.symbolize(s.start)!;
      assert.equal(got.size, effective, `${s.name} size`);
    }
  }
  return checked;
}

function nmSized(path: string, dynamic = false): Map<string, { start: number; size: number }> {
  const out = new Map<string, { start: number; size: number }>();
  const args = dynamic ? ["-D", "-S", "--defined-only", path] : ["-S", "--defined-only", path];
  for (const line of run("nm", args).split("\n")) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) ([TtWwi]) (\S+)$/.exec(line);
    if (m) {
      out.set(m[4].replace(/@.*$/, ""), { start: parseInt(m[1], 16), size: parseInt(m[2], 16) });
    }
  }
  return out;
}

function readelfBuildId(path: string): string {
  const m = /Build ID: ([0-9a-f]+)/.exec(run("readelf", ["-n", path]));
  assert.ok(m, `readelf -n ${path} shows no build ID`);
  return m[1];
}

function readelfLoads(path: string) {
  const loads = [];
  for (const line of run("readelf", ["-lW", path]).split("\n")) {
    const m =
      /^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+([RWE ]+?)\s+0x/
        .exec(line);
    if (!m) continue;
    const fl = m[5];
    loads.push({
      offset: parseInt(m[1], 16),
      vaddr: parseInt(m[2], 16),
      filesz: parseInt(m[3], 16),
      memsz: parseInt(m[4], 16),
      flags: (fl.includes("R") ? PF_R : 0) | (fl.includes("W") ? PF_W : 0) |
        (fl.includes("E") ? PF_X : 0),
    });
  }
  return loads;
}

Deno.test("every function of PIE, non-PIE and shared object matches readelf at its boundaries", () => {
  const b = build();
  for (const path of [b.pie, b.nopie, b.lib]) {
    const checked = checkAgainstReadelf(path);
    assert.ok(checked >= 20, `${path}: only ${checked} probes`);
  }
});

Deno.test("sizes and starts agree with nm -S for every sized function", () => {
  const b = build();
  for (const path of [b.pie, b.nopie, b.lib]) {
    using elf = ElfFile.open(path);
    const nm = nmSized(path);
    assert.ok(nm.size >= 4, `${path}: nm found ${nm.size} sized functions`);
    for (const [name, { start, size }] of nm) {
      const got = elf.symbolize(start);
      assert.ok(got, `${path}: ${name}`);
      assert.equal(got.start, start, `${path}: ${name} start`);
      assert.equal(got.size, size, `${path}: ${name} size`);
      assert.equal(elf.symbolize(start + size - 1)?.start, start, `${path}: ${name} last byte`);
    }
  }
});

Deno.test("aliases resolve to the preferred name; asm NOTYPE and unsized symbols", () => {
  const b = build();
  const nm = nmSized(b.pie);
  using elf = ElfFile.open(b.pie);
  const alpha = nm.get("alpha")!;
  const beta = nm.get("beta")!;
  const helper = nm.get("local_helper")!;
  assert.deepEqual(elf.symbolize(alpha.start), { name: "alpha", ...alpha });
  assert.deepEqual(elf.symbolize(alpha.start + 1), { name: "alpha", ...alpha });
  assert.deepEqual(elf.symbolize(beta.start), { name: "beta", ...beta });
  assert.deepEqual(elf.symbolize(helper.start), { name: "local_helper", ...helper });

  const syms = readelfFunctions(b.pie);
  const asmNotype = syms.find((s) => s.name === "asm_notype")!;
  assert.equal(asmNotype.size, 3);
  assert.deepEqual(elf.symbolize(asmNotype.start + 2), {
    name: "asm_notype",
    start: asmNotype.start,
    size: 3,
  });
  // Padding after the 3 bytes belongs to nobody (the next function is 16-aligned).
  assert.equal(elf.symbolize(asmNotype.start + 3), undefined);

  // Labels: each runs to the next symbol where no function covers it; inside one, the function.
  const at = (name: string) => syms.find((s) => s.name === name)!;
  const entry = at("asm_entry"), user = at("asm_entry_user"), sizedFn = at("asm_sized_fn");
  assert.ok(entry.label && user.label && at("asm_inner").label && !sizedFn.label);
  assert.deepEqual(elf.symbolize(entry.start + 1), {
    name: "asm_entry",
    start: entry.start,
    size: 2,
  });
  assert.deepEqual(elf.symbolize(user.start + 1), {
    name: "asm_entry_user",
    start: user.start,
    size: sizedFn.start - user.start, // its padding included: the next symbol ends it
  });
  assert.deepEqual(elf.symbolize(at("asm_inner").start), {
    name: "asm_sized_fn",
    start: sizedFn.start,
    size: 3,
  });
  assert.equal(
    elf.symbolize(sizedFn.start + 3)?.name,
    "asm_inner",
    "after the function: the label",
  );

  const unsized = syms.find((s) => s.name === "asm_unsized")!;
  assert.equal(unsized.size, 0);
  const got = elf.symbolize(unsized.start + 3)!;
  assert.equal(got.name, "asm_unsized");
  assert.equal(got.start, unsized.start);
  const next = syms.map((s) => s.start).filter((s) => s > unsized.start).sort((x, y) => x - y)[0];
  const text = readelfSections(b.pie).find((s) => s.name === ".text")!;
  assert.equal(got.size, Math.min(next ?? Infinity, text.addr + text.size) - unsized.start);
});

Deno.test("an address past every symbol and before any symbol is undefined", () => {
  const b = build();
  using elf = ElfFile.open(b.pie);
  assert.equal(elf.symbolize(0), undefined);
  assert.equal(elf.symbolize(0x7fff_ffff_ffff), undefined);
  assert.equal(elf.symbolize(-1), undefined);
  assert.equal(elf.symbolize(NaN), undefined);
});

Deno.test("header fields, segments and build ID match readelf", () => {
  const b = build();
  for (const [path, type] of [[b.pie, "dyn"], [b.nopie, "exec"], [b.lib, "dyn"]] as const) {
    using elf = ElfFile.open(path);
    assert.equal(elf.type, type);
    assert.equal(elf.machine, EM_X86_64);
    assert.equal(elf.buildId, readelfBuildId(path));
    assert.match(elf.buildId!, /^[0-9a-f]{40}$/);
    const loads = readelfLoads(path);
    assert.ok(loads.length >= 2);
    assert.deepEqual(elf.segments.map((s) => ({ ...s })), loads);
    const names = readelfSections(path).map((s) => s.name);
    assert.deepEqual(elf.sections.map((s) => s.name).slice(1), names);
    assert.equal(elf.debugLink, undefined);
    const entry = /Entry point address:\s+0x([0-9a-f]+)/.exec(run("readelf", ["-h", path]))!;
    assert.equal(elf.entry, parseInt(entry[1], 16), path);
  }
});

Deno.test("file offsets and addresses convert through PT_LOAD like readelf -l says", () => {
  const b = build();
  for (const path of [b.pie, b.nopie]) {
    using elf = ElfFile.open(path);
    for (const l of readelfLoads(path)) {
      for (const delta of [0, 1, l.filesz - 1]) {
        assert.equal(elf.fileOffsetToVaddr(l.offset + delta), l.vaddr + delta, path);
        assert.equal(elf.vaddrToFileOffset(l.vaddr + delta), l.offset + delta, path);
      }
      assert.equal(elf.isExecutable(l.vaddr), (l.flags & PF_X) !== 0);
    }
    const text = readelfSections(path).find((s) => s.name === ".text")!;
    assert.equal(elf.fileOffsetToVaddr(text.offset), text.addr);
    assert.equal(elf.vaddrToFileOffset(text.addr + 0x10), text.offset + 0x10);
    assert.ok(elf.isExecutable(text.addr));
    const size = Deno.statSync(path).size;
    assert.equal(elf.fileOffsetToVaddr(size + 0x100000), undefined);
    assert.equal(elf.vaddrToFileOffset(0x7000_0000_0000), undefined);
    // .bss has addresses but no file bytes.
    const bss = readelfSections(path).find((s) => s.name === ".bss")!;
    assert.equal(elf.vaddrToFileOffset(bss.addr + bss.size - 1), undefined);
    assert.equal(elf.isExecutable(bss.addr), false);
  }
  using nopie = ElfFile.open(b.nopie);
  assert.equal(nopie.segments[0].vaddr, 0x400000);
});

Deno.test("the shared object's exported functions are found, also when stripped", () => {
  const b = build();
  const dyn = nmSized(b.lib, true);
  assert.deepEqual([...dyn.keys()].sort(), ["lib_add", "lib_mul"]);
  for (const path of [b.lib, b.libStripped]) {
    using elf = ElfFile.open(path);
    for (const [name, { start, size }] of dyn) {
      assert.deepEqual(elf.symbolize(start), { name, start, size }, path);
      assert.deepEqual(elf.symbolize(start + size - 1), { name, start, size }, path);
    }
  }
  using full = ElfFile.open(b.lib);
  const hidden = nmSized(b.lib).get("lib_hidden")!;
  assert.equal(full.symbolize(hidden.start)?.name, "lib_hidden");
  using stripped = ElfFile.open(b.libStripped);
  // Only .dynsym is left: the hidden function is gone and its bytes belong to no symbol.
  assert.equal(stripped.symbolize(hidden.start), undefined);
  assert.equal(stripped.buildId, readelfBuildId(b.libStripped));
});

Deno.test("a stripped executable has no function symbols but keeps its build ID", () => {
  const b = build();
  using elf = ElfFile.open(b.stripped);
  assert.equal(elf.buildId, readelfBuildId(b.stripped));
  assert.equal(elf.sections.some((s) => s.name === ".symtab"), false);
  let probes = 0;
  for (const seg of elf.segments.filter((s) => (s.flags & PF_X) !== 0)) {
    for (let a = seg.vaddr; a < seg.vaddr + seg.memsz; a += 3) {
      assert.equal(elf.symbolize(a), undefined, a.toString(16));
      probes++;
    }
  }
  assert.ok(probes > 100);
});

Deno.test("debugLink and sectionBytes", () => {
  const b = build();
  using elf = ElfFile.open(b.withLink);
  assert.equal(elf.debugLink, "prog.debug");
  const bytes = Deno.readFileSync(b.withLink);
  const text = elf.sections.find((s) => s.name === ".text")!;
  const got = elf.sectionBytes(".text")!;
  assert.equal(got.length, text.size);
  assert.deepEqual(got, bytes.subarray(text.offset, text.offset + text.size));
  const eh = elf.sectionBytes(".eh_frame")!;
  assert.equal(eh.length, readelfSections(b.withLink).find((s) => s.name === ".eh_frame")!.size);
  assert.equal(elf.sectionBytes(".bss"), undefined);
  assert.equal(elf.sectionBytes(".no_such_section"), undefined);

  using libc = ElfFile.open(LIBC);
  assert.match(libc.debugLink ?? "", /^[0-9a-f]+\.debug$/);
});

Deno.test("fromBytes reads the same as open", () => {
  const b = build();
  using a = ElfFile.open(b.pie);
  const c = ElfFile.fromBytes(Deno.readFileSync(b.pie));
  assert.equal(c.buildId, a.buildId);
  assert.deepEqual(c.segments, a.segments);
  const alpha = nmSized(b.pie).get("alpha")!;
  assert.deepEqual(c.symbolize(alpha.start + 4), a.symbolize(alpha.start + 4));
  c.close();
});

Deno.test("libc: malloc and qsort at their nm -D addresses", () => {
  const dyn = nmSized(LIBC, true);
  using libc = ElfFile.open(LIBC);
  assert.equal(libc.type, "dyn");
  assert.equal(libc.buildId, readelfBuildId(LIBC));
  for (const name of ["malloc", "qsort", "free", "memcpy"]) {
    const want = dyn.get(name);
    assert.ok(want, name);
    const got = libc.symbolize(want.start)!;
    assert.equal(got.start, want.start, name);
    assert.equal(got.size, want.size, name);
    if (name === "malloc" || name === "qsort") assert.equal(got.name, name);
    assert.equal(libc.symbolize(want.start + want.size - 1)?.start, want.start);
  }
});

Deno.test("not ELF, truncated, closed and missing files throw ElfError naming the file", () => {
  const b = build();
  assert.throws(() => ElfFile.fromBytes(new Uint8Array(0)), ElfError);
  assert.throws(() => ElfFile.fromBytes(new TextEncoder().encode("#!/bin/sh\n".repeat(10))), {
    name: "ElfError",
    message: /bad magic/,
  });
  const bytes = Deno.readFileSync(b.pie);
  assert.throws(() => ElfFile.fromBytes(bytes.slice(0, 40)), ElfError);
  const elf32 = bytes.slice();
  elf32[4] = 1;
  assert.throws(() => ElfFile.fromBytes(elf32), { message: /class 1 unsupported/ });
  const big = bytes.slice();
  big[5] = 2;
  assert.throws(() => ElfFile.fromBytes(big), { message: /byte order 2 unsupported/ });
  // Truncated before the section headers at the end of the file.
  assert.throws(() => ElfFile.fromBytes(bytes.slice(0, bytes.length - 100), "cut"), {
    name: "ElfError",
    message: /^cut: section headers at offset/,
  });
  assert.throws(() => ElfFile.open("/nonexistent/x"), { name: "ElfError", message: /x: cannot/ });
  assert.throws(() => ElfFile.open("/tmp"), ElfError);

  const elf = ElfFile.open(b.pie);
  elf.close();
  elf.close();
  assert.throws(() => elf.symbolize(0x1000), { name: "ElfError", message: /closed/ });
});

Deno.test("a 100 MB binary opens and indexes reading a small part of it", () => {
  const denoPath = Deno.execPath();
  using deno = ElfFile.open(denoPath);
  const opened = deno.work;
  deno.symbolize(0);
  assert.ok(deno.buildId);
  console.log(
    `deno (${(deno.size / 2 ** 20).toFixed(0)} MiB): open read ${opened} bytes, ` +
      `with symbols ${deno.work}`,
  );
  assert.ok(deno.size > 50 << 20, `${deno.size}`);
  assert.ok(deno.work < deno.size / 20, `read ${deno.work} of ${deno.size} bytes`);
});

Deno.test("libc: 10^5 lookups read names once each, not the string table per lookup", () => {
  using libc = ElfFile.open(LIBC);
  const text = libc.segments.find((s) => (s.flags & PF_X) !== 0)!;
  libc.symbolize(text.vaddr);
  const indexed = libc.work;
  let hits = 0;
  for (let i = 0; i < 100_000; i++) {
    if (libc.symbolize(text.vaddr + ((i * 7919) % text.memsz))) hits++;
  }
  assert.ok(hits > 10_000, `${hits} hits`);
  // A few thousand distinct functions, each name read once through small blocks.
  assert.ok(libc.work - indexed < 4 * libc.size, `lookups read ${libc.work - indexed} bytes`);
});
