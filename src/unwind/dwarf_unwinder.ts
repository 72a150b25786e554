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

import {
  type CfaRule,
  EhFrameError,
  type RegisterRule,
  type RowPlan,
  type UnwindRow,
} from "./eh_frame.ts";
import type { EhFrame } from "./eh_frame.ts";
import { DwarfExprError, evaluateDwarfExpr } from "./dwarf_expr.ts";
import { type UnwindArch, X86_64 } from "./unwind_arch.ts";

/** The executable mapping an address falls in. */
export interface UnwindModule {
  /** Its unwind table; undefined when the file has none (then rbp is followed). */
  readonly table: EhFrame | undefined;
  /** Run-time address minus link-time (ELF) address. */
  readonly bias: number;
  /**
   * The file's entry point (ELF e_entry, link-time), where the kernel starts a process or its
   * dynamic loader; undefined when it has none.
   */
  readonly entry?: number;
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
/**
 * The entry stub: the first instructions from a file's entry point. The kernel starts a process
 * there with nothing above it on the stack, so code in it is the outermost frame even without
 * unwind information to say so: glibc's dynamic loader (`_start`, `_dl_start_user`: 64 bytes up
 * to the next function) has none, and every dynamically linked process spends its first
 * microseconds below it. Only a walk that could go no further ends there as complete.
 */
const ENTRY_STUB_BYTES = 64;
const FRAME_COST = 4;
const RULE_COST = 2;
const TABLE_WORK_COST = 2;
// A read this far above the copy is not "the copy was too small": thread stacks are 8 MiB by
// default, so such an address is garbage.
const MAX_STACK_REACH = 512 << 20;

/** Whether PC is in the entry stub of MOD's file (see ENTRY_STUB_BYTES). */
function inEntryStub(mod: UnwindModule | undefined, pc: number): boolean {
  const entry = mod?.entry;
  if (entry === undefined || entry === 0) return false;
  const at = pc - mod!.bias;
  return at >= entry && at < entry + ENTRY_STUB_BYTES;
}

/** Thrown inside a walk to stop it; never escapes `unwind`. */
class Stop {
  constructor(readonly end: UnwindEnd) {}
}

const BAD = new Stop("bad-frame");
const TRUNCATED = new Stop("truncated");
const BUDGET = new Stop("budget");

export class DwarfUnwinder {
  readonly #arch: UnwindArch;
  readonly #n: number;
  // Register files, reused by every walk: allocating typed arrays per walk costs more than the
  // walk (their memory comes from malloc). `cur` is the frame being unwound, `next` its caller.
  #cur: Float64Array;
  #curKnown: Uint8Array;
  #next: Float64Array;
  #nextKnown: Uint8Array;
  // The walk under way, in fields rather than closures: a walk allocates only its result.
  #stack: Uint8Array = new Uint8Array(0);
  // The copy's whole buffer as 32-bit words, kept while walks come from the same buffer (the
  // reader reuses one per batch): V8's mid tier inlines typed-array loads but calls out of
  // compiled code for every DataView read, and for every view it constructs.
  #wordsOf: ArrayBufferLike | undefined;
  #words: Uint32Array = new Uint32Array(0);
  /** The copy's first word in #words; -1 when the copy does not start 4-aligned. */
  #wordBase = -1;
  /** For a copy that does not start 4-aligned only, made on its first read. */
  #dv: DataView | undefined;
  // Reused for every walk's return addresses; each result gets a copy of the right length.
  #ips: number[] = [];
  #base = 0;
  #limit = 0;
  #reach = 0;
  #budget = 0;
  readonly #counter = { steps: 0 };
  readonly #exprCtx = {
    reg: (r: number) => r < this.#n && this.#curKnown[r] ? BigInt(this.#cur[r]) : undefined,
    read: (address: bigint, size: number): bigint | undefined => {
      const off = Number(address) - this.#base;
      if (!(off >= 0 && off + size <= this.#stack.length)) return undefined;
      if (this.#base + off + size > this.#reach) this.#reach = this.#base + off + size;
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.#stack[off + i]);
      return v;
    },
  };

  constructor(arch: UnwindArch = X86_64) {
    this.#arch = arch;
    const n = this.#n = arch.registerCount;
    this.#cur = new Float64Array(n);
    this.#curKnown = new Uint8Array(n);
    this.#next = new Float64Array(n);
    this.#nextKnown = new Uint8Array(n);
  }

  unwind(input: UnwindInput): UnwindResult {
    const arch = this.#arch;
    const maxFrames = input.maxFrames ?? DEFAULT_MAX_FRAMES;
    this.#budget = input.budget ?? DEFAULT_UNWIND_BUDGET;
    this.#counter.steps = 0;
    const stack = input.stack;
    this.#stack = stack;
    this.#dv = undefined;
    if (stack.byteOffset % 4 === 0) {
      if (this.#wordsOf !== stack.buffer) {
        this.#wordsOf = stack.buffer;
        this.#words = new Uint32Array(stack.buffer, 0, stack.buffer.byteLength >>> 2);
      }
      this.#wordBase = stack.byteOffset >>> 2;
    } else this.#wordBase = -1;
    const base = this.#base = input.stackBase;
    this.#limit = base + stack.length;
    this.#reach = base;
    clear(this.#cur, this.#curKnown);
    clear(this.#next, this.#nextKnown);
    this.#cur[arch.raRegister] = input.regs.ip;
    this.#cur[arch.spRegister] = input.regs.sp;
    this.#cur[arch.fpRegister] = input.regs.bp;
    this.#curKnown[arch.raRegister] = 1;
    this.#curKnown[arch.spRegister] = 1;
    this.#curKnown[arch.fpRegister] = 1;

    const ips = this.#ips;
    ips[0] = input.regs.ip;
    let count = 1;
    let nextModule: UnwindModule | undefined;
    let exactPc = true; // the leaf's ip, and a pc interrupted by a signal, are not return addresses
    let end: UnwindEnd;
    for (;;) {
      const ip: number = this.#cur[arch.raRegister];
      const sp: number = this.#cur[arch.spRegister];
      const pc: number = exactPc ? ip : ip - 1;
      const mod = nextModule ?? input.moduleAt(pc);
      let row: UnwindRow | undefined;
      const table = mod?.table;
      const tableWork = table !== undefined ? table.work : 0;
      try {
        row = table?.rowAt(pc - mod!.bias);
      } catch (e) {
        if (!(e instanceof EhFrameError)) throw e;
        end = "bad-frame";
        break;
      }
      let signal = false;
      // A plan updates the register file in place; the other steps fill #next.
      let inPlace = false;
      try {
        this.#spend(FRAME_COST + (table ? (table.work - tableWork) * TABLE_WORK_COST : 0));
        if (row) {
          let plan = row.plan;
          if (plan === undefined) plan = row.plan = planOf(row, this.#n);
          inPlace = plan !== null;
          const stop = plan !== null ? this.#planStep(plan) : this.#ruleStep(row);
          if (stop !== undefined) {
            end = stop;
            break;
          }
          signal = row.signalFrame;
        } else {
          const stop = this.#framePointerStep(mod !== undefined, count === 1, sp);
          if (stop !== undefined) {
            end = stop === "no-unwind-info" && inEntryStub(mod, pc) ? "complete" : stop;
            break;
          }
        }
      } catch (e) {
        if (!(e instanceof Stop)) throw e;
        end = e.end;
        break;
      }
      const next = inPlace ? this.#cur : this.#next;
      const nextKnown = inPlace ? this.#curKnown : this.#nextKnown;
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
      if (count >= maxFrames) {
        end = "truncated";
        break;
      }
      ips[count++] = ra;
      exactPc = signal;
      if (!inPlace) {
        this.#next = this.#cur;
        this.#cur = next;
        this.#nextKnown = this.#curKnown;
        this.#curKnown = nextKnown;
      }
    }
    return { ips: ips.slice(0, count), end, reach: this.#reach };
  }

  #spend(units: number): void {
    this.#counter.steps += units;
    if (this.#counter.steps > this.#budget) throw BUDGET;
  }

  #classify(address: number): Stop {
    return address >= this.#limit && address < this.#limit + MAX_STACK_REACH ? TRUNCATED : BAD;
  }

  /** The 8 bytes at ADDRESS in the copy; throws a Stop when the copy does not hold them. */
  #read(address: number): number {
    const off = address - this.#base;
    if (!(off >= 0 && off + 8 <= this.#stack.length)) throw this.#classify(address);
    if (address + 8 > this.#reach) this.#reach = address + 8;
    const wordBase = this.#wordBase;
    if (wordBase >= 0 && (off & 3) === 0) {
      const words = this.#words;
      const w = wordBase + (off >>> 2);
      return words[w] + words[w + 1] * 0x1_0000_0000;
    }
    return this.#word64(off);
  }

  /**
   * The little-endian 64-bit word at OFF in the copy (checked by the caller), as a number, where
   * the word view cannot read it (callers try that first, inline).
   */
  #word64(off: number): number {
    const s = this.#stack;
    const dv = this.#dv ??= new DataView(s.buffer, s.byteOffset, s.byteLength);
    return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
  }

  /**
   * The caller's registers by a row's flat form, the common case: written over the callee's in
   * place (every value it reads comes from the copy, after the CFA), without rule objects.
   */
  #planStep(p: RowPlan): UnwindEnd | undefined {
    const regs = this.#cur;
    const known = this.#curKnown;
    if (!known[p.cfaRegister]) throw BAD;
    const cfa = regs[p.cfaRegister] + p.cfaOffset;
    if (cfa > this.#reach && cfa <= this.#limit) this.#reach = cfa;
    if (p.outermost) return "complete";
    const arch = this.#arch;
    regs[arch.spRegister] = cfa;
    known[arch.spRegister] = 1;
    const saved = p.saved;
    const lost = p.lost;
    this.#spend(RULE_COST * (saved.length + lost.length));
    const base = this.#base;
    const size = this.#stack.length;
    const wordBase = this.#wordBase;
    const words = this.#words;
    for (let i = 0; i < saved.length; i++) {
      const r = saved[i];
      const address = cfa + p.offsets[i];
      const off = address - base;
      // A callee-saved register the copy does not hold only matters if a later rule needs it.
      if (off >= 0 && off + 8 <= size) {
        if (address + 8 > this.#reach) this.#reach = address + 8;
        if (wordBase >= 0 && (off & 3) === 0) {
          const w = wordBase + (off >>> 2);
          regs[r] = words[w] + words[w + 1] * 0x1_0000_0000;
        } else regs[r] = this.#word64(off);
        known[r] = 1;
      } else known[r] = 0;
    }
    for (let i = 0; i < lost.length; i++) known[lost[i]] = 0;
    regs[arch.raRegister] = this.#read(cfa + p.raOffset);
    known[arch.raRegister] = 1;
    return undefined;
  }

  /** The caller's registers by a row's rules, whatever they are (expressions included). */
  #ruleStep(row: UnwindRow): UnwindEnd | undefined {
    const n = this.#n;
    const next = this.#next;
    const nextKnown = this.#nextKnown;
    const cfa = this.#cfaOf(row.cfa);
    if (cfa > this.#reach && cfa <= this.#limit) this.#reach = cfa;
    copyRegisters(this.#cur, this.#curKnown, next, nextKnown);
    next[this.#arch.spRegister] = cfa;
    nextKnown[this.#arch.spRegister] = 1;
    const raRule = row.rules.get(row.raRegister);
    if (!raRule || raRule.kind === "undefined") return raRule ? "complete" : "bad-frame";
    for (const [r, rule] of row.rules) {
      if (r >= n || rule.kind === "same") continue;
      if (r === row.raRegister) continue;
      this.#spend(RULE_COST);
      let v: number | undefined;
      try {
        v = this.#recover(rule, cfa);
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
    const ra = this.#recover(raRule, cfa);
    if (ra === undefined) return "bad-frame";
    next[row.raRegister] = ra;
    nextKnown[row.raRegister] = 1;
    return undefined;
  }

  /** The caller's registers by the rbp chain, for code without unwind information. */
  #framePointerStep(inModule: boolean, leaf: boolean, sp: number): UnwindEnd | undefined {
    const arch = this.#arch;
    const bp = this.#cur[arch.fpRegister];
    const bpKnown = this.#curKnown[arch.fpRegister] === 1;
    // A process's first instructions: the dynamic loader's _start has no unwind entry and
    // clears rbp, which the x86-64 ABI uses to mark the outermost frame. Only at the sampled pc
    // itself: deeper in a walk a zero rbp is as likely a register in other use.
    if (inModule && bpKnown && bp === 0 && leaf) return "complete";
    if (!bpKnown || !(bp >= sp && bp >= this.#base) || bp + arch.fpCallerSpOffset > this.#limit) {
      return "no-unwind-info";
    }
    const next = this.#next;
    const nextKnown = this.#nextKnown;
    clear(next, nextKnown);
    next[arch.fpRegister] = this.#read(bp + arch.fpSavedFpOffset);
    next[arch.raRegister] = this.#read(bp + arch.fpReturnAddressOffset);
    next[arch.spRegister] = bp + arch.fpCallerSpOffset;
    nextKnown[arch.fpRegister] = nextKnown[arch.raRegister] = nextKnown[arch.spRegister] = 1;
    return undefined;
  }

  #evaluate(expr: Uint8Array, initial: number | undefined): number {
    try {
      const v = evaluateDwarfExpr(expr, this.#exprCtx, {
        initial: initial === undefined ? undefined : [BigInt(initial)],
        budget: Math.max(0, this.#budget - this.#counter.steps),
        counter: this.#counter,
      });
      return Number(v);
    } catch (e) {
      if (e instanceof DwarfExprError) {
        if (e.reason === "budget") throw BUDGET;
        throw e.reason === "memory" ? this.#classify(Number(e.address)) : BAD;
      }
      throw e;
    }
  }

  #cfaOf(rule: CfaRule): number {
    if (rule.kind === "expression") return this.#evaluate(rule.expr, undefined);
    if (!(rule.register < this.#n && this.#curKnown[rule.register])) throw BAD;
    return this.#cur[rule.register] + rule.offset;
  }

  /** The caller's value of one register; undefined when the rule makes it unknown. */
  #recover(rule: RegisterRule, cfa: number): number | undefined {
    switch (rule.kind) {
      case "undefined":
        return undefined;
      case "same":
        return undefined; // handled by the copy; never reaches here
      case "offset":
        return this.#read(cfa + rule.offset);
      case "val_offset":
        return cfa + rule.offset;
      case "register":
        return rule.register < this.#n && this.#curKnown[rule.register]
          ? this.#cur[rule.register]
          : undefined;
      case "expression":
        return this.#read(this.#evaluate(rule.expr, cfa));
      case "val_expression":
        return this.#evaluate(rule.expr, cfa);
    }
  }
}

// By hand rather than with fill() and set(): for a register file of 17 those calls out of
// compiled code (fill() into the runtime itself) cost more than the copying.
function clear(values: Float64Array, known: Uint8Array): void {
  for (let r = 0; r < values.length; r++) {
    values[r] = 0;
    known[r] = 0;
  }
}

function copyRegisters(
  from: Float64Array,
  fromKnown: Uint8Array,
  to: Float64Array,
  toKnown: Uint8Array,
): void {
  for (let r = 0; r < from.length; r++) {
    to[r] = from[r];
    toKnown[r] = fromKnown[r];
  }
}

/**
 * ROW in flat form, or null when a rule needs the general path: a CFA by expression, a return
 * address neither saved at CFA + offset nor undefined (the outermost frame), or a register
 * recovered any other way.
 */
function planOf(row: UnwindRow, n: number): RowPlan | null {
  const cfa = row.cfa;
  if (cfa.kind !== "register" || !(cfa.register < n)) return null;
  const ra = row.rules.get(row.raRegister);
  if (!(row.raRegister < n)) return null;
  if (ra?.kind === "undefined") {
    const none = new Int32Array(0);
    return {
      cfaRegister: cfa.register,
      cfaOffset: cfa.offset,
      raOffset: 0,
      outermost: true,
      saved: none,
      offsets: new Float64Array(0),
      lost: none,
    };
  }
  if (!ra || ra.kind !== "offset") return null;
  const saved: number[] = [];
  const offsets: number[] = [];
  const lost: number[] = [];
  for (const [r, rule] of row.rules) {
    if (r >= n || rule.kind === "same" || r === row.raRegister) continue;
    if (rule.kind === "offset") {
      saved.push(r);
      offsets.push(rule.offset);
    } else if (rule.kind === "undefined") lost.push(r);
    else return null;
  }
  return {
    cfaRegister: cfa.register,
    cfaOffset: cfa.offset,
    raOffset: ra.offset,
    outermost: false,
    saved: Int32Array.from(saved),
    offsets: Float64Array.from(offsets),
    lost: Int32Array.from(lost),
  };
}
