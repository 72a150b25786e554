/**
 * Writes one stream of stack samples as Perfetto `StackSample` packets on its
 * own packet sequence, with function names, mappings, frames and callstacks
 * interned on that sequence and emitted in the packet that first uses them.
 *
 * Each kind of stack (on-CPU samples, uninterruptible and interruptible
 * sleeps) gets its own writer and therefore its own sequence and `source`:
 * Perfetto's UI keeps sources apart in its tracks and flamegraphs, so
 * on-CPU time can be looked at alone.
 *
 * Pure: calls in, framed packet bytes out.
 */
import { ProtoWriter, WireType } from "./proto_writer.ts";
import { TimestampBase } from "./ftrace_bundle_builder.ts";

/** Field numbers (proto/perfetto_trace.proto, from Perfetto's protos). */
const P = {
  tracePacket: 1,
  timestamp: 8,
  sequenceId: 10,
  internedData: 12,
  sequenceFlags: 13,
  defaults: 59,
  firstPacketOnSequence: 87,
  stackSample: 135,
} as const;
const SEQ_INCREMENTAL_STATE_CLEARED = 1;
const SEQ_NEEDS_INCREMENTAL_STATE = 2;
const I = {
  functionNames: 5,
  frames: 6,
  callstacks: 7,
  buildIds: 16,
  mappingPaths: 17,
  mappings: 19,
} as const;

export const StackMode = { User: 1, Kernel: 2 } as const;
export const WeightUnit = { Nanoseconds: 1, Count: 9 } as const;

export interface ProfileStream {
  /** StackSampleDefaults.source, e.g. "on_cpu"; the UI titles the stream after it. */
  source: string;
  /** Name of what the weights count, e.g. "cpu-clock". */
  counterName: string;
  unit: number;
  description: string;
}

/** A code module as Perfetto shows it: one per file (or kernel image / module). */
export interface ModuleRef {
  /** Identity for interning: the same file in different processes shares it. */
  key: string;
  path: string;
  buildId?: Uint8Array;
}

/** One resolved frame: where it is and what it is called. */
export interface FrameRef {
  module: ModuleRef;
  /** Address in the module's own (ELF virtual) address space. */
  relPc: bigint;
  name: string;
}

export interface StackSampleRecord {
  /** ns relative to the trace's timestamp base. */
  ts: number;
  pid: number;
  tid: number;
  cpu: number;
  mode: number;
  /** Root first: outermost caller first, leaf (or the kernel's innermost) last. */
  frames: readonly FrameRef[];
  weight: number;
}

const encoder = new TextEncoder();
const MAX_INTERNED = 65_536;

export class ProfileWriter {
  readonly sequenceId: number;
  #stream: ProfileStream;
  #base: TimestampBase;
  #started = false;
  #names = new Map<string, number>();
  #modules = new Map<string, number>();
  #frames = new Map<string, number>();
  /** The same frames by object: the symbolizer hands out one object per frame it named. */
  #frameByRef = new WeakMap<FrameRef, number>();
  #callstacks = new Map<string, number>();
  #byKey = new Map<number, number>();
  #nextIid = { name: 1, module: 1, path: 1, build: 1, frame: 1, callstack: 1 };
  /** Entries to intern in the next packet, as encoded message bodies per field. */
  #pending: { field: number; body: Uint8Array }[] = [];
  #scratch = new ProtoWriter(1 << 12);
  samples = 0;
  /** Times the interned state was started over to bound memory. */
  resets = 0;

  constructor(sequenceId: number, stream: ProfileStream, base: TimestampBase) {
    this.sequenceId = sequenceId;
    this.#stream = stream;
    this.#base = base;
  }

