import assert from "node:assert/strict";
import { ForwardReader, forwardRing, ForwardWriter } from "./forward_ring.ts";

/** A record of SIZE bytes whose every byte is TAG. */
function record(tag: number, size: number): Uint8Array {
  return new Uint8Array(size).fill(tag);
}

/** The tags of the 8-aligned records in BYTES, each checked whole. */
function tags(bytes: Uint8Array, sizes: Map<number, number>): number[] {
  const out: number[] = [];
  for (let at = 0; at < bytes.length;) {
    const tag = bytes[at];
    const size = sizes.get(tag)!;
    assert.ok(size, `a record starts with tag ${tag} at ${at}`);
    assert.ok(bytes.subarray(at, at + size).every((b) => b === tag), `record ${tag} whole`);
    out.push(tag);
    at += (size + 7) & ~7;
  }
  return out;
}

Deno.test("forward ring: batches come out whole and in order, across the ring's end", () => {
  const ring = forwardRing(256);
  const w = new ForwardWriter(ring);
  const r = new ForwardReader(ring);
  const sizes = new Map<number, number>();
  let tag = 1;
  for (let batch = 0; batch < 20; batch++) {
    const sent: number[] = [];
    for (let i = 0; i < 3; i++, tag = tag % 250 + 1) {
      const size = 16 + ((tag * 37) % 60);
      sizes.set(tag, size);
      w.push(record(tag, size), 0, size);
      sent.push(tag);
    }
    const b = w.take();
    assert.equal(b.overflow.length, 0, "the reader keeps up: nothing overflows");
    assert.deepEqual(tags(r.read(b), sizes), sent);
  }
  // 20 batches of ~150 bytes went round a 256-byte ring many times.
  assert.equal(w.overflowed, 0);
});

Deno.test("forward ring: a reader that is behind sends records to the overflow, in order", () => {
  const ring = forwardRing(128);
  const w = new ForwardWriter(ring);
  const r = new ForwardReader(ring);
  const sizes = new Map([[1, 48], [2, 48], [3, 48], [4, 8]]);
  w.push(record(1, 48), 0, 48);
  w.push(record(2, 48), 0, 48);
  const first = w.take(); // not read yet: its 96 bytes are still in use
  w.push(record(3, 48), 0, 48); // does not fit
  w.push(record(4, 8), 0, 8); // would fit, but must not pass record 3
  const second = w.take();
  assert.equal(w.overflowed, 2);
  assert.equal(second.parts.length, 0);
  assert.deepEqual(tags(r.read(first), sizes), [1, 2]);
  assert.deepEqual(tags(r.read(second), sizes), [3, 4]);
  // Space released: the ring takes records again.
  w.push(record(4, 8), 0, 8);
  const third = w.take();
  assert.equal(third.overflow.length, 0);
  assert.deepEqual(tags(r.read(third), sizes), [4]);
});

Deno.test("forward ring: a record never straddles the end (it starts the ring over)", () => {
  const ring = forwardRing(64);
  const w = new ForwardWriter(ring);
  const r = new ForwardReader(ring);
  const sizes = new Map([[1, 40], [2, 40]]);
  w.push(record(1, 40), 0, 40);
  assert.deepEqual(tags(r.read(w.take()), sizes), [1]);
  w.push(record(2, 40), 0, 40); // 24 bytes left before the end: it goes to the start
  const b = w.take();
  assert.equal(b.parts.length, 1);
  assert.equal(b.overflow.length, 0);
  assert.deepEqual(tags(r.read(b), sizes), [2]);
});
