/**
 * `systing report`'s numbers: one pass over a trace's packets, in file order, into a plain
 * Report object. Pure (packet bytes in, numbers out) and streaming: what it keeps grows with the
 * number of distinct threads, IRQs, stacks and event names, never with the number of events.
 *
 * The hot packets (ftrace bundles, track events, stack samples and their interned data) are read
 * field by field with WireReader; the rare ones (process tree, statistics, descriptors) with the
 * generated types. Thread states follow Perfetto's model: a switch out with prev_state R (0, or
 * R+ 0x100 when preempted) leaves the thread runnable, S/D/others sleeping until its wake-up,
 * and a wake-up (sched_waking, sched_wakeup_new) makes it runnable until it is switched in; the
 * scheduling latency is that runnable stretch. Scheduler events of different CPUs are put back
 * in time order first (EventMerger), since a wake-up must be seen before the switch it causes.
 */
import { fromBinary } from "@bufbuild/protobuf";
import {
  FtraceStats_Phase,
  FtraceStatsSchema,
  ProcessTreeSchema,
  SystemInfoSchema,
  TrackDescriptorSchema,
} from "../gen/perfetto_trace_pb.ts";
import { UNTRACED_PID } from "../records/records.ts";
import { EventMerger } from "./event_merger.ts";
import { EXACT_LIMIT, LatencyHistogram, PERCENTILE_RELATIVE_ERROR } from "./latency_histogram.ts";
import { type StreamEnd, TraceStream } from "./trace_stream.ts";
import { Wire, WireReader } from "./wire_reader.ts";

// ---------------------------------------------------------------------------------------------
// The report

export interface Latency {
  count: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  maxNs: number;
  meanNs: number;
}

export interface ThreadRow {
  tid: number;
  pid: number;
  name: string;
  runningNs: number;
  runnableNs: number;
  /** Interruptible sleep (S). */
  sleepingNs: number;
  /** Uninterruptible sleep (D). */
  blockedNs: number;
  /** Idle kernel threads (I), stopped, traced, parked; asleep though switched out as R. */
  otherNs: number;
  /** Times it was switched in. */
  switches: number;
  latency: Latency | undefined;
}

export interface ProcessRow {
  pid: number;
  name: string;
  runningNs: number;
  threads: number;
}

export interface StackRow {
  /** Folded: the thread's name, then frames from the outermost caller to the leaf, by ";". */
  stack: string;
  /** Samples (on-CPU) or sleeps (blocked). */
  count: number;
  /** Blocked time in ns (blocked stacks only). */
  ns?: number;
  /** Of the samples (on-CPU) or of the blocked time, 0..1. */
  share: number;
}

export interface StackSection {
  /** Samples (on-CPU) or sleeps (blocked) in focus. */
  count: number;
  /** Blocked time in ns (blocked stacks only). */
  ns?: number;
  distinct: number;
  top: StackRow[];
}

export interface IrqRow {
  /** IRQ number, or softirq vector. */
  number: number;
  name: string;
  count: number;
  totalNs: number;
  maxNs: number;
}

export interface SliceRow {
  track: string;
  name: string;
  count: number;
  /** Begun but never ended in the trace. */
  unfinished: number;
  totalNs: number;
  p50Ns: number;
  p99Ns: number;
  maxNs: number;
}

export interface InstantRow {
  track: string;
  name: string;
  count: number;
}

export interface Report {
  trace: {
    path: string;
    /** Bytes of the file, and of the trace once a whole-file gzip is undone. */
    fileBytes: number;
    traceBytes: number;
    packets: number;
    compressedWrappers: number;
    /** Why the file is not a complete trace (cut off); undefined when it is. */
    problem: string | undefined;
    startNs: number;
    endNs: number;
    durationNs: number;
    cpus: number[];
  };
  /** How percentiles are computed, for the header. */
  percentiles: string;
  focus: { pids: number[]; comms: string[] } | undefined;
  /** Every event of the trace by kind (not narrowed by focus), most first. */
  events: { kind: string; count: number }[];
  drops: {
    /** The recorder's count, per CPU (FtraceStats end minus start). */
    byCpu: { cpu: number; events: number }[];
    /** Per record kind (the "dropped <kind>" counter tracks' last values). */
    byKind: { kind: string; events: number }[];
    total: number;
    /** Bundles marked lost_events (data lost just before them). */
    lostBundles: number;
    /** Scheduler events that reached the file after later ones beyond what the reader waits. */
    late: number;
  };
  cpus: { cpu: number; busyNs: number; idleNs: number; switches: number }[];
  processes: ProcessRow[];
  threads: ThreadRow[];
  latency: {
    all: Latency | undefined;
    /** The threads with the most wake-ups waited for, among those in focus. */
    threads: { tid: number; name: string; latency: Latency }[];
  };
  irqs: IrqRow[];
  softirqs: IrqRow[];
  stacks: {
    onCpu: StackSection | undefined;
    blockedD: StackSection | undefined;
    blockedS: StackSection | undefined;
  };
  slices: SliceRow[];
  instants: InstantRow[];
}

export interface ReportOptions {
  /** Threads whose tid or process id is one of these... */
  pids?: number[];
  /** ...or whose thread or process name is one of these; neither: every thread. */
  comms?: string[];
  /** Rows per table (default 10). */
  top?: number;
}

// ---------------------------------------------------------------------------------------------
// Aggregation state

const SOFTIRQ_NAMES = [
  "HI",
  "TIMER",
  "NET_TX",
  "NET_RX",
  "BLOCK",
  "IRQ_POLL",
  "TASKLET",
  "SCHED",
  "HRTIMER",
  "RCU",
];

