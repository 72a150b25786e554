/**
 * Walks a user stack from a sample's registers and a copy of the top of its stack, with the
 * binaries' own `.eh_frame` rules, the way `perf --call-graph dwarf` does: Debian builds its
 * libraries without frame pointers, so the rbp chain breaks at the first libc frame.
 *
 * Where a module has no unwind information (JIT code, binaries built without CFI, like Deno
 * itself) the frame is unwound through the rbp chain instead, which such code keeps.
 *
 * Everything read comes from a snapshot of another process's memory and from files anyone can
 * write, so the walk never throws on bad data: it stops and says why (`UnwindResult.end`).
 */

import { type CfaRule, EhFrameError, type RegisterRule, type UnwindRow } from "./eh_frame.ts";
import type { EhFrame } from "./eh_frame.ts";
import { DwarfExprError, evaluateDwarfExpr } from "./dwarf_expr.ts";
import { type UnwindArch, X86_64 } from "./unwind_arch.ts";

/** The executable mapping an address falls in. */
export interface UnwindModule {
  /** Its unwind table; undefined when the file has none (then rbp is followed). */
  readonly table: EhFrame | undefined;
  /** Run-time address minus link-time (ELF) address. */
  readonly bias: number;
}

export interface UnwindInput {
  readonly regs: { readonly ip: number; readonly sp: number; readonly bp: number };
  /** User memory from `stackBase` up, as the sample copied it. */
  readonly stack: Uint8Array;
  /** The address of `stack[0]`, normally the sampled sp. */
  readonly stackBase: number;
  /** The executable mapping holding `ip`, or undefined when none does. */
  moduleAt(ip: number): UnwindModule | undefined;
  /** Default 128. */
  readonly maxFrames?: number;
  /**
   * Work the whole walk may do (frames, register rules, expression operations, and the unwind
   * tables' own work for rows not yet cached); default DEFAULT_UNWIND_BUDGET.
   */
  readonly budget?: number;
}

/**
 * Why the walk stopped:
 * - "complete": the outermost frame (its return address rule is undefined, or it returns to 0);
 * - "truncated": a read beyond the end of the stack copy (the copy was too small), or maxFrames;
 * - "no-unwind-info": a frame without CFI whose rbp does not point into the copy;
 * - "bad-frame": the rules gave garbage (sp not increasing, a return address outside every
 *   module, a read below the copy, a register the sample did not capture, a corrupt table);
 * - "budget": the walk used up its work budget (hostile unwind rules, most likely).
 */
export type UnwindEnd = "complete" | "truncated" | "no-unwind-info" | "bad-frame" | "budget";

export interface UnwindResult {
  /** Leaf first; ips[0] is regs.ip, the rest are return addresses (or exact signal pcs). */
  readonly ips: number[];
  readonly end: UnwindEnd;
  /**
   * The highest stack address (exclusive) the walk read or reached as a frame's CFA: a complete
   * walk needs no copy above it.
   */
  readonly reach: number;
}

export const DEFAULT_MAX_FRAMES = 128;
/**
 * What a walk may do, in units of about 13 ns: a DWARF expression operation is 1, a register
 * rule 2, a frame 4, and a unit of the unwind table's own work (a CFI byte read or instruction
 * run, the first time a function's rows are computed) 2. A warm walk of 30 frames costs ~1000; a
 * cold one through 30 functions never seen before ~30k. A hostile one (800-operation expressions
 * for every register of every frame, or a new 16 KiB FDE per frame) stops here, at about a
 * millisecond, instead of taking tens.
 */
export const DEFAULT_UNWIND_BUDGET = 100_000;
const FRAME_COST = 4;
const RULE_COST = 2;
const TABLE_WORK_COST = 2;
// A read this far above the copy is not "the copy was too small": thread stacks are 8 MiB by
// default, so such an address is garbage.
const MAX_STACK_REACH = 512 << 20;

/** Thrown inside a walk to stop it; never escapes `unwind`. */
class Stop {
  constructor(readonly end: UnwindEnd) {}
}

const BAD = new Stop("bad-frame");
const TRUNCATED = new Stop("truncated");
const BUDGET = new Stop("budget");

