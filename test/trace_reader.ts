/**
 * Reads a systing trace.pb for the tests: inflates compressed packets,
 * decodes every packet strictly and expands the compact_sched encoding into
 * plain per-CPU records, so that assertions read like the ftrace text format.
 * Stack samples come out with their callstacks resolved through their
 * sequence's interned data, which must define every id before it is used.
 */
import { inflateSync } from "node:zlib";
import { create, fromBinary, isFieldSet } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  type ClockSnapshot,
  type FtraceEvent,
  type FtraceEventBundle,
  FtraceEventBundleSchema,
  type FtraceStats,
  type InternedData,
  InternedDataSchema,
  type ProcessTree,
  type StackSample,
  type SystemInfo,
  type TracePacket,
  TracePacketSchema,
  type TrackDescriptor,
  TrackDescriptorSchema,
  type TrackEvent,
  TrackEvent_Type,
} from "../src/gen/perfetto_trace_pb.ts";

export interface SchedSwitch {
  ts: bigint;
  cpu: number;
  /** The previous switch's nextPid on this CPU; undefined at the start and after lost data. */
  prevPid: number | undefined;
  nextPid: number;
  prevState: number;
  nextPrio: number;
  nextComm: string;
}

export interface SchedWaking {
  ts: bigint;
  cpu: number;
  pid: number;
  targetCpu: number;
  prio: number;
  comm: string;
  /** ftrace's common_flags (0 when the bundle has none): 0x08 hard, 0x10 soft interrupt. */
  commonFlags: number;
}

/** A full (non-compact) ftrace event with the CPU of the bundle it came in. */
export interface CpuEvent {
  ts: bigint;
  cpu: number;
  pid: number;
  event: FtraceEvent["event"];
}

export interface CpuBundle {
  cpu: number;
  /** Index into TraceView.packets. */
  packetIndex: number;
  lostEvents: boolean;
  switches: SchedSwitch[];
  wakings: SchedWaking[];
  events: CpuEvent[];
  /** Earliest and latest timestamp of anything in the bundle; undefined when empty. */
  minTs: bigint | undefined;
  maxTs: bigint | undefined;
  bundle: FtraceEventBundle;
}

export interface ProcessTreePacket {
  /** The packet timestamp: undefined for the initial scan, set for deltas. */
  ts: bigint | undefined;
  packetIndex: number;
  tree: ProcessTree;
}

export interface ThreadEntry {
  ts: bigint | undefined;
  tid: number;
  tgid: number;
  name: string;
}

export interface ProcessEntry {
  ts: bigint | undefined;
  pid: number;
  ppid: number;
  cmdline: string[];
}

/** One frame of a stack sample, resolved through its sequence's interned data. */
export interface StackFrame {
  name: string;
  /** The mapping's path (its path components joined by "/"). */
  mappingPath: string;
  relPc: bigint;
  /** The mapping's build id as hex; "" when it has none. */
  buildId: string;
}

/** A `stack_sample` packet with everything it references looked up. */
export interface StackSampleView {
  packetIndex: number;
  sequenceId: number;
  /** stack_sample_defaults.source of the sequence's first packet. */
  source: string;
  ts: bigint;
  pid: number;
  tid: number;
  cpu: number;
  /** StackSample.Mode (1 user, 2 kernel). */
  mode: number;
  weight: bigint;
  callstackIid: bigint;
  /** Root first: the outermost caller first, the leaf last. */
  frames: StackFrame[];
}

/** What a stack-sample sequence declares in its first packet. */
export interface StackSequence {
  sequenceId: number;
  firstPacketIndex: number;
  /** sequence_flags of the first packet. */
  firstFlags: number;
  source: string;
  counterName: string;
  unit: number;
}

/** A track descriptor, as declared (one uuid, one meaning). */
export interface TrackView {
  uuid: bigint;
  parent: bigint | undefined;
  name: string;
  thread: { pid: number; tid: number } | undefined;
  /** The process whose own track this is (a ProcessDescriptor). */
  process: number | undefined;
  counter: { unit: number; unitName: string } | undefined;
}

export type ArgValue = bigint | string | boolean | number;

/** A slice: a BEGIN matched with the END that closes it on its track (end undefined: did not end). */
export interface SliceView {
  track: bigint;
  name: string;
  begin: bigint;
  end: bigint | undefined;
  args: Record<string, ArgValue>;
  sequenceId: number;
}

