import assert from "node:assert/strict";
import { demangle } from "./demangle.ts";

Deno.test("C++ Itanium names", () => {
  assert.equal(
    demangle("_ZNSt6vectorIiSaIiEE9push_backERKi"),
    "std::vector<int, std::allocator<int> >::push_back(int const&)",
  );
  assert.equal(demangle("_ZN3foo3barEv"), "foo::bar()");
  assert.equal(demangle("_Z3fooi"), "foo(int)");
  assert.equal(
    demangle("_ZNKSt3__16vectorIiNS_9allocatorIiEEE4sizeEv"),
    "std::__1::vector<int, std::__1::allocator<int> >::size() const",
  );
  assert.equal(demangle("_Z1fv.cold"), "f() [clone .cold]");
});

Deno.test("Rust legacy names lose the hash; v0 names demangle", () => {
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
    if (got !== `f<${i}>()`) assert.fail(`_Z1fILi${i}EEvv gave ${got}`);
  }
  assert.equal(demangle("_Z1fILi0EEvv"), "f<0>()");
  assert.equal(demangle(name), first);
});