export class DwarfUnwinder {
  readonly #arch: UnwindArch;
  // Register files, reused by every walk: allocating typed arrays per walk costs more than the
  // walk (their memory comes from malloc).
  #files: [Float64Array, Uint8Array, Float64Array, Uint8Array];

  constructor(arch: UnwindArch = X86_64) {
    this.#arch = arch;
    const n = arch.registerCount;
    this.#files = [new Float64Array(n), new Uint8Array(n), new Float64Array(n), new Uint8Array(n)];
  }

  unwind(input: UnwindInput): UnwindResult {
    const arch = this.#arch;
    const n = arch.registerCount;
    const maxFrames = input.maxFrames ?? DEFAULT_MAX_FRAMES;
    const budget = input.budget ?? DEFAULT_UNWIND_BUDGET;
    const counter = { steps: 0 };
    const spend = (units: number) => {
      counter.steps += units;
      if (counter.steps > budget) throw BUDGET;
    };
    const stack = input.stack;
    const dv = new DataView(stack.buffer, stack.byteOffset, stack.byteLength);
    const base = input.stackBase;
    const limit = base + stack.length;

    // Two register files, swapped each frame: `cur` is the frame being unwound, `next` its caller.
    let [cur, curKnown, next, nextKnown] = this.#files;
    cur.fill(0);
    curKnown.fill(0);
    next.fill(0);
    nextKnown.fill(0);
    let reach = base;
    cur[arch.raRegister] = input.regs.ip;
    cur[arch.spRegister] = input.regs.sp;
    cur[arch.fpRegister] = input.regs.bp;
    curKnown[arch.raRegister] = curKnown[arch.spRegister] = curKnown[arch.fpRegister] = 1;

    const classify = (address: number): Stop =>
      address >= limit && address < limit + MAX_STACK_REACH ? TRUNCATED : BAD;
    const read = (address: number): number => {
      const off = address - base;
      if (!(off >= 0 && off + 8 <= stack.length)) throw classify(address);
      if (address + 8 > reach) reach = address + 8;
      return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
    };
    const exprCtx = {
      reg: (r: number) => r < n && curKnown[r] ? BigInt(cur[r]) : undefined,
      read: (address: bigint, size: number): bigint | undefined => {
        const off = Number(address) - base;
        if (!(off >= 0 && off + size <= stack.length)) return undefined;
        if (base + off + size > reach) reach = base + off + size;
        let v = 0n;
        for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(stack[off + i]);
        return v;
      },
    };
    const evaluate = (expr: Uint8Array, initial: number | undefined): number => {
      try {
        const v = evaluateDwarfExpr(expr, exprCtx, {
          initial: initial === undefined ? undefined : [BigInt(initial)],
          budget: Math.max(0, budget - counter.steps),
          counter,
        });
        return Number(v);
      } catch (e) {
        if (e instanceof DwarfExprError) {
          if (e.reason === "budget") throw BUDGET;
          throw e.reason === "memory" ? classify(Number(e.address)) : BAD;
        }
        throw e;
      }
    };
    const cfaOf = (rule: CfaRule): number => {
      if (rule.kind === "expression") return evaluate(rule.expr, undefined);
      if (!(rule.register < n && curKnown[rule.register])) throw BAD;
      return cur[rule.register] + rule.offset;
    };
    // The caller's value of one register; undefined when the rule makes it unknown.
    const recover = (rule: RegisterRule, cfa: number): number | undefined => {
      switch (rule.kind) {
        case "undefined":
          return undefined;
        case "same":
          return undefined; // handled by the copy; never reaches here
        case "offset":
          return read(cfa + rule.offset);
        case "val_offset":
          return cfa + rule.offset;
        case "register":
          return rule.register < n && curKnown[rule.register] ? cur[rule.register] : undefined;
        case "expression":
          return read(evaluate(rule.expr, cfa));
        case "val_expression":
          return evaluate(rule.expr, cfa);
      }
    };

    const ips: number[] = [input.regs.ip];
    let nextModule: UnwindModule | undefined;
    let exactPc = true; // the leaf's ip, and a pc interrupted by a signal, are not return addresses
    let end: UnwindEnd;
    for (;;) {
      const ip: number = cur[arch.raRegister];
      const sp: number = cur[arch.spRegister];
      const pc: number = exactPc ? ip : ip - 1;
      const mod = nextModule ?? input.moduleAt(pc);
      let row: UnwindRow | undefined;
      const table = mod?.table;
      const tableWork = table?.work ?? 0;
      try {
        row = table?.rowAt(pc - mod!.bias);
      } catch (e) {
        if (!(e instanceof EhFrameError)) throw e;
        end = "bad-frame";
        break;
      }
      let signal = false;
      try {
        spend(FRAME_COST + (table ? (table.work - tableWork) * TABLE_WORK_COST : 0));
        if (row) {
          const cfa = cfaOf(row.cfa);
          if (cfa > reach && cfa <= limit) reach = cfa;
          next.set(cur);
          nextKnown.set(curKnown);
          next[arch.spRegister] = cfa;
          nextKnown[arch.spRegister] = 1;
          const raRule = row.rules.get(row.raRegister);
          if (!raRule || raRule.kind === "undefined") {
            end = raRule ? "complete" : "bad-frame";
            break;
          }
          for (const [r, rule] of row.rules) {
            if (r >= n || rule.kind === "same") continue;
            if (r === row.raRegister) continue;
            spend(RULE_COST);
            let v: number | undefined;
            try {
              v = recover(rule, cfa);
            } catch (e) {
              // A callee-saved register we cannot read only matters if a later rule needs it.
              if (e === BUDGET || !(e instanceof Stop)) throw e;
              v = undefined;
            }
            if (v === undefined) nextKnown[r] = 0;
            else {
              next[r] = v;
              nextKnown[r] = 1;
            }
          }
          const ra = recover(raRule, cfa);
          if (ra === undefined) {
            end = "bad-frame";
            break;
          }
          next[arch.raRegister] = ra;
          nextKnown[arch.raRegister] = 1;
          signal = row.signalFrame;
        } else {
          const bp = cur[arch.fpRegister];
          // A process's first instructions: the dynamic loader's _start has no
          // unwind entry and clears rbp, which the x86-64 ABI uses to mark the
          // outermost frame. Only at the sampled pc itself: deeper in a walk a
          // zero rbp is as likely a register in other use.
          if (mod && curKnown[arch.fpRegister] && bp === 0 && ips.length === 1) {
            end = "complete";
            break;
          }
          if (
            !curKnown[arch.fpRegister] || !(bp >= sp && bp >= base) ||
            bp + arch.fpCallerSpOffset > limit
          ) {
            end = "no-unwind-info";
            break;
          }
          next.fill(0);
          nextKnown.fill(0);
          next[arch.fpRegister] = read(bp + arch.fpSavedFpOffset);
          next[arch.raRegister] = read(bp + arch.fpReturnAddressOffset);
          next[arch.spRegister] = bp + arch.fpCallerSpOffset;
          nextKnown[arch.fpRegister] = nextKnown[arch.raRegister] = nextKnown[arch.spRegister] = 1;
        }
      } catch (e) {
        if (!(e instanceof Stop)) throw e;
        end = e.end;
        break;
      }
      const ra = next[arch.raRegister];
      if (ra === 0) {
        end = "complete";
        break;
      }
      // The stack grows down, so each caller's sp is higher. A signal frame may switch stacks
      // (sigaltstack), which is the one legitimate exception.
      if (!nextKnown[arch.spRegister] || (!signal && !(next[arch.spRegister] > sp))) {
        end = "bad-frame";
        break;
      }
      // The caller's module, looked up at the pc its frame will be unwound with.
      nextModule = input.moduleAt(signal ? ra : ra - 1);
      if (!nextModule) {
        end = "bad-frame";
        break;
      }
      if (ips.length >= maxFrames) {
        end = "truncated";
        break;
      }
      ips.push(ra);
      exactPc = signal;
      [cur, next] = [next, cur];
      [curKnown, nextKnown] = [nextKnown, curKnown];
    }
    return { ips, end, reach };
  }
}
