import assert from "node:assert/strict";
import {
  DwarfUnwinder,
  type UnwindInput,
  type UnwindModule,
  type UnwindResult,
} from "./dwarf_unwinder.ts";
import { EhFrame } from "./eh_frame.ts";
import { ElfFile } from "../symbolize/elf_file.ts";
import { parseMaps } from "../stacks/proc_maps.ts";
import { CODE, CODE_AT, craftElf, expressionBomb } from "../../test/crafted_elf.ts";

/** A walk's frames and end, without its reach (checked on its own). */
const walk = (r: UnwindResult) => ({ ips: r.ips, end: r.end });

// Real stacks: C programs built here capture their own registers and the top of their stack at a
// known point, plus glibc's backtrace() there. backtrace() walks with libgcc's unwinder, an
// independent implementation of the same CFI rules, so its addresses are the expected answer.

/** Captures ip/sp/bp at the call site, then writes them, the stack, backtrace() and the maps. */
const CAPTURE = `
#include <execinfo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char stack_copy[16384];
static const char *out_dir;
volatile long sink;

static void write_file(const char *name, const void *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", out_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len) { perror(path); exit(2); }
  fclose(f);
}

/* The end of the mapping holding sp: copying past it would fault. */
static uintptr_t mapping_end(uintptr_t sp) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[1024];
  uintptr_t end = 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && sp >= lo && sp < hi) { end = hi; break; }
  }
  if (f) fclose(f);
  return end;
}

/* Everything here runs below the captured sp, so the copied frames above it stay intact. */
__attribute__((noinline)) void dump(uintptr_t ip, uintptr_t sp, uintptr_t bp) {
  uintptr_t end = mapping_end(sp);
  size_t len = end - sp < sizeof stack_copy ? end - sp : sizeof stack_copy;
  memcpy(stack_copy, (void *)sp, len);
  void *bt[256];
  int n = backtrace(bt, 256);
  static char text[16384];
  int at = snprintf(text, sizeof text, "%lx %lx %lx\\n", (unsigned long)ip, (unsigned long)sp,
                    (unsigned long)bp);
  for (int i = 0; i < n; i++) at += snprintf(text + at, sizeof text - at, "%lx\\n", (unsigned long)bt[i]);
  write_file("regs.txt", text, at);
  write_file("stack.bin", stack_copy, len);
  static char maps[1 << 20];
  FILE *m = fopen("/proc/self/maps", "r");
  size_t got = fread(maps, 1, sizeof maps, m);
  fclose(m);
  write_file("maps.txt", maps, got);
}

#define CAPTURE()                                                                      \\
  do {                                                                                 \\
    uintptr_t ip_, sp_, bp_;                                                           \\
    __asm__ volatile("lea 0(%%rip), %0\\n\\tmov %%rsp, %1\\n\\tmov %%rbp, %2"          \\
                     : "=&r"(ip_), "=&r"(sp_), "=&r"(bp_));                            \\
    dump(ip_, sp_, bp_);                                                               \\
    sink++; /* no tail call: dump's caller must stay on the stack for backtrace() */   \\
  } while (0)
`;

/** main → a → b → c → qsort → comparator, where a realigns its stack through a DRAP register. */
const QSORT = `${CAPTURE}
static int calls;
static int data[1024];

__attribute__((noinline, noclone)) int comparator(const void *x, const void *y) {
  if (__builtin_expect(calls++ == 0, 1)) CAPTURE();
  int p = *(const int *)x, q = *(const int *)y;
  return (p > q) - (p < q);
}

__attribute__((noinline, noclone)) int c(int n) {
  qsort(data, n, sizeof data[0], comparator);
  sink = data[0];
  return data[n - 1] + 1;
}

__attribute__((noinline, noclone)) int b(int n) {
  int r = c(n);
  sink = r;
  return r * 3;
}

__attribute__((noinline, noclone)) long eight(long a, long b, long c, long d, long e, long f,
                                              long g, long h) {
  return a + b + c + d + e + f + g * h;
}

/* An over-aligned local plus stack-passed arguments: GCC realigns through r10 and describes the
   frame with DWARF expressions (CFA = *(rbp - 8)). */
__attribute__((noinline, noclone)) int a(int n) {
  char buf[128] __attribute__((aligned(64)));
  memset(buf, n, sizeof buf);
  sink = buf[n & 127];
  int r = b(n);
  return r + (int)eight(n, 1, 2, 3, 4, 5, buf[7], r);
}

int main(int argc, char **argv) {
  (void)argc;
  out_dir = argv[1];
  for (int i = 0; i < 1024; i++) data[i] = (i * 7919) % 1024;
  printf("%d\\n", a(1024));
  return 0;
}
`;

