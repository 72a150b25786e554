/**
 * Checks a trace against what systing's output promises, streaming: packets are looked at one by
 * one and only what later packets can refer to is kept (interned ids per sequence, described track
 * uuids, each CPU's latest timestamp and open interrupts), never anything per event, so a trace
 * larger than memory can be checked.
 *
 * Each broken promise is a violation named by a short rule id, placed by packet index and file
 * offset. The first `max` are kept with their messages; beyond that they are only counted, so a
 * trace broken everywhere costs no more than one broken once.
 */
import { fromBinary, isFieldSet } from "@bufbuild/protobuf";
import {
  type FtraceEvent,
  type FtraceEventBundle,
  FtraceStats_Phase,
  type InternedData,
  Profiling_CpuMode,
  StackSample_Mode,
  type TracePacket,
  TracePacketSchema,
  type TrackDescriptor,
  type TrackEvent,
  TrackEvent_Type,
} from "../gen/perfetto_trace_pb.ts";
import type { StreamedPacket, StreamEnd } from "./trace_stream.ts";
import { TraceStream } from "./trace_stream.ts";

/** The rules, by id: what each one promises (for `--json` readers and the tests). */
export const RULES = {
  "framing": "the file is a whole number of well-formed packets",
  "packet-decode": "every packet decodes as a TracePacket",
  "clock-snapshot": "a clock snapshot with BOOTTIME comes before any timestamped data",
  "system-info": "a system info packet comes before the first ftrace bundle",
  "track-undefined": "every track event's track is described before the event",
  "track-parent": "every track's parent is described before the track",
  "incremental-state": "interned data is used only on a sequence whose state was cleared",
  "interned-id": "every interned id is defined on its sequence before it is used",
  "interned-twice": "no interned id is defined twice on a sequence between clears",
  "compact-sched": "compact_sched columns have equal lengths and comm indexes in the table",
  "cpu-time-order": "each CPU's ftrace timestamps never go back, within and across bundles",
  "task-state": "every sched_switch prev_state is a state ftrace reports",
  "irq-balance": "irq and softirq entries and exits pair up and nest per CPU",
  "idle-user-stack": "no stack sample of pid 0 carries user frames",
  "drop-stats": "FtraceStats START comes before the data and END after it, naming every CPU",
  "drop-counters": "the 'systing dropped events' counters are described and have final values",
} as const;

export type Rule = keyof typeof RULES;

export interface Violation {
  rule: Rule;
  /** Index of the packet among all packets (compressed ones counted by the packets inside). */
  packet: number;
  /** File offset of the top-level packet (of its compressed_packets wrapper when inside one). */
  offset: number;
  /** Index inside the compressed_packets wrapper; -1 for a plain packet. */
  inner: number;
  message: string;
}

/** What the (complete part of the) trace holds. */
export interface TraceSummary {
  packets: number;
  /** Bytes of the (decompressed) file, and how many of them are whole packets. */
  totalBytes: number;
  wholeBytes: number;
  compressedWrappers: number;
  cpus: number[];
  /** Earliest and latest timestamp of anything (ns, CLOCK_BOOTTIME); undefined without any. */
  firstTs: bigint | undefined;
  lastTs: bigint | undefined;
  schedSwitches: number;
  schedWakings: number;
  /** Full (non-compact) ftrace events: irq, softirq, fork, exit, ... */
  ftraceEvents: number;
  stackSamples: number;
  trackEvents: number;
  trackDescriptors: number;
}

export interface CheckResult {
  summary: TraceSummary;
  /** The first violations, up to the limit, in file order. */
  violations: Violation[];
  /** Every violation counted per rule, the kept ones included. */
  counts: Partial<Record<Rule, number>>;
  /** Why the file is not a complete trace (stream.end.problem); undefined when it is. */
  cutOff: string | undefined;
}

export const DEFAULT_MAX_VIOLATIONS = 20;

