import assert from "node:assert/strict";
import { CommInterner } from "./comm_interner.ts";

const encoder = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });

/** A record-like buffer holding `comms` as 16-byte NUL-padded slots at 16-byte strides. */
class Slots {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  constructor(n: number) {
    this.buffer = new ArrayBuffer(n * 16 + 16);
    this.bytes = new Uint8Array(this.buffer);
    this.words = new Int32Array(this.buffer);
  }
  put(slot: number, raw: Uint8Array | string): number {
    const off = slot * 16;
    const b = typeof raw === "string" ? encoder.encode(raw) : raw;
    assert.ok(b.length <= 16);
    this.bytes.fill(0, off, off + 16);
    this.bytes.set(b, off);
    return off;
  }
  intern(c: CommInterner, slot: number, raw: Uint8Array | string): number {
    return c.intern(this.words, this.bytes, this.put(slot, raw));
  }
}

Deno.test("same 16 bytes give the same id, different bytes a different id", () => {
  const c = new CommInterner();
  const s = new Slots(8);
  const bash = s.intern(c, 0, "bash");
  assert.equal(bash, 0);
  // Same bytes at another offset of the buffer.
  assert.equal(s.intern(c, 3, "bash"), bash);
  const sh = s.intern(c, 1, "sh");
  assert.equal(sh, 1);
  assert.equal(s.intern(c, 2, "bash2"), 2);
  // Differs only in the last byte of the 16.
  assert.equal(s.intern(c, 4, "abcdefghijklmno"), 3);
  assert.equal(s.intern(c, 5, "abcdefghijklmnp"), 4);
  assert.equal(s.intern(c, 6, "abcdefghijklmno"), 3);
  assert.equal(c.size, 5);
  assert.deepEqual(c.strings, ["bash", "sh", "bash2", "abcdefghijklmno", "abcdefghijklmnp"]);
  assert.deepEqual(c.bytes[0], encoder.encode("bash"));
  assert.deepEqual(c.bytes[3], encoder.encode("abcdefghijklmno"));
});

Deno.test("a comm filling all 16 bytes (no NUL) stops at 16", () => {
  const c = new CommInterner();
  const s = new Slots(2);
  // Slot 1 follows directly: its bytes must not leak into slot 0's string.
  s.put(1, "ZZZZ");
  const id = s.intern(c, 0, "0123456789abcdef");
  assert.equal(c.strings[id], "0123456789abcdef");
  assert.equal(c.bytes[id].length, 16);
});

Deno.test("growth past the initial table keeps every id stable and every string right", () => {
  const c = new CommInterner(16);
  const n = 5000;
  const s = new Slots(n);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(s.intern(c, i, `task-${i}`));
  assert.deepEqual(ids, Array.from({ length: n }, (_, i) => i));
  assert.equal(c.size, n);
  // Look everything up again, in reverse, after all the growth.
  for (let i = n - 1; i >= 0; i--) {
    assert.equal(c.intern(s.words, s.bytes, i * 16), i, `task-${i}`);
    assert.equal(c.strings[i], `task-${i}`);
    assert.deepEqual(c.bytes[i], encoder.encode(`task-${i}`));
  }
  assert.equal(c.size, n);
  assert.equal(c.strings.length, n);
  assert.equal(c.bytes.length, n);
});

Deno.test("growth with the default table size too", () => {
  const c = new CommInterner();
  const s = new Slots(1);
  for (let i = 0; i < 5000; i++) assert.equal(s.intern(c, 0, `kworker/${i}`), i);
  for (let i = 0; i < 5000; i++) assert.equal(s.intern(c, 0, `kworker/${i}`), i);
  assert.equal(c.size, 5000);
  assert.equal(c.strings[4321], "kworker/4321");
});

Deno.test("internString matches intern of the same raw bytes", () => {
  const c = new CommInterner();
  const s = new Slots(4);
  const a = c.internString("systemd");
  assert.equal(s.intern(c, 0, "systemd"), a);
  const b = s.intern(c, 1, "kthreadd");
  assert.equal(c.internString("kthreadd"), b);
  // Longer than 15 characters: truncated to 15 as the kernel does.
  const long = c.internString("a-very-long-process-name");
  assert.equal(c.strings[long], "a-very-long-pro");
  assert.equal(s.intern(c, 2, "a-very-long-pro"), long);
  // Multi-byte UTF-8.
  const u = c.internString("café");
  assert.equal(s.intern(c, 3, "café"), u);
  assert.equal(c.strings[u], "café");
  assert.equal(c.internString(""), c.internString(""));
  assert.equal(c.size, 5);
});

Deno.test("invalid UTF-8 gives a valid UTF-8 bytes entry", () => {
  const c = new CommInterner();
  const s = new Slots(3);
  const raw = new Uint8Array([0x61, 0xff, 0xfe, 0x62, 0xc3]); // "a", 2 bad bytes, "b", cut 2-byte seq
  const id = s.intern(c, 0, raw);
  const text = strict.decode(c.bytes[id]);
  assert.equal(text, c.strings[id]);
  assert.ok(text.startsWith("a"));
  assert.ok(text.includes("b"));
  assert.ok(text.includes("\ufffd"));
  // A multi-byte character cut by the 16-byte limit.
  const cut = new Uint8Array(16);
  cut.set(encoder.encode("abcdefghijklmn"), 0);
  cut.set([0xe6, 0x97], 14); // first two bytes of a three-byte character
  const id2 = s.intern(c, 1, cut);
  assert.notEqual(id2, id);
  assert.equal(strict.decode(c.bytes[id2]), "abcdefghijklmn\ufffd");
  // The same invalid bytes again map to the same id.
  assert.equal(s.intern(c, 2, raw), id);
});
