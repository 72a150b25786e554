/**
 * Collects one CPU's scheduler and interrupt events and writes them as
 * Perfetto FtraceEventBundle packets: sched_switch and sched_waking in the
 * compact (structure-of-arrays) form, everything else as full FtraceEvents.
 *
 * Records reach us in ring order, which is time order except where an
 * interrupt's record overtook the one it interrupted (the timestamp is read
 * before the reservation). Each stream is kept sorted on insertion (almost
 * always a plain append) and a flush only emits events older than a
 * holdback cutoff, so every CPU's timestamps never go backwards in the file.
 *
 * Timestamps are numbers of ns relative to `tsBase` (boot time can exceed
 * 2^53 ns on long-running hosts; relative values never do).
 */
import type { CommInterner } from "./comm_interner.ts";
import { ProtoWriter, WireType } from "./proto_writer.ts";

/** Field numbers from Perfetto's protos (see proto/perfetto_trace.proto). */
const F = {
  tracePacket: 1,
  packetSequenceId: 10,
  packetFtraceEvents: 1,
  bundleCpu: 1,
  bundleEvent: 2,
  bundleLostEvents: 3,
  bundleCompactSched: 4,
  csInternTable: 5,
  csSwitchTs: 1,
  csSwitchPrevState: 2,
  csSwitchNextPid: 3,
  csSwitchNextPrio: 4,
  csSwitchNextComm: 6,
  csWakingTs: 7,
  csWakingPid: 8,
  csWakingTargetCpu: 9,
  csWakingPrio: 10,
  csWakingComm: 11,
  csWakingCommonFlags: 12,
  eventTimestamp: 1,
  eventPid: 2,
  eventCommonFlags: 5,
} as const;

export class TimestampBase {
  readonly big: bigint;
  readonly #num: number;
  readonly #exact: boolean;
  readonly #lo: number;
  readonly #hi: number;
  constructor(base: bigint) {
    this.big = base;
    this.#num = Number(base);
    this.#exact = BigInt(this.#num) === base;
    this.#lo = Number(base & 0xffffffffn);
    this.#hi = Number(base >> 32n);
  }

  /**
   * A record's u64 timestamp, given as its two 32-bit halves, relative to the
   * base: exact as a number without building a BigInt per record.
   */
  relative(lo: number, hi: number): number {
    return (hi - this.#hi) * 4294967296 + (lo - this.#lo);
  }

  /** Writes base + rel as a varint (absolute CLOCK_BOOTTIME ns). */
  write(w: ProtoWriter, rel: number): void {
    const abs = this.#num + rel;
    if (this.#exact && abs <= Number.MAX_SAFE_INTEGER) w.varint(abs);
    else w.varintBig(this.big + BigInt(rel));
  }

  abs(rel: number): bigint {
    return this.big + BigInt(rel);
  }
}

function grow<T extends Float64Array | Int32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const n = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  n.set(a);
  return n;
}

export class FtraceBundleBuilder {
  readonly cpu: number;
  #comms: CommInterner;
  #base: TimestampBase;

  // sched_switch columns
  #sTs = new Float64Array(1024);
  #sState = new Int32Array(1024);
  #sPid = new Int32Array(1024);
  #sPrio = new Int32Array(1024);
  #sComm = new Int32Array(1024);
  #sN = 0;
  // sched_waking columns
  #wTs = new Float64Array(1024);
  #wPid = new Int32Array(1024);
  #wCpu = new Int32Array(1024);
  #wPrio = new Int32Array(1024);
  #wComm = new Int32Array(1024);
  #wFlags = new Int32Array(1024);
  #wN = 0;
  // full FtraceEvents: encoded bodies in #ev, sorted index in these arrays
  #ev = new ProtoWriter(1 << 14);
  #evSpare = new ProtoWriter(1 << 14);
  #eTs = new Float64Array(256);
  #eStart = new Int32Array(256);
  #eEnd = new Int32Array(256);
  #eN = 0;
  #openStart = 0;
  #openTs = 0;
  #openMarker = 0;

