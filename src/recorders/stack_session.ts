/**
 * The one session behind every stack the trace carries, shared by the recorders that take stacks
 * (cpu-stacks, sleep-stacks, interruptible-stacks, and probes for events with "stack": true):
 * one symbolizer, one view of every process's mappings (seeded from /proc, kept current by the
 * perf side-band), one profiler writing each stream. The workers forward the raw stack records;
 * the main thread unwinds and names them (src/stacks/, src/symbolize/, src/unwind/).
 */
import { ClockId, clockNs } from "../ffi/clock.ts";
import type { PerfEventSet } from "../ffi/perf_event.ts";
import { PerfSideband, type SidebandRecord } from "../ffi/perf_sideband.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import { ConfigStackBit, Layout as L, RecordKind, STACK_SLOTS } from "../records/records.ts";
import { AddressSpaces } from "../stacks/address_spaces.ts";
import { readMaps } from "../stacks/proc_maps.ts";
import { StackProfiler } from "../stacks/stack_profiler.ts";
import { Kallsyms } from "../symbolize/kallsyms.ts";
import { Symbolizer } from "../symbolize/symbolizer.ts";
import { PythonProcesses } from "../python/python_processes.ts";
import type { BpfObject } from "../ffi/bpf_object.ts";
import type {
  BpfSetup,
  DecoderScope,
  PacketSink,
  RecorderContext,
  RecorderSession,
} from "./recorder.ts";

/** The maps a stack's Python walk uses besides the core's (bpf/python.bpf.h). */
export const PYTHON_MAPS = ["py_threads", "py_known", "py_code_scratch", "py_scratch"] as const;

/** The maps every recorder that takes stacks needs (bpf/stack_emit.bpf.h, python.bpf.h). */
export const STACK_MAPS = ["stack_scratch", "stack_tops", ...PYTHON_MAPS] as const;

/** How long an exited process's mappings are kept for samples still in flight. */
const EXITED_MAPPINGS_KEPT_NS = 5e9;
/** Sleep stacks with a stack copy, per CPU per second; the others walk frame pointers. */
const SLEEP_COPIES_PER_SEC = 1000;
/** The libraries whose symbols are read before recording starts (Symbolizer.preload). */
const COMMON_LIBRARY = /\/(libc\.so\.6|ld-linux-x86-64\.so\.2)$/;
/** Batches whose CPU per stack the summary's median is taken over (the latest). */
const BATCHES_KEPT = 4096;
/** Executable mappings kept per process from the /proc scan; real ones have at most hundreds. */
const MAX_SEEDED_PER_PROCESS = 16384;

/** The side-band and the profiler, shared by the stack recorders that are on. */
export class StackSession implements RecorderSession {
  readonly forwarded = [RecordKind.Stack, RecordKind.SleepEnd, RecordKind.PyCode] as const;
  /** The CPU sampling events, when cpu-stacks is on (it sets them). */
  sampling?: PerfEventSet;
  #ctx: RecorderContext;
  #spaces = new AddressSpaces();
  #sideband?: PerfSideband;
  #symbolizer?: Symbolizer;
  #profiler?: StackProfiler;
  /** Main-thread CPU spent on stack records, and per stack in each of the last batches. */
  #processingNs = 0;
  #batchUs = new Float64Array(BATCHES_KEPT);
  #batches = 0;
  #probeStreams: { event: number; name: string }[] = [];
  #python?: PythonProcesses;
  #pythonMapFull = 0;

  constructor(ctx: RecorderContext) {
    this.#ctx = ctx;
  }

  /** Probe event EVENT records its stack: a stream of its own, named after it. Before attach. */
  addProbeStream(event: number, name: string): void {
    this.#probeStreams.push({ event, name });
  }

  configure({ obj, config }: BpfSetup): void {
    const o = this.#ctx.options;
    // Slots per CPU for the programs that may interrupt one another (sampler, switch, probe).
    obj.setMaxEntries("stack_scratch", STACK_SLOTS * obj.possibleCpus);
    config.or(
      "stack_bits",
      (o.userStacks !== "dwarf" ? ConfigStackBit.UserFp : 0) |
        (o.userStacks !== "fp" ? ConfigStackBit.UserCopy : 0) |
        (o.pythonStacks ? ConfigStackBit.Python : 0),
    );
    config.set("stack_copy_bytes", o.userStackBytes);
    config.set("sleep_copies_per_sec", SLEEP_COPIES_PER_SEC);
    config.set("sleep_stacks_per_sec", o.sleepStacksPerSec);
    // Open before anything is attached: no mapping made from then on is missed.
    // 1 MiB per CPU: an exec storm between two drains must not overflow it.
    this.#sideband = PerfSideband.open([...this.#ctx.cpus], 256);
  }