/** FtraceEvent oneof fields we read or count, by number. */
const FTRACE_NAMES: Record<number, string> = {
  4: "sched_switch",
  24: "softirq_entry",
  25: "softirq_exit",
  36: "irq_handler_entry",
  37: "irq_handler_exit",
  114: "sched_wakeup_new",
  235: "task_newtask",
  236: "task_rename",
  237: "sched_process_exec",
  238: "sched_process_exit",
  239: "sched_process_fork",
  240: "sched_process_free",
};

/** Events through the merger. */
const K = { Switch: 1, Waking: 2, WakeupNew: 3, NewTask: 4, Exit: 5, Lost: 6 } as const;

/** A thread's state between events. */
const S = {
  Unknown: 0,
  Running: 1,
  Runnable: 2,
  Sleeping: 3, // S
  Blocked: 4, // D
  Other: 5,
  Dead: 6,
} as const;

const CLONE_THREAD = 0x10000;

class ThreadAgg {
  tid: number;
  running = 0;
  runnable = 0;
  sleeping = 0;
  blocked = 0;
  other = 0;
  switches = 0;
  latency: LatencyHistogram | undefined;
  state: number = S.Unknown;
  since = 0;
  exited = false;

  constructor(tid: number) {
    this.tid = tid;
  }

  addSleep(state: number, ns: number): void {
    if (state === S.Sleeping) this.sleeping += ns;
    else if (state === S.Blocked) this.blocked += ns;
    else if (state === S.Other) this.other += ns;
  }
}

interface SliceAgg {
  track: string;
  name: string;
  count: number;
  instants: number;
  unfinished: number;
  hist: LatencyHistogram;
}

interface TrackInfo {
  name: string;
  parent: number;
  pid: number;
  tid: number;
  /** The slices of every track with this name, by event name. */
  group: Map<string, SliceAgg>;
  open: { aggs: SliceAgg[]; ts: number[] } | undefined;
}

interface StackAgg {
  stack: string;
  count: number;
  weight: number;
}

interface Sequence {
  source: string;
  eventNames: Map<number, string>;
  functionNames: Map<number, string>;
  /** Frame iid → function name iid. */
  frames: Map<number, number>;
  callstacks: Map<number, number[]>;
  /** Callstack iid → folded frames, computed at first use. */
  folded: Map<number, string>;
}

const STACK_SOURCES = ["on_cpu", "sleep.uninterruptible", "sleep.interruptible"] as const;

function stateOf(prevState: number): number {
  if (prevState === 0 || prevState === 0x100) return S.Runnable;
  if (prevState & (16 | 32)) return S.Dead;
  if (prevState === 1) return S.Sleeping;
  if (prevState === 2) return S.Blocked;
  return S.Other;
}

function latencyOf(h: LatencyHistogram | undefined): Latency | undefined {
  if (!h || h.count === 0) return undefined;
  return {
    count: h.count,
    p50Ns: h.percentile(50),
    p90Ns: h.percentile(90),
    p99Ns: h.percentile(99),
    maxNs: h.max,
    meanNs: Math.round(h.sum / h.count),
  };
}

const utf8 = new TextDecoder();

export class ReportBuilder {
  #top: number;
  #pids: Set<number>;
  #comms: Set<string>;
  #focused: boolean;

  #r = new WireReader(new Uint8Array(0));
  #r2 = new WireReader(new Uint8Array(0));
  #r3 = new WireReader(new Uint8Array(0));

  #start = Infinity;
  #end = -Infinity;
  #packets = 0;
  #counts = new Map<string, number>();
  #ftraceCounts = new Float64Array(1024);
  #switchCount = 0;
  #wakingCount = 0;
  #lostBundles = 0;
  #dropsStart = new Map<number, number>();
  #dropsEnd = new Map<number, number>();
  #dropTracks = new Map<number, string>();
  #dropKinds = new Map<string, number>();
  #numCpus = 0;

  // names and process membership, kept current in file order
  #names = new Map<number, string>();
  /** Every name a thread had, for --comm (a few per thread). */
  #allNames = new Map<number, string[]>();
  #tgid = new Map<number, number>();
  #cmdline = new Map<number, string>();

  // scheduler, in merged time order
  #merger: EventMerger;
  #threads = new Map<number, ThreadAgg>();
  #gone: ThreadAgg[] = [];
  #cur: number[] = [];
  #curSince: number[] = [];
  #busy: number[] = [];
  #idle: number[] = [];
  #cpuSwitches: number[] = [];
  #cpusSeen = new Set<number>();

  // interrupts, per CPU in file order
  #irqOpen: { irq: number; name: string; ts: number }[] = [];
  #softOpen: { vec: number; ts: number }[] = [];
  #irqs = new Map<string, IrqRow>();
  #softirqs = new Map<number, IrqRow>();

  // track events and stacks
  #sequences = new Map<number, Sequence>();
  #tracks = new Map<number, TrackInfo>();
  #groups = new Map<string, Map<string, SliceAgg>>();
  #stacks = STACK_SOURCES.map(() => new Map<string, StackAgg>());
  #stackTotals = STACK_SOURCES.map(() => ({ count: 0, weight: 0 }));

  // scratch for one bundle
  #sw = { ts: new Float64Array(256), state: new Float64Array(256), pid: new Float64Array(256) };
  #wk = { ts: new Float64Array(256), pid: new Float64Array(256) };
  #ev = { start: new Int32Array(64), end: new Int32Array(64) };
  #commText: (string | undefined)[] = [];

  constructor(opts: ReportOptions = {}) {
    this.#top = opts.top ?? 10;
    this.#pids = new Set(opts.pids ?? []);
    this.#comms = new Set(opts.comms ?? []);
    this.#focused = this.#pids.size > 0 || this.#comms.size > 0;
    this.#merger = new EventMerger((ts, cpu, kind, a, b) => this.#sched(ts, cpu, kind, a, b));
  }

