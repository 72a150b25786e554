/**
 * DWARF expression evaluation (DW_OP_*) for call frame information: the CFA and register rules
 * that `.eh_frame` expresses as expressions (PLT stubs, signal trampolines, stack realignment).
 *
 * The bytes come from binaries any user can write, so every operand read is bounds-checked, the
 * stack depth and the number of executed operations are capped (a backward `DW_OP_skip` must not
 * hang a trace), and every failure throws `DwarfExprError`. Values are unsigned 64-bit BigInts:
 * expressions are rare and short, and BigInt keeps wraparound and signed comparisons exact.
 */

/** Why an expression could not be evaluated. */
export type DwarfExprFailure =
  /** Truncated operand, unknown or unsupported opcode, branch outside the expression. */
  | "malformed"
  /** More operations than the budget: a loop, or an absurd expression. */
  | "budget"
  /** Stack underflow or overflow, or an empty stack at the end. */
  | "stack"
  /** The memory callback could not read an address; `address` says which. */
  | "memory"
  /** A register whose value is not known at this frame; `register` says which. */
  | "register"
  /** Division by zero. */
  | "arithmetic";

/** An expression that cannot be evaluated; `reason` tells the families apart. */
export class DwarfExprError extends Error {
  override name = "DwarfExprError";
  constructor(
    readonly reason: DwarfExprFailure,
    message: string,
    readonly address?: bigint,
    readonly register?: number,
  ) {
    super(message);
  }
}

/** What an expression may read: registers of the frame being unwound, and memory. */
export interface DwarfExprContext {
  /** The register's value (any 64-bit pattern), or undefined when it is not known. */
  reg(dwarfRegister: number): bigint | undefined;
  /** `size` (1–8) little-endian bytes at `address`, or undefined when they cannot be read. */
  read(address: bigint, size: number): bigint | undefined;
}

export interface DwarfExprOptions {
  /** Values pushed before the first operation (the CFA, for DW_CFA_expression rules). */
  readonly initial?: readonly bigint[];
  /** Maximum operations executed; default 1000. */
  readonly budget?: number;
  /** Incremented by the operations executed (also when evaluation fails). */
  readonly counter?: { steps: number };
}

export const DEFAULT_EXPR_BUDGET = 1000;
// Real CFI expressions use a handful of slots; the cap only bounds memory for hostile input.
const MAX_STACK = 64;
const M64 = (1n << 64n) - 1n;

const u = (v: bigint) => v & M64;
const s = (v: bigint) => BigInt.asIntN(64, v);

/**
 * Runs `expr` and returns the value on top of the stack as an unsigned 64-bit integer: an address
 * for DW_CFA_def_cfa_expression / DW_CFA_expression, the value itself for DW_CFA_val_expression.
 */
