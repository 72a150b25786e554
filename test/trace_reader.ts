/**
 * Reads a systing trace.pb for the tests: inflates compressed packets,
 * decodes every packet strictly and expands the compact_sched encoding into
 * plain per-CPU records, so that assertions read like the ftrace text format.
 */
import { inflateSync } from "node:zlib";
import { fromBinary, isFieldSet } from "@bufbuild/protobuf";
import {
  type ClockSnapshot,
  type FtraceEvent,
  type FtraceEventBundle,
  FtraceEventBundleSchema,
  type FtraceStats,
  type ProcessTree,
  type SystemInfo,
  type TracePacket,
  TracePacketSchema,
  TraceSchema,
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
}

export async function readTrace(path: string): Promise<TraceView> {
  return decodeTrace(await Deno.readFile(path));
}

/** Decodes a whole trace; throws on anything a strict reader should refuse. */
export function decodeTrace(bytes: Uint8Array): TraceView {
  const outer = fromBinary(TraceSchema, bytes).packet;
  const packets: TracePacket[] = [];
  let compressedWrappers = 0;
  for (const [i, packet] of outer.entries()) {
    if (packet.data.case !== "compressedPackets") {
      packets.push(packet);
      continue;
    }
    compressedWrappers++;
    let inner: Uint8Array;
    try {
      inner = inflateSync(packet.data.value);
    } catch (e) {
      throw new Error(`packet ${i}: compressed_packets does not inflate: ${e}`);
    }
    for (const p of fromBinary(TraceSchema, inner).packet) {
      // Perfetto never nests compression; a reader would not expand a second level.
      if (p.data.case === "compressedPackets") {
        throw new Error(`packet ${i}: compressed_packets nested inside compressed_packets`);
      }
      packets.push(p);
    }
  }
  for (const [i, p] of packets.entries()) {
    // Unknown fields mean a field number or enum value our schema does not
    // know: almost always an encoder typo that Perfetto would silently drop.
    const where = firstUnknownField(p, `packets[${i}]`);
    if (where) throw new Error(`unknown field at ${where}`);
  }
  return buildView(packets, compressedWrappers);
}

function buildView(packets: TracePacket[], compressedWrappers: number): TraceView {
  const view: TraceView = {
    packets,
    compressedWrappers,
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
  };
  const lastNextPid = new Map<number, number | undefined>();
  for (const [i, p] of packets.entries()) {
    const ts = isFieldSet(p, TracePacketSchema.field.timestamp) ? p.timestamp : undefined;
    switch (p.data.case) {
      case "ftraceEvents": {
        const b = expandBundle(p.data.value, i, lastNextPid);
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
    }
  }
  // Loops, not push(...list): spreading a busy CPU's records overflows the stack.
  for (const cpu of [...view.bundlesByCpu.keys()].sort((a, b) => a - b)) {
    for (const s of view.switchesByCpu.get(cpu)!) view.switches.push(s);
    for (const w of view.wakingsByCpu.get(cpu)!) view.wakings.push(w);
    for (const e of view.eventsByCpu.get(cpu)!) view.events.push(e);
  }
  return view;
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
