/**
 * Track events (slices, instants, counters) and their track descriptors on
 * one packet sequence, encoded by hand for the hot path: a syscall is two
 * packets, millions a second on a busy machine. Event and argument names are
 * interned per sequence (iids), each sent once in the packet that first uses
 * it; the sequence's first event packet clears the incremental state.
 *
 * Timestamps are ns relative to the TimestampBase, as the decoders have them.
 */
import type { TimestampBase } from "./ftrace_bundle_builder.ts";
import { ProtoWriter, putVarint, WireType } from "./proto_writer.ts";

/** Field numbers from Perfetto's protos (proto/perfetto_trace.proto). */
const F = {
  tracePacket: 1,
  timestamp: 8,
  sequenceId: 10,
  trackEvent: 11,
  internedData: 12,
  sequenceFlags: 13,
  trackDescriptor: 60,
  // TrackEvent
  type: 9,
  trackUuid: 11,
  nameIid: 10,
  debugAnnotations: 4,
  counterValue: 30,
  doubleCounterValue: 44,
  // DebugAnnotation
  annotationNameIid: 1,
  intValue: 4,
  stringValue: 6,
  // InternedData
  eventNames: 2,
  annotationNames: 3,
  // TrackDescriptor
  uuid: 1,
  parentUuid: 5,
  name: 2,
  process: 3,
  thread: 4,
  counter: 8,
  // ThreadDescriptor, ProcessDescriptor
  pid: 1,
  tid: 2,
  // CounterDescriptor
  unit: 3,
  unitName: 6,
} as const;

export const TrackEventType = { SliceBegin: 1, SliceEnd: 2, Instant: 3, Counter: 4 } as const;
/** CounterDescriptor.Unit */
export const CounterUnit = { Unspecified: 0, TimeNs: 1, Count: 2, SizeBytes: 3 } as const;

/** One-byte tags of the fields the hot path writes: (field << 3) | wire type. */
const TAG = {
  packet: (F.tracePacket << 3) | WireType.LengthDelimited,
  timestamp: (F.timestamp << 3) | WireType.Varint,
  sequenceId: (F.sequenceId << 3) | WireType.Varint,
  sequenceFlags: (F.sequenceFlags << 3) | WireType.Varint,
  trackEvent: (F.trackEvent << 3) | WireType.LengthDelimited,
  type: (F.type << 3) | WireType.Varint,
  trackUuid: (F.trackUuid << 3) | WireType.Varint,
  nameIid: (F.nameIid << 3) | WireType.Varint,
  debugAnnotation: (F.debugAnnotations << 3) | WireType.LengthDelimited,
  annotationNameIid: (F.annotationNameIid << 3) | WireType.Varint,
  intValue: (F.intValue << 3) | WireType.Varint,
} as const;

const SEQ_INCREMENTAL_STATE_CLEARED = 1;
const MAX_CACHED_STRINGS = 1024;
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const encoder = new TextEncoder();
const SEQ_NEEDS_INCREMENTAL_STATE = 2;

export type TrackUuid = number | bigint;

export interface CounterTrack {
  uuid: TrackUuid;
  parent?: TrackUuid;
  name: string;
  unit?: number;
  /** Shown beside values when no unit fits (e.g. "Hz"). */
  unitName?: string;
}

export class TrackEventWriter {
  readonly sequenceId: number;
  #base: TimestampBase;
  #out = new ProtoWriter(1 << 16);
  #names = new Map<string, number>();
  #annotationNames = new Map<string, number>();
  #pendingNames: [number, string][] = [];
  #utf8 = new Map<string, Uint8Array>();
  #pendingAnnotations: [number, string][] = [];
  #cleared = false;
  #packet = 0;
  #event = 0;
  #annotation = 0;

  /** The only writer on SEQUENCEID: its first packet clears the sequence's state. */
  constructor(sequenceId: number, base: TimestampBase) {
    this.sequenceId = sequenceId;
    this.#base = base;
  }

  /** Bytes written and not yet taken. */
  get pending(): number {
    return this.#out.pos;
  }