  #lost = false;
  /** Timestamp of the newest event already written: nothing may precede it. */
  #flushedTs = -Infinity;
  /** Newest timestamp seen, the reference for the holdback cutoff. */
  maxTs = -Infinity;
  /** Events that arrived older than what was already flushed (timestamp raised). */
  reordered = 0;
  /** Comm id → index in the bundle's intern table (generation-stamped). */
  #local = new Int32Array(256);
  #localGen = new Int32Array(256);
  #gen = 0;
  #internOrder: number[] = [];

  constructor(cpu: number, comms: CommInterner, base: TimestampBase) {
    this.cpu = cpu;
    this.#comms = comms;
    this.#base = base;
  }

  get pending(): number {
    return this.#sN + this.#wN + this.#eN;
  }

  markLost(): void {
    this.#lost = true;
  }

  #admit(ts: number): number {
    if (ts > this.maxTs) this.maxTs = ts;
    if (ts < this.#flushedTs) {
      this.reordered++;
      return this.#flushedTs;
    }
    return ts;
  }

  addSwitch(ts: number, prevState: number, nextPid: number, nextPrio: number, comm: number): void {
    ts = this.#admit(ts);
    let i = this.#sN;
    if (i === this.#sTs.length) {
      const n = i * 2;
      this.#sTs = grow(this.#sTs, n);
      this.#sState = grow(this.#sState, n);
      this.#sPid = grow(this.#sPid, n);
      this.#sPrio = grow(this.#sPrio, n);
      this.#sComm = grow(this.#sComm, n);
    }
    const t = this.#sTs, st = this.#sState, p = this.#sPid, pr = this.#sPrio, c = this.#sComm;
    while (i > 0 && t[i - 1] > ts) {
      t[i] = t[i - 1];
      st[i] = st[i - 1];
      p[i] = p[i - 1];
      pr[i] = pr[i - 1];
      c[i] = c[i - 1];
      i--;
    }
    t[i] = ts;
    st[i] = prevState;
    p[i] = nextPid;
    pr[i] = nextPrio;
    c[i] = comm;
    this.#sN++;
  }

  /** commonFlags: ftrace's, of which the importer reads the hard/soft interrupt bits. */
  addWaking(
    ts: number,
    pid: number,
    targetCpu: number,
    prio: number,
    comm: number,
    commonFlags = 0,
  ): void {
    ts = this.#admit(ts);
    let i = this.#wN;
    if (i === this.#wTs.length) {
      const n = i * 2;
      this.#wTs = grow(this.#wTs, n);
      this.#wPid = grow(this.#wPid, n);
      this.#wCpu = grow(this.#wCpu, n);
      this.#wPrio = grow(this.#wPrio, n);
      this.#wComm = grow(this.#wComm, n);
      this.#wFlags = grow(this.#wFlags, n);
    }
    const t = this.#wTs, p = this.#wPid, cp = this.#wCpu, pr = this.#wPrio, c = this.#wComm;
    const f = this.#wFlags;
    while (i > 0 && t[i - 1] > ts) {
      t[i] = t[i - 1];
      p[i] = p[i - 1];
      cp[i] = cp[i - 1];
      pr[i] = pr[i - 1];
      c[i] = c[i - 1];
      f[i] = f[i - 1];
      i--;
    }
    t[i] = ts;
    p[i] = pid;
    cp[i] = targetCpu;
    pr[i] = prio;
    c[i] = comm;
    f[i] = commonFlags;
    this.#wN++;
  }

  /**
   * Starts a full FtraceEvent; the caller writes the event message's fields
   * into the returned writer and then calls endEvent().
   */
  beginEvent(ts: number, pid: number, eventField: number, commonFlags = 0): ProtoWriter {
    ts = this.#admit(ts);
    const w = this.#ev;
    this.#openStart = w.pos;
    this.#openTs = ts;
    w.tag(F.eventTimestamp, WireType.Varint);
    this.#base.write(w, ts);
    w.fieldVarint(F.eventPid, pid);
    if (commonFlags) w.fieldVarint(F.eventCommonFlags, commonFlags);
    this.#openMarker = w.begin(eventField);
    return w;
  }