export interface InstantView {
  track: bigint;
  name: string;
  ts: bigint;
  args: Record<string, ArgValue>;
}

export interface CounterValue {
  track: bigint;
  ts: bigint;
  value: number;
}

export interface TraceView {
  /** Every packet, compressed ones replaced in place by the packets inside them. */
  packets: TracePacket[];
  /** How many compressed_packets wrappers the file had. */
  compressedWrappers: number;
  /** Bundles per CPU, in file order. */
  bundlesByCpu: Map<number, CpuBundle[]>;
  switchesByCpu: Map<number, SchedSwitch[]>;
  wakingsByCpu: Map<number, SchedWaking[]>;
  eventsByCpu: Map<number, CpuEvent[]>;
  /** All CPUs' records, CPU after CPU (not merged by time). */
  switches: SchedSwitch[];
  wakings: SchedWaking[];
  events: CpuEvent[];
  processTrees: ProcessTreePacket[];
  /** Every ProcessTree entry in file order, with its packet's timestamp. */
  threads: ThreadEntry[];
  processes: ProcessEntry[];
  ftraceStats: FtraceStats[];
  clockSnapshots: ClockSnapshot[];
  systemInfos: SystemInfo[];
  /** Every stack_sample packet in file order. */
  stackSamples: StackSampleView[];
  /** The sequences that carry stack samples, by trusted_packet_sequence_id. */
  stackSequences: Map<number, StackSequence>;
  /** Track descriptors by uuid. */
  tracks: Map<bigint, TrackView>;
  /** Track event slices, matched per track in time order (file order at equal times). */
  slices: SliceView[];
  instants: InstantView[];
  counterValues: CounterValue[];
  /** Slices and instants begun on each track, kept or not (see ReadOptions.keepSlicesOf). */
  sliceCounts: Map<bigint, number>;
}

export interface ReadOptions {
  /** Keep every decoded packet in view.packets (default true; big traces need false). */
  keepPackets?: boolean;
  /**
   * Keep the slices and instants of only the tracks this accepts (default: all); the others are
   * counted in view.sliceCounts without being decoded, so a trace of millions of system calls
   * can be read for the few the test is about.
   */
  keepSlicesOf?: (track: TrackView) => boolean;
}

export async function readTrace(path: string, opts: ReadOptions = {}): Promise<TraceView> {
  return decodeTrace(await Deno.readFile(path), opts);
}

/** Each top-level Trace.packet (field 1) of BYTES, expanding compressed_packets (field 50). */
function* packetBytes(
  bytes: Uint8Array,
  wrappers: { count: number },
  nested = false,
): Generator<Uint8Array> {
  const r = new BinaryReader(bytes);
  let i = 0;
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field !== 1 || wire !== WireType.LengthDelimited) {
      throw new Error(`trace: field ${field} (wire type ${wire}) where only packets belong`);
    }
    const packet = r.bytes();
    const compressed = fieldOf(packet, 50);
    if (compressed === undefined) {
      yield packet;
    } else {
      // Perfetto never nests compression; a reader would not expand a second level.
      if (nested) {
        throw new Error(`packet ${i}: compressed_packets nested inside compressed_packets`);
      }
      wrappers.count++;
      let inner: Uint8Array;
      try {
        inner = inflateSync(compressed);
      } catch (e) {
        throw new Error(`packet ${i}: compressed_packets does not inflate: ${e}`);
      }
      yield* packetBytes(inner, wrappers, true);
    }
    i++;
  }
}

/** The bytes of length-delimited FIELD at the top level of MESSAGE, if it has one. */
function fieldOf(message: Uint8Array, field: number): Uint8Array | undefined {
  const r = new BinaryReader(message);
  while (r.pos < r.len) {
    const [f, wire] = r.tag();
    if (f === field && wire === WireType.LengthDelimited) return r.bytes();
    r.skip(wire);
  }
  return undefined;
}

/**
 * A track event packet read for its routing only: sequence, flags, interned data, and the
 * event's track and type (TracePacket fields 10, 13, 12, 11; TrackEvent fields 11 and 9).
 */