  /** The iid of an event name on this sequence (sent with the next event that uses it). */
  nameIid(name: string): number {
    return intern(this.#names, this.#pendingNames, name);
  }

  /** The iid of a debug annotation (argument) name on this sequence. */
  annotationIid(name: string): number {
    return intern(this.#annotationNames, this.#pendingAnnotations, name);
  }

  /**
   * Opens a packet holding one track event; add arguments with intArg() and
   * stringArg(), then close it with end(). Ask for iids before, not between.
   */
  begin(ts: number, type: number, track: TrackUuid, nameIid = 0): void {
    // Written byte by byte after one ensure(): this is every syscall's path.
    const w = this.#out;
    w.ensure(64);
    let b = w.buf;
    let p = w.pos;
    b[p++] = TAG.packet;
    this.#packet = p++;
    b[p++] = TAG.timestamp;
    w.pos = p;
    this.#base.write(w, ts);
    p = w.pos;
    b[p++] = TAG.sequenceId;
    p = putVarint(b, p, this.sequenceId);
    const flags = this.#cleared
      ? SEQ_NEEDS_INCREMENTAL_STATE
      : SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE;
    this.#cleared = true;
    b[p++] = TAG.sequenceFlags;
    b[p++] = flags;
    w.pos = p;
    if (this.#pendingNames.length || this.#pendingAnnotations.length) {
      this.#interned();
      w.ensure(32);
      b = w.buf;
      p = w.pos;
    }
    b[p++] = TAG.trackEvent;
    this.#event = p++;
    b[p++] = TAG.type;
    b[p++] = type;
    if (typeof track === "number") {
      b[p++] = TAG.trackUuid;
      p = putVarint(b, p, track);
      w.pos = p;
    } else {
      w.pos = p;
      writeUuid(w, F.trackUuid, track);
      p = w.pos;
    }
    if (nameIid) {
      b[p++] = TAG.nameIid;
      p = putVarint(b, p, nameIid);
    }
    w.pos = p;
  }

  /** The sequence's first packet, whatever it holds, clears its incremental state. */
  #flags(needs: number): void {
    const flags = this.#cleared ? needs : needs | SEQ_INCREMENTAL_STATE_CLEARED;
    this.#cleared = true;
    if (flags) this.#out.fieldVarint(F.sequenceFlags, flags);
  }

  intArg(nameIid: number, value: number): void {
    const w = this.#out;
    if (value < 0 || value > Number.MAX_SAFE_INTEGER) {
      const m = w.begin(F.debugAnnotations);
      w.fieldVarint(F.annotationNameIid, nameIid);
      w.fieldInt(F.intValue, value);
      w.end(m);
      return;
    }
    w.ensure(24);
    const b = w.buf;
    let p = w.pos;
    b[p++] = TAG.debugAnnotation;
    const m = p++;
    b[p++] = TAG.annotationNameIid;
    p = putVarint(b, p, nameIid);
    b[p++] = TAG.intValue;
    p = putVarint(b, p, value);
    b[m] = p - m - 1;
    w.pos = p;
  }

  stringArg(nameIid: number, value: string): void {
    const w = this.#out;
    let utf8 = this.#utf8.get(value);
    if (!utf8) {
      // Argument strings repeat (errno names): encoded once each, up to a bound.
      if (this.#utf8.size >= MAX_CACHED_STRINGS) this.#utf8.clear();
      utf8 = encoder.encode(value);
      this.#utf8.set(value, utf8);
    }
    const m = w.begin(F.debugAnnotations);
    w.fieldVarint(F.annotationNameIid, nameIid);
    w.fieldBytes(F.stringValue, utf8);
    w.end(m);
  }

  /** A counter's value: an exact integer, or a double when `fractional`. */
  counterValue(value: number, fractional = false): void {
    const w = this.#out;
    if (fractional || !Number.isSafeInteger(value)) {
      w.tag(F.doubleCounterValue, WireType.Fixed64);
      w.ensure(8);
      F64[0] = value; // little-endian, as fixed64 is, on every machine systing runs on
      w.buf.set(F64_BYTES, w.pos);
      w.pos += 8;
    } else {
      w.fieldInt(F.counterValue, value);
    }
  }

  end(): void {
    this.#out.end(this.#event);
    this.#out.end(this.#packet);
  }

  /** A slice ending where it began is fine; END alone closes the innermost open slice. */
  sliceEnd(ts: number, track: TrackUuid): void {
    this.begin(ts, TrackEventType.SliceEnd, track);
    this.end();
  }

  counter(ts: number, track: TrackUuid, value: number, fractional = false): void {
    this.begin(ts, TrackEventType.Counter, track);
    this.counterValue(value, fractional);
    this.end();
  }

  /** A track of slices belonging to one thread, named (e.g. "syscalls"). */
  threadTrack(uuid: TrackUuid, pid: number, tid: number, name: string): void {
    this.#descriptor(uuid, { name, thread: { pid, tid } });
  }

  /** A named track that groups others (a parent without events of its own). */
  groupTrack(uuid: TrackUuid, name: string): void {
    this.#descriptor(uuid, { name });
  }

  /** Process PID's own track: the parent of the tracks that belong to the whole process. */
  processTrack(uuid: TrackUuid, pid: number): void {
    this.#descriptor(uuid, { process: pid });
  }

  /** A named track under PARENT (a group, or a process's own track). */
  childTrack(uuid: TrackUuid, parent: TrackUuid, name: string): void {
    this.#descriptor(uuid, { parent, name });
  }

  counterTrack(t: CounterTrack): void {
    this.#descriptor(t.uuid, { parent: t.parent, name: t.name, counter: t });
  }

  #descriptor(uuid: TrackUuid, d: {
    parent?: TrackUuid;
    name?: string;
    thread?: { pid: number; tid: number };
    process?: number;
    counter?: CounterTrack;
  }) {
    const w = this.#out;
    const p = w.begin(F.tracePacket);
    w.fieldVarint(F.sequenceId, this.sequenceId);
    this.#flags(0);
    const td = w.begin(F.trackDescriptor);
    writeUuid(w, F.uuid, uuid);
    if (d.parent !== undefined) writeUuid(w, F.parentUuid, d.parent);
    if (d.name !== undefined) w.fieldString(F.name, d.name);
    if (d.process !== undefined) {
      const m = w.begin(F.process);
      w.fieldVarint(F.pid, d.process);
      w.end(m);
    }
    if (d.thread) {
      const t = w.begin(F.thread);
      w.fieldVarint(F.pid, d.thread.pid);
      w.fieldVarint(F.tid, d.thread.tid);
      w.end(t);
    }
    const c = d.counter;
    if (c) {
      const m = w.begin(F.counter);
      if (c.unit) w.fieldVarint(F.unit, c.unit);
      if (c.unitName) w.fieldString(F.unitName, c.unitName);
      w.end(m);
    }
    w.end(td);
    w.end(p);
  }