/** A library built without CFI but with frame pointers, between two frames that have CFI. */
const FP_LIB = `
typedef int (*cb_t)(int);
static __attribute__((noinline, noclone)) int fp_inner(cb_t cb, int n) {
  int r = cb(n);
  __asm__ volatile("" : "+r"(r));
  return r * 3 + 1;
}
__attribute__((noinline, noclone)) int fp_outer(cb_t cb, int n) {
  int r = fp_inner(cb, n + 1);
  __asm__ volatile("" : "+r"(r));
  return r + 2;
}
`;

const FP_MAIN = `${CAPTURE}
extern int fp_outer(int (*cb)(int), int n);

__attribute__((noinline, noclone)) int callback(int n) {
  CAPTURE();
  sink = n;
  return n + 5;
}

__attribute__((noinline, noclone)) int a(int n) {
  int r = fp_outer(callback, n);
  sink = r;
  return r * 2;
}

int main(int argc, char **argv) {
  (void)argc;
  out_dir = argv[1];
  printf("%d\\n", a(3));
  return 0;
}
`;

/** raise() from a known function; the handler captures, so the walk crosses __restore_rt. */
const SIGNAL = `${CAPTURE}
#include <signal.h>

static void handler(int sig) {
  (void)sig;
  CAPTURE();
}

__attribute__((noinline, noclone)) int raiser(int n) {
  raise(SIGUSR1);
  sink = n;
  return n + 1;
}

__attribute__((noinline, noclone)) int a(int n) {
  int r = raiser(n);
  sink = r;
  return r * 2;
}

int main(int argc, char **argv) {
  (void)argc;
  out_dir = argv[1];
  signal(SIGUSR1, handler);
  printf("%d\\n", a(3));
  return 0;
}
`;

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success && !(cmd === "readelf" && out.stdout.length > 0)) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

