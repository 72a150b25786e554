import assert from "node:assert/strict";
import { type DwarfExprContext, DwarfExprError, evaluateDwarfExpr } from "./dwarf_expr.ts";

const M64 = (1n << 64n) - 1n;

/** Registers and an 8-byte-per-slot memory for the tests; anything else is unreadable. */
function ctx(regs: Record<number, bigint>, mem: Record<string, bigint> = {}): DwarfExprContext {
  return {
    reg: (n) => regs[n],
    read: (addr, size) => {
      const v = mem[addr.toString()];
      if (v === undefined) return undefined;
      return size === 8 ? v : v & ((1n << BigInt(size * 8)) - 1n);
    },
  };
}

const NONE = ctx({});
const ev = (bytes: number[], c = NONE, initial?: bigint[]) =>
  evaluateDwarfExpr(new Uint8Array(bytes), c, { initial });

function fails(bytes: number[], reason: string, c = NONE, budget?: number): DwarfExprError {
  let err: unknown;
  try {
    evaluateDwarfExpr(new Uint8Array(bytes), c, { budget });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DwarfExprError, `expected DwarfExprError, got ${err}`);
  assert.equal(err.reason, reason, err.message);
  return err;
}

// glibc's PLT FDE: DW_OP_breg7 (rsp) 8; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and;
// DW_OP_lit11; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus. In words: CFA = rsp + 8, plus 8 more
// once rip is past the stub's push (offset 11 of its 16 bytes).
const PLT = (lit: number) => [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, lit, 0x2a, 0x33, 0x24, 0x22];

Deno.test("PLT CFA expression equals hand computation", () => {
  const cases: [bigint, bigint, number, bigint][] = [
    // [rsp, rip, literal, expected CFA]
    [0x7ffc_1000n, 0x401020n, 0x3b, 0x7ffc_1008n], // offset 0 < 11
    [0x7ffc_1000n, 0x40102an, 0x3b, 0x7ffc_1008n], // offset 10 < 11
    [0x7ffc_1000n, 0x40102bn, 0x3b, 0x7ffc_1010n], // offset 11 >= 11
    [0x7ffc_1000n, 0x40102fn, 0x3b, 0x7ffc_1010n], // offset 15
    [0x7ffc_2ff8n, 0x7f12_3456_789an, 0x3a, 0x7ffc_3008n], // lit10 variant, offset 10 >= 10
    [0x7ffc_2ff8n, 0x7f12_3456_7899n, 0x3a, 0x7ffc_3000n], // offset 9 < 10
  ];
  for (const [rsp, rip, lit, want] of cases) {
    assert.equal(ev(PLT(lit), ctx({ 7: rsp, 16: rip })), want, `rsp ${rsp} rip ${rip}`);
  }
});