export function evaluateDwarfExpr(
  expr: Uint8Array,
  ctx: DwarfExprContext,
  options: DwarfExprOptions = {},
): bigint {
  const budget = options.budget ?? DEFAULT_EXPR_BUDGET;
  const stack: bigint[] = [];
  for (const v of options.initial ?? []) push(u(v));
  let pc = 0;
  let steps = 0;

  function fail(reason: DwarfExprFailure, what: string): never {
    throw new DwarfExprError(reason, `${what} (at byte ${pc} of ${expr.length})`);
  }
  function push(v: bigint): void {
    if (stack.length >= MAX_STACK) fail("stack", `stack deeper than ${MAX_STACK}`);
    stack.push(v);
  }
  function pop(): bigint {
    const v = stack.pop();
    if (v === undefined) fail("stack", "stack underflow");
    return v;
  }
  function peek(depth: number): bigint {
    if (depth >= stack.length) fail("stack", `stack has no entry ${depth}`);
    return stack[stack.length - 1 - depth];
  }
  function byte(): number {
    if (pc >= expr.length) fail("malformed", "operand runs past the end");
    return expr[pc++];
  }
  function fixed(size: number, signed: boolean): bigint {
    if (pc + size > expr.length) fail("malformed", "operand runs past the end");
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(expr[pc + i]);
    pc += size;
    return signed ? BigInt.asIntN(size * 8, v) : v;
  }
  function uleb(): bigint {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = byte();
      // Bits past 64 cannot matter to a 64-bit machine; the length cap stops a run of 0x80s.
      if (shift < 64n) v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) return u(v);
      if (shift > 70n * 7n) fail("malformed", "LEB128 longer than 70 bytes");
    }
  }
  function sleb(): bigint {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = byte();
      if (shift < 64n) v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        if ((b & 0x40) !== 0 && shift < 64n) v -= 1n << shift;
        return u(v);
      }
      if (shift > 70n * 7n) fail("malformed", "LEB128 longer than 70 bytes");
    }
  }
  function reg(n: number): bigint {
    const v = ctx.reg(n);
    if (v === undefined) {
      throw new DwarfExprError("register", `register ${n} is not known`, undefined, n);
    }
    return u(v);
  }
  function load(address: bigint, size: number): bigint {
    const v = ctx.read(address, size);
    if (v === undefined) {
      throw new DwarfExprError(
        "memory",
        `cannot read ${size} bytes at 0x${address.toString(16)}`,
        address,
      );
    }
    return u(v);
  }
  function jump(offset: bigint): void {
    const target = pc + Number(offset);
    if (target < 0 || target > expr.length) fail("malformed", `branch to ${target}`);
    pc = target;
  }

  while (pc < expr.length) {
    if (options.counter) options.counter.steps++;
    if (++steps > budget) fail("budget", `more than ${budget} operations`);
    const op = byte();
    if (op >= 0x30 && op <= 0x4f) { // DW_OP_lit0..31
      push(BigInt(op - 0x30));
      continue;
    }
    if (op >= 0x70 && op <= 0x8f) { // DW_OP_breg0..31
      const off = sleb();
      push(u(reg(op - 0x70) + off));
      continue;
    }
    switch (op) {
      case 0x06: // DW_OP_deref
        push(load(pop(), 8));
        break;
      case 0x08: // DW_OP_const1u
        push(fixed(1, false));
        break;
      case 0x09: // DW_OP_const1s
        push(u(fixed(1, true)));
        break;
      case 0x0a: // DW_OP_const2u
        push(fixed(2, false));
        break;
      case 0x0b: // DW_OP_const2s
        push(u(fixed(2, true)));
        break;
      case 0x0c: // DW_OP_const4u
        push(fixed(4, false));
        break;
      case 0x0d: // DW_OP_const4s
        push(u(fixed(4, true)));
        break;
      case 0x0e: // DW_OP_const8u
        push(fixed(8, false));
        break;
      case 0x0f: // DW_OP_const8s
        push(u(fixed(8, true)));
        break;
      case 0x10: // DW_OP_constu
        push(uleb());
        break;
      case 0x11: // DW_OP_consts
        push(sleb());
        break;
      case 0x12: // DW_OP_dup
        push(peek(0));
        break;
      case 0x13: // DW_OP_drop
        pop();
        break;
      case 0x14: // DW_OP_over
        push(peek(1));
        break;
      case 0x15: // DW_OP_pick
        push(peek(byte()));
        break;
      case 0x16: { // DW_OP_swap
        const a = pop();
        const b = pop();
        push(a);
        push(b);
        break;
      }
      case 0x17: { // DW_OP_rot: the top entry moves under the next two
        const a = pop();
        const b = pop();
        const c = pop();
        push(a);
        push(c);
        push(b);
        break;
      }
      case 0x19: { // DW_OP_abs
        const a = s(pop());
        push(u(a < 0n ? -a : a));
        break;
      }
      case 0x1a: { // DW_OP_and
        const b = pop();
        push(pop() & b);
        break;
      }
      case 0x1b: { // DW_OP_div (signed, as for the generic type)
        const b = s(pop());
        const a = s(pop());
        if (b === 0n) fail("arithmetic", "division by zero");
        push(u(a / b));
        break;
      }
      case 0x1c: { // DW_OP_minus
        const b = pop();
        push(u(pop() - b));
        break;
      }
      case 0x1d: { // DW_OP_mod
        const b = pop();
        const a = pop();
        if (b === 0n) fail("arithmetic", "modulo by zero");
        push(a % b);
        break;
      }
      case 0x1e: { // DW_OP_mul
        const b = pop();
        push(u(pop() * b));
        break;
      }
      case 0x1f: // DW_OP_neg
        push(u(-pop()));
        break;
      case 0x20: // DW_OP_not
        push(u(~pop()));
        break;
      case 0x21: { // DW_OP_or
        const b = pop();
        push(pop() | b);
        break;
      }
      case 0x22: { // DW_OP_plus
        const b = pop();
        push(u(pop() + b));
        break;
      }
      case 0x23: // DW_OP_plus_uconst
        push(u(pop() + uleb()));
        break;
      case 0x24: { // DW_OP_shl
        const b = pop();
        const a = pop();
        push(b >= 64n ? 0n : u(a << b));
        break;
      }
      case 0x25: { // DW_OP_shr
        const b = pop();
        const a = pop();
        push(b >= 64n ? 0n : a >> b);
        break;
      }
      case 0x26: { // DW_OP_shra
        const b = pop();
        const a = s(pop());
        push(u(a >> (b >= 64n ? 63n : b)));
        break;
      }
      case 0x27: { // DW_OP_xor
        const b = pop();
        push(pop() ^ b);
        break;
      }
      case 0x28: { // DW_OP_bra
        const off = fixed(2, true);
        if (pop() !== 0n) jump(off);
        break;
      }
      case 0x29: // DW_OP_eq
      case 0x2a: // DW_OP_ge
      case 0x2b: // DW_OP_gt
      case 0x2c: // DW_OP_le
      case 0x2d: // DW_OP_lt
      case 0x2e: { // DW_OP_ne
        // Comparisons of the generic type are signed.
        const b = s(pop());
        const a = s(pop());
        const r = op === 0x29
          ? a === b
          : op === 0x2a
          ? a >= b
          : op === 0x2b
          ? a > b
          : op === 0x2c
          ? a <= b
          : op === 0x2d
          ? a < b
          : a !== b;
        push(r ? 1n : 0n);
        break;
      }
      case 0x2f: // DW_OP_skip
        jump(fixed(2, true));
        break;
      case 0x92: { // DW_OP_bregx
        const r = uleb();
        const off = sleb();
        if (r > 0xffffn) fail("malformed", `register ${r}`);
        push(u(reg(Number(r)) + off));
        break;
      }
      case 0x94: { // DW_OP_deref_size
        const size = byte();
        if (size < 1 || size > 8) fail("malformed", `deref_size ${size}`);
        push(load(pop(), size));
        break;
      }
      case 0x96: // DW_OP_nop
        break;
      default:
        // DW_OP_addr would need the load bias, DW_OP_regN is a location rather than a value,
        // DW_OP_call_frame_cfa is forbidden inside CFI: none belongs in an unwind rule.
        pc--;
        fail("malformed", `unsupported opcode 0x${op.toString(16)}`);
    }
  }
  if (stack.length === 0) fail("stack", "empty stack at the end");
  return stack[stack.length - 1];
}