let tmp: string | undefined;
function tempDir(): string {
  if (!tmp) {
    const dir = Deno.makeTempDirSync({ prefix: "dwarf_unwinder_test_" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    tmp = dir;
  }
  return tmp;
}

interface Capture {
  ip: number;
  sp: number;
  bp: number;
  /** backtrace() inside dump(): [0] is in dump, [1] the return into the capturing function. */
  backtrace: number[];
  stack: Uint8Array;
  maps: string;
  /** Paths of what was built, by role. */
  files: Record<string, string>;
}

const captures = new Map<string, Capture>();

/** Builds a program (once per test run), runs it, and loads what it captured. */
function capture(name: string, source: string, extraFlags: string[] = [], lib?: string): Capture {
  const cached = captures.get(name);
  if (cached) return cached;
  const dir = `${tempDir()}/${name}`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/main.c`, source);
  const files: Record<string, string> = { main: `${dir}/main` };
  const flags = [...extraFlags];
  if (lib) {
    Deno.writeTextFileSync(`${dir}/lib.c`, lib);
    files.lib = `${dir}/libfp.so`;
    run("gcc", [
      "-O2",
      "-fPIC",
      "-shared",
      "-fno-asynchronous-unwind-tables",
      "-fno-omit-frame-pointer",
      "-o",
      files.lib,
      `${dir}/lib.c`,
    ]);
    flags.push(`-L${dir}`, "-lfp", `-Wl,-rpath,${dir}`);
  }
  run("gcc", ["-O2", "-o", files.main, `${dir}/main.c`, ...flags]);
  run(files.main, [dir]);
  const lines = Deno.readTextFileSync(`${dir}/regs.txt`).trim().split("\n");
  const [ip, sp, bp] = lines[0].split(" ").map((h) => parseInt(h, 16));
  const c: Capture = {
    ip,
    sp,
    bp,
    backtrace: lines.slice(1).map((h) => parseInt(h, 16)),
    stack: Deno.readFileSync(`${dir}/stack.bin`),
    maps: Deno.readTextFileSync(`${dir}/maps.txt`),
    files,
  };
  captures.set(name, c);
  return c;
}

interface Module extends UnwindModule {
  start: number;
  end: number;
  path: string;
  elf: ElfFile;
}

// Kept open for the whole test process: a table reads its file on demand.
const elves = new Map<string, ElfFile>();
const tables = new Map<string, EhFrame | undefined>();

/** The executable file mappings of the captured process, each with its table and load bias. */
function modulesOf(c: Capture): Module[] {
  const out: Module[] = [];
  for (const m of parseMaps(c.maps)) {
    if (!m.perms.includes("x") || !m.path.startsWith("/")) continue;
    let elf = elves.get(m.path);
    if (!elf) {
      elf = ElfFile.open(m.path);
      elves.set(m.path, elf);
    }
    const vaddr = elf.fileOffsetToVaddr(m.offset);
    assert.ok(vaddr !== undefined, `${m.path}: offset ${m.offset} not in a segment`);
    if (!tables.has(m.path)) tables.set(m.path, EhFrame.fromElf(elf, m.path));
    const table = tables.get(m.path);
    out.push({ start: m.start, end: m.end, path: m.path, elf, table, bias: m.start - vaddr });
  }
  return out;
}

function input(c: Capture, stackBytes = c.stack.length): UnwindInput {
  const modules = modulesOf(c);
  return {
    regs: { ip: c.ip, sp: c.sp, bp: c.bp },
    stack: c.stack.subarray(0, stackBytes),
    stackBase: c.sp,
    moduleAt: (ip) => modules.find((m) => ip >= m.start && ip < m.end),
  };
}

/** "name" where a symbol covers the frame, else "file+0xOFFSET" (libc's locals are stripped). */
function names(c: Capture, ips: number[]): string[] {
  const modules = modulesOf(c);
  return ips.map((ip, i) => {
    const pc = i === 0 ? ip : ip - 1;
    const m = modules.find((x) => pc >= x.start && pc < x.end);
    if (!m) return `?0x${ip.toString(16)}`;
    const sym = m.elf.symbolize(pc - m.bias);
    return sym ? sym.name : `${m.path.split("/").at(-1)}+0x${(pc - m.bias).toString(16)}`;
  });
}

function fdeStart(c: Capture, ip: number): number | undefined {
  const m = modulesOf(c).find((x) => ip - 1 >= x.start && ip - 1 < x.end)!;
  return m.table?.findFde(ip - 1 - m.bias)?.pcBegin;
}

const unwinder = new DwarfUnwinder();

Deno.test("qsort stack: the same frames as libgcc's backtrace(), ending at _start", () => {
  const c = capture("qsort", QSORT);
  const r = unwinder.unwind(input(c));
  assert.equal(r.end, "complete");
  assert.equal(r.ips[0], c.ip);
  // backtrace() ran in dump(), called from the comparator: from its [1] on, both walks agree.
  assert.deepEqual(r.ips.slice(1), c.backtrace.slice(2));
  const n = names(c, r.ips);
  // msort_with_tmp recurses from n = 1024 down to n = 2 before the first comparison: 10 frames
  // of one local (stripped) libc function, then qsort_r (which qsort jumps to).
  const msort = n.slice(1, 11);
  assert.ok(msort.every((x) => x.startsWith("libc.so.6+")), msort.join());
  const msortFde = fdeStart(c, r.ips[1]);
  assert.ok(msortFde !== undefined);
  for (let i = 1; i <= 10; i++) assert.equal(fdeStart(c, r.ips[i]), msortFde);
  assert.deepEqual(n.slice(0, 1), ["comparator"]);
  assert.deepEqual(n.slice(11, 16), ["qsort_r", "c", "b", "a", "main"]);
  // __libc_start_call_main is local (stripped); then the exported __libc_start_main, _start.
  assert.match(n[16], /^libc\.so\.6\+/);
  assert.deepEqual(n.slice(17), ["__libc_start_main", "_start"]);
  assert.equal(r.ips.length, 19);
  // a() is unwound with its realigned-stack rules: CFA = *(rbp - 8), so rbp had to be recovered
  // correctly through every frame below it.
  const aMod = modulesOf(c).find((m) => m.path === c.files.main)!;
  const aRow = aMod.table!.rowAt(r.ips[14] - 1 - aMod.bias)!;
  assert.equal(aRow.cfa.kind, "expression");
});

Deno.test("qsort stack cut to 512 bytes: a correct prefix, then 'truncated'", () => {
  const c = capture("qsort", QSORT);
  const full = unwinder.unwind(input(c));
  const r = unwinder.unwind(input(c, 512));
  assert.equal(r.end, "truncated");
  assert.ok(r.ips.length >= 2 && r.ips.length < full.ips.length, `${r.ips.length} frames`);
  assert.deepEqual(r.ips, full.ips.slice(0, r.ips.length));
  // A copy too small to hold even the comparator's return address.
  const cut = unwinder.unwind(input(c, 8));
  assert.equal(cut.end, "truncated");
  assert.deepEqual(cut.ips, [c.ip]);
});

Deno.test("a complete walk's reach is all the copy it needs: cut there, the same walk", () => {
  const c = capture("qsort", QSORT);
  const whole = unwinder.unwind(input(c));
  assert.equal(whole.end, "complete");
  assert.ok(whole.reach > c.sp && whole.reach <= c.sp + c.stack.length, `${whole.reach}`);
  const cut = unwinder.unwind(input(c, whole.reach - c.sp));
  assert.deepEqual(walk(cut), walk(whole));
  // A quarter of it, and the walk runs off the copy.
  assert.equal(unwinder.unwind(input(c, (whole.reach - c.sp) >> 2)).end, "truncated");
});

Deno.test("the flat fast path and the general rules walk alike", () => {
  const c = capture("qsort", QSORT);
  const rowsOf = (ips: number[]) =>
    ips.map((ip, i) => {
      const pc = i === 0 ? ip : ip - 1;
      const m = modulesOf(c).find((x) => pc >= x.start && pc < x.end)!;
      return m.table?.rowAt(pc - m.bias);
    }).filter((r) => r !== undefined);
  const sizes = [c.stack.length, 512, 200];
  const fast = sizes.map((n) => unwinder.unwind(input(c, n)));
  const rows = rowsOf(fast[0].ips);
  // Most of these rows are register+offset ones: the fast path walked them.
  const planned = rows.filter((r) => r.plan).length;
  assert.ok(planned >= rows.length - 2, `${planned} of ${rows.length} rows in flat form`);
  try {
    for (const r of rows) r.plan = null;
    sizes.forEach((n, i) => {
      const general = unwinder.unwind(input(c, n));
      assert.deepEqual(general, fast[i], `copy of ${n} bytes`);
    });
  } finally {
    for (const r of rows) r.plan = undefined;
  }
});

Deno.test("maxFrames caps the walk", () => {
  const c = capture("qsort", QSORT);
  const r = unwinder.unwind({ ...input(c), maxFrames: 5 });
  assert.equal(r.end, "truncated");
  assert.equal(r.ips.length, 5);
  assert.deepEqual(r.ips, [c.ip, ...c.backtrace.slice(2, 6)]);
});

Deno.test("a module without CFI is crossed through the rbp chain", () => {
  const c = capture("fp", FP_MAIN, [], FP_LIB);
  // The library has no FDE for its functions (readelf agrees: no .eh_frame at all, or none
  // covering them).
  using lib = ElfFile.open(c.files.lib);
  const libTable = EhFrame.fromElf(lib);
  const frames = run("readelf", ["--debug-dump=frames", c.files.lib]);
  const syms = run("readelf", ["-Ws", c.files.lib]);
  for (const fn of ["fp_inner", "fp_outer"]) {
    const m = new RegExp(`:\\s+([0-9a-f]+)\\s+\\d+\\s+FUNC\\s+\\S+\\s+\\S+\\s+\\S+\\s+${fn}$`, "m")
      .exec(syms)!;
    const addr = parseInt(m[1], 16);
    assert.equal(libTable?.findFde(addr), undefined, fn);
    for (const fde of frames.matchAll(/pc=([0-9a-f]+)\.\.([0-9a-f]+)/g)) {
      assert.ok(!(addr >= parseInt(fde[1], 16) && addr < parseInt(fde[2], 16)), fn);
    }
  }
  const r = unwinder.unwind(input(c));
  assert.equal(r.end, "complete");
  const n = names(c, r.ips);
  assert.deepEqual(n.slice(0, 5), ["callback", "fp_inner", "fp_outer", "a", "main"]);
  assert.match(n[5], /^libc\.so\.6\+/);
  assert.deepEqual(n.slice(6), ["__libc_start_main", "_start"]);
  // libgcc's unwinder agrees up to the frame it cannot cross (it has no rbp fallback).
  assert.equal(c.backtrace[2], r.ips[1]);
  assert.equal(c.backtrace.length, 3, "libgcc stops at fp_inner: [dump, callback, fp_inner]");
  // Without rbp the CFI-less frame cannot be unwound.
  const noBp = unwinder.unwind({ ...input(c), regs: { ip: c.ip, sp: c.sp, bp: 0 } });
  assert.deepEqual(walk(noBp), { ips: [c.ip, r.ips[1]], end: "no-unwind-info" });
});

Deno.test("code without CFI at a file's entry point ends the walk as complete, elsewhere not", () => {
  // The dynamic loader's _start is such code: the kernel starts every dynamically linked
  // process there, it has no FDE, and its rbp is 0. Here the CFI-less library frame stands in
  // for it: with the file's entry point 7 bytes before the frame's pc (as a return address
  // after `mov %rsp,%rdi; call _dl_start` is), the dead end is the outermost frame.
  const c = capture("fp", FP_MAIN, [], FP_LIB);
  const base = { ...input(c), regs: { ip: c.ip, sp: c.sp, bp: 0 } };
  const cut = unwinder.unwind(base);
  assert.equal(cut.end, "no-unwind-info");
  const ra = cut.ips[1];
  const withEntry = (entryAt: number): UnwindInput => ({
    ...base,
    moduleAt: (ip) => {
      const m = base.moduleAt(ip) as Module | undefined;
      if (!m || !(ra - 1 >= m.start && ra - 1 < m.end)) return m;
      return { ...m, entry: entryAt - m.bias };
    },
  });
  assert.deepEqual(walk(unwinder.unwind(withEntry(ra - 8))), { ips: cut.ips, end: "complete" });
  // Outside the stub (its 64 bytes from the entry point) it is still a dead end.
  assert.deepEqual(walk(unwinder.unwind(withEntry(ra - 1 - 64))), {
    ips: cut.ips,
    end: "no-unwind-info",
  });
  assert.deepEqual(walk(unwinder.unwind(withEntry(ra))), { ips: cut.ips, end: "no-unwind-info" });
});

Deno.test("signal frame: through __restore_rt back into the function that raised", () => {
  const c = capture("signal", SIGNAL);
  const r = unwinder.unwind(input(c));
  assert.equal(r.end, "complete");
  assert.deepEqual(r.ips.slice(1), c.backtrace.slice(2));
  const n = names(c, r.ips);
  assert.equal(n[0], "handler");
  // [1] is __restore_rt (a stripped local of libc): its FDE is the signal-frame one.
  const modules = modulesOf(c);
  const libc = modules.find((m) => r.ips[1] >= m.start && r.ips[1] < m.end)!;
  assert.match(libc.path, /libc\.so\.6$/);
  assert.equal(libc.table!.rowAt(r.ips[1] - 1 - libc.bias)!.signalFrame, true);
  // Then the interrupted pc, exact (right after the syscall instruction of pthread_kill's
  // implementation), and the callers of raise().
  const raiseAt = n.indexOf("raise");
  assert.ok(raiseAt > 2, n.join());
  assert.deepEqual(n.slice(raiseAt, raiseAt + 4), ["raise", "raiser", "a", "main"]);
  assert.deepEqual(n.slice(-2), ["__libc_start_main", "_start"]);
  const interrupted = r.ips[2] - libc.bias;
  const text = libc.elf.sections.find((s) => s.name === ".text")!;
  const bytes = libc.elf.sectionBytes(".text")!;
  // The pc after a signal is not a return address: the two bytes before it are `syscall`.
  assert.deepEqual([...bytes.subarray(interrupted - 2 - text.addr, interrupted - text.addr)], [
    0x0f,
    0x05,
  ]);
});

Deno.test("garbage is 'bad-frame', not a crash", () => {
  const c = capture("qsort", QSORT);
  const base = input(c);
  // An ip outside every module, without a usable rbp: nothing to go on.
  assert.deepEqual(
    walk(unwinder.unwind({ ...base, regs: { ip: 0x1234, sp: c.sp, bp: 0 } })),
    { ips: [0x1234], end: "no-unwind-info" },
  );
  // A stack of random bytes under the real ip: the return address read is garbage.
  const noise = new Uint8Array(c.stack.length);
  let x = 12345;
  for (let i = 0; i < noise.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    noise[i] = x >>> 24;
  }
  assert.deepEqual(walk(unwinder.unwind({ ...base, stack: noise })), {
    ips: [c.ip],
    end: "bad-frame",
  });
  // An sp 4 KiB below the copy: the frame's reads fall below the copy, which is garbage too.
  assert.deepEqual(
    walk(unwinder.unwind({ ...base, regs: { ip: c.ip, sp: c.sp - 4096, bp: 0 } })),
    { ips: [c.ip], end: "bad-frame" },
  );
  // Zeros: the comparator's return address reads as 0, which ends the walk.
  const zeros = unwinder.unwind({ ...base, stack: new Uint8Array(c.stack.length) });
  assert.deepEqual(walk(zeros), { ips: [c.ip], end: "complete" });
});

Deno.test("hostile CFI: 800-operation expressions in every frame stop at the work budget", () => {
  const base = 0x7f00_0000_0000;
  const sp = 0x7ffc_0000_0000;
  const retAddr = base + CODE_AT + CODE.rec + 0x0d; // after the recursive call
  const stack = new Uint8Array(2048 * 8);
  const dv = new DataView(stack.buffer);
  for (let i = 0; i < 2048; i++) dv.setBigUint64(8 * i, BigInt(retAddr), true);
  const walk = (fdeInstructions: Uint8Array) => {
    const elf = ElfFile.fromBytes(craftElf({ fdeInstructions }).bytes);
    const table = EhFrame.fromElf(elf)!;
    return new DwarfUnwinder().unwind({
      regs: { ip: base + CODE_AT + CODE.spin + 3, sp, bp: 0 },
      stack,
      stackBase: sp,
      moduleAt: (ip) => ip >= base && ip < base + 0x3000 ? { table, bias: base } : undefined,
    });
  };
  // With the CIE's plain rules the same stack is 128 frames deep: what stops the walk below is
  // the budget, not the stack.
  const plain = walk(new Uint8Array(0));
  assert.equal(plain.end, "truncated");
  assert.equal(plain.ips.length, 128);
  const hostile = walk(expressionBomb(800));
  assert.equal(hostile.end, "budget");
  // 17 expressions of 800 operations per frame: the 100k budget allows about seven frames.
  assert.ok(hostile.ips.length > 1 && hostile.ips.length < 16, `${hostile.ips.length} frames`);
  assert.deepEqual(hostile.ips.slice(1), new Array(hostile.ips.length - 1).fill(retAddr));
});