  endEvent(): void {
    this.#ev.end(this.#openMarker);
    let i = this.#eN;
    if (i === this.#eTs.length) {
      this.#eTs = grow(this.#eTs, i * 2);
      this.#eStart = grow(this.#eStart, i * 2);
      this.#eEnd = grow(this.#eEnd, i * 2);
    }
    const ts = this.#openTs;
    while (i > 0 && this.#eTs[i - 1] > ts) {
      this.#eTs[i] = this.#eTs[i - 1];
      this.#eStart[i] = this.#eStart[i - 1];
      this.#eEnd[i] = this.#eEnd[i - 1];
      i--;
    }
    this.#eTs[i] = ts;
    this.#eStart[i] = this.#openStart;
    this.#eEnd[i] = this.#ev.pos;
    this.#eN++;
  }

  #localIndex(comm: number): number {
    if (comm >= this.#local.length) {
      const n = Math.max(comm + 1, this.#local.length * 2);
      this.#local = grow(this.#local, n);
      this.#localGen = grow(this.#localGen, n);
    }
    if (this.#localGen[comm] !== this.#gen) {
      this.#localGen[comm] = this.#gen;
      this.#local[comm] = this.#internOrder.length;
      this.#internOrder.push(comm);
    }
    return this.#local[comm];
  }

