/**
 * Turns raw stack records from BPF into Perfetto stack samples: resolves
 * every frame (kernel through kallsyms, user through the process's mappings
 * at the sample's time), cuts frame-pointer walks where they leave
 * executable code, and writes each kind of stack to its own stream.
 *
 * Sleep stacks are weighed by how long the task was blocked: BPF reports the
 * switch-in as a sleep-end record carrying the wake-up's time, and the sample
 * is written then (or at the end of the trace for a task still asleep). Only
 * the tasks asleep right now are held in memory.
 *
 * Identical raw stacks (same process image, same addresses) resolve once.
 */
import type { AddressSpaces } from "./address_spaces.ts";
import type { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import {
  type FrameRef,
  type ModuleRef,
  ProfileWriter,
  StackMode,
  type StackSampleRecord,
  WeightUnit,
} from "../perfetto/profile_writer.ts";
import { ProtoWriter } from "../perfetto/proto_writer.ts";
import {
  Layout,
  MAX_FRAMES,
  PyFrameFlag,
  PyStatus,
  RecordKind,
  StackFlag,
  StackSource,
} from "../records/records.ts";
import { PythonCodes } from "../python/python_codes.ts";
import { interleavePython, markerFrame, type PyFrameRef } from "../python/python_stack.ts";
import type { Symbolizer } from "../symbolize/symbolizer.ts";
import {
  DwarfUnwinder,
  type UnwindEnd,
  type UnwindModule,
  type UnwindResult,
} from "../unwind/dwarf_unwinder.ts";

const MAX_CACHED_STACKS = 1 << 14;
/** Slots of the pc → unwind module cache (a power of two). */
const MODULE_SLOTS = 4096;
/** Functions nothing calls: a walk that reaches one is whole. */
const OUTERMOST = new Set(["_start", "__clone", "__clone3", "clone", "clone3", "start_thread"]);
/** How long after a task's next sleep its previous sleep's end may still arrive. */
const LATE_END_NS = 2e9;
/** Batches a stack waits for the code objects its Python frames name, and the bytes that may. */
const MAX_WAIT_BATCHES = 8;
const MAX_WAITING_BYTES = 16 << 20;

const TRUNCATED: ModuleRef = { key: "[truncated]", path: "[truncated]" };

/** Kernel frames of the tracing machinery itself, above the code that slept. */
const TRACING_FRAME =
  /^(bpf_prog_|bpf_trace_run|__bpf_trace_|__traceiter_|bpf_trampoline|__bpf_prog_enter|trace_call_bpf|perf_trace_|__perf_)/;

export interface StackStats {
  cpuSamples: number;
  sleepSamples: number;
  /** Sleeps without a stack that sampled ones weighed for (2^weight_shift − 1 each). */
  sleepsSampledOut: number;
  /** Stacks of probe events that asked for one ("stack": true). */
  probeSamples: number;
  /** Stacks with Python frames, and how their walks ended (enum py_status). */
  python: {
    stacks: number;
    frames: number;
    noThread: number;
    readFailed: number;
    cut: number;
    /** Stacks whose eval-loop frames and Python runs did not pair one to one (marked). */
    approximate: number;
  };
  /** Python frames whose code object was never told (its record lost): labelled. */
  pythonUnnamed: number;
  /** User stacks unwound with unwind tables from a stack copy, by how the walk ended. */
  unwound: Record<UnwindEnd, number>;
  /** User stacks from the frame-pointer walk (no stack copy, or it did worse). */
  framePointer: number;
  /** Sleep stacks without a copy that reused their task's last walk from the same pc and sp. */
  reused: number;
  /** User stacks cut where a return address left executable code. */
  truncated: number;
  /** Distinct raw stacks resolved. */
  distinctStacks: number;
  /** Wall time spent unwinding stack copies; the stack records consumed, and their bytes. */
  unwindNs: number;
  records: number;
  recordBytes: number;
  /** Sleeps that ended without a wake-up seen (weighed 0). */
  unwoken: number;
  /** Stack records that could not be processed (a bug), and the first error. */
  failed: number;
  firstFailure?: string;
}

interface CachedStack {
  frames: FrameRef[];
  key: number;
  truncated: boolean;
  image: number;
  tgid: number;
  nk: number;
  /** Kernel frames at the leaf end of frames (after the tracing machinery was trimmed). */
  kernelFrames: number;
  words: Uint32Array;
}

/**
 * A 64-bit user-space value (an address or a register) as a number: exact, since user addresses
 * stay below 2^47, and without the BigInt a getBigUint64 allocates.
 */
function userWord(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 0x1_0000_0000;
}

function sleepKey(tid: number, ts: number): string {
  return `${tid}:${ts}`;
}

interface Pending {
  /** No end can be later than this (the task's next sleep began then). */
  bound: number;
  ts: number;
  pid: number;
  tid: number;
  cpu: number;
  source: number;
  frames: FrameRef[];
  key: number | undefined;
  /** A sampled sleep stands for this many sleeps (struct sleep_sampling). */
  scale: number;
}

export interface StackProfilerOptions {
  base: TimestampBase;
  symbolizer: Symbolizer;
  spaces: AddressSpaces;
  /** Sequence ids for the on-CPU, D-sleep and S-sleep streams. */
  sequenceIds: [number, number, number];
  /** The weight of one CPU sample (the sampling period, ns). */
  cpuSampleWeight: number;
  cpuCounterName: string;
  /** A stream of its own for each probe event whose stack is recorded, named after the event. */
  probeStreams?: readonly { event: number; name: string; sequenceId: number }[];
  /**
   * Tells BPF where a thread's stack ends for unwinding (0: forget it), so that its next
   * copies stop there (bpf/stack_emit.bpf.h, stack_tops).
   */
  stackTop?: (tid: number, top: number) => void;
}

/** Bytes kept above a complete walk's reach in a thread's stack top. */
const TOP_SLACK = 128;
/** Times a thread's top may prove wrong before it is no longer told. */
const TOP_STRIKES = 3;

/** The writers' key of probe event E's stream (the others are keyed by their StackSource). */
const PROBE_STREAM = 0x100;

export class StackProfiler {
  #sym: Symbolizer;
  #spaces: AddressSpaces;
  #base: TimestampBase;
  #writers: Map<number, ProfileWriter>;
  #out = new ProtoWriter(1 << 16);
  /** Sleeps waiting for their end, by task and start. */
  #pending = new Map<string, Pending>();
  /** Ends that arrived before their sleep's stack. */
  #earlyEnds = new Map<string, number>();
  /** Each task's newest pending sleep start. */
  #latestSleep = new Map<number, number>();
  /** Pending sleeps whose end must already have happened (lost to a drop, or late). */
  #bounded: Pending[] = [];
  #newest = -Infinity;
  #cache = new Map<number, CachedStack[]>();
  #cached = 0;
  #cpuWeight: number;
  readonly stats: StackStats = {
    cpuSamples: 0,
    sleepSamples: 0,
    sleepsSampledOut: 0,
    probeSamples: 0,
    python: { stacks: 0, frames: 0, noThread: 0, readFailed: 0, cut: 0, approximate: 0 },
    pythonUnnamed: 0,
    unwound: { "complete": 0, "truncated": 0, "no-unwind-info": 0, "bad-frame": 0, "budget": 0 },
    framePointer: 0,
    reused: 0,
    truncated: 0,
    distinctStacks: 0,
    unwindNs: 0,
    records: 0,
    recordBytes: 0,
    unwoken: 0,
    failed: 0,
  };
  #unwinder = new DwarfUnwinder();
  /** The code objects Python frames name, as BPF told them. */
  readonly pythonCodes = new PythonCodes();
  /**
   * Stacks whose Python frames name code objects not told yet: another CPU's ring may hold the
   * telling. Retried after each batch, and written with what is known after a few.
   */
  #waiting: { bytes: Uint8Array; batches: number }[] = [];
  #waitingBytes = 0;
  /** Each task's last unwound user stack, by the registers it was taken with. */
  #lastUnwind = new Map<
    number,
    { ip: number; sp: number; image: number; ips: number[]; cut: boolean }
  >();

  #stackTop?: (tid: number, top: number) => void;
  /** The tops told, by thread, and the threads whose top kept proving wrong. */
  #tops = new Map<number, number>();
  #topStrikes = new Map<number, number>();
  /**
   * unwindModule results by process image and pc, since the same return addresses come again:
   * direct-mapped (a new pc takes an older one's slot), which a walk reads per frame without the
   * call out of compiled code a Map lookup by a 47-bit number costs.
   */
  #modulePcs = new Float64Array(MODULE_SLOTS).fill(NaN);
  #moduleImages = new Float64Array(MODULE_SLOTS);
  #moduleOf: (UnwindModule | undefined)[] = new Array(MODULE_SLOTS).fill(undefined);
  #moduleCount = 0;
  /** The walk under way: whose modules moduleAt looks up. */
  // Fields that will hold addresses and times start as NaN, not 0: a field that starts as a small
  // integer changes shape when it first holds a double, and the code compiled for it is thrown
  // away and compiled again.
  #walk = { tgid: 0, ts: NaN, image: 0 };
  #moduleAt = (pc: number): UnwindModule | undefined => {
    const w = this.#walk;
    const lo = pc >>> 0;
    const slot = (lo ^ (lo >>> 12)) & (MODULE_SLOTS - 1);
    if (this.#modulePcs[slot] === pc && this.#moduleImages[slot] === w.image && w.image !== 0) {
      return this.#moduleOf[slot];
    }
    const m = this.#sym.unwindModule(w.tgid, pc, w.ts);
    if (m && w.image !== 0) {
      this.#moduleCount++;
      this.#modulePcs[slot] = pc;
      this.#moduleImages[slot] = w.image;
      this.#moduleOf[slot] = m;
    }
    return m;
  };
  #unwindInput = {
    regs: { ip: NaN, sp: NaN, bp: NaN },
    stack: new Uint8Array(0) as Uint8Array,
    stackBase: NaN,
    moduleAt: this.#moduleAt,
  };

  constructor(o: StackProfilerOptions) {
    this.#stackTop = o.stackTop;
    this.#sym = o.symbolizer;
    this.#spaces = o.spaces;
    this.#base = o.base;
    this.#cpuWeight = o.cpuSampleWeight;
    this.#writers = new Map([
      [
        StackSource.Cpu,
        new ProfileWriter(o.sequenceIds[0], {
          source: "on_cpu",
          counterName: o.cpuCounterName,
          unit: 1,
          description: "CPU time sampled on every CPU (the samples' period)",
        }, o.base),
      ],
      [
        StackSource.SleepD,
        new ProfileWriter(o.sequenceIds[1], {
          source: "sleep.uninterruptible",
          counterName: "blocked time (D)",
          unit: 1,
          description: "time off the CPU in uninterruptible sleep, from the stack at switch-out",
        }, o.base),
      ],
      [
        StackSource.SleepS,
        new ProfileWriter(o.sequenceIds[2], {
          source: "sleep.interruptible",
          counterName: "blocked time (S)",
          unit: 1,
          description: "time off the CPU in interruptible sleep, from the stack at switch-out",
        }, o.base),
      ],
    ]);
    for (const p of o.probeStreams ?? []) {
      this.#writers.set(
        PROBE_STREAM + p.event,
        new ProfileWriter(p.sequenceId, {
          source: `probe.${p.name}`,
          counterName: `${p.name} hits`,
          unit: WeightUnit.Count,
          description: `the stack each time probe event ${p.name} fired`,
        }, o.base),
      );
    }
  }

  /** Consumes a batch of raw records; returns the framed packets to write. */
  consume(batch: Uint8Array): Uint8Array | undefined {
    const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
    // Code objects first: a stack of this batch may name one told further on.
    for (let off = 0; off + Layout.rec_hdr.size <= batch.length;) {
      const kind = dv.getUint16(off, true);
      const size = dv.getUint16(off + 2, true);
      if (size < Layout.rec_hdr.size || off + size > batch.length) break;
      if (kind === RecordKind.PyCode && size === Layout.rec_py_code.size) {
        this.pythonCodes.add(dv, off);
      }
      off += (size + 7) & ~7;
    }
    this.#retryWaiting(false);
    for (let off = 0; off + Layout.rec_hdr.size <= batch.length;) {
      const kind = dv.getUint16(off, true);
      const size = dv.getUint16(off + 2, true);
      if (size < Layout.rec_hdr.size || off + size > batch.length) break;
      const ts = this.#base.relative(dv.getUint32(off + 8, true), dv.getUint32(off + 12, true));
      if (ts > this.#newest) this.#newest = ts;
      if (kind === RecordKind.Stack) {
        this.stats.records++;
        this.stats.recordBytes += size;
        this.#tryStack(dv, off, ts, false);
      } else if (kind === RecordKind.SleepEnd) {
        const L = Layout.rec_sleep_end;
        const pid = dv.getUint32(off + L.pid, true);
        const outTs = this.#base.relative(
          dv.getUint32(off + L.out_ts, true),
          dv.getUint32(off + L.out_ts + 4, true),
        );
        // Blocked until the wake-up; the wait to run after it is the thread state's to show.
        // None seen: a sleep a pending signal cut short, which never blocked — or a wake-up that
        // raced the switch out unseen, rare and short: either way nothing to weigh, rather than
        // the whole wait to run.
        const wokeLo = dv.getUint32(off + L.woke_ts, true);
        const wokeHi = dv.getUint32(off + L.woke_ts + 4, true);
        const unwoken = wokeLo === 0 && wokeHi === 0;
        if (unwoken) this.stats.unwoken++;
        // Less the time taking its stack held the switch out up (the walk delays the wake-up).
        const woke = this.#base.relative(wokeLo, wokeHi) - dv.getUint32(off + L.stack_ns, true);
        this.#sleepEnd(pid, outTs, unwoken ? outTs : Math.max(outTs, woke));
      }
      off += (size + 7) & ~7;
    }
    this.#flushBounded(this.#newest - LATE_END_NS);
    return this.#take();
  }

  /**
   * A sleep whose task slept again has ended; if its end record has not come
   * within LATE_END_NS it was dropped: write it weighed up to the next sleep,
   * so that lost ends cannot pile up.
   */
  #flushBounded(before: number): void {
    let i = 0;
    for (; i < this.#bounded.length; i++) {
      const p = this.#bounded[i];
      if (p.bound >= before) break;
      const key = sleepKey(p.tid, p.ts);
      if (this.#pending.get(key) !== p) continue; // its end came after all
      this.#pending.delete(key);
      this.#writeSleep(p, p.bound);
    }
    if (i > 0) this.#bounded.splice(0, i);
  }

  /**
   * Writes the samples of tasks still asleep, weighed up to `endTs` (or up to
   * their next sleep, for the few whose end record was lost).
   */
  finish(endTs: number): Uint8Array | undefined {
    this.#retryWaiting(true);
    for (const [k, p] of this.#pending) {
      this.#pending.delete(k);
      this.#writeSleep(p, Math.min(endTs, p.bound));
    }
    this.#earlyEnds.clear();
    this.#bounded = [];
    return this.#take();
  }

  #wordBuf = new Uint32Array(2 * (2 * MAX_FRAMES + 256));

  /** Kernel frames as raw words, then user ips as (lo, hi) words. */
  #words(dv: DataView, framesOff: number, nk: number, ips: number[]): Uint32Array {
    const need = 2 * (nk + ips.length);
    if (need > this.#wordBuf.length) this.#wordBuf = new Uint32Array(need * 2);
    const w = this.#wordBuf;
    for (let i = 0; i < 2 * nk; i++) w[i] = dv.getUint32(framesOff + 4 * i, true);
    for (let i = 0; i < ips.length; i++) {
      w[2 * nk + 2 * i] = ips[i] >>> 0;
      w[2 * nk + 2 * i + 1] = Math.floor(ips[i] / 4294967296);
    }
    return w;
  }

  #take(): Uint8Array | undefined {
    return this.#out.pos > 0 ? this.#out.take() : undefined;
  }

  /** One stack record; false if it waits for code objects not told yet (unless FORCE). */
  #tryStack(dv: DataView, off: number, ts: number, force: boolean): boolean {
    try {
      return this.#stack(dv, off, ts, force);
    } catch (e) {
      // Resolving reads other users' files: whatever still escapes costs this one stack
      // (counted), never the rest of the batch.
      this.stats.failed++;
      this.stats.firstFailure ??= (e as Error)?.message ?? String(e);
      return true;
    }
  }

  /** Stacks that waited for their code objects: those now told, or waited long enough. */
  #retryWaiting(all: boolean): void {
    if (this.#waiting.length === 0) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    for (const w of waiting) {
      const dv = new DataView(w.bytes.buffer);
      const ts = this.#base.relative(dv.getUint32(8, true), dv.getUint32(12, true));
      const force = all || ++w.batches >= MAX_WAIT_BATCHES;
      // Still waiting: #stack queued it again (with its batch count carried over below).
      if (!this.#tryStack(dv, 0, ts, force)) {
        this.#waiting[this.#waiting.length - 1].batches = w.batches;
      }
    }
  }

  /**
   * The Python frames of the stack at OFF, leaf first (PY bytes from AT), or undefined when one
   * names a code object not told yet and the stack should wait (not FORCE).
   */
  #pythonFrames(
    dv: DataView,
    at: number,
    n: number,
    tgid: number,
    force: boolean,
  ): PyFrameRef[] | undefined {
    const F = Layout.py_frame;
    const out: PyFrameRef[] = [];
    for (let i = 0; i < n; i++) {
      const o = at + i * F.size;
      const code = dv.getUint32(o + F.code, true) + dv.getUint32(o + F.code + 4, true) * 2 ** 32;
      const c = this.pythonCodes.get(
        tgid,
        code,
        dv.getUint32(o + F.fingerprint, true),
        dv.getUint32(o + F.fingerprint + 4, true),
      );
      const entry = (dv.getUint32(o + F.flags, true) & PyFrameFlag.Entry) !== 0;
      if (!c) {
        if (!force) return undefined;
        this.stats.pythonUnnamed++;
        out.push({ frame: markerFrame(`[python code 0x${code.toString(16)}, not told]`), entry });
        continue;
      }
      const name = this.pythonCodes.frameName(c, dv.getUint32(o + F.instr, true));
      out.push({ frame: this.#pyFrame(c.file, name), entry });
    }
    return out;
  }

  /** Python frame lists already named, by a hash of their raw words (process, codes, places). */
  #pyRuns = new Map<
    number,
    { tgid: number; words: Uint32Array; frames: PyFrameRef[]; id: number }[]
  >();
  #pyRunCount = 0;
  #pyRunIds = 0;
  /** Run ids by the frames a run names (see #pythonRun). */
  #pyRunByFrames = new Map<string, number>();
  /** A number for each Python frame object handed out (they are one per name). */
  #pyFrameIds = new WeakMap<FrameRef, number>();
  #pyFrameIdNext = 0;

  #pyFrameId(f: FrameRef): number {
    let id = this.#pyFrameIds.get(f);
    if (id === undefined) this.#pyFrameIds.set(f, id = ++this.#pyFrameIdNext);
    return id;
  }
  /** Stacks with Python frames put in place, by native stack and Python frame list. */
  #mergedStacks = new Map<number, { frames: FrameRef[]; key: number; approximate: number }>();

  /**
   * The Python frames of a stack, named (a list seen before is not named again), with an id for
   * the list; undefined when it waits for code objects (see #pythonFrames).
   */
  #pythonRun(
    dv: DataView,
    at: number,
    n: number,
    tgid: number,
    force: boolean,
  ): { frames: PyFrameRef[]; id: number } | undefined {
    const nWords = n * 6;
    let h = Math.imul(tgid ^ 0x9e3779b9, 0x85ebca6b) ^ n;
    for (let i = 0; i < nWords; i++) {
      h = Math.imul(h ^ dv.getUint32(at + 4 * i, true), 0x01000193);
      h ^= h >>> 15;
    }
    const bucket = this.#pyRuns.get(h);
    if (bucket) {
      for (const e of bucket) {
        if (e.tgid !== tgid || e.words.length !== nWords) continue;
        let same = true;
        for (let i = 0; i < nWords && same; i++) {
          same = e.words[i] === dv.getUint32(at + 4 * i, true);
        }
        if (same) return e;
      }
    }
    const frames = this.#pythonFrames(dv, at, n, tgid, force);
    if (!frames) return undefined;
    const words = new Uint32Array(nWords);
    for (let i = 0; i < nWords; i++) words[i] = dv.getUint32(at + 4 * i, true);
    // Bounded: a new list per new place in the code, and places repeat.
    if (++this.#pyRunCount > MAX_CACHED_STACKS) {
      this.#pyRuns.clear();
      this.#mergedStacks.clear();
      this.#pyRunCount = 1;
    }
    // Runs that differ only in places within the same lines are the same frames: one id, so
    // that their stacks are merged, and written, as one.
    const named = frames.map((f) => `${this.#pyFrameId(f.frame)}${f.entry ? "e" : ""}`).join();
    let id = this.#pyRunByFrames.get(named);
    if (id === undefined) {
      if (this.#pyRunByFrames.size >= MAX_CACHED_STACKS) this.#pyRunByFrames.clear();
      this.#pyRunByFrames.set(named, id = ++this.#pyRunIds);
    }
    const entry = { tgid, words, frames, id };
    if (bucket) bucket.push(entry);
    else this.#pyRuns.set(h, [entry]);
    return entry;
  }

  /** NATIVE with the Python run PY in place (the same pair comes out the same, once built). */
  #merged(
    native: { frames: FrameRef[]; key: number; kernelFrames: number },
    py: { frames: PyFrameRef[]; id: number } | undefined,
    status: number,
  ): { frames: FrameRef[]; key: number | undefined } {
    if (!py || status > PyStatus.Ok) {
      return {
        frames: this.#withPython(native.frames, native.kernelFrames, py?.frames ?? [], status),
        key: undefined,
      };
    }
    const k = native.key * 4194304 + (py.id % 4194304);
    const cached = this.#mergedStacks.get(k);
    const p = this.stats.python;
    if (cached) {
      p.stacks++;
      p.frames += py.frames.length;
      p.approximate += cached.approximate;
      return cached;
    }
    const before = p.approximate;
    const merged = {
      frames: this.#withPython(native.frames, native.kernelFrames, py.frames, status),
      key: ++this.stats.distinctStacks,
      approximate: 0,
    };
    merged.approximate = p.approximate - before;
    if (this.#mergedStacks.size >= MAX_CACHED_STACKS) this.#mergedStacks.clear();
    this.#mergedStacks.set(k, merged);
    return merged;
  }

  #pyModules = new Map<string, FrameRef["module"]>();
  #pyFrameRefs = new Map<string, FrameRef>();

  /** One FrameRef per distinct Python frame name (bounded), its file as its module. */
  #pyFrame(file: string, name: string): FrameRef {
    let f = this.#pyFrameRefs.get(name);
    if (f) return f;
    let module = this.#pyModules.get(file);
    if (!module) {
      if (this.#pyModules.size >= 1 << 14) this.#pyModules.clear();
      this.#pyModules.set(file, module = { key: `python:${file}`, path: file });
    }
    f = { module, relPc: 0n, name };
    if (this.#pyFrameRefs.size >= 1 << 16) this.#pyFrameRefs.clear();
    this.#pyFrameRefs.set(name, f);
    return f;
  }

  #stack(dv: DataView, off: number, ts: number, force: boolean): boolean {
    const L = Layout.rec_stack;
    const pid = dv.getUint32(off + L.pid, true);
    const tgid = dv.getUint32(off + L.tgid, true);
    const cpu = dv.getUint32(off + L.cpu, true);
    const source = dv.getUint8(off + L.source);
    const flags = dv.getUint8(off + L.flags);
    const nk = dv.getUint16(off + L.kernel_frames, true);
    const nu = dv.getUint16(off + L.user_frames, true);
    const copyBytes = dv.getUint32(off + L.copy_bytes, true);
    const framesOff = off + L.size;
    const nPy = dv.getUint16(off + L.py_frames, true);
    const pyStatus = dv.getUint8(off + L.py_status);
    const weightShift = dv.getUint8(off + L.weight_shift);
    const py = nPy > 0
      ? this.#pythonRun(dv, framesOff + 8 * (nk + nu), nPy, tgid, force)
      : undefined;
    if (nPy > 0 && !py) {
      // Its code objects are on their way: wait (a copy: the batch's memory is reused).
      const size = dv.getUint16(off + 2, true);
      if (this.#waitingBytes + size > MAX_WAITING_BYTES) return this.#stack(dv, off, ts, true);
      const bytes = new Uint8Array(size);
      bytes.set(new Uint8Array(dv.buffer, dv.byteOffset + off, size));
      this.#waiting.push({ bytes, batches: 0 });
      this.#waitingBytes += size;
      return false;
    }
    const probe = source === StackSource.Probe
      ? this.#writers.get(PROBE_STREAM + dv.getUint16(off + L.probe_event, true))
      : undefined;
    if (source === StackSource.Probe && !probe) {
      throw new Error("a stack of an unknown probe event");
    }
    const user = this.#userIps(dv, off, framesOff + 8 * nk, nu, nPy, copyBytes, tgid, ts);
    const native = this.#resolve(dv, framesOff, nk, user, tgid, ts, source !== StackSource.Cpu);
    const resolved = py || pyStatus > PyStatus.Ok ? this.#merged(native, py, pyStatus) : native;
    if (source === StackSource.Cpu) {
      this.stats.cpuSamples++;
      const mode = flags & StackFlag.UserMode ? StackMode.User : StackMode.Kernel;
      this.#writers.get(source)!.write(this.#out, {
        ts,
        pid: tgid,
        tid: pid,
        cpu,
        mode,
        frames: resolved.frames,
        weight: this.#cpuWeight,
      }, resolved.key);
      return true;
    }
    if (probe) {
      this.stats.probeSamples++;
      probe.write(this.#out, {
        ts,
        pid: tgid,
        tid: pid,
        cpu,
        mode: flags & StackFlag.UserMode ? StackMode.User : StackMode.Kernel,
        frames: resolved.frames,
        weight: 1,
      }, resolved.key);
      return true;
    }
    if (!this.#writers.has(source)) return true;
    const pending: Pending = {
      ts,
      pid: tgid,
      tid: pid,
      cpu,
      source,
      bound: Infinity,
      frames: resolved.frames,
      key: resolved.key,
      scale: 2 ** Math.min(weightShift, 31),
    };
    const key = sleepKey(pid, ts);
    // Records of different CPUs arrive in ring order, not time order: the
    // end of this sleep may already be here.
    const end = this.#earlyEnds.get(key);
    if (end !== undefined) {
      this.#earlyEnds.delete(key);
      this.#writeSleep(pending, end);
      return true;
    }
    // An older sleep of this task still waiting for its end ended before this one began.
    const older = this.#latestSleep.get(pid);
    if (older !== undefined && older < ts) {
      const p = this.#pending.get(sleepKey(pid, older));
      if (p && p.bound === Infinity) {
        p.bound = ts;
        this.#bounded.push(p);
      }
    }
    this.#latestSleep.set(pid, ts);
    this.#pending.set(key, pending);
    return true;
  }

  /** NATIVE with the Python frames PY in place, marked when the walk did not reach the end. */
  #withPython(
    native: FrameRef[],
    kernelFrames: number,
    py: PyFrameRef[],
    status: number,
  ): FrameRef[] {
    const p = this.stats.python;
    p.stacks++;
    p.frames += py.length;
    let note: string | undefined;
    if (status === PyStatus.NoThread) {
      p.noThread++;
      return native;
    } else if (status === PyStatus.ReadFailed) {
      p.readFailed++;
      note = "[python stack cut: the interpreter's memory could not be read]";
    } else if (status === PyStatus.Truncated) {
      p.cut++;
      note = "[python stack cut: deeper than recorded]";
    }
    const { frames, exact } = interleavePython(native, py, note, kernelFrames);
    if (!exact) p.approximate++;
    return frames;
  }

  #sleepEnd(tid: number, outTs: number, endTs: number): void {
    const key = sleepKey(tid, outTs);
    const p = this.#pending.get(key);
    if (!p) {
      // Its stack is still on its way (or was dropped: then this stays until
      // the end of the trace, bounded below).
      if (this.#earlyEnds.size >= 1 << 16) {
        this.#earlyEnds.delete(this.#earlyEnds.keys().next().value!);
      }
      this.#earlyEnds.set(key, endTs);
      return;
    }
    this.#pending.delete(key);
    if (this.#latestSleep.get(tid) === outTs) this.#latestSleep.delete(tid);
    this.#writeSleep(p, endTs);
  }

  #writeSleep(p: Pending, endTs: number): void {
    this.stats.sleepSamples++;
    const sample: StackSampleRecord = {
      ts: p.ts,
      pid: p.pid,
      tid: p.tid,
      cpu: p.cpu,
      mode: StackMode.Kernel,
      frames: p.frames,
      weight: Math.max(0, endTs - p.ts) * p.scale,
    };
    if (p.scale > 1) this.stats.sleepsSampledOut += p.scale - 1;
    this.#writers.get(p.source)!.write(this.#out, sample, p.key);
  }

  /**
   * The user part of a stack, leaf first: unwound with the binaries' unwind
   * tables from the stack copy when there is one, else (or when that did
   * worse) the frame-pointer walk cut where it left executable code.
   */
  #userIps(
    dv: DataView,
    off: number,
    fpOff: number,
    nu: number,
    nPy: number,
    copyBytes: number,
    tgid: number,
    ts: number,
  ): { ips: number[]; cut: boolean } {
    const L = Layout.rec_stack;
    const ip = userWord(dv, off + L.user_ip);
    const sp = userWord(dv, off + L.user_sp);
    const tid = dv.getUint32(off + L.pid, true);
    if (copyBytes === 0 && ip !== 0) {
      // No copy (sleep stacks have a budget): a task asleep at the same user
      // pc and sp as the last time it was unwound is almost always in the
      // same call (a loop around read, usleep, futex…): reuse that walk.
      const last = this.#lastUnwind.get(tid);
      if (
        last && last.ip === ip && last.sp === sp && last.image === this.#spaces.imageId(tgid, ts)
      ) {
        this.stats.reused++;
        return { ips: last.ips, cut: last.cut };
      }
    }
    if (copyBytes === 0 || ip === 0) {
      if (nu > 0) this.stats.framePointer++;
      return this.#framePointerWalk(dv, fpOff, nu, tgid, ts);
    }
    const bp = userWord(dv, off + L.user_bp);
    // The stack copy follows the user ips and the Python frames.
    const copyAt = fpOff + 8 * nu + Layout.py_frame.size * nPy;
    const stack = new Uint8Array(dv.buffer, dv.byteOffset + copyAt, copyBytes);
    return this.#unwindCopy(stack, ip, sp, bp, tid, tgid, ts, dv, fpOff, nu);
  }

  /** The frame-pointer walk BPF took (NU ips at FPOFF), cut where it left executable code. */
  #framePointerWalk(
    dv: DataView,
    fpOff: number,
    nu: number,
    tgid: number,
    ts: number,
  ): { ips: number[]; cut: boolean } {
    const ips: number[] = [];
    for (let i = 0; i < nu; i++) {
      const ip = userWord(dv, fpOff + 8 * i);
      // Past a frame without frame pointers the walk reads garbage: stop there.
      if (!this.#spaces.lookup(tgid, ip, ts)?.executable) return { ips, cut: true };
      ips.push(ip);
    }
    return { ips, cut: false };
  }

  /**
   * The user stack unwound from the stack copy, or the frame-pointer walk (NU ips at FPOFF, read
   * only when the unwinding stopped short) where that did better.
   */
  #unwindCopy(
    stack: Uint8Array,
    ip: number,
    sp: number,
    bp: number,
    tid: number,
    tgid: number,
    ts: number,
    dv: DataView,
    fpOff: number,
    nu: number,
  ): { ips: number[]; cut: boolean } {
    const copyBytes = stack.length;
    const t0 = performance.now();
    // One input object and one module lookup for every walk: no allocation per stack.
    const w = this.#walk;
    w.tgid = tgid;
    w.ts = ts;
    w.image = this.#spaces.imageId(tgid, ts);
    const input = this.#unwindInput;
    input.regs.ip = ip;
    input.regs.sp = sp;
    input.regs.bp = bp;
    input.stack = stack;
    input.stackBase = sp;
    const r = this.#unwinder.unwind(input);
    this.stats.unwindNs += (performance.now() - t0) * 1e6;
    if (this.#stackTop) this.#learnTop(tid, sp, copyBytes, r);
    if (r.end !== "complete" && nu > r.ips.length) {
      const fp = this.#framePointerWalk(dv, fpOff, nu, tgid, ts);
      if (!fp.cut && fp.ips.length > r.ips.length) {
        this.stats.framePointer++;
        return fp;
      }
    }
    let end = r.end;
    if (end !== "complete" && end !== "truncated" && r.ips.length > 1) {
      // Reaching an entry point is reaching the end, even where its CFI does
      // not say so (musl's _start, a static binary's thread start).
      const last = this.#sym.userFrame(tgid, r.ips[r.ips.length - 1], ts, true).frame;
      if (last && OUTERMOST.has(last.name)) end = "complete";
    }
    this.stats.unwound[end]++;
    const result = { ips: r.ips, cut: end !== "complete" };
    if (this.#lastUnwind.size >= 1 << 14) this.#lastUnwind.clear();
    this.#lastUnwind.set(tid, { ip, sp, image: this.#spaces.imageId(tgid, ts), ...result });
    return result;
  }

  /** What a walk says about its thread's stack top: learnt from a complete one, or wrong. */
  #learnTop(tid: number, sp: number, copyBytes: number, r: UnwindResult): void {
    const known = this.#tops.get(tid);
    if (r.end === "complete") {
      if ((this.#topStrikes.get(tid) ?? 0) >= TOP_STRIKES) return;
      const top = Math.ceil(r.reach / 8) * 8 + TOP_SLACK;
      if (known !== undefined && top <= known) return;
      if (this.#tops.size >= 1 << 15) this.#tops.clear();
      this.#tops.set(tid, top);
      this.#stackTop!(tid, top);
    } else if (r.end === "truncated" && known !== undefined && sp + copyBytes >= known - 8) {
      // The copy stopped at the top and that was not enough: another stack, or coroutines.
      this.#tops.delete(tid);
      if (this.#topStrikes.size >= 1 << 15) this.#topStrikes.clear();
      this.#topStrikes.set(tid, (this.#topStrikes.get(tid) ?? 0) + 1);
      this.#stackTop!(tid, 0);
    }
  }

  /** Mappings changed somewhere: pcs may now be in other modules. */
  mappingsChanged(): void {
    if (this.#moduleCount > 0) this.#forgetModules();
  }

  #forgetModules(): void {
    this.#modulePcs.fill(NaN);
    this.#moduleOf.fill(undefined);
    this.#moduleCount = 0;
  }

  #resolve(
    dv: DataView,
    framesOff: number,
    nk: number,
    user: { ips: number[]; cut: boolean },
    tgid: number,
    ts: number,
    trimTracing: boolean,
  ): { frames: FrameRef[]; key: number; kernelFrames: number } {
    // The cache key: the kernel words, the user ips and the process image the
    // user part belongs to, hashed without building strings (this runs per sample).
    const nu = user.ips.length;
    const cutUser = user.cut;
    const image = nu > 0 ? this.#spaces.imageId(tgid, ts) : 0;
    const nWords = (nk + nu) * 2;
    const words = this.#words(dv, framesOff, nk, user.ips);
    let h = Math.imul(image ^ 0x9e3779b9, 0x85ebca6b) ^ (nu > 0 ? tgid : 0) ^ (nk << 16) ^ nu ^
      (cutUser ? 0x40000000 : 0);
    for (let i = 0; i < nWords; i++) {
      h = Math.imul(h ^ words[i], 0x01000193);
      h ^= h >>> 15;
    }
    const bucket = this.#cache.get(h);
    if (bucket) {
      for (const e of bucket) {
        if (e.image !== image || e.nk !== nk || e.words.length !== nWords) continue;
        if (e.truncated !== cutUser) continue;
        if (nu > 0 && e.tgid !== tgid) continue;
        let same = true;
        for (let i = 0; i < nWords; i++) {
          if (e.words[i] !== words[i]) {
            same = false;
            break;
          }
        }
        if (same) {
          if (e.truncated) this.stats.truncated++;
          return e;
        }
      }
    }
    return this.#resolveNew(dv, framesOff, nk, user, tgid, ts, trimTracing, h, image, words);
  }

  /**
   * A raw stack not seen before: named frame by frame and cached under hash H. Apart from the
   * lookup above so that the compiler need not compile it into every lookup.
   */
  #resolveNew(
    dv: DataView,
    framesOff: number,
    nk: number,
    user: { ips: number[]; cut: boolean },
    tgid: number,
    ts: number,
    trimTracing: boolean,
    h: number,
    image: number,
    words: Uint32Array,
  ): CachedStack {
    const nu = user.ips.length;
    const nWords = (nk + nu) * 2;
    const leafFirst: FrameRef[] = [];
    let skipping = trimTracing;
    for (let i = 0; i < nk; i++) {
      const ip = dv.getBigUint64(framesOff + 8 * i, true);
      const f = this.#sym.kernelFrame(ip, i > 0);
      if (skipping && TRACING_FRAME.test(f.name)) continue;
      skipping = false;
      leafFirst.push(f);
    }
    const kernelFrames = leafFirst.length;
    let truncated = user.cut;
    for (let i = 0; i < nu; i++) {
      const ip = user.ips[i];
      const r = this.#sym.userFrame(tgid, ip, ts, i > 0);
      if (r.invalid) {
        // Past here a frame-pointer walk reads garbage: cut, and say so.
        truncated = true;
        break;
      }
      leafFirst.push(r.frame!);
    }
    if (truncated) {
      this.stats.truncated++;
      leafFirst.push({ module: TRUNCATED, relPc: 0n, name: "[truncated stack]" });
    }
    if (leafFirst.length === 0) {
      leafFirst.push({ module: TRUNCATED, relPc: 0n, name: "[no stack]" });
    }
    const entry: CachedStack = {
      kernelFrames,
      frames: leafFirst.reverse(),
      key: ++this.stats.distinctStacks,
      truncated,
      image,
      tgid,
      nk,
      words: words.slice(0, nWords),
    };
    // Bounded: on fork-heavy hosts every process brings new entries.
    if (this.#cached >= MAX_CACHED_STACKS) {
      this.#cache.clear();
      this.#cached = 0;
    }
    this.#cached++;
    const b = this.#cache.get(h);
    if (b) b.push(entry);
    else this.#cache.set(h, [entry]);
    return entry;
  }
}