/** Perfetto's BOOTTIME builtin clock: the clock of ftrace and of our packet timestamps. */
const BOOTTIME = 6;
const SEQ_INCREMENTAL_STATE_CLEARED = 1;
const SEQ_NEEDS_INCREMENTAL_STATE = 2;
/** Kernel addresses start here on 64-bit machines; our kernel frames carry the address itself. */
const KERNEL_SPACE = 0xffff_8000_0000_0000n;
/** ftrace's prev_state values: TASK_REPORT bits one at a time, or TASK_REPORT_MAX (preempted). */
const TASK_STATES = new Set([0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100]);
const U64 = (1n << 64n) - 1n;
const DROP_PARENT_NAME = "systing dropped events";

/** What one packet sequence has interned since its last clear. */
interface SequenceState {
  /** Incremental state was cleared at least once: interned data from then on is valid. */
  cleared: boolean;
  eventNames: Set<bigint>;
  annotationNames: Set<bigint>;
  categories: Set<bigint>;
  functionNames: Set<bigint>;
  mappingPaths: Set<bigint>;
  buildIds: Set<bigint>;
  mappings: Set<bigint>;
  /** Frame iid → whether it is a user frame. */
  frames: Map<bigint, boolean>;
  /** Callstack iid → whether any of its frames is a user frame. */
  callstacks: Map<bigint, boolean>;
}

function newSequence(): SequenceState {
  return {
    cleared: false,
    eventNames: new Set(),
    annotationNames: new Set(),
    categories: new Set(),
    functionNames: new Set(),
    mappingPaths: new Set(),
    buildIds: new Set(),
    mappings: new Set(),
    frames: new Map(),
    callstacks: new Map(),
  };
}

/** An interrupt entered and not yet exited on a CPU. */
interface OpenIrq {
  id: number;
  ts: bigint;
}

interface CpuState {
  /** Latest timestamp of the CPU's earlier bundles: nothing later in the file may precede it. */
  floor: bigint | undefined;
  irq: OpenIrq | undefined;
  softirq: OpenIrq | undefined;
  /** Whether an irq / softirq event was seen since the start (or the last loss). */
  irqSeen: boolean;
  softirqSeen: boolean;
}

type Where = Pick<StreamedPacket, "index" | "offset" | "inner">;

