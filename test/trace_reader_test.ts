// Unit test of test/trace_reader.ts on synthetic traces: no BPF, no root.
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import {
  FtraceEventBundleSchema,
  FtraceStats_Phase,
  type TracePacket,
  TracePacketSchema,
  TraceSchema,
} from "../src/gen/perfetto_trace_pb.ts";
import { decodeTrace } from "./trace_reader.ts";

type PacketInit = MessageInitShape<typeof TracePacketSchema>;
type BundleInit = MessageInitShape<typeof FtraceEventBundleSchema>;

function traceBytes(packets: PacketInit[]): Uint8Array {
  return toBinary(
    TraceSchema,
    create(TraceSchema, { packet: packets.map((p) => create(TracePacketSchema, p)) }),
  );
}

function bundle(init: BundleInit): PacketInit {
  return { data: { case: "ftraceEvents", value: init } };
}

function compressed(packets: PacketInit[]): PacketInit {
  return { data: { case: "compressedPackets", value: deflateSync(traceBytes(packets)) } };
}

const cpu0First = bundle({
  cpu: 0,
  compactSched: {
    internTable: ["swapper/0", "ping", "pong"],
    switchTimestamp: [1000n, 5n, 10n],
    switchPrevState: [0n, 1n, 256n],
    switchNextPid: [10, 11, 0],
    switchNextPrio: [120, 119, 120],
    switchNextCommIndex: [1, 2, 0],
    wakingTimestamp: [1002n, 7n],
    wakingPid: [11, 10],
    wakingTargetCpu: [0, 1],
    wakingPrio: [119, 120],
    wakingCommIndex: [2, 1],
  },
  event: [
    {
      timestamp: 1003n,
      pid: 10,
      event: { case: "irqHandlerEntry", value: { irq: 24, name: "virtio0" } },
    },
    { timestamp: 1004n, pid: 10, event: { case: "irqHandlerExit", value: { irq: 24, ret: 1 } } },
  ],
});

const cpu1 = bundle({
  cpu: 1,
  compactSched: {
    internTable: ["bash"],
    switchTimestamp: [1500n],
    switchPrevState: [0n],
    switchNextPid: [77],
    switchNextPrio: [120],
    switchNextCommIndex: [0],
  },
});

// Its chain restarts from an absolute timestamp; the implied prev_pid does not restart.
const cpu0Second = bundle({
  cpu: 0,
  compactSched: {
    internTable: ["ping", "pong"],
    switchTimestamp: [2000n, 1n],
    switchPrevState: [2n, 0n],
    switchNextPid: [10, 11],
    switchNextPrio: [120, 119],
    switchNextCommIndex: [0, 1],
  },
  event: [{
    timestamp: 2005n,
    pid: 11,
    event: { case: "taskRename", value: { pid: 11, oldcomm: "pong", newcomm: "pong2" } },
  }],
});

const cpu0Lost = bundle({
  cpu: 0,
  lostEvents: true,
  compactSched: {
    internTable: ["pong2"],
    switchTimestamp: [3000n],
    switchPrevState: [0n],
    switchNextPid: [11],
    switchNextPrio: [119],
    switchNextCommIndex: [0],
  },
});

const startPackets: PacketInit[] = [
  {
    data: {
      case: "clockSnapshot",
      value: { clocks: [{ clockId: 6, timestamp: 900n }, { clockId: 1, timestamp: 5n }] },
    },
  },
  { data: { case: "systemInfo", value: { utsname: { sysname: "Linux", release: "6.1" } } } },
  {
    data: {
      case: "processTree",
      value: {
        processes: [{ pid: 10, ppid: 1, cmdline: ["/bin/pingpong", "20"] }],
        threads: [{ tid: 11, tgid: 10, name: "pong" }],
      },
    },
  },
];

const endPackets: PacketInit[] = [
  {
    timestamp: 2005n,
    data: { case: "processTree", value: { threads: [{ tid: 11, tgid: 10, name: "pong2" }] } },
  },
  {
    data: {
      case: "ftraceStats",
      value: { phase: FtraceStats_Phase.END_OF_TRACE, cpuStats: [{ cpu: 0n, overrun: 3n }] },
    },
  },
];

