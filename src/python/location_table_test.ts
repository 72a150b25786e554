import assert from "node:assert/strict";
import { lineOf } from "./location_table.ts";

/** Every code object of a few stdlib modules, as Debian's python3.11 itself reads their lines. */
const DUMP = `
import json, dis, types, importlib
out = []
def walk(co):
    out.append({"t": co.co_linetable.hex(), "f": co.co_firstlineno,
                "n": len(co.co_code) // 2, "l": list(co.co_lines())})
    for c in co.co_consts:
        if isinstance(c, types.CodeType): walk(c)
for m in ["json.decoder", "json.encoder", "argparse", "asyncio.base_events"]:
    mod = importlib.import_module(m)
    walk(compile(open(mod.__file__).read(), mod.__file__, "exec"))
print(json.dumps(out))
`;

Deno.test("location table: every instruction's line, as CPython 3.11 reads it", async () => {
  const out = await new Deno.Command("/usr/bin/python3.11", { args: ["-c", DUMP] }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const codes = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    t: string;
    f: number;
    n: number;
    l: [number, number, number | null][];
  }[];
  assert.ok(codes.length > 300, `${codes.length} code objects`);
  let checked = 0;
  for (const c of codes) {
    const table = Uint8Array.from(c.t.match(/../g) ?? [], (h) => parseInt(h, 16));
    for (const [start, end, line] of c.l) {
      for (let b = start; b < end; b += 2) {
        assert.equal(lineOf(table, c.f, b / 2), line ?? undefined, `${c.t} @${b}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 30_000, `${checked} instructions`);
});

Deno.test("location table: a cut or malformed table answers nothing, in bounded work", () => {
  // Two entries: 2 units on line first+1 (one-line form, delta 1), then 1 unit with no columns.
  const table = new Uint8Array([0x80 | (11 << 3) | 1, 0, 0, 0x80 | (13 << 3), 4]);
  assert.equal(lineOf(table, 10, 0), 11);
  assert.equal(lineOf(table, 10, 1), 11);
  assert.equal(lineOf(table, 10, 2), 13, "+2 as a signed varint (4)");
  assert.equal(lineOf(table, 10, 3), undefined, "past the table");
  assert.equal(lineOf(table.subarray(0, 4), 10, 2), undefined, "its varint cut off");
  assert.equal(lineOf(new Uint8Array([0x05, 0x80]), 1, 0), undefined, "not at an entry");
  assert.equal(lineOf(new Uint8Array([0x80 | (15 << 3)]), 1, 0), undefined, "no location");
  // A varint that never ends stops at the table's end.
  assert.equal(
    lineOf(new Uint8Array([0x80 | (13 << 3), ...new Array(100).fill(0x7f)]), 1, 0),
    undefined,
  );
});