  /**
   * Writes one bundle packet (framed as a Trace.packet field) with every
   * event at or before `cutoff` into `w`. Returns false when there was
   * nothing to write.
   */
  flush(w: ProtoWriter, cutoff: number, sequenceId: number): boolean {
    const sK = countUpTo(this.#sTs, this.#sN, cutoff);
    const wK = countUpTo(this.#wTs, this.#wN, cutoff);
    const eK = countUpTo(this.#eTs, this.#eN, cutoff);
    if (sK + wK + eK === 0 && !this.#lost) return false;

    this.#gen++;
    this.#internOrder.length = 0;
    const sIdx = new Int32Array(sK);
    for (let i = 0; i < sK; i++) sIdx[i] = this.#localIndex(this.#sComm[i]);
    const wIdx = new Int32Array(wK);
    for (let i = 0; i < wK; i++) wIdx[i] = this.#localIndex(this.#wComm[i]);

    const packet = w.begin(F.tracePacket);
    w.fieldVarint(F.packetSequenceId, sequenceId);
    const bundle = w.begin(F.packetFtraceEvents);
    w.fieldVarint(F.bundleCpu, this.cpu);
    const ev = this.#ev.buf;
    for (let i = 0; i < eK; i++) {
      const s = this.#eStart[i], e = this.#eEnd[i];
      w.tag(F.bundleEvent, WireType.LengthDelimited);
      w.varint32(e - s);
      w.ensure(e - s);
      w.buf.set(ev.subarray(s, e), w.pos);
      w.pos += e - s;
    }
    if (this.#lost) w.fieldVarint(F.bundleLostEvents, 1);
    if (sK + wK > 0) {
      const cs = w.begin(F.bundleCompactSched);
      for (const id of this.#internOrder) w.fieldBytes(F.csInternTable, this.#comms.bytes[id]);
      if (sK > 0) {
        this.#deltas(w, F.csSwitchTs, this.#sTs, sK);
        packedInts(w, F.csSwitchPrevState, this.#sState, sK);
        packedInts(w, F.csSwitchNextPid, this.#sPid, sK);
        packedInts(w, F.csSwitchNextPrio, this.#sPrio, sK);
        packedInts(w, F.csSwitchNextComm, sIdx, sK);
      }
      if (wK > 0) {
        this.#deltas(w, F.csWakingTs, this.#wTs, wK);
        packedInts(w, F.csWakingPid, this.#wPid, wK);
        packedInts(w, F.csWakingTargetCpu, this.#wCpu, wK);
        packedInts(w, F.csWakingPrio, this.#wPrio, wK);
        packedInts(w, F.csWakingComm, wIdx, wK);
        packedInts(w, F.csWakingCommonFlags, this.#wFlags, wK);
      }
      w.end(cs);
    }
    w.end(bundle);
    w.end(packet);

    // Everything flushed is now the floor for later arrivals.
    let newest = this.#flushedTs;
    if (sK > 0) newest = Math.max(newest, this.#sTs[sK - 1]);
    if (wK > 0) newest = Math.max(newest, this.#wTs[wK - 1]);
    if (eK > 0) newest = Math.max(newest, this.#eTs[eK - 1]);
    this.#flushedTs = newest;
    this.#lost = false;
    this.#dropSwitches(sK);
    this.#dropWakings(wK);
    this.#dropEvents(eK);
    return true;
  }

  #deltas(w: ProtoWriter, field: number, ts: Float64Array, n: number): void {
    const m = w.begin(field);
    this.#base.write(w, ts[0]);
    // Inline varints with one capacity check: this loop runs for every event.
    w.ensure(10 * n);
    const b = w.buf;
    let p = w.pos;
    for (let i = 1; i < n; i++) {
      let v = ts[i] - ts[i - 1];
      if (v < 0x80000000) {
        while (v >= 0x80) {
          b[p++] = (v & 0x7f) | 0x80;
          v >>>= 7;
        }
      } else {
        while (v >= 0x80) {
          b[p++] = (v % 0x80) | 0x80;
          v = Math.floor(v / 0x80);
        }
      }
      b[p++] = v;
    }
    w.pos = p;
    w.end(m);
  }

  #dropSwitches(k: number): void {
    if (k === 0) return;
    const n = this.#sN;
    this.#sTs.copyWithin(0, k, n);
    this.#sState.copyWithin(0, k, n);
    this.#sPid.copyWithin(0, k, n);
    this.#sPrio.copyWithin(0, k, n);
    this.#sComm.copyWithin(0, k, n);
    this.#sN = n - k;
  }

  #dropWakings(k: number): void {
    if (k === 0) return;
    const n = this.#wN;
    this.#wTs.copyWithin(0, k, n);
    this.#wPid.copyWithin(0, k, n);
    this.#wCpu.copyWithin(0, k, n);
    this.#wPrio.copyWithin(0, k, n);
    this.#wComm.copyWithin(0, k, n);
    this.#wFlags.copyWithin(0, k, n);
    this.#wN = n - k;
  }

  /** Keeps the bodies of the events still pending, compacted to the start. */
  #dropEvents(k: number): void {
    if (k === 0) return;
    const n = this.#eN;
    const old = this.#ev.buf;
    // Two writers take turns, so a flush allocates nothing once they have grown.
    const next = this.#evSpare;
    next.pos = 0;
    for (let i = k; i < n; i++) {
      const s = this.#eStart[i], e = this.#eEnd[i];
      this.#eTs[i - k] = this.#eTs[i];
      this.#eStart[i - k] = next.pos;
      next.ensure(e - s);
      next.buf.set(old.subarray(s, e), next.pos);
      next.pos += e - s;
      this.#eEnd[i - k] = next.pos;
    }
    this.#evSpare = this.#ev;
    this.#ev = next;
    this.#eN = n - k;
  }
}

/** How many of the first n (sorted) timestamps are ≤ cutoff. */
function countUpTo(ts: Float64Array, n: number, cutoff: number): number {
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid] <= cutoff) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function packedInts(w: ProtoWriter, field: number, values: Int32Array, n: number): void {
  const m = w.begin(field);
  // Inline varints with one capacity check: this loop runs for every event.
  w.ensure(10 * n);
  const b = w.buf;
  let p = w.pos;
  for (let i = 0; i < n; i++) {
    let v = values[i];
    if (v < 0) {
      // int32/int64 negatives are sign-extended to ten bytes.
      w.pos = p;
      w.int(v);
      p = w.pos;
      continue;
    }
    while (v >= 0x80) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
  }
  w.pos = p;
  w.end(m);
}