Deno.test("trace_reader: expands compact_sched deltas, intern table and implied prev_pid", () => {
  const view = decodeTrace(
    traceBytes([...startPackets, cpu0First, cpu1, cpu0Second, cpu0Lost, ...endPackets]),
  );
  assert.equal(view.packets.length, 9);
  assert.equal(view.compressedWrappers, 0);
  assert.deepEqual([...view.bundlesByCpu.keys()], [0, 1]);
  assert.deepEqual(view.bundlesByCpu.get(0)!.map((b) => b.packetIndex), [3, 5, 6]);

  assert.deepEqual(view.switchesByCpu.get(0), [
    {
      ts: 1000n,
      cpu: 0,
      prevPid: undefined,
      nextPid: 10,
      prevState: 0,
      nextPrio: 120,
      nextComm: "ping",
    },
    { ts: 1005n, cpu: 0, prevPid: 10, nextPid: 11, prevState: 1, nextPrio: 119, nextComm: "pong" },
    {
      ts: 1015n,
      cpu: 0,
      prevPid: 11,
      nextPid: 0,
      prevState: 256,
      nextPrio: 120,
      nextComm: "swapper/0",
    },
    { ts: 2000n, cpu: 0, prevPid: 0, nextPid: 10, prevState: 2, nextPrio: 120, nextComm: "ping" },
    { ts: 2001n, cpu: 0, prevPid: 10, nextPid: 11, prevState: 0, nextPrio: 119, nextComm: "pong" },
    {
      ts: 3000n,
      cpu: 0,
      prevPid: undefined,
      nextPid: 11,
      prevState: 0,
      nextPrio: 119,
      nextComm: "pong2",
    },
  ]);
  // CPU 1's chain is its own: its first switch has no predecessor.
  assert.deepEqual(view.switchesByCpu.get(1), [
    {
      ts: 1500n,
      cpu: 1,
      prevPid: undefined,
      nextPid: 77,
      prevState: 0,
      nextPrio: 120,
      nextComm: "bash",
    },
  ]);
  assert.deepEqual(view.switches.map((s) => s.ts), [
    1000n,
    1005n,
    1015n,
    2000n,
    2001n,
    3000n,
    1500n,
  ]);

  assert.deepEqual(view.wakings, [
    { ts: 1002n, cpu: 0, pid: 11, targetCpu: 0, prio: 119, comm: "pong" },
    { ts: 1009n, cpu: 0, pid: 10, targetCpu: 1, prio: 120, comm: "ping" },
  ]);

  assert.deepEqual(view.events.map((e) => [e.ts, e.cpu, e.pid, e.event.case]), [
    [1003n, 0, 10, "irqHandlerEntry"],
    [1004n, 0, 10, "irqHandlerExit"],
    [2005n, 0, 11, "taskRename"],
  ]);
  const rename = view.events[2].event;
  assert.equal(rename.case === "taskRename" && rename.value.newcomm, "pong2");

  const [first, second, third] = view.bundlesByCpu.get(0)!;
  assert.deepEqual([first.minTs, first.maxTs], [1000n, 1015n]);
  assert.deepEqual([second.minTs, second.maxTs], [2000n, 2005n]);
  assert.deepEqual([first.lostEvents, third.lostEvents], [false, true]);

  assert.deepEqual(view.threads, [
    { ts: undefined, tid: 11, tgid: 10, name: "pong" },
    { ts: 2005n, tid: 11, tgid: 10, name: "pong2" },
  ]);
  assert.deepEqual(view.processes, [
    { ts: undefined, pid: 10, ppid: 1, cmdline: ["/bin/pingpong", "20"] },
  ]);
  assert.equal(view.ftraceStats.length, 1);
  assert.equal(view.ftraceStats[0].phase, FtraceStats_Phase.END_OF_TRACE);
  assert.equal(view.ftraceStats[0].cpuStats[0].overrun, 3n);
  assert.deepEqual(view.clockSnapshots[0].clocks.map((c) => [c.clockId, c.timestamp]), [
    [6, 900n],
    [1, 5n],
  ]);
  assert.equal(view.systemInfos[0].utsname?.release, "6.1");
});