function peekTrackEvent(bytes: Uint8Array) {
  const r = new BinaryReader(bytes);
  let seq: number | undefined, flags = 0, track: bigint | undefined, type = 0;
  let interned: Uint8Array | undefined;
  let isEvent = false;
  while (r.pos < r.len) {
    const [f, wire] = r.tag();
    if (f === 10 && wire === WireType.Varint) seq = r.uint32();
    else if (f === 13 && wire === WireType.Varint) flags = r.uint32();
    else if (f === 12 && wire === WireType.LengthDelimited) interned = r.bytes();
    else if (f === 11 && wire === WireType.LengthDelimited) {
      isEvent = true;
      const e = new BinaryReader(r.bytes());
      while (e.pos < e.len) {
        const [g, w] = e.tag();
        if (g === 11 && w === WireType.Varint) track = BigInt(e.uint64());
        else if (g === 9 && w === WireType.Varint) type = e.int32();
        else e.skip(w);
      }
    } else r.skip(wire);
  }
  return isEvent && seq !== undefined && track !== undefined
    ? { seq, flags, interned, track, type }
    : undefined;
}

/** Decodes a whole trace, packet by packet; throws on anything a strict reader should refuse. */
export function decodeTrace(bytes: Uint8Array, opts: ReadOptions = {}): TraceView {
  const keepPackets = opts.keepPackets ?? true;
  const wrappers = { count: 0 };
  // A filter needs every track known before the first event: a first pass reads descriptors.
  let kept: Set<bigint> | undefined;
  if (opts.keepSlicesOf) {
    const tracks = new Map<bigint, TrackView>();
    for (const p of packetBytes(bytes, { count: 0 })) {
      const d = fieldOf(p, 60);
      if (d) addTrack(tracks, fromBinary(TrackDescriptorSchema, d), "a track descriptor");
    }
    kept = new Set([...tracks.values()].filter(opts.keepSlicesOf).map((t) => t.uuid));
  }
  const builder = new ViewBuilder();
  let i = 0;
  for (const b of packetBytes(bytes, wrappers)) {
    const peek = kept ? peekTrackEvent(b) : undefined;
    if (peek && !kept!.has(peek.track)) {
      builder.skippedEvent(peek, i++);
      continue;
    }
    const p = fromBinary(TracePacketSchema, b);
    // Unknown fields mean a field number or enum value our schema does not
    // know: almost always an encoder typo that Perfetto would silently drop.
    const where = firstUnknownField(p, `packets[${i}]`);
    if (where) throw new Error(`unknown field at ${where}`);
    builder.add(p, i++);
    if (keepPackets) builder.view.packets.push(p);
  }
  builder.view.compressedWrappers = wrappers.count;
  return builder.finish();
}

class ViewBuilder {
  readonly view: TraceView = {
    packets: [],
    compressedWrappers: 0,
    bundlesByCpu: new Map(),
    switchesByCpu: new Map(),
    wakingsByCpu: new Map(),
    eventsByCpu: new Map(),
    switches: [],
    wakings: [],
    events: [],
    processTrees: [],
    threads: [],
    processes: [],
    ftraceStats: [],
    clockSnapshots: [],
    systemInfos: [],
    stackSamples: [],
    stackSequences: new Map(),
    tracks: new Map(),
    slices: [],
    instants: [],
    counterValues: [],
    sliceCounts: new Map(),
  };
  #trackEvents: { ev: NamedEvent; ts: bigint; seq: number }[] = [];
  #lastNextPid = new Map<number, number | undefined>();
  #sequences = new Map<number, SequenceState>();

  /** A track event left undecoded (its track is not kept): its sequence state still counts. */
  skippedEvent(
    peek: { seq: number; flags: number; interned?: Uint8Array; track: bigint; type: number },
    i: number,
  ): void {
    const seq = sequenceState(
      this.#sequences,
      create(TracePacketSchema, {
        optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId", value: peek.seq },
        sequenceFlags: peek.flags,
      }),
      i,
    );
    if (peek.interned) intern(seq, fromBinary(InternedDataSchema, peek.interned), `packets[${i}]`);
    if (peek.type === TrackEvent_Type.SLICE_BEGIN || peek.type === TrackEvent_Type.INSTANT) {
      const counts = this.view.sliceCounts;
      counts.set(peek.track, (counts.get(peek.track) ?? 0) + 1);
    }
  }

