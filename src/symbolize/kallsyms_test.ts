import assert from "node:assert/strict";
import { Kallsyms, KallsymsError } from "./kallsyms.ts";

const TEXT = [
  "0000000000000000 A fixed_percpu_data",
  "ffffffff81000000 T _stext",
  "ffffffff81000000 T _text",
  "ffffffff81000000 T startup_64",
  "ffffffff81000100 t local_fn",
  "ffffffff81000100 W weak_alias",
  "ffffffff81000100 w local_weak",
  "ffffffff81000200 T _etext",
  "ffffffff81001000 T _sinittext",
  "ffffffff81001000 T init_fn",
  "ffffffff81001080 T _einittext",
  "ffffffff81002000 D some_data",
  "ffffffffc0001000 t mod_a_fn\t[mod_a]",
  "ffffffffc0001040 t mod_a_last\t[mod_a]",
  "ffffffffc0001800 t mod_b_fn\t[mod_b]",
  "ffffffffc0001810 d mod_b_data\t[mod_b]",
  "ffffffffc0005040 t lonely\t[mod_c]",
  "",
].join("\n");

Deno.test("lookup picks the best alias and offsets within text symbols", () => {
  const k = Kallsyms.parse(TEXT);
  assert.equal(k.restricted, false);
  assert.equal(k.size, 7);
  assert.deepEqual(k.lookup(0xffffffff81000000n), { name: "startup_64", offset: 0n });
  assert.deepEqual(k.lookup(0xffffffff810000ffn), { name: "startup_64", offset: 0xffn });
  // W beats t and w at the same address.
  assert.deepEqual(k.lookup(0xffffffff81000150n), { name: "weak_alias", offset: 0x50n });
  assert.deepEqual(k.lookup(0xffffffff81001000n), { name: "init_fn", offset: 0n });
  assert.deepEqual(k.lookup(0xffffffff8100107fn), { name: "init_fn", offset: 0x7fn });
});

Deno.test("end markers and non-text symbols bound text but never name it", () => {
  const k = Kallsyms.parse(TEXT);
  assert.equal(k.lookup(0xffffffff811ffffffn), undefined);
  assert.equal(k.lookup(0xffffffff81000200n), undefined, "_etext");
  assert.equal(k.lookup(0xffffffff81000fffn), undefined, "between _etext and _sinittext");
  assert.equal(k.lookup(0xffffffff81001080n), undefined, "_einittext");
  assert.equal(k.lookup(0xffffffff81002000n), undefined, "data");
  assert.equal(k.lookup(0xffffffff80ffffffn), undefined, "below the first symbol");
  assert.equal(k.lookup(0n), undefined, "per-CPU symbol at 0 is not text");
});

Deno.test("module symbols carry the module and end at their region's next symbol", () => {
  const k = Kallsyms.parse(TEXT);
  assert.deepEqual(k.lookup(0xffffffffc0001010n), {
    name: "mod_a_fn",
    module: "mod_a",
    offset: 0x10n,
  });
  assert.deepEqual(k.lookup(0xffffffffc0001041n), {
    name: "mod_a_last",
    module: "mod_a",
    offset: 1n,
  });
  // mod_a_last's guessed page-long extent is cut where mod_b starts.
  assert.deepEqual(k.lookup(0xffffffffc0001800n), {
    name: "mod_b_fn",
    module: "mod_b",
    offset: 0n,
  });
  assert.equal(k.lookup(0xffffffffc0001810n), undefined, "mod_b_data bounds mod_b_fn");
  assert.equal(k.lookup(0xffffffffc00017ffn)?.name, "mod_a_last");
  // The last symbol of a region: up to the next page boundary plus one page, like perf.
  assert.equal(k.lookup(0xffffffffc0006fffn)?.name, "lonely");
  assert.equal(k.lookup(0xffffffffc0007000n), undefined);
});

Deno.test("all-zero addresses mean restricted, and then nothing is looked up", () => {
  const k = Kallsyms.parse(
    "0000000000000000 T _stext\n0000000000000000 T schedule\n0000000000000000 t x\t[m]\n",
  );
  assert.equal(k.restricted, true);
  assert.equal(k.size, 0);
  assert.equal(k.lookup(0n), undefined);
  assert.equal(k.lookup(0xffffffff81000000n), undefined);

  const empty = Kallsyms.parse("");
  assert.equal(empty.restricted, false);
  assert.equal(empty.lookup(0xffffffff81000000n), undefined);
});

Deno.test("malformed lines throw KallsymsError naming the line", () => {
  assert.throws(() => Kallsyms.parse("ffffffff81000000 T\n"), {
    name: "KallsymsError",
    message: /"ffffffff81000000 T"/,
  });
  assert.throws(() => Kallsyms.parse("zz T foo\n"), KallsymsError);
  assert.throws(() => Kallsyms.parse("ffffffff81000000 T foo [mod\n"), KallsymsError);
  assert.throws(() => Kallsyms.parse("ffffffff81000000 T foo bar\n"), KallsymsError);
  assert.throws(() => Kallsyms.parse("1ffffffff81000000 T foo\n"), KallsymsError);
});

Deno.test("this machine's /proc/kallsyms: schedule looks up to itself", () => {
  const text = Deno.readTextFileSync("/proc/kallsyms");
  const k = Kallsyms.parse(text);
  const m = /^([0-9a-f]+) [Tt] schedule$/m.exec(text);
  assert.ok(m, "schedule is in /proc/kallsyms");
  const addr = BigInt("0x" + m[1]);
  if (addr === 0n) {
    // Not root, or kptr_restrict: the kernel hides addresses.
    assert.equal(k.restricted, true);
    assert.equal(k.lookup(addr), undefined);
    return;
  }
  assert.equal(k.restricted, false);
  assert.ok(k.size > 1000, `${k.size} text symbols`);
  assert.deepEqual(k.lookup(addr), { name: "schedule", offset: 0n });
  assert.deepEqual(k.lookup(addr + 4n), { name: "schedule", offset: 4n });
  assert.deepEqual(Kallsyms.load().lookup(addr), { name: "schedule", offset: 0n });
});