Deno.test("literals and constants of every width and sign", () => {
  assert.equal(ev([0x30]), 0n); // lit0
  assert.equal(ev([0x4f]), 31n); // lit31
  assert.equal(ev([0x08, 0xff]), 255n); // const1u
  assert.equal(ev([0x09, 0xff]), M64); // const1s -1
  assert.equal(ev([0x0a, 0x34, 0x12]), 0x1234n); // const2u
  assert.equal(ev([0x0b, 0xfe, 0xff]), M64 - 1n); // const2s -2
  assert.equal(ev([0x0c, 0x78, 0x56, 0x34, 0x12]), 0x12345678n); // const4u
  assert.equal(ev([0x0d, 0x00, 0x00, 0x00, 0x80]), u(-0x80000000n)); // const4s
  assert.equal(ev([0x0e, 1, 2, 3, 4, 5, 6, 7, 0x88]), 0x8807060504030201n); // const8u
  assert.equal(ev([0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), M64); // const8s -1
  assert.equal(ev([0x10, 0xe5, 0x8e, 0x26]), 624485n); // constu
  assert.equal(ev([0x11, 0xc0, 0xbb, 0x78]), u(-123456n)); // consts
  assert.equal(ev([0x11, 0x7f]), M64); // consts -1
  assert.equal(ev([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), M64);
});

function u(v: bigint): bigint {
  return BigInt.asUintN(64, v);
}

Deno.test("register operands: breg0..31 and bregx", () => {
  const c = ctx({ 0: 100n, 6: 0x7ffd_0000n, 31: 5n, 40: 1000n });
  assert.equal(ev([0x70, 0x05], c), 105n); // breg0 +5
  assert.equal(ev([0x76, 0x78], c), 0x7ffc_fff8n); // breg6 -8
  assert.equal(ev([0x8f, 0x00], c), 5n); // breg31
  assert.equal(ev([0x92, 40, 0x7e], c), 998n); // bregx 40, -2
  const e = fails([0x73, 0x00], "register", c); // breg3: not known
  assert.equal(e.register, 3);
});

Deno.test("stack operations", () => {
  assert.equal(ev([0x31, 0x12, 0x22]), 2n); // dup
  assert.equal(ev([0x31, 0x32, 0x13]), 1n); // drop
  assert.equal(ev([0x31, 0x32, 0x14]), 1n); // over
  assert.equal(ev([0x31, 0x32, 0x33, 0x15, 0x02]), 1n); // pick 2
  assert.equal(ev([0x31, 0x32, 0x16]), 1n); // swap
  assert.equal(ev([0x31, 0x32, 0x16, 0x13]), 2n); // swap then drop
  // rot: [1 2 3] (3 on top) → [3 1 2]: top is 2, under it 1, bottom 3.
  assert.equal(ev([0x31, 0x32, 0x33, 0x17]), 2n);
  assert.equal(ev([0x31, 0x32, 0x33, 0x17, 0x13]), 1n);
  assert.equal(ev([0x31, 0x32, 0x33, 0x17, 0x13, 0x13]), 3n);
  assert.equal(ev([0x96, 0x35]), 5n); // nop
  // The initial stack (the CFA for DW_CFA_expression) sits under what the expression pushes.
  assert.equal(ev([0x23, 0x10], NONE, [0x1000n]), 0x1010n);
});

Deno.test("arithmetic and logic wrap at 64 bits", () => {
  assert.equal(ev([0x3c, 0x36, 0x1a]), 4n); // 12 & 6
  assert.equal(ev([0x3c, 0x36, 0x21]), 14n); // or
  assert.equal(ev([0x3c, 0x36, 0x27]), 10n); // xor
  assert.equal(ev([0x3c, 0x36, 0x22]), 18n); // plus
  assert.equal(ev([0x36, 0x3c, 0x1c]), u(-6n)); // minus 6 - 12
  assert.equal(ev([0x3c, 0x36, 0x1e]), 72n); // mul
  assert.equal(ev([0x0f, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x32, 0x1e]), 0n); // 2^63 * 2 wraps
  assert.equal(ev([0x11, 0x79, 0x32, 0x1b]), u(-3n)); // div -7 / 2 (signed, truncating)
  assert.equal(ev([0x37, 0x33, 0x1d]), 1n); // mod 7 % 3
  assert.equal(ev([0x35, 0x1f]), u(-5n)); // neg
  assert.equal(ev([0x30, 0x20]), M64); // not
  assert.equal(ev([0x11, 0x7b, 0x19]), 5n); // abs -5
  assert.equal(ev([0x31, 0x23, 0xff, 0x01]), 256n); // plus_uconst 255
  assert.equal(ev([0x31, 0x08, 63, 0x24]), 1n << 63n); // shl 63
  assert.equal(ev([0x31, 0x08, 64, 0x24]), 0n); // shl 64
  assert.equal(ev([0x09, 0x80, 0x34, 0x25]), (M64 - 127n) >> 4n); // shr is logical
  assert.equal(ev([0x09, 0x80, 0x34, 0x26]), u(-8n)); // shra keeps the sign
  fails([0x31, 0x30, 0x1b], "arithmetic"); // division by zero
  fails([0x31, 0x30, 0x1d], "arithmetic");
});

Deno.test("comparisons are signed", () => {
  const m1 = [0x09, 0xff]; // -1
  assert.equal(ev([...m1, 0x31, 0x2d]), 1n); // -1 < 1
  assert.equal(ev([...m1, 0x31, 0x2b]), 0n); // gt
  assert.equal(ev([0x31, 0x31, 0x2c]), 1n); // le
  assert.equal(ev([0x32, 0x31, 0x2a]), 1n); // ge
  assert.equal(ev([0x32, 0x31, 0x29]), 0n); // eq
  assert.equal(ev([0x32, 0x32, 0x29]), 1n);
  assert.equal(ev([0x32, 0x31, 0x2e]), 1n); // ne
});

Deno.test("control flow: skip and bra", () => {
  // lit1; skip +1; lit7 (skipped); → 1
  assert.equal(ev([0x31, 0x2f, 0x01, 0x00, 0x37]), 1n);
  // lit0; bra +1 (not taken); lit5 → 5
  assert.equal(ev([0x30, 0x28, 0x01, 0x00, 0x35]), 5n);
  // lit1; bra +1 (taken) over lit5; lit6 → 6
  assert.equal(ev([0x31, 0x28, 0x01, 0x00, 0x35, 0x36]), 6n);
  // A countdown loop: lit5; loop: lit1; minus; dup; bra -6 (back to lit1) → 0
  assert.equal(ev([0x35, 0x31, 0x1c, 0x12, 0x28, 0xfa, 0xff]), 0n);
  fails([0x2f, 0x10, 0x00], "malformed"); // skip past the end
  fails([0x2f, 0xf0, 0xff], "malformed"); // skip before the start
});

Deno.test("memory: deref and deref_size through the callback", () => {
  const c = ctx({ 7: 0x1000n }, { "4104": 0x1122334455667788n, "4096": 0x2000n });
  assert.equal(ev([0x77, 0x08, 0x06], c), 0x1122334455667788n); // breg7 8; deref
  assert.equal(ev([0x77, 0x08, 0x94, 0x04], c), 0x55667788n); // deref_size 4
  assert.equal(ev([0x77, 0x08, 0x94, 0x01], c), 0x88n); // deref_size 1
  assert.equal(ev([0x77, 0x00, 0x06], c), 0x2000n);
  const e = fails([0x77, 0x10, 0x06], "memory", c); // [rsp+16] is not readable
  assert.equal(e.address, 0x1010n);
  fails([0x77, 0x08, 0x94, 0x09], "malformed", c); // deref_size 9
});

Deno.test("the budget stops loops; malformed input is an error, never a hang", () => {
  const counter = { steps: 0 };
  assert.throws(
    () => evaluateDwarfExpr(new Uint8Array([0x2f, 0xfd, 0xff]), NONE, { counter }),
    (e) => e instanceof DwarfExprError && e.reason === "budget",
  );
  // skip -3 jumps to itself forever: stopped after exactly the default budget, plus the one
  // operation that found it exceeded.
  assert.equal(counter.steps, 1001);
  fails([0x2f, 0xfd, 0xff], "budget");
  fails([0x31, 0x28, 0xfd, 0xff], "stack"); // the bra pops its condition: lit1 is gone
  fails([0x31, 0x12, 0x28, 0xfc, 0xff], "budget", NONE, 50); // dup; bra back to dup
  fails([], "stack"); // nothing pushed
  fails([0x13], "stack"); // drop on empty
  fails([0x22], "stack");
  fails([0x15, 0x00], "stack"); // pick from empty
  fails(new Array(65).fill(0x30), "stack"); // deeper than the cap
  fails([0x0c, 0x01], "malformed"); // const4u cut short
  fails([0x10, 0x80], "malformed"); // LEB128 cut short
  fails([0x10, ...new Array(80).fill(0x80), 0x00], "malformed"); // endless LEB128
  fails([0x03, 0, 0, 0, 0, 0, 0, 0, 0], "malformed"); // DW_OP_addr: unsupported here
  fails([0x50], "malformed"); // DW_OP_reg0: a location, not a value
  fails([0x9c], "malformed"); // DW_OP_call_frame_cfa
});
