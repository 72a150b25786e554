import assert from "node:assert/strict";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { ProtoWriter, putVarint, WireType } from "./proto_writer.ts";

function bytesOf(fn: (w: ProtoWriter) => void, initialSize?: number): Uint8Array {
  const w = new ProtoWriter(initialSize);
  fn(w);
  return w.take();
}

const BOUNDARIES = [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1];

Deno.test("varint matches protobuf-es uint64 at the boundaries", () => {
  for (const v of BOUNDARIES) {
    const expected = new BinaryWriter().uint64(v).finish();
    assert.deepEqual(bytesOf((w) => w.varint(v)), expected, `varint(${v})`);
    assert.deepEqual(bytesOf((w) => w.varintBig(BigInt(v))), expected, `varintBig(${v})`);
    assert.deepEqual(bytesOf((w) => w.int(v)), expected, `int(${v})`);
  }
  // Concrete bytes for a few, independent of the reference implementation.
  assert.deepEqual([...bytesOf((w) => w.varint(0))], [0x00]);
  assert.deepEqual([...bytesOf((w) => w.varint(127))], [0x7f]);
  assert.deepEqual([...bytesOf((w) => w.varint(128))], [0x80, 0x01]);
  assert.deepEqual([...bytesOf((w) => w.varint(300))], [0xac, 0x02]);
  assert.equal(bytesOf((w) => w.varint(2 ** 53 - 1)).length, 8);
  assert.equal(bytesOf((w) => w.varint(2 ** 32)).length, 5);
});

Deno.test("varint32 matches protobuf-es uint32 below 2^31", () => {
  for (const v of [0, 127, 128, 16384, 2 ** 31 - 1]) {
    assert.deepEqual(bytesOf((w) => w.varint32(v)), new BinaryWriter().uint32(v).finish());
  }
});

Deno.test("negative int is ten-byte two's complement like int64 and int32", () => {
  for (const v of [-1, -2, -128, -(2 ** 31), -(2 ** 53 - 1)]) {
    const got = bytesOf((w) => w.int(v));
    assert.equal(got.length, 10, `int(${v}) length`);
    assert.deepEqual(got, new BinaryWriter().int64(v).finish(), `int(${v})`);
    if (v >= -(2 ** 31)) assert.deepEqual(got, new BinaryWriter().int32(v).finish());
    assert.equal(new BinaryReader(got).int64(), BigInt(v));
  }
  assert.deepEqual(
    [...bytesOf((w) => w.int(-1))],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  );
});

Deno.test("varintBig of 2^64-1 and of negatives wraps to 64 bits", () => {
  const max = 2n ** 64n - 1n;
  const got = bytesOf((w) => w.varintBig(max));
  assert.deepEqual(
    [...got],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  );
  assert.deepEqual(got, new BinaryWriter().uint64(max).finish());
  assert.deepEqual(bytesOf((w) => w.varintBig(-1n)), got);
  assert.deepEqual(
    bytesOf((w) => w.varintBig(2n ** 60n + 7n)),
    new BinaryWriter().uint64(2n ** 60n + 7n).finish(),
  );
});

Deno.test("fields: tags and values match protobuf-es", () => {
  const got = bytesOf((w) => {
    w.fieldVarint(1, 150);
    w.fieldInt(2, -5);
    w.fieldVarint(100, 2 ** 40);
    w.fieldBytes(3, new Uint8Array([1, 2, 3]));
    w.tag(4, WireType.Fixed32);
  });
  const expected = new BinaryWriter()
    .tag(1, 0).uint64(150)
    .tag(2, 0).int64(-5)
    .tag(100, 0).uint64(2 ** 40)
    .tag(3, 2).bytes(new Uint8Array([1, 2, 3]))
    .tag(4, 5)
    .finish();
  assert.deepEqual(got, expected);
  assert.deepEqual([...got.subarray(0, 3)], [0x08, 0x96, 0x01]);
});

/** The protobuf-es encoding of field 5 holding `len` bytes of payload. */
function refNested(field: number, payload: Uint8Array): Uint8Array {
  return new BinaryWriter().tag(field, 2).bytes(payload).finish();
}

function payloadOf(len: number): Uint8Array {
  const p = new Uint8Array(len);
  for (let i = 0; i < len; i++) p[i] = (i * 31 + 7) & 0xff;
  return p;
}

Deno.test("begin/end: nested lengths 0, 127, 128, 300, 20000 are canonical", () => {
  for (const len of [0, 1, 127, 128, 300, 16383, 16384, 20000]) {
    const payload = payloadOf(len);
    // Small initial buffer so the shift path also has to grow the buffer.
    const got = bytesOf((w) => {
      w.fieldVarint(1, 9);
      const m = w.begin(5);
      w.ensure(len);
      w.buf.set(payload, w.pos);
      w.pos += len;
      w.end(m);
      w.fieldVarint(2, 3);
    }, 4);
    const expected = new Uint8Array([
      ...new BinaryWriter().tag(1, 0).uint64(9).finish(),
      ...refNested(5, payload),
      ...new BinaryWriter().tag(2, 0).uint64(3).finish(),
    ]);
    assert.equal(got.length, expected.length, `length for ${len}`);
    assert.deepEqual(got, expected, `nested ${len}`);
  }
});