/** Feed it every packet in file order with add(), then finish() with the stream's end. */
export class TraceChecker {
  readonly max: number;
  #violations: Violation[] = [];
  #counts: Partial<Record<Rule, number>> = {};
  #where: Where = { index: 0, offset: 0, inner: -1 };
  #summary: TraceSummary = {
    packets: 0,
    totalBytes: 0,
    wholeBytes: 0,
    compressedWrappers: 0,
    cpus: [],
    firstTs: undefined,
    lastTs: undefined,
    schedSwitches: 0,
    schedWakings: 0,
    ftraceEvents: 0,
    stackSamples: 0,
    trackEvents: 0,
    trackDescriptors: 0,
  };
  #sequences = new Map<number, SequenceState>();
  #tracks = new Set<bigint>();
  #cpus = new Map<number, CpuState>();
  #clock = false;
  /** Timestamped data was seen before any clock snapshot (reported once). */
  #clockLate = false;
  #systemInfo = false;
  #bundles = 0;
  #lastBundle: Where | undefined;
  #stats: { phase: FtraceStats_Phase; where: Where; cpus: Set<number> }[] = [];
  #dropParent: bigint | undefined;
  #dropTracks = new Set<bigint>();
  /** Drop tracks that got a value after the END stats: the final counts. */
  #dropFinal = new Set<bigint>();

  constructor(max = DEFAULT_MAX_VIOLATIONS) {
    this.max = max;
  }

  #violation(rule: Rule, message: () => string, where: Where = this.#where): void {
    this.#counts[rule] = (this.#counts[rule] ?? 0) + 1;
    if (this.#violations.length >= this.max) return;
    this.#violations.push({
      rule,
      packet: where.index,
      offset: where.offset,
      inner: where.inner,
      message: message(),
    });
  }

  #time(ts: bigint): void {
    const s = this.#summary;
    if (s.firstTs === undefined || ts < s.firstTs) s.firstTs = ts;
    if (s.lastTs === undefined || ts > s.lastTs) s.lastTs = ts;
  }

  /** Timestamped data needs the clock snapshot first: the importer converts through it. */
  #timestamped(what: string): void {
    if (this.#clock || this.#clockLate) return;
    this.#clockLate = true;
    this.#violation("clock-snapshot", () => `${what} before any clock snapshot`);
  }

  add(sp: StreamedPacket): void {
    this.#where = { index: sp.index, offset: sp.offset, inner: sp.inner };
    this.#summary.packets++;
    let p: TracePacket;
    try {
      p = fromBinary(TracePacketSchema, sp.bytes);
    } catch (e) {
      this.#violation("packet-decode", () => `not a TracePacket: ${(e as Error).message}`);
      return;
    }
    const hasTs = isFieldSet(p, TracePacketSchema.field.timestamp);
    if (hasTs) this.#time(p.timestamp);
    if (hasTs && p.data.case !== "clockSnapshot") {
      this.#timestamped(`a ${p.data.case ?? "timestamped"} packet`);
    }
    const seq = this.#sequence(p);
    switch (p.data.case) {
      case "clockSnapshot": {
        const boot = p.data.value.clocks.some((c) => c.clockId === BOOTTIME);
        if (!boot) {
          this.#violation("clock-snapshot", () => "the clock snapshot has no BOOTTIME (6) clock");
        }
        this.#clock ||= boot;
        break;
      }
      case "systemInfo":
        this.#systemInfo = true;
        break;
      case "ftraceEvents":
        this.#bundle(p.data.value);
        break;
      case "ftraceStats":
        this.#ftraceStats(p.data.value.phase, p.data.value.cpuStats.map((c) => Number(c.cpu)));
        break;
      case "trackDescriptor":
        this.#descriptor(p.data.value);
        break;
      case "trackEvent":
        this.#trackEvent(p.data.value, seq);
        break;
      case "stackSample": {
        this.#summary.stackSamples++;
        const s = p.data.value;
        const task = s.taskContextField.case === "taskContext"
          ? s.taskContextField.value
          : undefined;
        const exec = s.executionContextField.case === "executionContext"
          ? s.executionContextField.value
          : undefined;
        const iid = s.callstackField.case === "callstackIid" ? s.callstackField.value : undefined;
        const user = exec?.mode === StackSample_Mode.USER;
        this.#sample(seq, task?.pid ?? 0, task?.tid ?? 0, user, iid);
        break;
      }
      case "perfSample": {
        this.#summary.stackSamples++;
        const s = p.data.value;
        const user = s.cpuMode === Profiling_CpuMode.MODE_USER;
        this.#sample(seq, s.pid, s.tid, user, s.callstackIid || undefined);
        break;
      }
    }
  }

  /** The packet's sequence state after its flags and interned data; undefined without one. */
  #sequence(p: TracePacket): SequenceState | undefined {
    const id = p.optionalTrustedPacketSequenceId.case === "trustedPacketSequenceId"
      ? p.optionalTrustedPacketSequenceId.value
      : undefined;
    if (id === undefined) {
      if (p.internedData) {
        this.#violation(
          "incremental-state",
          () => "interned data on a packet without a trusted_packet_sequence_id",
        );
      }
      return undefined;
    }
    let seq = this.#sequences.get(id);
    if (!seq) this.#sequences.set(id, seq = newSequence());
    if (p.sequenceFlags & SEQ_INCREMENTAL_STATE_CLEARED || p.incrementalStateCleared) {
      // Everything interned before is forgotten, by the importer as by us.
      const cleared = newSequence();
      cleared.cleared = true;
      this.#sequences.set(id, seq = cleared);
    } else if (!seq.cleared && (p.sequenceFlags & SEQ_NEEDS_INCREMENTAL_STATE || p.internedData)) {
      this.#violation(
        "incremental-state",
        () =>
          `sequence ${id} needs incremental state (flags ${p.sequenceFlags}) but none of its ` +
          "packets cleared it yet: the importer skips such packets",
      );
    }
    if (p.internedData) this.#intern(id, seq, p.internedData);
    return seq;
  }

  #intern(id: number, seq: SequenceState, d: InternedData): void {
    const define = (set: Set<bigint> | Map<bigint, boolean>, what: string, iid: bigint) => {
      if (iid === 0n || set.has(iid)) {
        this.#violation(
          "interned-twice",
          () =>
            iid === 0n
              ? `${what} with iid 0 on sequence ${id}`
              : `${what} ${iid} defined twice on sequence ${id}`,
        );
        return false;
      }
      return true;
    };
    const use = (
      set: Set<bigint> | Map<bigint, boolean>,
      what: string,
      iid: bigint,
      by: string,
    ) => {
      if (set.has(iid)) return true;
      this.#violation(
        "interned-id",
        () => `${by} refers to ${what} ${iid}, undefined on sequence ${id}`,
      );
      return false;
    };
    const strings: [Set<bigint>, string, { iid: bigint }[]][] = [
      [seq.categories, "event_category", d.eventCategories],
      [seq.eventNames, "event_name", d.eventNames],
      [seq.annotationNames, "debug_annotation_name", d.debugAnnotationNames],
      [seq.functionNames, "function_name", d.functionNames],
      [seq.mappingPaths, "mapping_path", d.mappingPaths],
      [seq.buildIds, "build_id", d.buildIds],
    ];
    for (const [set, what, entries] of strings) {
      for (const e of entries) if (define(set, what, e.iid)) set.add(e.iid);
    }
    // Each kind refers only to kinds defined above it, so one pass in this order sees every
    // definition the packet makes before checking a reference to it.
    for (const m of d.mappings) {
      if (m.buildId) use(seq.buildIds, "build_id", m.buildId, `mapping ${m.iid}`);
      for (const p of m.pathStringIds) use(seq.mappingPaths, "mapping_path", p, `mapping ${m.iid}`);
    }
    for (const m of d.mappings) if (define(seq.mappings, "mapping", m.iid)) seq.mappings.add(m.iid);
    for (const f of d.frames) {
      if (f.functionNameId) {
        use(seq.functionNames, "function_name", f.functionNameId, `frame ${f.iid}`);
      }
      if (f.mappingId) use(seq.mappings, "mapping", f.mappingId, `frame ${f.iid}`);
    }
    for (const f of d.frames) {
      if (define(seq.frames, "frame", f.iid)) seq.frames.set(f.iid, f.relPc < KERNEL_SPACE);
    }
    for (const c of d.callstacks) {
      if (!define(seq.callstacks, "callstack", c.iid)) continue;
      let user = false;
      for (const f of c.frameIds) {
        if (use(seq.frames, "frame", f, `callstack ${c.iid}`)) user ||= seq.frames.get(f)!;
      }
      seq.callstacks.set(c.iid, user);
    }
  }

  #sample(
    seq: SequenceState | undefined,
    pid: number,
    tid: number,
    userMode: boolean,
    callstack: bigint | undefined,
  ): void {
    let user = false;
    if (callstack !== undefined) {
      if (!seq) {
        this.#violation(
          "interned-id",
          () => `a sample's callstack ${callstack} without a sequence`,
        );
      } else if (!seq.callstacks.has(callstack)) {
        this.#violation(
          "interned-id",
          () => `a sample refers to callstack ${callstack}, undefined on its sequence`,
        );
      } else user = seq.callstacks.get(callstack)!;
    }
    if (pid === 0 && (user || userMode)) {
      this.#violation(
        "idle-user-stack",
        () =>
          `a sample of pid 0 (tid ${tid}) with ${
            user ? `user frames in callstack ${callstack}` : "user mode"
          }: the idle task has no user space`,
      );
    }
  }

  #descriptor(d: TrackDescriptor): void {
    this.#summary.trackDescriptors++;
    if (d.parentUuid && !this.#tracks.has(d.parentUuid)) {
      this.#violation(
        "track-parent",
        () => `track ${d.uuid} has parent ${d.parentUuid}, not described before it`,
      );
    }
    this.#tracks.add(d.uuid);
    const name = d.staticOrDynamicName.value;
    if (name === DROP_PARENT_NAME && !d.parentUuid) this.#dropParent = d.uuid;
    else if (d.parentUuid && d.parentUuid === this.#dropParent) this.#dropTracks.add(d.uuid);
  }

  #trackEvent(e: TrackEvent, seq: SequenceState | undefined): void {
    this.#summary.trackEvents++;
    if (!this.#tracks.has(e.trackUuid)) {
      this.#violation(
        "track-undefined",
        () =>
          `a ${TrackEvent_Type[e.type] ?? e.type} event on track ${e.trackUuid}, ` +
          "which no earlier track descriptor describes",
      );
    }
    if (this.#dropTracks.has(e.trackUuid) && this.#stats.some((s) => s.phase === END)) {
      this.#dropFinal.add(e.trackUuid);
    }
    type Names = "eventNames" | "categories" | "annotationNames";
    const use = (names: Names, what: string, iid: bigint) => {
      if (!seq) {
        this.#violation("interned-id", () => `${what} ${iid} used on a packet without a sequence`);
      } else if (!seq[names].has(iid)) {
        this.#violation("interned-id", () => `${what} ${iid} undefined on the event's sequence`);
      }
    };
    if (e.nameField.case === "nameIid") use("eventNames", "event name", e.nameField.value);
    for (const c of e.categoryIids) use("categories", "event category", c);
    const annotations = [...e.debugAnnotations];
    while (annotations.length > 0) {
      const a = annotations.pop()!;
      if (a.nameField.case === "nameIid") {
        use("annotationNames", "debug annotation name", a.nameField.value);
      }
      annotations.push(...a.dictEntries, ...a.arrayValues);
    }
  }

  #ftraceStats(phase: FtraceStats_Phase, cpus: number[]): void {
    this.#stats.push({ phase, where: this.#where, cpus: new Set(cpus) });
    if (phase === FtraceStats_Phase.START_OF_TRACE && this.#bundles > 0) {
      this.#violation(
        "drop-stats",
        () => `START_OF_TRACE stats after ${this.#bundles} ftrace bundles`,
      );
    }
  }

  #cpu(cpu: number): CpuState {
    let s = this.#cpus.get(cpu);
    if (!s) {
      this.#cpus.set(
        cpu,
        s = {
          floor: undefined,
          irq: undefined,
          softirq: undefined,
          irqSeen: false,
          softirqSeen: false,
        },
      );
    }
    return s;
  }

  #bundle(b: FtraceEventBundle): void {
    this.#bundles++;
    this.#lastBundle = this.#where;
    if (!this.#systemInfo) {
      this.#systemInfo = true; // reported once
      this.#violation("system-info", () => "an ftrace bundle before any system info packet");
    }
    const cpu = b.cpu;
    const state = this.#cpu(cpu);
    if (b.lostEvents) {
      // What was open before the gap is unknown now, as at the start of the CPU's data.
      Object.assign(state, {
        irq: undefined,
        softirq: undefined,
        irqSeen: false,
        softirqSeen: false,
      });
    }
    const floor = state.floor;
    let newest = floor;
    const inOrder = (what: string, ts: bigint, prev: bigint | undefined): boolean => {
      if (prev !== undefined && ts < prev) {
        this.#violation(
          "cpu-time-order",
          () => `cpu ${cpu}: ${what} at ${ts} is before the previous one at ${prev}`,
        );
        return false;
      }
      if (floor !== undefined && ts < floor) {
        this.#violation(
          "cpu-time-order",
          () => `cpu ${cpu}: ${what} at ${ts} is before ${floor}, where an earlier bundle ended`,
        );
        return false;
      }
      return true;
    };
    const seen = (ts: bigint) => {
      this.#time(ts);
      if (newest === undefined || ts > newest) newest = ts;
    };
    const cs = b.compactSched;
    if (cs) {
      const table = cs.internTable.length;
      const columns = (what: string, n: number, lengths: Record<string, number>) => {
        for (const [name, len] of Object.entries(lengths)) {
          if (len !== n) {
            this.#violation(
              "compact-sched",
              () => `cpu ${cpu}: ${what} has ${n} timestamps but ${len} ${name}`,
            );
          }
        }
      };
      const n = cs.switchTimestamp.length;
      columns("switch", n, {
        prev_state: cs.switchPrevState.length,
        next_pid: cs.switchNextPid.length,
        next_prio: cs.switchNextPrio.length,
        next_comm_index: cs.switchNextCommIndex.length,
      });
      const w = cs.wakingTimestamp.length;
      columns("waking", w, {
        pid: cs.wakingPid.length,
        target_cpu: cs.wakingTargetCpu.length,
        prio: cs.wakingPrio.length,
        comm_index: cs.wakingCommIndex.length,
      });
      if (cs.wakingCommonFlags.length !== 0) {
        columns("waking", w, { common_flags: cs.wakingCommonFlags.length });
      }
      for (
        const [what, indexes] of [["switch", cs.switchNextCommIndex], [
          "waking",
          cs.wakingCommIndex,
        ]] as const
      ) {
        const bad = indexes.find((i) => i >= table);
        if (bad !== undefined) {
          this.#violation(
            "compact-sched",
            () => `cpu ${cpu}: ${what} comm index ${bad} outside the intern table of ${table}`,
          );
        }
      }
      if (n + w > 0) this.#timestamped(`cpu ${cpu}'s scheduler events`);
      // Delta-encoded: the first timestamp is absolute, each next one relative to its predecessor,
      // summed in uint64 as the importer does (a "negative" delta wraps around to an earlier time).
      let ts = 0n, prev: bigint | undefined;
      for (let i = 0; i < n; i++) {
        ts = (ts + cs.switchTimestamp[i]) & U64;
        inOrder("switch", ts, prev);
        seen(ts);
        prev = ts;
        const state = Number(cs.switchPrevState[i] ?? 0n);
        if (!TASK_STATES.has(state)) this.#badState(cpu, ts, state);
      }
      ts = 0n, prev = undefined;
      for (let i = 0; i < w; i++) {
        ts = (ts + cs.wakingTimestamp[i]) & U64;
        inOrder("waking", ts, prev);
        seen(ts);
        prev = ts;
      }
      this.#summary.schedSwitches += n;
      this.#summary.schedWakings += w;
    }
    let prev: bigint | undefined;
    if (b.event.length > 0) this.#timestamped(`cpu ${cpu}'s ftrace events`);
    for (const e of b.event) {
      inOrder(e.event.case ?? "event", e.timestamp, prev);
      seen(e.timestamp);
      prev = e.timestamp;
      this.#event(cpu, state, e, b.lostEvents);
    }
    this.#summary.ftraceEvents += b.event.length;
    state.floor = newest;
  }

  #badState(cpu: number, ts: bigint, state: number): void {
    this.#violation(
      "task-state",
      () =>
        `cpu ${cpu}: a switch at ${ts} with prev_state 0x${state.toString(16)}, not a state ` +
        "ftrace reports (one TASK_REPORT bit, 0x100 for preempted, or 0)",
    );
  }

  /** LOSSY: the bundle follows lost data, which may have been anywhere before or in it. */
  #event(cpu: number, state: CpuState, e: FtraceEvent, lossy: boolean): void {
    const ev = e.event;
    let kind: "irq" | "softirq", id: number, entry: boolean;
    switch (ev.case) {
      case "schedSwitch": {
        const s = Number(ev.value.prevState);
        if (!TASK_STATES.has(s)) this.#badState(cpu, e.timestamp, s);
        return;
      }
      case "irqHandlerEntry":
      case "irqHandlerExit":
        [kind, id, entry] = ["irq", ev.value.irq, ev.case === "irqHandlerEntry"];
        break;
      case "softirqEntry":
      case "softirqExit":
        [kind, id, entry] = ["softirq", ev.value.vec, ev.case === "softirqEntry"];
        break;
      default:
        return;
    }
    const at = `cpu ${cpu}: ${kind} ${id} ${entry ? "entry" : "exit"} at ${e.timestamp}`;
    // Events held back for sorting are flushed with the bundle that reports a loss, so the gap
    // can sit anywhere in it: there a broken pair is the loss's doing, and the state resyncs.
    const unbalanced = (message: () => string) => {
      if (!lossy) this.#violation("irq-balance", message);
    };
    const seenBefore = kind === "irq" ? state.irqSeen : state.softirqSeen;
    if (kind === "irq") state.irqSeen = true;
    else state.softirqSeen = true;
    const open = state[kind];
    // A hard interrupt may come in the middle of a softirq, never the other way round.
    const irq = state.irq;
    if (kind === "softirq" && irq) {
      unbalanced(() => `${at} inside irq ${irq.id}'s handler (entered at ${irq.ts})`);
    }
    if (entry) {
      if (open) {
        unbalanced(() => `${at} while ${kind} ${open.id} entered at ${open.ts} has not exited`);
      }
      state[kind] = { id, ts: e.timestamp };
      return;
    }
    state[kind] = undefined;
    if (!open) {
      // Only the CPU's first one may close what began before the recording (or a gap).
      if (seenBefore) unbalanced(() => `${at} without an entry`);
    } else if (open.id !== id) {
      unbalanced(() => `${at} does not match the entry of ${kind} ${open.id} at ${open.ts}`);
    }
  }

  /** The checks that need the whole trace, then the result. */
  finish(end: StreamEnd): CheckResult {
    const s = this.#summary;
    s.totalBytes = end.totalBytes;
    s.wholeBytes = end.wholeBytes;
    s.compressedWrappers = end.compressedWrappers;
    s.cpus = [...this.#cpus.keys()].sort((a, b) => a - b);
    const atEnd: Where = { index: end.packets, offset: end.wholeBytes, inner: -1 };
    if (end.problem) {
      this.#violation("framing", () => end.problem!, atEnd);
    }
    if (!this.#clock && !this.#clockLate && s.packets > 0) {
      this.#violation("clock-snapshot", () => "the trace has no clock snapshot", atEnd);
    }
    // A cut-off file lost its end: what only the end holds is not missing a second time.
    const whole = end.problem === undefined;
    const starts = this.#stats.filter((x) => x.phase === FtraceStats_Phase.START_OF_TRACE);
    const ends = this.#stats.filter((x) => x.phase === END);
    if (starts.length !== 1) {
      this.#violation(
        "drop-stats",
        () => `${starts.length} START_OF_TRACE FtraceStats packets, not 1`,
        starts[1]?.where ?? atEnd,
      );
    }
    if (ends.length > 1 || (whole && ends.length === 0)) {
      this.#violation(
        "drop-stats",
        () => `${ends.length} END_OF_TRACE FtraceStats packets, not 1`,
        ends[1]?.where ?? atEnd,
      );
    }
    const end1 = ends[0];
    const last = this.#lastBundle;
    if (end1 && last && last.index > end1.where.index) {
      this.#violation(
        "drop-stats",
        () => `END_OF_TRACE stats at packet ${end1.where.index}, before the ftrace bundle here`,
        last,
      );
    }
    for (const x of [starts[0], end1]) {
      if (!x) continue;
      const missing = s.cpus.filter((c) => !x.cpus.has(c));
      if (missing.length > 0) {
        this.#violation(
          "drop-stats",
          () =>
            `${FtraceStats_Phase[x.phase]} stats name no count for cpu ${
              missing.join(", ")
            }, which has ftrace data`,
          x.where,
        );
      }
    }
    if (this.#dropParent === undefined) {
      if (s.packets > 0) {
        this.#violation(
          "drop-counters",
          () => `no '${DROP_PARENT_NAME}' track: the trace does not carry its own loss counts`,
          atEnd,
        );
      }
    } else if (whole) {
      const missing = [...this.#dropTracks].filter((t) => !this.#dropFinal.has(t));
      if (missing.length > 0 || this.#dropTracks.size === 0) {
        this.#violation(
          "drop-counters",
          () =>
            this.#dropTracks.size === 0
              ? `'${DROP_PARENT_NAME}' has no counter tracks`
              : `${missing.length} drop counter tracks (${
                missing.slice(0, 3).join(", ")
              }) have no value after the END stats`,
          atEnd,
        );
      }
    }
    return {
      summary: s,
      violations: this.#violations,
      counts: this.#counts,
      cutOff: end.problem,
    };
  }
}

const END = FtraceStats_Phase.END_OF_TRACE;

/** Checks the trace at PATH; throws TraceReadError when it cannot be read at all. */
export async function checkTrace(
  path: string,
  max = DEFAULT_MAX_VIOLATIONS,
): Promise<CheckResult> {
  const stream = new TraceStream(path);
  const checker = new TraceChecker(max);
  for await (const p of stream.packets()) checker.add(p);
  return checker.finish(stream.end!);
}