  #count(kind: string, n = 1): void {
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + n);
  }

  #seen(ts: number): void {
    if (ts < this.#start) this.#start = ts;
    if (ts > this.#end) this.#end = ts;
  }

  /** One TracePacket's bytes. */
  add(bytes: Uint8Array): void {
    this.#packets++;
    const r = this.#r.reset(bytes, 0, bytes.length);
    let ts = -1, seq = 0, flags = 0;
    let dataField = 0, dataStart = 0, dataEnd = 0;
    let internStart = -1, internEnd = 0, defStart = -1, defEnd = 0;
    while (!r.done) {
      const f = r.tag();
      const w = r.wire;
      if (f === 8 && w === Wire.Varint) ts = r.varint();
      else if (f === 10 && w === Wire.Varint) seq = r.varint();
      else if (f === 13 && w === Wire.Varint) flags = r.varint();
      else if (f === 12 && w === Wire.Bytes) [internStart, internEnd] = r.bytes();
      else if (f === 59 && w === Wire.Bytes) [defStart, defEnd] = r.bytes();
      else if (w === Wire.Bytes && dataField === 0) {
        dataField = f;
        [dataStart, dataEnd] = r.bytes();
      } else r.skip(w);
    }
    if (ts >= 0) this.#seen(ts);
    let sequence: Sequence | undefined;
    if (seq !== 0 && (internStart >= 0 || defStart >= 0 || dataField === 11 || dataField === 135)) {
      sequence = this.#sequence(seq, flags);
      if (defStart >= 0) this.#defaults(sequence, bytes, defStart, defEnd);
      if (internStart >= 0) this.#interned(sequence, bytes, internStart, internEnd);
    }
    const data = () => bytes.subarray(dataStart, dataEnd);
    switch (dataField) {
      case 1:
        this.#bundle(bytes, dataStart, dataEnd);
        break;
      case 11:
        this.#trackEvent(sequence!, ts, bytes, dataStart, dataEnd);
        break;
      case 135:
        this.#stackSample(sequence!, bytes, dataStart, dataEnd);
        break;
      case 2:
        this.#count("process_tree");
        this.#processTree(data());
        break;
      case 34: {
        this.#count("ftrace_stats");
        const s = fromBinary(FtraceStatsSchema, data());
        const into = s.phase === FtraceStats_Phase.START_OF_TRACE
          ? this.#dropsStart
          : this.#dropsEnd;
        for (const c of s.cpuStats) {
          into.set(Number(c.cpu), Number(c.droppedEvents));
          // The recorded CPUs, named before any of their events: the merger waits for each.
          this.#merger.expect(Number(c.cpu));
        }
        break;
      }
      case 45: {
        this.#count("system_info");
        this.#numCpus = fromBinary(SystemInfoSchema, data()).numCpus;
        break;
      }
      case 60:
        this.#count("track_descriptor");
        this.#trackDescriptor(data());
        break;
      case 6:
        this.#count("clock_snapshot");
        break;
      case 0:
        if (internStart < 0) this.#count("empty packet");
        break;
      default:
        this.#count(`packet field ${dataField}`);
    }
  }

  // ------------------------------------------------------------------ ftrace bundles

  #bundle(buf: Uint8Array, start: number, end: number): void {
    const r = this.#r2.reset(buf, start, end);
    let cpu = 0, lost = false, csStart = -1, csEnd = 0, events = 0;
    while (!r.done) {
      const f = r.tag();
      const w = r.wire;
      if (f === 1 && w === Wire.Varint) cpu = r.varint();
      else if (f === 3 && w === Wire.Varint) lost = r.varint() !== 0;
      else if (f === 4 && w === Wire.Bytes) [csStart, csEnd] = r.bytes();
      else if (f === 2 && w === Wire.Bytes) {
        if (events === this.#ev.start.length) {
          const grow = (a: Int32Array) => {
            const n = new Int32Array(a.length * 2);
            n.set(a);
            return n;
          };
          this.#ev = { start: grow(this.#ev.start), end: grow(this.#ev.end) };
        }
        const [s, e] = r.bytes();
        this.#ev.start[events] = s;
        this.#ev.end[events++] = e;
      } else r.skip(w);
    }
    this.#cpusSeen.add(cpu);
    let nSw = 0, nWk = 0;
    if (csStart >= 0) [nSw, nWk] = this.#compactSched(buf, csStart, csEnd);
    if (lost) {
      this.#lostBundles++;
      // The CPU's current task is unknown from here, as in Perfetto's importer.
      const first = Math.min(
        nSw ? this.#sw.ts[0] : Infinity,
        nWk ? this.#wk.ts[0] : Infinity,
        events ? this.#eventTs(buf, 0) : Infinity,
      );
      if (first !== Infinity) this.#merger.push(cpu, first, K.Lost, 0, 0);
    }
    // Three time-ordered streams of one CPU, merged (full events first at equal times).
    let i = 0, j = 0, k = 0;
    let evTs = events ? this.#eventTs(buf, 0) : Infinity;
    const sw = this.#sw, wk = this.#wk;
    while (i < nSw || j < nWk || k < events) {
      const tSw = i < nSw ? sw.ts[i] : Infinity;
      const tWk = j < nWk ? wk.ts[j] : Infinity;
      if (k < events && evTs <= tSw && evTs <= tWk) {
        this.#ftraceEvent(cpu, buf, this.#ev.start[k], this.#ev.end[k]);
        k++;
        evTs = k < events ? this.#eventTs(buf, k) : Infinity;
      } else if (tWk <= tSw) {
        this.#merger.push(cpu, tWk, K.Waking, wk.pid[j], 0);
        j++;
      } else {
        this.#merger.push(cpu, tSw, K.Switch, sw.pid[i], sw.state[i]);
        i++;
      }
    }
    if (nSw) {
      this.#seen(sw.ts[0]);
      this.#seen(sw.ts[nSw - 1]);
    }
    if (nWk) {
      this.#seen(wk.ts[0]);
      this.#seen(wk.ts[nWk - 1]);
    }
    this.#merger.drain();
  }

  #eventTs(buf: Uint8Array, k: number): number {
    const r = this.#r3.reset(buf, this.#ev.start[k], this.#ev.end[k]);
    while (!r.done) {
      const f = r.tag();
      if (f === 1 && r.wire === Wire.Varint) return r.varint();
      r.skip(r.wire);
    }
    return 0;
  }

  /** Decodes compact_sched into the scratch columns; returns [switches, wakings]. */
  #compactSched(buf: Uint8Array, start: number, end: number): [number, number] {
    const r = this.#r2.reset(buf, start, end);
    const counts = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const sw = this.#sw, wk = this.#wk;
    const swComm: number[] = [], wkComm: number[] = [];
    const commText = this.#commText;
    commText.length = 0;
    const table: [number, number][] = [];
    const grow = (a: Float64Array<ArrayBuffer>, n: number): Float64Array<ArrayBuffer> => {
      if (n <= a.length) return a;
      const g = new Float64Array(Math.max(n, a.length * 2));
      g.set(a);
      return g;
    };
    const need = (n: number) => {
      if (n <= sw.ts.length && n <= wk.ts.length) return;
      sw.ts = grow(sw.ts, n);
      sw.state = grow(sw.state, n);
      sw.pid = grow(sw.pid, n);
      wk.ts = grow(wk.ts, n);
      wk.pid = grow(wk.pid, n);
    };
    while (!r.done) {
      const f = r.tag();
      const w = r.wire;
      if (f === 5 && w === Wire.Bytes) {
        table.push(r.bytes());
        continue;
      }
      if (f < 1 || f > 12 || f === 5 || f === 4 || f === 9 || f === 10 || f === 12) {
        r.skip(w);
        continue;
      }
      let runEnd = -1;
      if (w === Wire.Bytes) {
        const [s, e] = r.bytes();
        r.pos = s;
        runEnd = e;
      } else if (w !== Wire.Varint) {
        r.skip(w);
        continue;
      }
      const stop = runEnd < 0 ? r.pos + 1 : runEnd;
      while (r.pos < stop) {
        const v = f === 2 ? r.int64() : r.varint();
        const n = counts[f]++;
        need(n + 1);
        switch (f) {
          case 1:
            sw.ts[n] = v;
            break;
          case 2:
            sw.state[n] = v;
            break;
          case 3:
            sw.pid[n] = v | 0;
            break;
          case 6:
            swComm[n] = v;
            break;
          case 7:
            wk.ts[n] = v;
            break;
          case 8:
            wk.pid[n] = v | 0;
            break;
          case 11:
            wkComm[n] = v;
            break;
        }
        if (runEnd < 0) break;
      }
      if (runEnd >= 0) r.pos = runEnd;
    }
    const nSw = counts[1], nWk = counts[7];
    if (counts[3] !== nSw || counts[2] !== nSw || counts[8] !== nWk) {
      throw new TraceReportError(
        `a compact_sched bundle has ${nSw} switch timestamps but ${counts[3]} pids and ` +
          `${counts[2]} states, ${nWk} waking timestamps but ${counts[8]} pids`,
      );
    }
    // Delta-encoded: the first timestamp is absolute, each next relative to the one before.
    const s = sw, k = wk;
    for (let i = 1; i < nSw; i++) s.ts[i] += s.ts[i - 1];
    for (let i = 1; i < nWk; i++) k.ts[i] += k.ts[i - 1];
    const name = (idx: number | undefined): string | undefined => {
      if (idx === undefined || idx >= table.length) return undefined;
      let t = commText[idx];
      if (t === undefined) {
        t = commText[idx] = utf8.decode(buf.subarray(table[idx][0], table[idx][1]));
      }
      return t;
    };
    for (let i = 0; i < nSw; i++) this.#name(s.pid[i], name(swComm[i]));
    for (let i = 0; i < nWk; i++) this.#name(k.pid[i], name(wkComm[i]));
    return [nSw, nWk];
  }

  #name(tid: number, name: string | undefined): void {
    if (name === undefined || tid <= 0 || this.#names.get(tid) === name) return;
    this.#names.set(tid, name);
    let all = this.#allNames.get(tid);
    if (!all) this.#allNames.set(tid, all = []);
    // A few per thread: a thread renamed in a loop must not grow this.
    if (!all.includes(name) && all.length < 8) all.push(name);
  }

  #ftraceEvent(cpu: number, buf: Uint8Array, start: number, end: number): void {
    const r = this.#r3.reset(buf, start, end);
    let ts = 0, pid = 0, field = 0, s = 0, e = 0;
    while (!r.done) {
      const f = r.tag();
      const w = r.wire;
      if (f === 1 && w === Wire.Varint) ts = r.varint();
      else if (f === 2 && w === Wire.Varint) pid = r.varint();
      else if (w === Wire.Bytes && f > 2 && field === 0) {
        field = f;
        [s, e] = r.bytes();
      } else r.skip(w);
    }
    this.#seen(ts);
    if (field < this.#ftraceCounts.length) this.#ftraceCounts[field]++;
    // The payload's fields: small ints and strings.
    const ints: number[] = [];
    const strs: (string | undefined)[] = [];
    const p = r.reset(buf, s, e);
    while (!p.done) {
      const f = p.tag();
      if (p.wire === Wire.Varint) ints[f] = p.int64();
      else if (p.wire === Wire.Bytes) strs[f] = p.string();
      else p.skip(p.wire);
    }
    switch (field) {
      case 4: // sched_switch in full: the task running on a CPU as recording began
        this.#name(ints[6] ?? 0, strs[5]);
        this.#merger.push(cpu, ts, K.Switch, ints[6] ?? 0, ints[4] ?? 0);
        break;
      case 114: // sched_wakeup_new
        this.#name(ints[2] ?? 0, strs[1]);
        this.#merger.push(cpu, ts, K.WakeupNew, ints[2] ?? 0, 0);
        break;
      case 235: { // task_newtask: pid is the creator, clone_flags whether it is a thread
        const child = ints[1] ?? 0;
        this.#name(child, strs[2]);
        const thread = ((ints[3] ?? 0) & CLONE_THREAD) !== 0;
        this.#tgid.set(child, thread ? (this.#tgid.get(pid) ?? pid) : child);
        this.#merger.push(cpu, ts, K.NewTask, child, 0);
        break;
      }
      case 236: // task_rename
        this.#name(ints[1] ?? 0, strs[3]);
        break;
      case 238: // sched_process_exit
        if (ints[3]) this.#tgid.set(ints[2] ?? 0, ints[3]);
        this.#merger.push(cpu, ts, K.Exit, ints[2] ?? 0, 0);
        break;
      case 36: { // irq_handler_entry
        this.#irqOpen[cpu] = { irq: ints[1] ?? 0, name: strs[2] ?? "", ts };
        break;
      }
      case 37: { // irq_handler_exit
        const open = this.#irqOpen[cpu];
        if (open && open.irq === (ints[1] ?? 0)) {
          const key = `${open.irq}\u0000${open.name}`;
          let row = this.#irqs.get(key);
          if (!row) {
            this.#irqs.set(
              key,
              row = { number: open.irq, name: open.name, count: 0, totalNs: 0, maxNs: 0 },
            );
          }
          addIrq(row, ts - open.ts);
        }
        this.#irqOpen[cpu] = undefined!;
        break;
      }
      case 24:
        this.#softOpen[cpu] = { vec: ints[1] ?? 0, ts };
        break;
      case 25: {
        const open = this.#softOpen[cpu];
        const vec = ints[1] ?? 0;
        if (open && open.vec === vec) {
          let row = this.#softirqs.get(vec);
          if (!row) {
            const name = SOFTIRQ_NAMES[vec] ?? `softirq ${vec}`;
            this.#softirqs.set(vec, row = { number: vec, name, count: 0, totalNs: 0, maxNs: 0 });
          }
          addIrq(row, ts - open.ts);
        }
        this.#softOpen[cpu] = undefined!;
        break;
      }
    }
  }

  // ------------------------------------------------------------------ scheduler, in time order

  #thread(tid: number): ThreadAgg {
    let t = this.#threads.get(tid);
    if (!t) this.#threads.set(tid, t = new ThreadAgg(tid));
    return t;
  }

  #sched(ts: number, cpu: number, kind: number, a: number, b: number): void {
    switch (kind) {
      case K.Switch: {
        this.#switchCount++;
        this.#cpuSwitches[cpu] = (this.#cpuSwitches[cpu] ?? 0) + 1;
        const prev = this.#cur[cpu] ?? -1;
        if (prev >= 0) {
          const ran = ts - this.#curSince[cpu];
          if (prev === 0) this.#idle[cpu] = (this.#idle[cpu] ?? 0) + ran;
          else {
            this.#busy[cpu] = (this.#busy[cpu] ?? 0) + ran;
            const t = this.#thread(prev);
            t.running += ran;
            const state = stateOf(b);
            t.state = state;
            t.since = ts;
            if (state === S.Dead) t.exited = true;
          }
        }
        this.#cur[cpu] = a;
        this.#curSince[cpu] = ts;
        if (a === 0) break;
        const t = this.#thread(a);
        t.switches++;
        if (t.state === S.Runnable) {
          const waited = ts - t.since;
          t.runnable += waited;
          (t.latency ??= new LatencyHistogram()).add(waited);
        } else if (t.state >= S.Sleeping && t.state <= S.Other) {
          // Its wake-up was not seen (lost): the sleep lasted at most until now.
          t.addSleep(t.state, ts - t.since);
        }
        t.state = S.Running;
        t.since = ts;
        break;
      }
      case K.Waking:
      case K.WakeupNew: {
        this.#wakingCount += kind === K.Waking ? 1 : 0;
        if (a <= 0) break;
        const t = this.#thread(a);
        if (t.state === S.Running) break;
        // Switched out as R, then woken: it was preempted on its way to sleep (its state already
        // set, schedule() not yet called) and stayed queued; the wake-up found it still in that
        // state. Had it not been preempted it would have slept until now, so its wait to run
        // starts here and the stretch before is "other", not scheduling latency.
        if (t.state === S.Runnable) t.other += ts - t.since;
        else if (t.state !== S.Unknown) t.addSleep(t.state, ts - t.since);
        t.state = S.Runnable;
        t.since = ts;
        break;
      }
      case K.NewTask: {
        // A reused pid is a new thread: the old one's numbers stay its own.
        const old = this.#threads.get(a);
        if (old && old.exited) {
          this.#gone.push(old);
          this.#threads.delete(a);
        }
        break;
      }
      case K.Exit: {
        const t = this.#threads.get(a);
        if (t) t.exited = true;
        break;
      }
      case K.Lost:
        this.#cur[cpu] = -1;
        break;
    }
  }

  // ------------------------------------------------------------------ process tree

  #processTree(bytes: Uint8Array): void {
    const tree = fromBinary(ProcessTreeSchema, bytes);
    for (const p of tree.processes) {
      this.#tgid.set(p.pid, p.pid);
      if (p.cmdline.length > 0) this.#cmdline.set(p.pid, p.cmdline.join(" "));
    }
    for (const t of tree.threads) {
      this.#tgid.set(t.tid, t.tgid);
      this.#name(t.tid, t.name || undefined);
    }
  }

  // ------------------------------------------------------------------ sequences, track events

  #sequence(id: number, flags: number): Sequence {
    let s = this.#sequences.get(id);
    if (!s) {
      s = {
        source: "",
        eventNames: new Map(),
        functionNames: new Map(),
        frames: new Map(),
        callstacks: new Map(),
        folded: new Map(),
      };
      this.#sequences.set(id, s);
    } else if (flags & 1) {
      // SEQ_INCREMENTAL_STATE_CLEARED: the writer starts its ids over.
      s.eventNames.clear();
      s.functionNames.clear();
      s.frames.clear();
      s.callstacks.clear();
      s.folded.clear();
    }
    return s;
  }

  #defaults(seq: Sequence, buf: Uint8Array, start: number, end: number): void {
    const r = this.#r2.reset(buf, start, end);
    while (!r.done) {
      const f = r.tag();
      if (f === 100 && r.wire === Wire.Bytes) {
        const [s, e] = r.bytes();
        const d = this.#r3.reset(buf, s, e);
        while (!d.done) {
          const g = d.tag();
          if (g === 1 && d.wire === Wire.Bytes) seq.source = d.string();
          else d.skip(d.wire);
        }
      } else r.skip(r.wire);
    }
  }

  #interned(seq: Sequence, buf: Uint8Array, start: number, end: number): void {
    const r = this.#r2.reset(buf, start, end);
    const d = this.#r3;
    while (!r.done) {
      const f = r.tag();
      if (r.wire !== Wire.Bytes || (f !== 2 && f !== 5 && f !== 6 && f !== 7)) {
        r.skip(r.wire);
        continue;
      }
      const [s, e] = r.bytes();
      d.reset(buf, s, e);
      let iid = 0, ref = 0, text = "";
      const ids: number[] = [];
      while (!d.done) {
        const g = d.tag();
        if (g === 1 && d.wire === Wire.Varint) iid = d.varint();
        else if (g === 2 && (f === 2 || f === 5) && d.wire === Wire.Bytes) text = d.string();
        else if (g === 2 && f === 6 && d.wire === Wire.Varint) ref = d.varint();
        else if (g === 2 && f === 7 && d.wire === Wire.Varint) ids.push(d.varint());
        else if (g === 2 && f === 7 && d.wire === Wire.Bytes) {
          const [ps, pe] = d.bytes();
          const save = d.end;
          d.pos = ps;
          d.end = pe;
          while (!d.done) ids.push(d.varint());
          d.end = save;
        } else d.skip(d.wire);
      }
      if (f === 2) seq.eventNames.set(iid, text);
      else if (f === 5) seq.functionNames.set(iid, text);
      else if (f === 6) seq.frames.set(iid, ref);
      else seq.callstacks.set(iid, ids);
    }
  }

  #trackDescriptor(bytes: Uint8Array): void {
    const d = fromBinary(TrackDescriptorSchema, bytes);
    const uuid = Number(d.uuid);
    const name = d.staticOrDynamicName.value ?? "";
    const parent = Number(d.parentUuid);
    if (this.#tracks.get(uuid)?.name === name) return; // described again by another worker
    let group = this.#groups.get(name);
    if (!group) this.#groups.set(name, group = new Map());
    this.#tracks.set(uuid, {
      name,
      parent,
      pid: d.thread?.pid ?? d.process?.pid ?? 0,
      tid: Number(d.thread?.tid ?? 0),
      group,
      open: this.#tracks.get(uuid)?.open,
    });
    if (
      this.#tracks.get(parent)?.name === "systing dropped events" && name.startsWith("dropped ")
    ) {
      this.#dropTracks.set(uuid, name.slice("dropped ".length));
    }
  }

  #trackEvent(seq: Sequence, ts: number, buf: Uint8Array, start: number, end: number): void {
    const r = this.#r2.reset(buf, start, end);
    let type = 0, track = 0, nameIid = 0, name: string | undefined, value = 0;
    while (!r.done) {
      const f = r.tag();
      const w = r.wire;
      if (f === 9 && w === Wire.Varint) type = r.varint();
      else if (f === 11 && w === Wire.Varint) track = r.varint();
      else if (f === 10 && w === Wire.Varint) nameIid = r.varint();
      else if (f === 23 && w === Wire.Bytes) name = r.string();
      else if (f === 30 && w === Wire.Varint) value = r.int64();
      else if (f === 44 && w === Wire.Fixed64) value = r.double();
      else r.skip(w);
    }
    if (type === 4) {
      this.#count("track_event counter");
      const kind = this.#dropTracks.get(track);
      if (kind !== undefined) this.#dropKinds.set(kind, value);
      return;
    }
    let info = this.#tracks.get(track);
    if (!info) {
      let group = this.#groups.get("");
      if (!group) this.#groups.set("", group = new Map());
      this.#tracks.set(
        track,
        info = { name: "", parent: 0, pid: 0, tid: 0, group, open: undefined },
      );
    }
    if (type === 2) {
      this.#count("track_event slice end");
      const open = info.open;
      if (open && open.aggs.length > 0) {
        const agg = open.aggs.pop()!;
        agg.hist.add(ts - open.ts.pop()!);
      }
      return;
    }
    if (type !== 1 && type !== 3) {
      this.#count(`track_event type ${type}`);
      return;
    }
    this.#count(type === 1 ? "track_event slice" : "track_event instant");
    const inFocus = !this.#focused || (info.tid !== 0 && this.#matches(info.tid)) ||
      (info.tid === 0 && info.pid !== 0 && this.#matches(info.pid));
    const eventName = name ?? seq.eventNames.get(nameIid) ?? `name ${nameIid}`;
    let agg = info.group.get(eventName);
    if (!agg) {
      agg = {
        track: info.name,
        name: eventName,
        count: 0,
        instants: 0,
        unfinished: 0,
        hist: new LatencyHistogram(),
      };
      info.group.set(eventName, agg);
    }
    if (type === 3) {
      if (inFocus) agg.instants++;
      return;
    }
    // Out of focus, the slice is still matched with its end, into a sink not reported.
    const target = inFocus ? agg : OUT_OF_FOCUS;
    target.count++;
    const open = info.open ??= { aggs: [], ts: [] };
    open.aggs.push(target);
    open.ts.push(ts);
  }

  // ------------------------------------------------------------------ stacks

  #stackSample(seq: Sequence, buf: Uint8Array, start: number, end: number): void {
    const r = this.#r2.reset(buf, start, end);
    let pid = 0, tid = 0, callstack = 0, weight = 0;
    while (!r.done) {
      const f = r.tag();
      const w = r.wire;
      if (f === 1 && w === Wire.Bytes) {
        const [s, e] = r.bytes();
        const t = this.#r3.reset(buf, s, e);
        while (!t.done) {
          const g = t.tag();
          if (g === 2 && t.wire === Wire.Varint) pid = t.varint();
          else if (g === 3 && t.wire === Wire.Varint) tid = t.varint();
          else t.skip(t.wire);
        }
      } else if (f === 6 && w === Wire.Varint) callstack = r.varint();
      else if (f === 11 && w === Wire.Varint) weight = r.varint();
      else r.skip(w);
    }
    const source = STACK_SOURCES.indexOf(seq.source as typeof STACK_SOURCES[number]);
    this.#count(`stack_sample ${seq.source || "(no source)"}`);
    if (source < 0) return;
    if (this.#focused && !this.#matches(tid) && !this.#matches(pid)) return;
    let folded = seq.folded.get(callstack);
    if (folded === undefined) {
      const frames = seq.callstacks.get(callstack) ?? [];
      folded = frames.map((f) => seq.functionNames.get(seq.frames.get(f) ?? 0) ?? "?").join(";");
      seq.folded.set(callstack, folded);
    }
    const comm = this.#names.get(tid) ?? `${tid}`;
    const key = folded ? `${comm};${folded}` : comm;
    const map = this.#stacks[source];
    let agg = map.get(key);
    if (!agg) map.set(key, agg = { stack: key, count: 0, weight: 0 });
    agg.count++;
    agg.weight += weight;
    this.#stackTotals[source].count++;
    this.#stackTotals[source].weight += weight;
  }

  // ------------------------------------------------------------------ focus

  /** Whether thread or process ID is in focus (by its own pid or name, or its process's). */
  #matches(id: number): boolean {
    if (!this.#focused) return true;
    const tgid = this.#tgid.get(id) ?? id;
    if (this.#pids.has(id) || this.#pids.has(tgid)) return true;
    if (this.#comms.size === 0) return false;
    for (const who of [id, tgid]) {
      for (const n of this.#allNames.get(who) ?? []) if (this.#comms.has(n)) return true;
      const cmd = this.#cmdline.get(who);
      if (cmd !== undefined) {
        const exe = cmd.split(" ")[0];
        if (this.#comms.has(exe) || this.#comms.has(exe.slice(exe.lastIndexOf("/") + 1))) {
          return true;
        }
      }
    }
    return false;
  }

  // ------------------------------------------------------------------ the end

  finish(path: string, end: StreamEnd, fileBytes: number): Report {
    this.#merger.drain(true);
    const startNs = this.#start === Infinity ? 0 : this.#start;
    const endNs = this.#end === -Infinity ? 0 : this.#end;
    // What is still going on at the end lasts until the end.
    for (const [cpu, pid] of this.#cur.entries()) {
      if (pid === undefined || pid < 0) continue;
      const ran = endNs - this.#curSince[cpu];
      if (pid === 0) this.#idle[cpu] = (this.#idle[cpu] ?? 0) + ran;
      else {
        this.#busy[cpu] = (this.#busy[cpu] ?? 0) + ran;
        this.#thread(pid).running += ran;
      }
    }
    for (const t of this.#threads.values()) {
      if (t.state === S.Runnable) t.runnable += endNs - t.since;
      else t.addSleep(t.state, endNs - t.since);
    }
    for (const info of this.#tracks.values()) {
      for (const agg of info.open?.aggs ?? []) agg.unfinished++;
    }
    const top = this.#top;
    const all = [...this.#threads.values(), ...this.#gone].filter((t) => this.#matches(t.tid));

    // A filtered trace's per-CPU stand-ins for the tasks left out: one process of their own.
    const standIn = (tid: number) => tid >= UNTRACED_PID && tid < UNTRACED_PID + 4096;
    const pidOf = (tid: number) => standIn(tid) ? UNTRACED_PID : this.#tgid.get(tid) ?? tid;
    const threadRow = (t: ThreadAgg): ThreadRow => ({
      tid: t.tid,
      pid: pidOf(t.tid),
      name: standIn(t.tid) ? `untraced cpu${t.tid - UNTRACED_PID}` : this.#names.get(t.tid) ?? "",
      runningNs: t.running,
      runnableNs: t.runnable,
      sleepingNs: t.sleeping,
      blockedNs: t.blocked,
      otherNs: t.other,
      switches: t.switches,
      latency: latencyOf(t.latency),
    });
    const byCpu = [...all].sort((a, b) => b.running - a.running || a.tid - b.tid);

    const procs = new Map<number, ProcessRow>();
    for (const t of all) {
      const pid = pidOf(t.tid);
      let p = procs.get(pid);
      if (!p) {
        const cmd = this.#cmdline.get(pid);
        const name = pid === UNTRACED_PID
          ? "(tasks the filter left out)"
          : this.#names.get(pid) ?? (cmd ? cmd.split(" ")[0] : "") ?? "";
        procs.set(pid, p = { pid, name, runningNs: 0, threads: 0 });
      }
      p.runningNs += t.running;
      p.threads++;
    }

    // A stand-in is no task: its "waits" are the gaps between the tasks left out.
    const overall = new LatencyHistogram();
    for (const t of all) if (t.latency && !standIn(t.tid)) overall.merge(t.latency);
    const waited = all.filter((t) => t.latency && !standIn(t.tid)).sort((a, b) =>
      b.latency!.count - a.latency!.count || b.running - a.running || a.tid - b.tid
    );

    const cpuIds = [...new Set([...this.#cpusSeen])].sort((a, b) => a - b);
    const dropCpus = [...this.#dropsEnd.keys()].sort((a, b) => a - b);
    const byCpuDrops = dropCpus.map((cpu) => ({
      cpu,
      events: (this.#dropsEnd.get(cpu) ?? 0) - (this.#dropsStart.get(cpu) ?? 0),
    }));
    const byKind = [...this.#dropKinds].map(([kind, events]) => ({ kind, events }))
      .filter((d) => d.events > 0);

    const events = new Map(this.#counts);
    events.set("sched_switch (compact)", this.#switchCount - this.#ftraceCounts[4]);
    events.set("sched_waking", this.#wakingCount);
    for (let f = 0; f < this.#ftraceCounts.length; f++) {
      const n = this.#ftraceCounts[f];
      if (n > 0) events.set(FTRACE_NAMES[f] ?? `ftrace event ${f}`, n);
    }

    const stackSection = (i: number, blocked: boolean): StackSection | undefined => {
      const total = this.#stackTotals[i];
      const map = this.#stacks[i];
      if (total.count === 0) return undefined;
      const rows = [...map.values()].sort((a, b) =>
        blocked ? b.weight - a.weight || b.count - a.count : b.count - a.count
      ).slice(0, top);
      return {
        count: total.count,
        ...(blocked ? { ns: total.weight } : {}),
        distinct: map.size,
        top: rows.map((s) => ({
          stack: s.stack,
          count: s.count,
          ...(blocked ? { ns: s.weight } : {}),
          share: blocked ? (total.weight ? s.weight / total.weight : 0) : s.count / total.count,
        })),
      };
    };

    const slices: SliceRow[] = [];
    const instants: InstantRow[] = [];
    for (const group of this.#groups.values()) {
      for (const a of group.values()) {
        if (a.count > 0) {
          slices.push({
            track: a.track,
            name: a.name,
            count: a.count,
            unfinished: a.unfinished,
            totalNs: a.hist.sum,
            p50Ns: a.hist.percentile(50),
            p99Ns: a.hist.percentile(99),
            maxNs: a.hist.max,
          });
        }
        if (a.instants > 0) instants.push({ track: a.track, name: a.name, count: a.instants });
      }
    }
    slices.sort((a, b) => b.totalNs - a.totalNs || b.count - a.count);
    instants.sort((a, b) => b.count - a.count);

    const irqSort = (a: IrqRow, b: IrqRow) => b.totalNs - a.totalNs || a.number - b.number;
    return {
      trace: {
        path,
        fileBytes,
        traceBytes: end.totalBytes,
        packets: end.packets,
        compressedWrappers: end.compressedWrappers,
        problem: end.problem,
        startNs,
        endNs,
        durationNs: endNs - startNs,
        cpus: cpuIds.length ? cpuIds : [...Array(this.#numCpus).keys()],
      },
      percentiles: `nearest rank: exact up to ${EXACT_LIMIT} values, past that within ${
        (PERCENTILE_RELATIVE_ERROR * 100).toFixed(1)
      }% (log-linear buckets)`,
      focus: this.#focused ? { pids: [...this.#pids], comms: [...this.#comms] } : undefined,
      events: [...events].filter(([, n]) => n > 0).map(([kind, count]) => ({ kind, count }))
        .sort((a, b) => b.count - a.count || (a.kind < b.kind ? -1 : 1)),
      drops: {
        byCpu: byCpuDrops,
        byKind,
        total: Math.max(
          byCpuDrops.reduce((n, d) => n + d.events, 0),
          byKind.reduce((n, d) => n + d.events, 0),
        ),
        lostBundles: this.#lostBundles,
        late: this.#merger.late,
      },
      cpus: cpuIds.map((cpu) => ({
        cpu,
        busyNs: this.#busy[cpu] ?? 0,
        idleNs: this.#idle[cpu] ?? 0,
        switches: this.#cpuSwitches[cpu] ?? 0,
      })),
      processes: [...procs.values()].sort((a, b) => b.runningNs - a.runningNs || a.pid - b.pid)
        .slice(0, top),
      threads: byCpu.slice(0, top).map(threadRow),
      latency: {
        all: latencyOf(overall),
        threads: waited.slice(0, top).map((t) => ({
          tid: t.tid,
          name: this.#names.get(t.tid) ?? "",
          latency: latencyOf(t.latency)!,
        })),
      },
      irqs: [...this.#irqs.values()].sort(irqSort).slice(0, top),
      softirqs: [...this.#softirqs.values()].sort(irqSort).slice(0, top),
      stacks: {
        onCpu: stackSection(0, false),
        blockedD: stackSection(1, true),
        blockedS: stackSection(2, true),
      },
      slices: slices.slice(0, top),
      instants: instants.slice(0, top),
    };
  }
}

/** Where out-of-focus slices are matched with their ends (never reported). */
const OUT_OF_FOCUS: SliceAgg = {
  track: "",
  name: "",
  count: 0,
  instants: 0,
  unfinished: 0,
  hist: new LatencyHistogram(),
};

function addIrq(row: IrqRow, ns: number): void {
  row.count++;
  row.totalNs += ns;
  if (ns > row.maxNs) row.maxNs = ns;
}

/** A trace whose content cannot be read as a trace (not a file problem). */
export class TraceReportError extends Error {
  override name = "TraceReportError";
}

/** Reads the trace at PATH (plain, compressed_packets or gzip'd) into a Report. */
export async function reportTrace(path: string, opts: ReportOptions = {}): Promise<Report> {
  const builder = new ReportBuilder(opts);
  const stream = new TraceStream(path);
  for await (const p of stream.packets()) builder.add(p.bytes);
  const fileBytes = (await Deno.stat(path)).size;
  return builder.finish(path, stream.end!, fileBytes);
}