  attach(obj: BpfObject): string[] {
    const ctx = this.#ctx;
    // Read now, before recording starts (a fifth of a second for 100k+ symbols), rather than on
    // the first kernel frame: then it would compete with what is being recorded.
    const kallsyms = Kallsyms.load();
    if (kallsyms.restricted) {
      ctx.log(
        "warning: /proc/kallsyms hides kernel addresses (kptr_restrict); kernel frames are labelled, not named",
      );
    }
    this.#symbolizer = new Symbolizer(kallsyms, this.#spaces);
    this.#profiler = new StackProfiler({
      base: new TimestampBase(ctx.base),
      symbolizer: this.#symbolizer,
      spaces: this.#spaces,
      // One sequence per stack stream (on-CPU, D sleep, S sleep).
      sequenceIds: [ctx.sequence(), ctx.sequence(), ctx.sequence()],
      cpuSampleWeight: 1e9 / Math.max(1, ctx.options.sampleFreq),
      cpuCounterName: this.sampling?.source ?? "cpu-clock",
      probeStreams: this.#probeStreams.map((p) => ({ ...p, sequenceId: ctx.sequence() })),
      stackTop: (tid, top) => {
        try {
          if (top === 0) obj.deleteHash("stack_tops", tid);
          else {
            const v = new Uint8Array(16); // struct stack_top: the top, not yet stamped
            new DataView(v.buffer).setBigUint64(0, BigInt(top), true);
            obj.updateHashBytes("stack_tops", new Uint8Array(new Uint32Array([tid]).buffer), v);
          }
        } catch { /* only a hint: without it the copy is whole */ }
      },
    });
    if (ctx.options.pythonStacks) {
      const sym = this.#symbolizer;
      this.#python = new PythonProcesses(
        (pid, addr) => sym.mappedElf(pid, addr, Number(clockNs(ClockId.BOOTTIME) - ctx.base)),
        (pid, value) => {
          try {
            obj.updateHash("py_procs", pid, value);
          } catch {
            this.#pythonMapFull++; // 4096 Python processes at once: the rest keep C frames
          }
        },
        (key, value) => {
          try {
            obj.updateHashBytes("py_exes", key, value);
          } catch { /* 256 interpreters: the rest are found through their mappings */ }
        },
      );
    }
    // The mappings of every process now, also before recording starts: the side-band, open
    // since configure(), has whatever is mapped from here on.
    const python = this.#python;
    const common: number[] = [];
    seedMappings(this.#spaces, processIds(), (pid, m) => {
      if (python && PythonProcesses.candidate(m.path)) {
        python.mapped({ pid, addr: m.start, path: m.path }, 0n);
      }
      if (pid === Deno.pid && COMMON_LIBRARY.test(m.path)) common.push(m.start);
    });
    // The C library and the dynamic loader (ours are the host's) are in nearly every stack.
    const now = Number(clockNs(ClockId.BOOTTIME) - ctx.base);
    for (const addr of common) this.#symbolizer.preload(Deno.pid, addr, now);
    return [];
  }

  records(batch: Uint8Array, out: PacketSink): void {
    // Every mapping a sample can use was recorded before the sample was
    // drained, so the side-band is complete for this batch.
    // CPU, not wall time: on a busy host the workload preempts this thread mid-batch.
    const c0 = clockNs(ClockId.THREAD_CPUTIME);
    const r0 = this.#profiler?.stats.records ?? 0;
    try {
      this.#applySideband();
      const packets = this.#profiler?.consume(batch);
      if (packets) out(packets);
    } finally {
      const ns = Number(clockNs(ClockId.THREAD_CPUTIME) - c0);
      this.#processingNs += ns;
      const n = (this.#profiler?.stats.records ?? 0) - r0;
      if (n > 0) this.#batchUs[this.#batches++ % BATCHES_KEPT] = ns / n / 1e3;
    }
  }

  tick(): void {
    this.#applySideband(); // keep its rings from filling between batches
    // Samples are resolved well within this of being taken; older exits can go.
    this.#spaces.prune(
      Number(clockNs(ClockId.BOOTTIME) - this.#ctx.base) - EXITED_MAPPINGS_KEPT_NS,
    );
  }

  finish(end: bigint, out: PacketSink): void {
    this.#applySideband();
    const packets = this.#profiler?.finish(Number(end - this.#ctx.base));
    if (packets) out(packets);
  }

  lost() {
    // Stacks userspace could not process are lost as surely as those BPF could not reserve.
    return { [RecordKind.Stack]: this.#profiler?.stats.failed ?? 0 };
  }

  summary(): string[] {
    const s = this.#profiler?.stats;
    const sym = this.#symbolizer;
    if (!s || !sym) return [];
    const lines: string[] = [];
    const frames = sym.named + sym.labelled;
    const sampling = this.sampling
      ? ` (${this.sampling.source}${this.sampling.fallback ? ` (${this.sampling.fallback})` : ""})`
      : "";
    const sidebandLost = this.#sideband?.lost ?? 0;
    lines.push(
      `stacks: ${s.cpuSamples} CPU samples${sampling}, ` +
        `${s.sleepSamples} sleep stacks` +
        (s.sleepsSampledOut
          ? ` (standing for ${s.sleepsSampledOut} more interruptible sleeps, sampled under load)`
          : "") +
        ", " +
        (this.#probeStreams.length ? `${s.probeSamples} probe stacks, ` : "") +
        `${s.distinctStacks} distinct; ` +
        `${frames ? ((100 * sym.named) / frames).toFixed(1) : "0"}% of their frames named, ` +
        `${s.truncated} user stacks cut short` +
        (sidebandLost ? `, ${sidebandLost} mapping records lost` : ""),
    );
    const u = s.unwound;
    const unwound = u.complete + u.truncated + u["no-unwind-info"] + u["bad-frame"] + u.budget;
    if (unwound + s.framePointer > 0) {
      lines.push(
        `user stacks: ${unwound} unwound from a stack copy (${u.complete} to the outermost ` +
          `frame, ${u.truncated} past the copy, ${u["no-unwind-info"] + u["bad-frame"]} ` +
          `cut at code without unwind info` +
          (u.budget ? `, ${u.budget} cut at the work budget` : "") +
          `), ${s.reused} reused their task's last walk, ${s.framePointer} by frame pointers`,
      );
    }
    const py = this.#python;
    if (py && (py.found.size || py.unsupportedCount)) {
      const versions = new Map<string, number>();
      for (const v of py.found.values()) versions.set(v, (versions.get(v) ?? 0) + 1);
      const p = s.python;
      lines.push(
        `python: ${py.found.size} processes (${
          [...versions].map(([v, n]) => `${v} ×${n}`).join(", ")
        }); ${p.stacks - p.noThread} stacks with ${p.frames} Python frames` +
          (p.readFailed + p.cut ? `, ${p.readFailed + p.cut} of them cut short (marked)` : "") +
          (p.approximate
            ? `, ${p.approximate} where the C loop's frames and the Python runs did not pair ` +
              "up (marked)"
            : "") +
          (s.pythonUnnamed ? `, ${s.pythonUnnamed} frames of code never told (labelled)` : "") +
          (this.#pythonMapFull ? `, ${this.#pythonMapFull} processes past the map's room` : ""),
      );
      if (py.unsupportedCount) {
        lines.push(
          `python: ${py.unsupportedCount} processes keep their C frames only: ` +
            [...new Set(py.unsupported.values())].slice(0, 3).join("; "),
        );
      }
    }
    if (s.failed) {
      lines.push(
        `warning: ${s.failed} stacks could not be processed (first: ${s.firstFailure}); ` +
          "please report this",
      );
    }
    const failures = [...sym.failures.keys()];
    const unreadable = failures.length + sym.moreFailures;
    if (unreadable) {
      const shown = failures.slice(0, 10);
      lines.push(
        `unreadable files (frames labelled module+offset): ${shown.join(", ")}` +
          (unreadable > shown.length ? ` and ${unreadable - shown.length} more` : ""),
      );
    }
    if (this.#spaces.mappingsDropped) {
      lines.push(
        `${this.#spaces.mappingsDropped} replaced code mappings forgotten (processes that map ` +
          "code again and again); samples in them may be labelled",
      );
    }
    return lines;
  }

  details(): string[] {
    const s = this.#profiler?.stats;
    const n = s ? s.cpuSamples + s.sleepSamples + s.probeSamples : 0;
    if (!s || n === 0) return [];
    const kept = this.#batchUs.slice(0, Math.min(this.#batches, BATCHES_KEPT)).sort();
    const median = kept.length ? kept[kept.length >> 1] : 0;
    return [
      `stacks: ${(s.recordBytes / n).toFixed(0)} B/stack from BPF; stack processing on the ` +
      `main thread ${median.toFixed(1)} µs CPU/stack (median of ${kept.length} batches; ` +
      `${(this.#processingNs / Math.max(1, s.records) / 1e3).toFixed(1)} mean), unwinding ` +
      `${(s.unwindNs / Math.max(1, s.records) / 1e3).toFixed(1)} µs/stack (wall)`,
      `sleeps: weighed up to their wake-up; ${s.unwoken} ended without one seen (weighed 0: ` +
      "a pending signal cut them short)",
    ];
  }

  close(): void {
    this.#sideband?.close();
    this.#symbolizer?.close();
  }

  #applySideband(): void {
    if (!this.#sideband) return;
    const spaces = this.#spaces;
    const base = Number(this.#ctx.base);
    // Each CPU's ring is in time order, the rings together are not.
    const records: SidebandRecord[] = [];
    this.#sideband.drain((r) => records.push(r));
    records.sort((a, b) => a.time - b.time);
    for (const r of records) {
      switch (r.type) {
        case "mmap2":
          this.#profiler?.mappingsChanged();
          spaces.map(r.pid, {
            start: r.addr,
            end: r.addr + r.len,
            pgoff: r.pgoff,
            path: r.filename,
            // The same spelling as /proc/PID/maps, so both name one file alike.
            dev: `${hex2(r.maj)}:${hex2(r.min)}`,
            inode: r.ino,
            executable: (r.prot & 4) !== 0,
            since: r.time - base,
          });
          if ((r.prot & 4) !== 0 && this.#python && PythonProcesses.candidate(r.filename)) {
            this.#python.mapped(
              { pid: r.pid, addr: r.addr, path: r.filename },
              BigInt(Math.round(r.time)),
            );
          }
          break;
        case "comm":
          if (r.exec) spaces.exec(r.pid, r.time - base);
          break;
        case "fork":
          spaces.fork(r.ppid, r.pid, r.time - base);
          break;
        case "exit":
          if (r.pid === r.tid) spaces.exit(r.pid, r.time - base);
          break;
      }
    }
  }
}

/** The processes alive now, by /proc (bounded by what /proc lists). */
function processIds(): number[] {
  const pids: number[] = [];
  try {
    for (const e of Deno.readDirSync("/proc")) {
      if (/^\d+$/.test(e.name)) pids.push(Number(e.name));
    }
  } catch { /* no /proc: no seed, samples are labelled */ }
  return pids;
}

/** Executable mappings of the processes alive at start; later ones come from the side-band. */
function seedMappings(
  spaces: AddressSpaces,
  pids: number[],
  seen: (pid: number, m: { start: number; path: string }) => void,
): void {
  for (const pid of pids) {
    let entries;
    try {
      entries = readMaps(pid).entries;
    } catch {
      continue; // exited, a kernel thread's empty maps, or malformed: its samples are labelled
    }
    const code = entries.filter((m) => m.perms.includes("x")).slice(0, MAX_SEEDED_PER_PROCESS);
    spaces.seed(
      pid,
      code.map((m) => ({
        start: m.start,
        end: m.end,
        pgoff: m.offset,
        path: m.path,
        dev: m.dev,
        inode: m.inode,
        executable: true,
      })),
    );
    for (const m of code) seen(pid, m);
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

export function stackSession(ctx: RecorderContext): StackSession {
  return ctx.shared("stacks", () => new StackSession(ctx));
}

/**
 * Stack records go to the main thread whole. One table per worker, whichever
 * stack recorders ask: the workers add a decoder they already have only once.
 */
export function stackDecoders(scope: DecoderScope): DecoderTable {
  return scopeDecoders.get(scope) ?? makeDecoders(scope);
}

const scopeDecoders = new WeakMap<DecoderScope, DecoderTable>();

function makeDecoders(scope: DecoderScope): DecoderTable {
  const table: DecoderTable = {
    [RecordKind.Stack]: (mem, off, size) => {
      if (size < L.rec_stack.size || (size - L.rec_stack.size) % 8 !== 0) return false;
      scope.forward(mem, off, size);
      return true;
    },
    [RecordKind.PyCode]: (mem, off, size) => {
      if (size !== L.rec_py_code.size) return false;
      scope.forward(mem, off, size);
      return true;
    },
    [RecordKind.SleepEnd]: (mem, off, size) => {
      if (size !== L.rec_sleep_end.size) return false;
      scope.forward(mem, off, size);
      return true;
    },
  };
  scopeDecoders.set(scope, table);
  return table;
}
