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
    { ts: 1002n, cpu: 0, pid: 11, targetCpu: 0, prio: 119, comm: "pong", commonFlags: 0 },
    { ts: 1009n, cpu: 0, pid: 10, targetCpu: 1, prio: 120, comm: "ping", commonFlags: 0 },
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

// Stack samples: two sequences with their own interned ids.
type InternedInit = NonNullable<PacketInit["internedData"]>;
const utf8 = (s: string) => new TextEncoder().encode(s);

interface SequenceFields {
  sequenceFlags?: number;
  firstPacketOnSequence?: boolean;
  tracePacketDefaults?: PacketInit["tracePacketDefaults"];
}

function stackPacket(
  seq: number,
  ts: bigint,
  callstackIid: bigint,
  extra: SequenceFields = {},
  interned?: InternedInit,
): PacketInit {
  return {
    timestamp: ts,
    optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId", value: seq },
    sequenceFlags: 2,
    ...(interned ? { internedData: interned } : {}),
    data: {
      case: "stackSample",
      value: {
        taskContextField: { case: "taskContext", value: { pid: 40, tid: 41 } },
        executionContextField: { case: "executionContext", value: { cpu: 1, mode: 1 } },
        callstackField: { case: "callstackIid", value: callstackIid },
        primaryWeight: 1000n,
      },
    },
    ...extra,
  };
}

function firstOf(source: string): SequenceFields {
  return {
    sequenceFlags: 3,
    firstPacketOnSequence: true,
    tracePacketDefaults: {
      stackSampleDefaults: {
        source,
        primaryDescriptor: { name: "cpu-clock", unitField: { case: "unit", value: 1 } },
      },
    },
  };
}

const appInterned: InternedInit = {
  functionNames: [{ iid: 1n, str: utf8("main") }, { iid: 2n, str: utf8("leaf") }],
  mappingPaths: [{ iid: 1n, str: utf8("/opt/app") }],
  buildIds: [{ iid: 1n, str: Uint8Array.of(0xab, 0x01) }],
  mappings: [{ iid: 1n, buildId: 1n, pathStringIds: [1n] }],
  frames: [
    { iid: 1n, functionNameId: 1n, mappingId: 1n, relPc: 0x1190n },
    { iid: 2n, functionNameId: 2n, mappingId: 1n, relPc: 0x1120n },
  ],
  callstacks: [{ iid: 1n, frameIds: [1n, 2n] }],
};

Deno.test("trace_reader: stack samples resolve through their own sequence's interned data", () => {
  const view = decodeTrace(traceBytes([
    stackPacket(100, 10n, 1n, firstOf("on_cpu"), appInterned),
    // Sequence 101 reuses iid 1 for something else.
    stackPacket(101, 11n, 1n, firstOf("sleep.interruptible"), {
      functionNames: [{ iid: 1n, str: utf8("schedule") }],
      mappingPaths: [{ iid: 1n, str: utf8("[kernel.kallsyms]") }],
      mappings: [{ iid: 1n, pathStringIds: [1n] }],
      frames: [{ iid: 1n, functionNameId: 1n, mappingId: 1n, relPc: 0xffffffff81000000n }],
      callstacks: [{ iid: 1n, frameIds: [1n] }],
    }),
    // Later packets use what the sequence interned earlier.
    stackPacket(100, 12n, 2n, {}, { callstacks: [{ iid: 2n, frameIds: [2n, 1n] }] }),
    stackPacket(100, 13n, 1n),
  ]));
  assert.deepEqual(
    view.stackSamples.map((s) => [s.sequenceId, s.source, s.ts, s.frames.map((f) => f.name)]),
    [
      [100, "on_cpu", 10n, ["main", "leaf"]],
      [101, "sleep.interruptible", 11n, ["schedule"]],
      [100, "on_cpu", 12n, ["leaf", "main"]],
      [100, "on_cpu", 13n, ["main", "leaf"]],
    ],
  );
  const s = view.stackSamples[0];
  assert.deepEqual(
    { pid: s.pid, tid: s.tid, cpu: s.cpu, mode: s.mode, weight: s.weight, iid: s.callstackIid },
    { pid: 40, tid: 41, cpu: 1, mode: 1, weight: 1000n, iid: 1n },
  );
  assert.deepEqual(s.frames[1], {
    name: "leaf",
    mappingPath: "/opt/app",
    relPc: 0x1120n,
    buildId: "ab01",
  });
  assert.equal(view.stackSamples[1].frames[0].buildId, "");
  assert.deepEqual(view.stackSequences.get(100), {
    sequenceId: 100,
    firstPacketIndex: 0,
    firstFlags: 3,
    source: "on_cpu",
    counterName: "cpu-clock",
    unit: 1,
  });
  assert.deepEqual([...view.stackSequences.keys()], [100, 101]);
});

Deno.test("trace_reader: refuses stack samples that use an id before it is defined", () => {
  const first = firstOf("on_cpu");
  const cases: [PacketInit[], RegExp][] = [
    // The callstack is only defined on another sequence.
    [[
      stackPacket(101, 1n, 1n, firstOf("x"), appInterned),
      stackPacket(100, 2n, 1n, first),
    ], /packets\[1\]: stack sample refers to callstack 1, undefined on sequence 100/],
    // Defined, but in a later packet.
    [[
      stackPacket(100, 1n, 1n, first),
      stackPacket(100, 2n, 1n, {}, appInterned),
    ], /packets\[0\]: stack sample refers to callstack 1/],
    [
      [stackPacket(100, 1n, 1n, first, { ...appInterned, functionNames: [] })],
      /frame 1 refers to function_name 1/,
    ],
    [
      [stackPacket(100, 1n, 1n, first, { ...appInterned, mappings: [] })],
      /frame 1 refers to mapping 1/,
    ],
    [
      [stackPacket(100, 1n, 1n, first, { ...appInterned, mappingPaths: [] })],
      /mapping 1 refers to mapping_path 1/,
    ],
    [
      [stackPacket(100, 1n, 1n, first, { ...appInterned, buildIds: [] })],
      /mapping 1 refers to build_id 1/,
    ],
    [
      [stackPacket(100, 1n, 1n, first, { ...appInterned, frames: appInterned.frames!.slice(1) })],
      /callstack 1 refers to frame 1/,
    ],
    // Cleared incremental state forgets what was interned.
    [[
      stackPacket(100, 1n, 1n, first, appInterned),
      stackPacket(100, 2n, 1n, { sequenceFlags: 3 }),
    ], /packets\[1\]: stack sample refers to callstack 1/],
    // Interned twice on one sequence.
    [[
      stackPacket(100, 1n, 1n, first, appInterned),
      stackPacket(100, 2n, 1n, {}, { functionNames: [{ iid: 2n, str: utf8("leaf") }] }),
    ], /packets\[1\]: function_name 2 defined twice on sequence 100/],
    // A first packet that does not clear incremental state.
    [
      [stackPacket(100, 1n, 1n, {}, appInterned)],
      /whose first packet does not clear incremental state/,
    ],
    [[stackPacket(100, 1n, 1n, first, appInterned), {
      optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId", value: 100 },
      data: { case: "stackSample", value: { primaryWeight: 1n } },
    }], /packets\[1\]: stack sample without callstack_iid/],
  ];
  for (const [packets, error] of cases) {
    assert.throws(() => decodeTrace(traceBytes(packets)), error);
  }
});
