import assert from "node:assert/strict";
import { demangle } from "./demangle.ts";
import { DEFAULT_LIMITS, demangleItanium } from "./itanium_demangler.ts";
import { demangleRustV0 } from "./rust_demangler.ts";
import { demanglingBomb } from "../../test/crafted_elf.ts";

Deno.test("C++ Itanium names, as c++filt prints them", () => {
  const cases: [string, string][] = [
    [
      "_ZNSt6vectorIiSaIiEE9push_backERKi",
      "std::vector<int, std::allocator<int> >::push_back(int const&)",
    ],
    ["_ZN3foo3barEv", "foo::bar()"],
    ["_Z3fooi", "foo(int)"],
    [
      "_ZNKSt3__16vectorIiNS_9allocatorIiEEE4sizeEv",
      "std::__1::vector<int, std::__1::allocator<int> >::size() const",
    ],
    ["_Z1fv.cold", "f() [clone .cold]"],
    ["_ZN1A1fEv.constprop.0.isra.0", "A::f() [clone .constprop.0] [clone .isra.0]"],
    ["_ZZ4mainENKUliE_clEi", "main::{lambda(int)#1}::operator()(int) const"],
    ["_Z1fIiEvT_", "void f<int>(int)"],
    ["_ZN12_GLOBAL__N_13fooEv", "(anonymous namespace)::foo()"],
    ["_ZTV3Foo", "vtable for Foo"],
    ["_ZThn8_N3Foo3barEv", "non-virtual thunk to Foo::bar()"],
    ["_Z1fRA10_i", "f(int (&) [10])"],
    ["_Z1fM3FooFviE", "f(void (Foo::*)(int))"],
    ["_Z1fPFPFivEvE", "f(int (*(*)())())"],
    ["_Z3fooIJidEEvDpT_", "void foo<int, double>(int, double)"],
    ["_ZN3fooB5cxx11Ev", "foo[abi:cxx11]()"],
    ["_Z1fIiEDTplfp_Li1EET_", "decltype ({parm#1}+(1)) f<int>(int)"],
    [
      "_ZStlsISt11char_traitsIcEERSt13basic_ostreamIcT_ES5_PKc",
      "std::basic_ostream<char, std::char_traits<char> >& std::operator<< " +
      "<std::char_traits<char> >(std::basic_ostream<char, std::char_traits<char> >&, char const*)",
    ],
  ];
  for (const [mangled, want] of cases) assert.equal(demangle(mangled), want, mangled);
});

Deno.test("Rust legacy names lose the hash; v0 names print without crate hashes", () => {
  assert.equal(demangle("_ZN4core3fmt5write17h0123456789abcdefE"), "core::fmt::write");
  assert.equal(
    demangle("_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h1234567890abcdefE"),
    "std::rt::lang_start::{{closure}}",
  );
  assert.equal(
    demangle(
      "_ZN5alloc7raw_vec19RawVec$LT$T$C$A$GT$7reserve21do_reserve_and_handle17h2b3c0d7e1a7c4d9fE",
    ),
    "alloc::raw_vec::RawVec<T,A>::reserve::do_reserve_and_handle",
  );
  assert.equal(demangle("_RNvCs15kBYyAo9fc_7mycrate7example"), "mycrate::example");
  assert.equal(demangle("_RNvNtCs1234_7mycrate3foo3bar"), "mycrate::foo::bar");
  assert.equal(demangle("_RINvNtC3std3mem8align_ofdE"), "std::mem::align_of::<f64>");
  // Names of rustc's own libraries, checked against c++filt (crate hashes removed).
  const cases: [string, string][] = [
    [
      "_RNvXs_NtCsgEmfK2I1SDS_4core3anyDNtB4_3AnyEL_NtNtB6_3fmt5Debug3fmt",
      "<dyn core::any::Any as core::fmt::Debug>::fmt",
    ],
    [
      "_RINvNtNtCsjrHSEGnQ3l9_3std3sys9backtrace28___rust_begin_short_backtraceFEuuECs6GmmlP4bgsG_1r",
      "std::sys::backtrace::__rust_begin_short_backtrace::<fn(), ()>",
    ],
    [
      "_RNvXs1h_NtCsgEmfK2I1SDS_4core3fmtQShNtB6_5Debug3fmtCsgY6Mt91CT9J_14rustc_demangle",
      "<&mut [u8] as core::fmt::Debug>::fmt",
    ],
    ["_RNvXs_Cs6GmmlP4bgsG_1rINtB4_3FoohENtB4_2Tr2go", "<r::Foo<u8> as r::Tr>::go"],
    [
      "_RNSNvYNCINvNtCsjrHSEGnQ3l9_3std2rt10lang_startuE0INtNtNtCsgEmfK2I1SDS_4core3ops8function" +
      "6FnOnceuE9call_once6vtableCs6GmmlP4bgsG_1r",
      "<std::rt::lang_start<()>::{closure#0} as core::ops::function::FnOnce<()>>::call_once" +
      "::{shim:vtable#0}",
    ],
  ];
  for (const [mangled, want] of cases) assert.equal(demangle(mangled), want, mangled);
});

Deno.test("plain C names and garbage come back unchanged", () => {
  for (const name of ["main", "malloc", "__libc_start_main", "_start", "_init", "", "x"]) {
    assert.equal(demangle(name), name);
  }
  for (
    const name of ["_Z", "_R", "_ZN", "_Zfoo", "_RNv", "_Rand", "_ZZZZ", "_Z" + "9".repeat(40)]
  ) {
    assert.equal(demangle(name), name);
  }
  const long = "_Z" + "N3foo".repeat(20000);
  assert.equal(demangle(long), long);
});