  /**
   * Encodes one sample (and whatever it newly interns) as a framed packet
   * into `w`. `stackKey`, when given, names the frames list for reuse: the
   * same key must always come with the same frames.
   */
  write(w: ProtoWriter, s: StackSampleRecord, stackKey?: number): void {
    // Interned state grows with every distinct frame and stack; past a bound,
    // start the sequence over (the next packet clears the importer's state too).
    if (this.#frames.size + this.#callstacks.size > MAX_INTERNED) this.#reset();
    let callstack = stackKey === undefined ? undefined : this.#byKey.get(stackKey);
    if (callstack === undefined) {
      callstack = this.#callstackIid(s.frames);
      if (stackKey !== undefined) {
        // Only a shortcut: forgetting it costs one lookup by frames.
        if (this.#byKey.size >= 1 << 14) this.#byKey.clear();
        this.#byKey.set(stackKey, callstack);
      }
    }
    const packet = w.begin(P.tracePacket);
    w.tag(P.timestamp, WireType.Varint);
    this.#base.write(w, s.ts);
    w.fieldVarint(P.sequenceId, this.sequenceId);
    if (!this.#started) {
      // The first packet clears incremental state and carries the defaults:
      // both must be on it, since clearing also drops earlier defaults.
      this.#started = true;
      w.fieldVarint(P.sequenceFlags, SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE);
      w.fieldVarint(P.firstPacketOnSequence, 1);
      const d = w.begin(P.defaults);
      const ssd = w.begin(100);
      w.fieldString(1, this.#stream.source);
      const desc = w.begin(2);
      w.fieldString(2, this.#stream.counterName);
      w.fieldVarint(3, this.#stream.unit);
      w.fieldString(6, this.#stream.description);
      w.end(desc);
      w.end(ssd);
      w.end(d);
    } else {
      w.fieldVarint(P.sequenceFlags, SEQ_NEEDS_INCREMENTAL_STATE);
    }
    if (this.#pending.length > 0) {
      const m = w.begin(P.internedData);
      for (const { field, body } of this.#pending) {
        w.tag(field, WireType.LengthDelimited);
        w.varint32(body.length);
        w.ensure(body.length);
        w.buf.set(body, w.pos);
        w.pos += body.length;
      }
      w.end(m);
      this.#pending = [];
    }
    const ss = w.begin(P.stackSample);
    const task = w.begin(1);
    w.fieldVarint(2, s.pid);
    w.fieldVarint(3, s.tid);
    w.end(task);
    const exec = w.begin(3);
    w.fieldVarint(2, s.cpu);
    w.fieldVarint(3, s.mode);
    w.end(exec);
    w.fieldVarint(6, callstack);
    w.fieldVarint(11, Math.max(0, Math.round(s.weight)));
    w.end(ss);
    w.end(packet);
    this.samples++;
  }

  #reset(): void {
    this.#started = false;
    this.#names.clear();
    this.#modules.clear();
    this.#frames.clear();
    this.#frameByRef = new WeakMap();
    this.#callstacks.clear();
    this.#byKey.clear();
    this.#nextIid = { name: 1, module: 1, path: 1, build: 1, frame: 1, callstack: 1 };
    this.#pending = [];
    this.resets++;
  }

  #intern(field: number, build: (w: ProtoWriter) => void): void {
    const w = this.#scratch;
    w.pos = 0;
    build(w);
    this.#pending.push({ field, body: w.take() });
  }

  #nameIid(name: string): number {
    let iid = this.#names.get(name);
    if (iid === undefined) {
      iid = this.#nextIid.name++;
      this.#names.set(name, iid);
      this.#intern(I.functionNames, (w) => {
        w.fieldVarint(1, iid!);
        w.fieldBytes(2, encoder.encode(name));
      });
    }
    return iid;
  }

  #moduleIid(m: ModuleRef): number {
    let iid = this.#modules.get(m.key);
    if (iid !== undefined) return iid;
    const pathIid = this.#nextIid.path++;
    this.#intern(I.mappingPaths, (w) => {
      w.fieldVarint(1, pathIid);
      w.fieldBytes(2, encoder.encode(m.path));
    });
    let buildIid = 0;
    if (m.buildId && m.buildId.length > 0) {
      buildIid = this.#nextIid.build++;
      this.#intern(I.buildIds, (w) => {
        w.fieldVarint(1, buildIid);
        w.fieldBytes(2, m.buildId!);
      });
    }
    iid = this.#nextIid.module++;
    this.#modules.set(m.key, iid);
    const mappingIid = iid;
    // An empty address range: one mapping shared by every process that maps
    // the file, since frames carry module-relative addresses.
    this.#intern(I.mappings, (w) => {
      w.fieldVarint(1, mappingIid);
      if (buildIid) w.fieldVarint(2, buildIid);
      w.fieldVarint(7, pathIid);
    });
    return iid;
  }

  #frameIid(f: FrameRef): number {
    let iid = this.#frameByRef.get(f);
    if (iid !== undefined) return iid;
    const key = `${f.module.key}\u0000${f.relPc}\u0000${f.name}`;
    iid = this.#frames.get(key);
    if (iid !== undefined) {
      this.#frameByRef.set(f, iid);
      return iid;
    }
    const nameIid = this.#nameIid(f.name);
    const mappingIid = this.#moduleIid(f.module);
    iid = this.#nextIid.frame++;
    this.#frames.set(key, iid);
    this.#frameByRef.set(f, iid);
    const frameIid = iid;
    this.#intern(I.frames, (w) => {
      w.fieldVarint(1, frameIid);
      w.fieldVarint(2, nameIid);
      w.fieldVarint(3, mappingIid);
      w.tag(4, WireType.Varint);
      w.varintBig(f.relPc);
    });
    return iid;
  }

  #callstackIid(frames: readonly FrameRef[]): number {
    const ids = frames.map((f) => this.#frameIid(f));
    const key = ids.join(",");
    let iid = this.#callstacks.get(key);
    if (iid !== undefined) return iid;
    iid = this.#nextIid.callstack++;
    this.#callstacks.set(key, iid);
    const csIid = iid;
    this.#intern(I.callstacks, (w) => {
      w.fieldVarint(1, csIid);
      for (const id of ids) w.fieldVarint(2, id);
    });
    return iid;
  }
}
