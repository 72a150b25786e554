import assert from "node:assert/strict";
import type { FrameRef } from "../perfetto/profile_writer.ts";
import { decodePyString } from "./python_codes.ts";
import { APPROXIMATE, interleavePython, type PyFrameRef } from "./python_stack.ts";

const C = (name: string): FrameRef => ({ module: { key: "c", path: "/c" }, relPc: 0n, name });
const P = (name: string, entry = false): PyFrameRef => ({
  frame: { module: { key: "py", path: "/x.py" }, relPc: 0n, name },
  entry,
});
const EVAL = "_PyEval_EvalFrameDefault";
const names = (fs: FrameRef[]) => fs.map((f) => f.name);

Deno.test("python stack: each run of Python frames replaces the C loop that ran it", () => {
  // main → (C loop: mod, caller) → sorted (C) → (C loop: key)
  const native = [C("main"), C(EVAL), C("sorted"), C("call"), C(EVAL), C("leafC")];
  const py = [P("key", true), P("caller"), P("mod", true)];
  const r = interleavePython(native, py);
  assert.equal(r.exact, true);
  assert.deepEqual(names(r.frames), ["main", "mod", "caller", "sorted", "call", "key", "leafC"]);
});

Deno.test("python stack: runs that do not pair up are placed from the whole end, and marked", () => {
  // The inner C loop not seen (a sample as the call begins): the outer run pairs from the root.
  const r = interleavePython([C("main"), C(EVAL), C("sorted"), C("vectorcall")], [
    P("key", true),
    P("caller"),
    P("mod", true),
  ]);
  assert.equal(r.exact, false);
  assert.deepEqual(names(r.frames), [
    APPROXIMATE,
    "main",
    "mod",
    "caller",
    "sorted",
    "vectorcall",
    "[python frames whose C frames were not found]",
    "key",
  ]);
  // A native walk cut at its root: pair from the leaf, the outer runs go to the root.
  const cut = {
    module: { key: "[truncated]", path: "[truncated]" },
    relPc: 0n,
    name: "[truncated stack]",
  };
  const t = interleavePython([cut, C(EVAL), C("leafC")], [P("inner", true), P("outer", true)]);
  assert.deepEqual(names(t.frames), [
    "[truncated stack]",
    APPROXIMATE,
    "[python frames whose C frames were not found]",
    "outer",
    "inner",
    "leafC",
  ]);
  // Root-aligned left-overs go above the kernel's frames, not below them.
  const k = interleavePython(
    [C("main"), C(EVAL), C("vectorcall"), C("kfunc")],
    [P("key", true), P("mod", true)],
    undefined,
    1,
  );
  assert.deepEqual(names(k.frames), [
    APPROXIMATE,
    "main",
    "mod",
    "vectorcall",
    "[python frames whose C frames were not found]",
    "key",
    "kfunc",
  ]);
  // A note (the walk was cut) marks the root; no Python frames leaves the C ones.
  assert.deepEqual(names(interleavePython([C("a")], [], "[cut]").frames), ["[cut]", "a"]);
});

Deno.test("python stack: names in each of the interpreter's string kinds", () => {
  const ascii = 0x40 | 0x20 | (1 << 2);
  assert.equal(decodePyString(new TextEncoder().encode("outer_zq"), ascii), "outer_zq");
  assert.equal(decodePyString(new Uint8Array([0x63, 0xe9]), 0x20 | (1 << 2)), "cé");
  assert.equal(decodePyString(new Uint8Array([0x3b, 0x04, 0x41, 0x04]), 0x20 | (2 << 2)), "лс");
  assert.equal(decodePyString(new Uint8Array([0x00, 0xf6, 0x01, 0x00]), 0x20 | (4 << 2)), "😀");
  assert.equal(decodePyString(new Uint8Array([1, 2]), 0x20 | (3 << 2)), "", "no such kind");
});
