import assert from "node:assert/strict";
import type { FrameRef } from "../perfetto/profile_writer.ts";
import { Layout, PY_FILE_LEN, PY_NAME_LEN } from "../records/records.ts";
import { decodePyString, PythonCodes } from "./python_codes.ts";
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

Deno.test("python codes: one entry per process, address and fingerprint; lines from the table", () => {
  const L = Layout.rec_py_code;
  const record = (fp: number, name: string, table: number[]) => {
    const b = new Uint8Array(L.size);
    const dv = new DataView(b.buffer);
    dv.setUint32(L.tgid, 7, true);
    dv.setUint32(L.firstlineno, 10, true);
    dv.setUint32(L.code, 0x1000, true);
    dv.setUint32(L.fingerprint, fp, true);
    const n = new TextEncoder().encode(name);
    b.set(n, L.data);
    dv.setUint16(L.name_len, n.length, true);
    b[L.name_state] = 0x40 | 0x20 | (1 << 2);
    b.set(new TextEncoder().encode("x.py"), L.data + PY_NAME_LEN);
    dv.setUint16(L.file_len, 4, true);
    b[L.file_state] = 0x40 | 0x20 | (1 << 2);
    b.set(table, L.data + PY_NAME_LEN + PY_FILE_LEN);
    dv.setUint16(L.lines_len, table.length, true);
    dv.setUint32(L.lines_total, table.length, true);
    dv.setUint16(L.bytecode, 100, true);
    return dv;
  };
  const codes = new PythonCodes();
  // Two code units on line 11, then one with no columns on line 13.
  const table = [0x80 | (11 << 3) | 1, 0, 0, 0x80 | (13 << 3), 4];
  codes.add(record(1, "first_zq", table), 0);
  codes.add(record(1, "first_zq", table), 0); // told twice: the same
  codes.add(record(2, "second_zq", table), 0); // the address reused by another object
  assert.equal(codes.size, 2);
  const a = codes.get(7, 0x1000, 1, 0)!, b = codes.get(7, 0x1000, 2, 0)!;
  assert.equal(codes.get(8, 0x1000, 1, 0), undefined, "another process");
  assert.equal(codes.frameName(a, 100 + 2), "first_zq (x.py:11)");
  assert.equal(codes.frameName(b, 100 + 4), "second_zq (x.py:13)");
  assert.equal(codes.frameName(a, 100 - 2), "first_zq (x.py:10+?)", "not started: unknown line");
});
