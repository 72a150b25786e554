/**
 * The low-rate packets of a trace, built with the generated Perfetto types:
 * clocks, system description, process tree, statistics and drop counters.
 * Pure: values in, framed bytes out.
 */
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { ProtoWriter } from "./proto_writer.ts";
import {
  BuiltinClock,
  CounterDescriptor_Unit,
  FtraceStats_Phase,
  type ProcessTreeSchema,
  TracePacket_SequenceFlags,
  TracePacketSchema,
  TrackEvent_Type,
} from "../gen/perfetto_trace_pb.ts";

type PacketInit = MessageInitShape<typeof TracePacketSchema>;

/** Sequence of the packets the main thread writes (workers use their own). */
export const MAIN_SEQUENCE_ID = 1;

/** Frames a serialized TracePacket as one `Trace.packet` field (tag 1, length-delimited). */
export function framePacket(packet: Uint8Array): Uint8Array<ArrayBuffer> {
  const w = new ProtoWriter(packet.length + 11);
  w.fieldBytes(1, packet);
  return w.take();
}

export function encodePacket(init: PacketInit, sequenceId = MAIN_SEQUENCE_ID): Uint8Array {
  return framePacket(toBinary(
    TracePacketSchema,
    create(TracePacketSchema, {
      ...init,
      optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId", value: sequenceId },
    }),
  ));
}

export interface ClockReading {
  /** Perfetto builtin clock id (BuiltinClock). */
  clockId: number;
  ns: bigint;
}

/**
 * The first packet of the main sequence: it clears incremental state so that
 * the track events that follow on this sequence are valid.
 */
export function clockSnapshotPacket(clocks: ClockReading[]): Uint8Array {
  return encodePacket({
    timestamp: clocks.find((c) => c.clockId === BuiltinClock.BOOTTIME)?.ns,
    firstPacketOnSequence: true,
    sequenceFlags: TracePacket_SequenceFlags.SEQ_INCREMENTAL_STATE_CLEARED,
    data: {
      case: "clockSnapshot",
      value: {
        clocks: clocks.map((c) => ({ clockId: c.clockId, timestamp: c.ns })),
        primaryTraceClock: BuiltinClock.BOOTTIME,
      },
    },
  });
}

export interface SystemDescription {
  sysname: string;
  release: string;
  version: string;
  machine: string;
  hostname: string;
  numCpus: number;
  pageSize: number;
  toolVersion: string;
}

export function systemInfoPacket(s: SystemDescription, ts: bigint): Uint8Array {
  return encodePacket({
    timestamp: ts,
    data: {
      case: "systemInfo",
      value: {
        utsname: { sysname: s.sysname, release: s.release, version: s.version, machine: s.machine },
        numCpus: s.numCpus,
        pageSize: s.pageSize,
        machineName: s.hostname,
        tracingServiceVersion: `systing ${s.toolVersion}`,
      },
    },
  });
}

export function processTreePacket(
  tree: MessageInitShape<typeof ProcessTreeSchema>,
  ts: bigint,
): Uint8Array {
  return encodePacket({ timestamp: ts, data: { case: "processTree", value: tree } });
}

/**
 * Per-CPU loss in the form Perfetto's importer reports as data loss: the
 * END_OF_TRACE `dropped_events` minus the START_OF_TRACE one becomes the
 * `ftrace_cpu_dropped_events_delta` stat, which the importer flags as an error:
 * the field is meant for buffers that drop new events when full, as ours do.
 */
export function ftraceStatsPacket(
  phase: "start" | "end",
  dropped: readonly { cpu: number; events: number }[],
  ts: bigint,
): Uint8Array {
  return encodePacket({
    timestamp: ts,
    data: {
      case: "ftraceStats",
      value: {
        phase: phase === "start"
          ? FtraceStats_Phase.START_OF_TRACE
          : FtraceStats_Phase.END_OF_TRACE,
        cpuStats: dropped.map((d) => ({ cpu: BigInt(d.cpu), droppedEvents: BigInt(d.events) })),
      },
    },
  });
}

/** uuids of the drop-counter tracks: a fixed range nothing else of ours uses. */
const DROP_TRACK_UUID_BASE = 0x5157_0000n;

/** One counter track per record kind, so drops are visible in the UI itself. */
export function dropCounterTracks(kindNames: readonly string[]): Uint8Array[] {
  const parent = DROP_TRACK_UUID_BASE;
  const out = [
    encodePacket({
      data: {
        case: "trackDescriptor",
        value: {
          uuid: parent,
          staticOrDynamicName: { case: "name", value: "systing dropped events" },
        },
      },
    }),
  ];
  kindNames.forEach((name, kind) => {
    if (!name) return;
    out.push(encodePacket({
      data: {
        case: "trackDescriptor",
        value: {
          uuid: parent + BigInt(kind),
          parentUuid: parent,
          staticOrDynamicName: { case: "name", value: `dropped ${name}` },
          counter: { unit: CounterDescriptor_Unit.COUNT },
        },
      },
    }));
  });
  return out;
}

export function dropCounterValues(
  kindNames: readonly string[],
  dropsByKind: readonly number[],
  ts: bigint,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  kindNames.forEach((name, kind) => {
    if (!name) return;
    out.push(encodePacket({
      timestamp: ts,
      data: {
        case: "trackEvent",
        value: {
          type: TrackEvent_Type.COUNTER,
          trackUuid: DROP_TRACK_UUID_BASE + BigInt(kind),
          counterValueField: { case: "counterValue", value: BigInt(dropsByKind[kind] ?? 0) },
        },
      },
    }));
  });
  return out;
}