Deno.test("repeated calls answer from the cache with the same result", () => {
  const name = "_ZN3foo3bazEv";
  const first = demangle(name);
  assert.equal(first, "foo::baz()");
  for (let i = 0; i < 1000; i++) assert.equal(demangle(name), first);
  // More distinct names than the cache holds (65536) still demangle correctly, and the first ones
  // again after they were evicted.
  for (let i = 0; i < 70_000; i++) {
    const got = demangle(`_Z1fILi${i}EEvv`);
    if (got !== `void f<${i}>()`) assert.fail(`_Z1fILi${i}EEvv gave ${got}`);
  }
  assert.equal(demangle("_Z1fILi0EEvv"), "void f<0>()");
  assert.equal(demangle(name), first);
});

Deno.test("a C++ back-reference bomb stays mangled, within the step budget", () => {
  // Three levels demangle normally, as c++filt prints them.
  assert.equal(
    demangle(demanglingBomb(2)),
    "f(a<int, int>, a<a<int, int>, a<int, int> >, a<a<a<int, int>, a<int, int> >, " +
      "a<a<int, int>, a<int, int> > >)",
  );
  // 40 levels: 418 bytes that would print 2^40 times over.
  const bomb = demanglingBomb(40);
  assert.ok(bomb.length < 500);
  const stats = { steps: 0, nodes: 0 };
  assert.equal(demangleItanium(bomb, DEFAULT_LIMITS, stats), undefined);
  assert.ok(stats.steps <= DEFAULT_LIMITS.maxSteps, `${stats.steps} steps`);
  assert.ok(stats.nodes <= 4 * bomb.length + 256, `${stats.nodes} nodes`);
  assert.equal(demangle(bomb), bomb);
  // A tighter output cap stops it earlier still.
  const tight = { ...DEFAULT_LIMITS, maxOutput: 256 };
  const s2 = { steps: 0, nodes: 0 };
  assert.equal(demangleItanium(bomb, tight, s2), undefined);
  assert.ok(s2.steps < stats.steps);
});

/** <base-62-number> as v0 writes it: "_" is 0, n > 0 is n - 1 in base 62 then "_". */
function base62(n: number): string {
  if (n === 0) return "_";
  const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let v = n - 1;
  let out = "";
  do {
    out = digits[v % 62] + out;
    v = Math.floor(v / 62);
  } while (v > 0);
  return out + "_";
}

/** c::f::<T0, T1, …>, each T a tuple of the previous one twice (back-references to it). */
function rustBomb(levels: number): string {
  let m = "_RINvCs1_1c1f";
  let prev = m.length; // where the previous level's type starts
  m += "ThhE";
  for (let k = 0; k < levels; k++) {
    const back = `B${base62(prev - 2)}`; // offsets count from after "_R"
    prev = m.length;
    m += `T${back}${back}E`;
  }
  return m + "E";
}

Deno.test("a Rust v0 back-reference bomb stays mangled, within the step budget", () => {
  assert.equal(
    demangle(rustBomb(2)),
    "c::f::<(u8, u8), ((u8, u8), (u8, u8)), (((u8, u8), (u8, u8)), ((u8, u8), (u8, u8)))>",
  );
  const bomb = rustBomb(40);
  assert.ok(bomb.length < 500);
  const stats = { steps: 0 };
  assert.equal(demangleRustV0(bomb, DEFAULT_LIMITS, stats), undefined);
  assert.ok(stats.steps <= DEFAULT_LIMITS.maxSteps, `${stats.steps} steps`);
  assert.equal(demangle(bomb), bomb);
});

Deno.test("agrees with c++filt on the exported C++ names of this machine's libraries", async () => {
  const libs = [
    "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
    ...[...Deno.readDirSync("/usr/lib/x86_64-linux-gnu")]
      .filter((e) => /^libLLVM-\d+\.so\.1$/.test(e.name))
      .map((e) => `/usr/lib/x86_64-linux-gnu/${e.name}`),
  ];
  const names = new Set<string>();
  for (const lib of libs) {
    const out = await new Deno.Command("nm", {
      args: ["-D", "--defined-only", "--without-symbol-versions", lib],
      stdout: "piped",
    }).output();
    assert.ok(out.success, `nm ${lib}`);
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const name = line.split(" ").pop()!;
      if (name.startsWith("_Z")) names.add(name);
    }
  }
  const list = [...names];
  assert.ok(list.length > 3000, `${list.length} names`);
  const filt = new Deno.Command("c++filt", { stdin: "piped", stdout: "piped" }).spawn();
  const output = filt.output(); // read while writing: the pipes are smaller than the input
  const writer = filt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(list.join("\n") + "\n"));
  await writer.close();
  const want = new TextDecoder().decode((await output).stdout).split("\n");
  const differ: string[] = [];
  for (let i = 0; i < list.length; i++) {
    if (demangle(list[i]) !== want[i]) differ.push(`${list[i]}\n  want ${want[i]}`);
  }
  // A handful of c++filt's own quirks are not reproduced.
  assert.ok(
    differ.length <= list.length / 1000,
    `${differ.length} of ${list.length} differ:\n${differ.slice(0, 5).join("\n")}`,
  );
});