Deno.test("trace_reader: compressed packets expand in place", () => {
  const plain = decodeTrace(
    traceBytes([...startPackets, cpu0First, cpu1, cpu0Second, ...endPackets]),
  );
  const packed = decodeTrace(traceBytes([
    startPackets[0],
    compressed([startPackets[1], startPackets[2], cpu0First]),
    compressed([cpu1, cpu0Second]),
    ...endPackets,
  ]));
  assert.equal(packed.compressedWrappers, 2);
  assert.equal(packed.packets.length, 8);
  const kinds = (ps: TracePacket[]) => ps.map((p) => p.data.case);
  assert.deepEqual(kinds(packed.packets), kinds(plain.packets));
  assert.deepEqual(packed.switches, plain.switches);
  assert.deepEqual(packed.wakings, plain.wakings);
  assert.deepEqual(packed.threads, plain.threads);
});

Deno.test("trace_reader: refuses malformed traces", () => {
  assert.throws(
    () =>
      decodeTrace(traceBytes([bundle({
        cpu: 2,
        compactSched: {
          internTable: ["a"],
          switchTimestamp: [1n],
          switchPrevState: [0n],
          switchNextPid: [1],
          switchNextPrio: [120],
          switchNextCommIndex: [1],
        },
      })])),
    /packets\[0\]: switch comm index 1 outside intern table of 1/,
  );
  assert.throws(
    () =>
      decodeTrace(traceBytes([bundle({
        cpu: 0,
        compactSched: {
          internTable: ["a"],
          switchTimestamp: [1n, 2n],
          switchPrevState: [0n, 0n],
          switchNextPid: [1],
          switchNextPrio: [120, 120],
          switchNextCommIndex: [0, 0],
        },
      })])),
    /switch has 2 timestamps but 1 switchNextPid/,
  );
  assert.throws(
    () => decodeTrace(traceBytes([bundle({ event: [] })])),
    /packets\[0\]: ftrace_events bundle without cpu/,
  );
  assert.throws(
    () => decodeTrace(traceBytes([compressed([compressed([cpu1])])])),
    /nested inside compressed_packets/,
  );
  assert.throws(
    () =>
      decodeTrace(
        traceBytes([{ data: { case: "compressedPackets", value: Uint8Array.of(1, 2, 3) } }]),
      ),
    /packet 0: compressed_packets does not inflate/,
  );
  // A packet holding field 999 (varint 1): tag 999<<3 = 0xb8 0x3e.
  assert.throws(
    () => decodeTrace(Uint8Array.of(0x0a, 0x03, 0xb8, 0x3e, 0x01)),
    /unknown field at packets\[0\] \(field 999\)/,
  );
  // An unknown field deep inside a bundle's event is found, with its path.
  const deep = create(
    TracePacketSchema,
    bundle({
      cpu: 0,
      event: [{ timestamp: 1n, pid: 1, event: { case: "softirqEntry", value: { vec: 1 } } }],
    }),
  );
  if (deep.data.case !== "ftraceEvents") throw new Error("unreachable");
  deep.data.value.event[0].$unknown = [
    { no: 500, wireType: WireType.Varint, data: Uint8Array.of(0x01) },
  ];
  assert.throws(
    () => decodeTrace(toBinary(TraceSchema, create(TraceSchema, { packet: [deep] }))),
    /unknown field at packets\[0\]\.data\.value\.event\[0\] \(field 500\)/,
  );
  assert.throws(
    () => decodeTrace(traceBytes([bundle({ cpu: 0, event: [{ timestamp: 1n, pid: 1 }] })])),
    /packets\[0\]: ftrace event without payload/,
  );
  // Truncated: the packet claims 3 bytes but only 2 follow.
  assert.throws(() => decodeTrace(Uint8Array.of(0x0a, 0x03, 0x40, 0x01)));
});