  #interned(): void {
    const w = this.#out;
    const m = w.begin(F.internedData);
    for (const [iid, name] of this.#pendingNames) {
      const e = w.begin(F.eventNames);
      w.fieldVarint(1, iid);
      w.fieldString(2, name);
      w.end(e);
    }
    for (const [iid, name] of this.#pendingAnnotations) {
      const e = w.begin(F.annotationNames);
      w.fieldVarint(1, iid);
      w.fieldString(2, name);
      w.end(e);
    }
    w.end(m);
    this.#pendingNames = [];
    this.#pendingAnnotations = [];
  }

  /** The framed packets written since the last take(); the interning carries on. */
  take(): Uint8Array<ArrayBuffer> {
    return this.#out.take();
  }
}

/** NAME's iid in IIDS, a new one queued in PENDING the first time. */
function intern(iids: Map<string, number>, pending: [number, string][], name: string): number {
  let iid = iids.get(name);
  if (iid === undefined) {
    iid = iids.size + 1;
    iids.set(name, iid);
    pending.push([iid, name]);
  }
  return iid;
}

function writeUuid(w: ProtoWriter, field: number, uuid: TrackUuid): void {
  w.tag(field, WireType.Varint);
  if (typeof uuid === "bigint") w.varintBig(uuid);
  else w.varint(uuid);
}

/**
 * A stable 63-bit track uuid for a name (FNV-1a): recorders name their tracks
 * ("perf-counters/context-switches/cpu3") instead of sharing a table of ranges.
 */
export function trackUuid(name: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < name.length; i++) {
    h ^= BigInt(name.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  // Below 2^63, and never 0 (Perfetto's default track).
  return (h >> 1n) | 1n;
}