Deno.test("begin/end: nested inside nested, both needing a shift", () => {
  const inner = payloadOf(300);
  const got = bytesOf((w) => {
    const outer = w.begin(1);
    w.fieldVarint(7, 42);
    const mid = w.begin(2);
    const m = w.begin(3);
    w.ensure(inner.length);
    w.buf.set(inner, w.pos);
    w.pos += inner.length;
    w.end(m);
    w.fieldBytes(4, payloadOf(200));
    w.end(mid);
    const empty = w.begin(6);
    w.end(empty);
    w.end(outer);
  }, 8);
  const innerMsg = new BinaryWriter()
    .tag(3, 2).bytes(inner)
    .tag(4, 2).bytes(payloadOf(200))
    .finish();
  const outerMsg = new BinaryWriter()
    .tag(7, 0).uint64(42)
    .tag(2, 2).bytes(innerMsg)
    .tag(6, 2).bytes(new Uint8Array(0))
    .finish();
  assert.deepEqual(got, refNested(1, outerMsg));
  // Decode it back too.
  const r = new BinaryReader(got);
  assert.deepEqual(r.tag(), [1, 2]);
  const o = new BinaryReader(r.bytes());
  assert.deepEqual(o.tag(), [7, 0]);
  assert.equal(o.uint32(), 42);
  assert.deepEqual(o.tag(), [2, 2]);
  const mid = new BinaryReader(o.bytes());
  assert.deepEqual(mid.tag(), [3, 2]);
  assert.deepEqual(mid.bytes(), inner);
  assert.deepEqual(mid.tag(), [4, 2]);
  assert.equal(mid.bytes().length, 200);
  assert.equal(mid.pos, mid.len);
  assert.deepEqual(o.tag(), [6, 2]);
  assert.equal(o.bytes().length, 0);
  assert.equal(o.pos, o.len);
  assert.equal(r.pos, r.len);
});

Deno.test("fieldString: multi-byte UTF-8 and a length needing a shift", () => {
  for (
    const s of ["", "abc", "héllo wörld", "日本語", "emoji 🚀 ok", "ü".repeat(100), "𝄞".repeat(50)]
  ) {
    const got = bytesOf((w) => w.fieldString(9, s), 2);
    assert.deepEqual(got, new BinaryWriter().tag(9, 2).string(s).finish(), JSON.stringify(s));
    const r = new BinaryReader(got);
    r.tag();
    assert.equal(r.string(), s);
  }
  // 100 × "ü" is 200 bytes: the length takes two bytes.
  assert.deepEqual([...bytesOf((w) => w.fieldString(9, "ü".repeat(100))).subarray(0, 3)], [
    0x4a,
    0xc8,
    0x01,
  ]);
});

Deno.test("take() returns a copy and resets the writer", () => {
  const w = new ProtoWriter(16);
  w.fieldVarint(1, 1);
  const first = w.take();
  assert.deepEqual([...first], [0x08, 0x01]);
  assert.equal(w.pos, 0);
  assert.deepEqual([...w.take()], []);
  w.fieldVarint(2, 2);
  const second = w.take();
  assert.deepEqual([...second], [0x10, 0x02]);
  // The first result is not overwritten by later writes.
  assert.deepEqual([...first], [0x08, 0x01]);
});

Deno.test("ensure grows past the initial size and keeps the content", () => {
  const w = new ProtoWriter(1);
  for (let i = 0; i < 1000; i++) w.varint32(i);
  const r = new BinaryReader(w.take());
  for (let i = 0; i < 1000; i++) assert.equal(r.uint32(), i);
  assert.equal(r.pos, r.len);
});

Deno.test("varint and int: the 32-bit-word paths match the BigInt encoding bit for bit", () => {
  const reference = (v: number) => {
    const w = new ProtoWriter(16);
    w.varintBig(BigInt(v));
    return w.take();
  };
  const values = [0, 1, 127, 128, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 - 1];
  for (let bits = 33; bits <= 53; bits++) values.push(2 ** bits - 1, 2 ** (bits - 1) + 12345);
  // A fixed pseudo-random spread over every width (deterministic, so a failure repeats).
  let x = 0x9e3779b9;
  for (let i = 0; i < 20000; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    values.push(Math.floor((x / 2 ** 32) * 2 ** (1 + (i % 53))));
  }
  for (const v of values) {
    const w = new ProtoWriter(4);
    w.varint(v);
    assert.deepEqual(w.take(), reference(v), `varint(${v})`);
    const b = new Uint8Array(12);
    assert.deepEqual(b.subarray(0, putVarint(b, 0, v)), reference(v), `putVarint(${v})`);
    for (const s of v === 0 ? [0] : [v, -v]) {
      const i = new ProtoWriter(4);
      i.int(s);
      assert.deepEqual(i.take(), reference(s), `int(${s})`);
    }
  }
});