  add(p: TracePacket, i: number): void {
    const view = this.view;
    const ts = isFieldSet(p, TracePacketSchema.field.timestamp) ? p.timestamp : undefined;
    if (p.optionalTrustedPacketSequenceId.case === "trustedPacketSequenceId") {
      const seq = sequenceState(this.#sequences, p, i);
      if (p.internedData) intern(seq, p.internedData, `packets[${i}]`);
      if (p.data.case === "stackSample") {
        view.stackSamples.push(stackSampleView(seq, p, p.data.value, i));
        if (!view.stackSequences.has(seq.id)) view.stackSequences.set(seq.id, seq.declared);
      }
      if (p.data.case === "trackEvent") {
        if (ts === undefined) throw new Error(`packets[${i}]: track event without timestamp`);
        const ev = namedEvent(seq, p.data.value, `packets[${i}]`);
        if (ev.type === TrackEvent_Type.SLICE_BEGIN || ev.type === TrackEvent_Type.INSTANT) {
          view.sliceCounts.set(ev.track, (view.sliceCounts.get(ev.track) ?? 0) + 1);
        }
        this.#trackEvents.push({ ev, ts, seq: seq.id });
      }
    } else if (p.data.case === "stackSample" || p.internedData || p.data.case === "trackEvent") {
      throw new Error(`packets[${i}]: interned data or event without a sequence id`);
    }
    switch (p.data.case) {
      case "ftraceEvents": {
        const b = expandBundle(p.data.value, i, this.#lastNextPid);
        pushTo(view.bundlesByCpu, b.cpu, [b]);
        pushTo(view.switchesByCpu, b.cpu, b.switches);
        pushTo(view.wakingsByCpu, b.cpu, b.wakings);
        pushTo(view.eventsByCpu, b.cpu, b.events);
        break;
      }
      case "processTree": {
        const tree = p.data.value;
        view.processTrees.push({ ts, packetIndex: i, tree });
        for (const t of tree.threads) {
          view.threads.push({ ts, tid: t.tid, tgid: t.tgid, name: t.name });
        }
        for (const pr of tree.processes) {
          view.processes.push({ ts, pid: pr.pid, ppid: pr.ppid, cmdline: pr.cmdline });
        }
        break;
      }
      case "ftraceStats":
        view.ftraceStats.push(p.data.value);
        break;
      case "clockSnapshot":
        view.clockSnapshots.push(p.data.value);
        break;
      case "systemInfo":
        view.systemInfos.push(p.data.value);
        break;
      case "trackDescriptor":
        addTrack(view.tracks, p.data.value, `packets[${i}]`);
        break;
    }
  }

  finish(): TraceView {
    const view = this.view;
    matchTrackEvents(view, this.#trackEvents);
    // Loops, not push(...list): spreading a busy CPU's records overflows the stack.
    for (const cpu of [...view.bundlesByCpu.keys()].sort((a, b) => a - b)) {
      for (const s of view.switchesByCpu.get(cpu)!) view.switches.push(s);
      for (const w of view.wakingsByCpu.get(cpu)!) view.wakings.push(w);
      for (const e of view.eventsByCpu.get(cpu)!) view.events.push(e);
    }
    return view;
  }
}

/** A track event with its interned names looked up. */
interface NamedEvent {
  type: TrackEvent_Type;
  track: bigint;
  name: string;
  args: Record<string, ArgValue>;
  counter: number | undefined;
}

function namedEvent(seq: SequenceState, e: TrackEvent, where: string): NamedEvent {
  const lookup = (map: Map<bigint, string>, what: string, iid: bigint) => {
    const v = map.get(iid);
    if (v === undefined) {
      throw new Error(`${where}: ${what} ${iid} undefined on sequence ${seq.id}`);
    }
    return v;
  };
  if (e.nameField.case === "nameIid" && !(seq.declared.firstFlags & 1)) {
    throw new Error(`${where}: interned name on sequence ${seq.id}, never cleared`);
  }
  const name = e.nameField.case === "nameIid"
    ? lookup(seq.eventNames, "event name", e.nameField.value)
    : e.nameField.value ?? "";
  const args: Record<string, ArgValue> = {};
  for (const a of e.debugAnnotations) {
    const key = a.nameField.case === "nameIid"
      ? lookup(seq.annotationNames, "annotation name", a.nameField.value)
      : a.nameField.value ?? "";
    if (a.value.case === undefined) throw new Error(`${where}: argument ${key} without a value`);
    args[key] = a.value.value as ArgValue;
  }
  const c = e.counterValueField;
  return {
    type: e.type,
    track: e.trackUuid,
    name,
    args,
    counter: c.case === "counterValue" ? Number(c.value) : c.value,
  };
}

function addTrack(tracks: Map<bigint, TrackView>, d: TrackDescriptor, where: string): void {
  const t: TrackView = {
    uuid: d.uuid,
    parent: d.parentUuid || undefined,
    name: d.staticOrDynamicName.case === "name" ? d.staticOrDynamicName.value : "",
    thread: d.thread ? { pid: d.thread.pid, tid: Number(d.thread.tid) } : undefined,
    process: d.process?.pid,
    counter: d.counter
      ? {
        unit: d.counter.unit,
        unitName: d.counter.unitName,
      }
      : undefined,
  };
  const before = tracks.get(t.uuid);
  // Writers may describe a track again; never as something else.
  if (before && JSON.stringify(before, bigints) !== JSON.stringify(t, bigints)) {
    throw new Error(`${where}: track ${t.uuid} described twice, differently`);
  }
  tracks.set(t.uuid, t);
}

function bigints(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

/** Pairs BEGIN and END per track in time order, strictly (an END must close something). */
function matchTrackEvents(
  view: TraceView,
  events: { ev: NamedEvent; ts: bigint; seq: number }[],
): void {
  const ordered = events.map((e, i) => ({ ...e, i }))
    .sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.i - b.i));
  const open = new Map<bigint, SliceView[]>();
  for (const { ev, ts, seq } of ordered) {
    if (!view.tracks.has(ev.track)) throw new Error(`event on undescribed track ${ev.track}`);
    switch (ev.type) {
      case TrackEvent_Type.SLICE_BEGIN: {
        const s: SliceView = {
          track: ev.track,
          name: ev.name,
          begin: ts,
          end: undefined,
          args: ev.args,
          sequenceId: seq,
        };
        view.slices.push(s);
        let stack = open.get(ev.track);
        if (!stack) open.set(ev.track, stack = []);
        stack.push(s);
        break;
      }
      case TrackEvent_Type.SLICE_END: {
        const s = open.get(ev.track)?.pop();
        if (!s) throw new Error(`END at ${ts} on track ${ev.track} closes no slice`);
        s.end = ts;
        Object.assign(s.args, ev.args);
        break;
      }
      case TrackEvent_Type.INSTANT:
        view.instants.push({ track: ev.track, name: ev.name, ts, args: ev.args });
        break;
      case TrackEvent_Type.COUNTER:
        if (ev.counter === undefined) throw new Error(`counter event at ${ts} without a value`);
        view.counterValues.push({ track: ev.track, ts, value: ev.counter });
        break;
      default:
        throw new Error(`track event of type ${ev.type} at ${ts}`);
    }
  }
}

/** The interned state of one packet sequence, as a reader keeps it. */
interface SequenceState {
  id: number;
  declared: StackSequence;
  eventNames: Map<bigint, string>;
  annotationNames: Map<bigint, string>;
  names: Map<bigint, string>;
  paths: Map<bigint, string>;
  buildIds: Map<bigint, string>;
  mappings: Map<bigint, { path: string; buildId: string }>;
  frames: Map<bigint, StackFrame>;
  callstacks: Map<bigint, StackFrame[]>;
}

function sequenceState(
  sequences: Map<number, SequenceState>,
  p: TracePacket,
  index: number,
): SequenceState {
  const id = p.optionalTrustedPacketSequenceId.value!;
  let seq = sequences.get(id);
  if (!seq) {
    const d = p.tracePacketDefaults?.stackSampleDefaults;
    const unit = d?.primaryDescriptor?.unitField;
    seq = {
      id,
      declared: {
        sequenceId: id,
        firstPacketIndex: index,
        firstFlags: p.sequenceFlags,
        source: d?.source ?? "",
        counterName: d?.primaryDescriptor?.name ?? "",
        unit: unit?.case === "unit" ? unit.value : 0,
      },
      eventNames: new Map(),
      annotationNames: new Map(),
      names: new Map(),
      paths: new Map(),
      buildIds: new Map(),
      mappings: new Map(),
      frames: new Map(),
      callstacks: new Map(),
    };
    sequences.set(id, seq);
  } else if (p.sequenceFlags & 1) {
    // SEQ_INCREMENTAL_STATE_CLEARED: everything interned so far is forgotten.
    for (
      const m of [
        seq.eventNames,
        seq.annotationNames,
        seq.names,
        seq.paths,
        seq.buildIds,
        seq.mappings,
        seq.frames,
        seq.callstacks,
      ]
    ) {
      m.clear();
    }
  }
  return seq;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Adds a packet's interned data to its sequence, strictly: an id must be
 * defined before anything refers to it (in an earlier packet of the sequence
 * or in this packet's own interned data) and is defined only once.
 */
function intern(seq: SequenceState, d: InternedData, where: string): void {
  const define = <T>(map: Map<bigint, T>, what: string, iid: bigint, value: T) => {
    if (iid === 0n) throw new Error(`${where}: ${what} with iid 0 on sequence ${seq.id}`);
    if (map.has(iid)) {
      throw new Error(`${where}: ${what} ${iid} defined twice on sequence ${seq.id}`);
    }
    map.set(iid, value);
  };
  const get = <T>(map: Map<bigint, T>, what: string, iid: bigint, user: string): T => {
    const v = map.get(iid);
    if (v === undefined) {
      throw new Error(
        `${where}: ${user} refers to ${what} ${iid}, undefined on sequence ${seq.id}`,
      );
    }
    return v;
  };
  const text = new TextDecoder("utf-8", { fatal: true });
  for (const n of d.eventNames) define(seq.eventNames, "event_name", n.iid, n.name);
  for (const n of d.debugAnnotationNames) {
    define(seq.annotationNames, "debug_annotation_name", n.iid, n.name);
  }
  for (const s of d.functionNames) define(seq.names, "function_name", s.iid, text.decode(s.str));
  for (const s of d.mappingPaths) define(seq.paths, "mapping_path", s.iid, text.decode(s.str));
  for (const s of d.buildIds) define(seq.buildIds, "build_id", s.iid, hex(s.str));
  for (const m of d.mappings) {
    const user = `mapping ${m.iid}`;
    define(seq.mappings, "mapping", m.iid, {
      path: m.pathStringIds.map((id) => get(seq.paths, "mapping_path", id, user)).join("/"),
      buildId: m.buildId ? get(seq.buildIds, "build_id", m.buildId, user) : "",
    });
  }
  for (const f of d.frames) {
    const user = `frame ${f.iid}`;
    const mapping = get(seq.mappings, "mapping", f.mappingId, user);
    define(seq.frames, "frame", f.iid, {
      name: get(seq.names, "function_name", f.functionNameId, user),
      mappingPath: mapping.path,
      relPc: f.relPc,
      buildId: mapping.buildId,
    });
  }
  for (const c of d.callstacks) {
    const user = `callstack ${c.iid}`;
    define(
      seq.callstacks,
      "callstack",
      c.iid,
      c.frameIds.map((id) => get(seq.frames, "frame", id, user)),
    );
  }
}

function stackSampleView(
  seq: SequenceState,
  p: TracePacket,
  s: StackSample,
  index: number,
): StackSampleView {
  const where = `packets[${index}]`;
  if (!(seq.declared.firstFlags & 1)) {
    throw new Error(
      `${where}: stack sample on sequence ${seq.id}, whose first packet does not clear ` +
        `incremental state (flags ${seq.declared.firstFlags})`,
    );
  }
  if (s.callstackField.case !== "callstackIid") {
    throw new Error(`${where}: stack sample without callstack_iid`);
  }
  const iid = s.callstackField.value;
  const frames = seq.callstacks.get(iid);
  if (!frames) {
    throw new Error(
      `${where}: stack sample refers to callstack ${iid}, undefined on sequence ${seq.id}`,
    );
  }
  const task = s.taskContextField.case === "taskContext" ? s.taskContextField.value : undefined;
  const exec = s.executionContextField.case === "executionContext"
    ? s.executionContextField.value
    : undefined;
  return {
    packetIndex: index,
    sequenceId: seq.id,
    source: seq.declared.source,
    ts: p.timestamp,
    pid: task?.pid ?? 0,
    tid: task?.tid ?? 0,
    cpu: exec?.cpu ?? 0,
    mode: exec?.mode ?? 0,
    weight: s.primaryWeight,
    callstackIid: iid,
    frames,
  };
}

function pushTo<T>(map: Map<number, T[]>, key: number, items: T[]): void {
  let list = map.get(key);
  if (!list) map.set(key, list = []);
  for (const item of items) list.push(item);
}

function expandBundle(
  bundle: FtraceEventBundle,
  packetIndex: number,
  lastNextPid: Map<number, number | undefined>,
): CpuBundle {
  const where = `packets[${packetIndex}]`;
  if (!isFieldSet(bundle, FtraceEventBundleSchema.field.cpu)) {
    throw new Error(`${where}: ftrace_events bundle without cpu`);
  }
  const cpu = bundle.cpu;
  const out: CpuBundle = {
    cpu,
    packetIndex,
    lostEvents: bundle.lostEvents,
    switches: [],
    wakings: [],
    events: [],
    minTs: undefined,
    maxTs: undefined,
    bundle,
  };
  const seen = (ts: bigint) => {
    if (out.minTs === undefined || ts < out.minTs) out.minTs = ts;
    if (out.maxTs === undefined || ts > out.maxTs) out.maxTs = ts;
  };
  // After lost data the CPU's current task is unknown, as in Perfetto's importer.
  let prevPid = bundle.lostEvents ? undefined : lastNextPid.get(cpu);
  const cs = bundle.compactSched;
  if (cs) {
    const intern = (index: number, what: string) => {
      if (index >= cs.internTable.length) {
        throw new Error(
          `${where}: ${what} comm index ${index} outside intern table of ${cs.internTable.length}`,
        );
      }
      return cs.internTable[index];
    };
    const n = cs.switchTimestamp.length;
    sameLength(where, "switch", n, {
      switchPrevState: cs.switchPrevState.length,
      switchNextPid: cs.switchNextPid.length,
      switchNextPrio: cs.switchNextPrio.length,
      switchNextCommIndex: cs.switchNextCommIndex.length,
    });
    let ts = 0n;
    for (let i = 0; i < n; i++) {
      // The first timestamp is absolute, every later one a delta from its predecessor.
      ts += cs.switchTimestamp[i];
      const nextPid = cs.switchNextPid[i];
      out.switches.push({
        ts,
        cpu,
        prevPid,
        nextPid,
        prevState: Number(cs.switchPrevState[i]),
        nextPrio: cs.switchNextPrio[i],
        nextComm: intern(cs.switchNextCommIndex[i], "switch"),
      });
      prevPid = nextPid;
      seen(ts);
    }
    const w = cs.wakingTimestamp.length;
    sameLength(where, "waking", w, {
      wakingPid: cs.wakingPid.length,
      wakingTargetCpu: cs.wakingTargetCpu.length,
      wakingPrio: cs.wakingPrio.length,
      wakingCommIndex: cs.wakingCommIndex.length,
    });
    // common_flags is optional in Perfetto: absent, or one per waking.
    if (cs.wakingCommonFlags.length !== 0 && cs.wakingCommonFlags.length !== w) {
      throw new Error(
        `${where}: waking has ${w} timestamps but ${cs.wakingCommonFlags.length} common_flags`,
      );
    }
    ts = 0n;
    for (let i = 0; i < w; i++) {
      ts += cs.wakingTimestamp[i];
      out.wakings.push({
        ts,
        cpu,
        pid: cs.wakingPid[i],
        targetCpu: cs.wakingTargetCpu[i],
        prio: cs.wakingPrio[i],
        comm: intern(cs.wakingCommIndex[i], "waking"),
        commonFlags: cs.wakingCommonFlags[i] ?? 0,
      });
      seen(ts);
    }
  }
  lastNextPid.set(cpu, prevPid);
  for (const ev of bundle.event) {
    if (ev.event.case === undefined) throw new Error(`${where}: ftrace event without payload`);
    out.events.push({ ts: ev.timestamp, cpu, pid: ev.pid, event: ev.event });
    seen(ev.timestamp);
  }
  return out;
}

function sameLength(where: string, what: string, n: number, lengths: Record<string, number>) {
  for (const [name, len] of Object.entries(lengths)) {
    if (len !== n) throw new Error(`${where}: ${what} has ${n} timestamps but ${len} ${name}`);
  }
}

/** Path of the first message holding unknown fields, or undefined. */
function firstUnknownField(value: unknown, path: string): string | undefined {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return undefined;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = firstUnknownField(v, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  const record = value as Record<string, unknown>;
  const unknown = record.$unknown as { no: number }[] | undefined;
  if (unknown?.length) return `${path} (field ${unknown.map((u) => u.no).join(", ")})`;
  for (const [key, v] of Object.entries(record)) {
    if (key === "$typeName" || key === "$unknown") continue;
    const found = firstUnknownField(v, `${path}.${key}`);
    if (found) return found;
  }
  return undefined;
}
