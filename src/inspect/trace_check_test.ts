import assert from "node:assert/strict";
import { deflateSync, gzipSync } from "node:zlib";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  FtraceStats_Phase,
  type TracePacket,
  TracePacketSchema,
  TraceSchema,
  TrackEvent_Type,
} from "../gen/perfetto_trace_pb.ts";
import { checkCommand } from "./check_command.ts";
import { type CheckResult, checkTrace, type Rule } from "./trace_check.ts";

type PacketInit = MessageInitShape<typeof TracePacketSchema>;

const T0 = 1_000_000_000n;
const DROPS = 0x5157_0000n;
const THREAD_TRACK = 42n;
const KERNEL_PC = 0xffff_ffff_8100_0000n;

const seq = (id: number) => ({
  optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId" as const, value: id },
});

/** compact_sched switch columns for (ts, prev_state, next_pid) triples, timestamps delta-encoded. */
function compact(switches: [bigint, number, number][], wakings: [bigint, number][] = []) {
  const deltas = (ts: bigint[]) => ts.map((t, i) => i === 0 ? t : t - ts[i - 1]);
  return {
    internTable: ["swapper/0", "task"],
    switchTimestamp: deltas(switches.map((s) => s[0])),
    switchPrevState: switches.map((s) => BigInt(s[1])),
    switchNextPid: switches.map((s) => s[2]),
    switchNextPrio: switches.map(() => 120),
    switchNextCommIndex: switches.map((s) => s[2] === 0 ? 0 : 1),
    wakingTimestamp: deltas(wakings.map((w) => w[0])),
    wakingPid: wakings.map((w) => w[1]),
    wakingTargetCpu: wakings.map(() => 0),
    wakingPrio: wakings.map(() => 120),
    wakingCommIndex: wakings.map(() => 1),
  };
}

type Irq = ["irq" | "softirq", "entry" | "exit", number, bigint];

function bundle(
  cpu: number,
  switches: [bigint, number, number][],
  irqs: Irq[] = [],
  wakings: [bigint, number][] = [],
): PacketInit {
  return {
    ...seq(2),
    data: {
      case: "ftraceEvents",
      value: {
        cpu,
        compactSched: compact(switches, wakings),
        event: irqs.map(([kind, edge, id, ts]) => ({
          timestamp: ts,
          pid: 7,
          event: kind === "irq"
            ? edge === "entry"
              ? { case: "irqHandlerEntry" as const, value: { irq: id, name: "eth0" } }
              : { case: "irqHandlerExit" as const, value: { irq: id, ret: 1 } }
            : edge === "entry"
            ? { case: "softirqEntry" as const, value: { vec: id } }
            : { case: "softirqExit" as const, value: { vec: id } },
        })),
      },
    },
  };
}

function stats(phase: FtraceStats_Phase, ts: bigint): PacketInit {
  return {
    ...seq(1),
    timestamp: ts,
    data: {
      case: "ftraceStats",
      value: { phase, cpuStats: [{ cpu: 0n, droppedEvents: 0n }, { cpu: 1n, droppedEvents: 0n }] },
    },
  };
}

function dropValue(ts: bigint): PacketInit {
  return {
    ...seq(1),
    timestamp: ts,
    data: {
      case: "trackEvent",
      value: {
        type: TrackEvent_Type.COUNTER,
        trackUuid: DROPS + 1n,
        counterValueField: { case: "counterValue", value: 0n },
      },
    },
  };
}

function sliceEvent(ts: bigint, type: TrackEvent_Type, nameIid = 0n, track = THREAD_TRACK) {
  return {
    ...seq(1000),
    timestamp: ts,
    sequenceFlags: 2,
    data: {
      case: "trackEvent" as const,
      value: {
        type,
        trackUuid: track,
        ...(nameIid ? { nameField: { case: "nameIid" as const, value: nameIid } } : {}),
        debugAnnotations: nameIid
          ? [{
            nameField: { case: "nameIid" as const, value: 1n },
            value: { case: "intValue" as const, value: 0n },
          }]
          : [],
      },
    },
  };
}

function stackSample(ts: bigint, pid: number, callstack: bigint, interned = true): PacketInit {
  return {
    ...seq(300),
    timestamp: ts,
    sequenceFlags: interned ? 3 : 2,
    internedData: interned
      ? {
        functionNames: [{ iid: 1n, str: new TextEncoder().encode("schedule") }, {
          iid: 2n,
          str: new TextEncoder().encode("main"),
        }],
        mappingPaths: [{ iid: 1n, str: new TextEncoder().encode("[kernel.kallsyms]") }, {
          iid: 2n,
          str: new TextEncoder().encode("/usr/bin/app"),
        }],
        buildIds: [{ iid: 1n, str: new Uint8Array([0xab, 0xcd]) }],
        mappings: [{ iid: 1n, pathStringIds: [1n] }, { iid: 2n, buildId: 1n, pathStringIds: [2n] }],
        frames: [
          { iid: 1n, functionNameId: 1n, mappingId: 1n, relPc: KERNEL_PC },
          { iid: 2n, functionNameId: 2n, mappingId: 2n, relPc: 0x1234n },
        ],
        callstacks: [{ iid: 1n, frameIds: [1n] }, { iid: 2n, frameIds: [2n, 1n] }],
      }
      : undefined,
    data: {
      case: "stackSample",
      value: {
        taskContextField: { case: "taskContext", value: { pid, tid: pid } },
        executionContextField: { case: "executionContext", value: { cpu: 0, mode: 2 } },
        callstackField: { case: "callstackIid", value: callstack },
        primaryWeight: 1000n,
      },
    },
  };
}

/** A small trace that keeps every promise: the header, two CPUs, a slice, a sample, the stats. */
function wellFormed(): PacketInit[] {
  return [
    {
      ...seq(1),
      timestamp: T0,
      sequenceFlags: 1,
      firstPacketOnSequence: true,
      data: { case: "clockSnapshot", value: { clocks: [{ clockId: 6, timestamp: T0 }] } },
    },
    {
      ...seq(1),
      timestamp: T0,
      data: { case: "systemInfo", value: { utsname: { sysname: "Linux" } } },
    },
    stats(FtraceStats_Phase.START_OF_TRACE, T0),
    {
      ...seq(1),
      data: {
        case: "trackDescriptor",
        value: {
          uuid: DROPS,
          staticOrDynamicName: { case: "name", value: "systing dropped events" },
        },
      },
    },
    {
      ...seq(1),
      data: {
        case: "trackDescriptor",
        value: {
          uuid: DROPS + 1n,
          parentUuid: DROPS,
          staticOrDynamicName: { case: "name", value: "dropped sched" },
          counter: {},
        },
      },
    },
    dropValue(T0),
    bundle(0, [[T0 + 10n, 0, 5], [T0 + 20n, 0x100, 0], [T0 + 30n, 1, 6]], [
      // An exit at the CPU's very start closes what began before the recording.
      ["softirq", "exit", 3, T0 + 5n],
      ["softirq", "entry", 1, T0 + 11n],
      // A hard interrupt in the middle of a softirq.
      ["irq", "entry", 24, T0 + 12n],
      ["irq", "exit", 24, T0 + 13n],
      ["softirq", "exit", 1, T0 + 14n],
    ], [[T0 + 15n, 9]]),
    bundle(1, [[T0 + 12n, 2, 0]], [["irq", "entry", 30, T0 + 12n]]),
    {
      ...seq(1000),
      sequenceFlags: 1,
      data: {
        case: "trackDescriptor",
        value: {
          uuid: THREAD_TRACK,
          staticOrDynamicName: { case: "name", value: "syscalls" },
          thread: { pid: 5, tid: 5n },
        },
      },
    },
    {
      ...sliceEvent(T0 + 16n, TrackEvent_Type.SLICE_BEGIN, 1n),
      internedData: {
        eventNames: [{ iid: 1n, name: "read" }],
        debugAnnotationNames: [{ iid: 1n, name: "ret" }],
      },
    },
    sliceEvent(T0 + 17n, TrackEvent_Type.SLICE_END),
    stackSample(T0 + 18n, 5, 2n),
    // The same CPU's next bundle starts where the previous one ended.
    bundle(0, [[T0 + 30n, 0, 5], [T0 + 40n, 0x40, 0]], [["irq", "entry", 24, T0 + 41n]]),
    // An irq still open at the very end is fine.
    stats(FtraceStats_Phase.END_OF_TRACE, T0 + 50n),
    dropValue(T0 + 50n),
  ];
}

function encode(packets: PacketInit[]): Uint8Array {
  return toBinary(TraceSchema, create(TraceSchema, { packet: packets }));
}

async function withTrace<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "systing-check-" });
  try {
    await Deno.writeFile(`${dir}/trace.pb`, bytes);
    return await fn(`${dir}/trace.pb`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function check(bytes: Uint8Array, max?: number): Promise<CheckResult> {
  return withTrace(bytes, (path) => checkTrace(path, max));
}

function show(r: CheckResult): string {
  return r.violations.map((v) => `${v.rule} @${v.packet}: ${v.message}`).join("\n");
}

/** Checks PACKETS and expects exactly the rules RULES to be broken. */
async function expectRules(packets: PacketInit[], rules: Rule[]): Promise<CheckResult> {
  const r = await check(encode(packets));
  assert.deepEqual(Object.keys(r.counts).sort(), [...rules].sort(), show(r));
  return r;
}

function indexOf(packets: PacketInit[], pred: (p: PacketInit) => boolean, nth = 0): number {
  const all = packets.flatMap((p, i) => pred(p) ? [i] : []);
  assert.ok(nth < all.length);
  return all[nth];
}

/** P with the fields of CHANGES replaced. */
function patch(p: PacketInit, changes: PacketInit): PacketInit {
  return { ...p, ...changes } as PacketInit;
}

const isCase = (c: TracePacket["data"]["case"]) => (p: PacketInit) => p.data?.case === c;

Deno.test("check: a well-formed trace passes, with what it holds summed up", async () => {
  const r = await expectRules(wellFormed(), []);
  assert.equal(r.violations.length, 0);
  assert.equal(r.cutOff, undefined);
  const s = r.summary;
  assert.equal(s.packets, wellFormed().length);
  assert.deepEqual(s.cpus, [0, 1]);
  assert.equal(s.schedSwitches, 6);
  assert.equal(s.schedWakings, 1);
  assert.equal(s.ftraceEvents, 7);
  assert.equal(s.stackSamples, 1);
  assert.equal(s.trackEvents, 4);
  assert.equal(s.firstTs, T0);
  assert.equal(s.lastTs, T0 + 50n);
});

Deno.test("check: compressed packets and a gzip'd file pass, placed inside their wrapper", async () => {
  const packets = wellFormed();
  const inner = encode(packets.slice(3));
  const wrapped = encode([...packets.slice(0, 3), {
    data: { case: "compressedPackets", value: deflateSync(inner) },
  }]);
  const r = await check(wrapped);
  assert.deepEqual(r.counts, {}, show(r));
  assert.equal(r.summary.compressedWrappers, 1);
  assert.equal(r.summary.packets, packets.length);
  assert.deepEqual((await check(gzipSync(encode(packets)))).counts, {});

  // A broken packet inside the wrapper is named by its wrapper's offset and its place in it.
  const bad = [...packets];
  bad[11] = sliceEvent(T0 + 17n, TrackEvent_Type.INSTANT, 0n, 99n);
  const r2 = await check(
    encode([...bad.slice(0, 3), {
      data: { case: "compressedPackets", value: deflateSync(encode(bad.slice(3))) },
    }]),
  );
  assert.deepEqual(r2.violations.map((v) => [v.rule, v.packet, v.inner]), [
    ["track-undefined", 11, 8],
  ]);
  assert.ok(r2.violations[0].offset > 0);
});

Deno.test("check: a truncated file breaks rule framing and says what the rest holds", async () => {
  const bytes = encode(wellFormed());
  const r = await check(bytes.subarray(0, bytes.length - 5));
  assert.deepEqual(Object.keys(r.counts), ["framing"], show(r));
  assert.match(r.cutOff!, /ends inside the packet/);
  assert.equal(r.summary.packets, wellFormed().length - 1);
  assert.ok(r.summary.wholeBytes < r.summary.totalBytes);
  // What only the end holds (END stats, final drop counts) is not reported a second time.
  const early = await check(bytes.subarray(0, 200));
  assert.deepEqual(Object.keys(early.counts), ["framing"], show(early));
  // A cut-off .pb.gz is a cut-off trace too, not an unreadable file.
  const gz = gzipSync(bytes);
  const cutGz = await check(gz.subarray(0, gz.length - 20));
  assert.deepEqual(Object.keys(cutGz.counts), ["framing"], show(cutGz));
  assert.match(cutGz.cutOff!, /gzip/);
});

Deno.test("check: timestamps going back on one CPU, within or across bundles", async () => {
  const within = wellFormed();
  // compact_sched deltas are unsigned: one that wraps around goes back in time.
  within.splice(8, 0, bundle(1, [[T0 + 20n, 0, 5], [T0 + 20n - 1n + (1n << 64n), 0, 0]]));
  const r = await expectRules(within, ["cpu-time-order"]);
  assert.match(r.violations[0].message, /cpu 1: switch at 1000000019 is before .* 1000000020/);
  assert.equal(r.violations[0].packet, 8);
  const events = wellFormed();
  events.splice(
    8,
    0,
    bundle(1, [], [["irq", "exit", 30, T0 + 20n], ["irq", "entry", 31, T0 + 19n]]),
  );
  const r1 = await expectRules(events, ["cpu-time-order"]);
  assert.match(r1.violations[0].message, /cpu 1: irqHandlerEntry at 1000000019 is before/);

  const across = wellFormed();
  const last = indexOf(across, isCase("ftraceEvents"), 2);
  // CPU 0's third bundle begins before its second one ended (irq events included).
  across[last] = bundle(0, [[T0 + 29n, 0, 5]]);
  const r2 = await expectRules(across, ["cpu-time-order"]);
  assert.match(r2.violations[0].message, /before 1000000030, where an earlier bundle ended/);
  // Another CPU's earlier time is no violation.
  const other = wellFormed();
  other.splice(last, 0, bundle(1, [[T0 + 13n, 0, 5]]));
  await expectRules(other, []);
});

Deno.test("check: an interned id used before its definition, or after a clear", async () => {
  const undef = wellFormed();
  const begin = indexOf(undef, (p) => p.data?.case === "trackEvent" && !!p.internedData);
  undef.splice(begin + 1, 0, sliceEvent(T0 + 16n, TrackEvent_Type.SLICE_BEGIN, 7n));
  const r = await expectRules(undef, ["interned-id"]);
  assert.match(r.violations[0].message, /event name 7 undefined/);

  // A clear forgets everything interned before it on that sequence.
  const cleared = wellFormed();
  const sample = indexOf(cleared, isCase("stackSample"));
  cleared.splice(sample + 1, 0, patch(stackSample(T0 + 19n, 5, 1n, false), { sequenceFlags: 1 }));
  const r2 = await expectRules(cleared, ["interned-id"]);
  assert.match(r2.violations[0].message, /callstack 1, undefined/);

  // Interned data on a sequence that was never cleared is skipped by the importer.
  const never = wellFormed();
  never[sample] = patch(stackSample(T0 + 18n, 5, 2n), { sequenceFlags: 2 });
  await expectRules(never, ["incremental-state"]);

  // Frames referring to undefined mappings or names.
  const frames = wellFormed();
  frames.splice(
    sample + 1,
    0,
    patch(stackSample(T0 + 19n, 5, 3n, false), {
      internedData: {
        frames: [{ iid: 3n, functionNameId: 9n, mappingId: 1n, relPc: KERNEL_PC }],
        callstacks: [{ iid: 3n, frameIds: [3n] }],
      },
    }),
  );
  const r3 = await expectRules(frames, ["interned-id"]);
  assert.match(r3.violations[0].message, /frame 3 refers to function_name 9/);
});

Deno.test("check: irq and softirq entries and exits that do not pair up", async () => {
  const cases: [Irq[], RegExp][] = [
    [[["irq", "entry", 1, T0 + 42n], ["irq", "exit", 1, T0 + 43n], [
      "irq",
      "exit",
      1,
      T0 + 44n,
    ]], /irq 1 exit at 1000000044 without an entry/],
    [[["irq", "entry", 1, T0 + 42n], ["irq", "entry", 2, T0 + 43n]], /irq 2 entry .* irq 1 /],
    [[["irq", "entry", 1, T0 + 42n], ["irq", "exit", 2, T0 + 43n]], /does not match .* irq 1/],
    [[["irq", "entry", 1, T0 + 42n], ["softirq", "entry", 1, T0 + 43n]], /inside irq 1's handler/],
  ];
  for (const [irqs, message] of cases) {
    const t = wellFormed();
    // CPU 1 has an irq open from its first bundle: these come in a later one, on a fresh CPU 2.
    t.splice(indexOf(t, isCase("ftraceStats"), 1), 0, bundle(2, [], irqs));
    t[2] = patch(t[2], {
      data: {
        case: "ftraceStats",
        value: {
          phase: FtraceStats_Phase.START_OF_TRACE,
          cpuStats: [0n, 1n, 2n].map((cpu) => ({ cpu, droppedEvents: 0n })),
        },
      },
    });
    const end = indexOf(t, isCase("ftraceStats"), 1);
    t[end] = patch(t[2], {
      timestamp: T0 + 50n,
      data: {
        case: "ftraceStats",
        value: {
          phase: FtraceStats_Phase.END_OF_TRACE,
          cpuStats: [0n, 1n, 2n].map((cpu) => ({ cpu, droppedEvents: 0n })),
        },
      },
    });
    const r = await expectRules(t, ["irq-balance"]);
    assert.match(r.violations[0].message, message);
  }
});

Deno.test("check: a bundle after lost data may hold broken pairs: the gap is inside it", async () => {
  const t = wellFormed();
  // Events held back for sorting go out with the bundle reporting the loss: an entry from
  // before the gap, its exit lost, then the next entry.
  const lossy = bundle(1, [], [["softirq", "entry", 4, T0 + 20n], [
    "softirq",
    "entry",
    1,
    T0 + 22n,
  ]]);
  (lossy.data!.value as { lostEvents: boolean }).lostEvents = true;
  t.splice(8, 0, lossy);
  await expectRules(t, []);
  // Without the loss, the same bundle is unbalanced.
  t[8] = bundle(1, [], [["softirq", "entry", 4, T0 + 20n], ["softirq", "entry", 1, T0 + 22n]]);
  await expectRules(t, ["irq-balance"]);
});

Deno.test("check: no clock snapshot before the data", async () => {
  const none = wellFormed().slice(1);
  const r = await expectRules(none, ["clock-snapshot"]);
  assert.equal(r.violations[0].packet, 0);
  assert.equal(r.counts["clock-snapshot"], 1, "reported once, not per packet");
  const late = wellFormed();
  late.push(late.shift()!);
  await expectRules(late, ["clock-snapshot"]);
  const noBoot = wellFormed();
  noBoot[0] = patch(noBoot[0], {
    data: { case: "clockSnapshot", value: { clocks: [{ clockId: 1, timestamp: 5n }] } },
  });
  await expectRules(noBoot, ["clock-snapshot"]);
});

Deno.test("check: a prev_state ftrace never reports", async () => {
  const t = wellFormed();
  t.splice(8, 0, bundle(1, [[T0 + 20n, 0x3, 5]]));
  const r = await expectRules(t, ["task-state"]);
  assert.match(r.violations[0].message, /prev_state 0x3/);
});

Deno.test("check: a track event on a track never described, or described after it", async () => {
  const t = wellFormed();
  const slice = indexOf(t, (p) => p.data?.case === "trackEvent" && !!p.internedData);
  t.splice(slice + 1, 0, sliceEvent(T0 + 16n, TrackEvent_Type.INSTANT, 0n, 99n));
  const r = await expectRules(t, ["track-undefined"]);
  assert.match(r.violations[0].message, /INSTANT event on track 99/);
  const late = wellFormed();
  const desc = indexOf(
    late,
    (p) => p.data?.case === "trackDescriptor" && p.data.value.uuid === THREAD_TRACK,
  );
  late.push(late.splice(desc, 1)[0]);
  // The first packet of sequence 1000 no longer clears it, either.
  late[desc] = patch(late[desc], { sequenceFlags: 3 });
  await expectRules(late, ["track-undefined"]);
});

Deno.test("check: a pid 0 sample with user frames", async () => {
  const t = wellFormed();
  const sample = indexOf(t, isCase("stackSample"));
  t.splice(sample + 1, 0, stackSample(T0 + 19n, 0, 1n, false)); // kernel frames only: fine
  await expectRules(t, []);
  t.splice(sample + 1, 0, stackSample(T0 + 19n, 0, 2n, false));
  const r = await expectRules(t, ["idle-user-stack"]);
  assert.match(r.violations[0].message, /pid 0 .* user frames/);
});

Deno.test("check: loss statistics missing or out of place", async () => {
  const noEnd = wellFormed().filter((_p, i, all) => i !== indexOf(all, isCase("ftraceStats"), 1));
  await expectRules(noEnd, ["drop-stats", "drop-counters"]);
  const early = wellFormed();
  const end = indexOf(early, isCase("ftraceStats"), 1);
  early.splice(7, 0, early.splice(end, 1)[0]);
  const r = await expectRules(early, ["drop-stats"]);
  assert.match(r.violations[0].message, /END_OF_TRACE stats at packet 7, before the ftrace bundle/);
  const noDrops = wellFormed().filter((p) =>
    !(p.data?.case === "trackDescriptor" && p.data.value.uuid! >= DROPS) &&
    !(p.data?.case === "trackEvent" && p.data.value.trackUuid === DROPS + 1n)
  );
  await expectRules(noDrops, ["drop-counters"]);
});

Deno.test("check: the first violations are kept, the rest counted per rule", async () => {
  const t = wellFormed();
  for (let i = 0; i < 30; i++) t.splice(8, 0, bundle(1, [[T0 + 20n, 0x3, 5]]));
  const r = await check(encode(t), 4);
  assert.equal(r.violations.length, 4);
  assert.equal(r.counts["task-state"], 30);
});

/** Runs the command with its output captured. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await checkCommand(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("check command: exit 0 and ok, 1 with violations, 2 for bad input", async () => {
  const good = encode(wellFormed());
  await withTrace(good, async (path) => {
    const ok = await run([path]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^ok$/m);
    assert.match(ok.out, /2 CPUs with ftrace data/);
    assert.match(ok.out, /6 sched switches, 1 waking, 7 other ftrace events, 1 stack sample/);
    const json = JSON.parse((await run([path, "--json"])).out);
    assert.equal(json.ok, true);
    assert.equal(json.summary.firstTs, String(T0));
  });
  await withTrace(good.subarray(0, good.length - 3), async (path) => {
    const cut = await run([path]);
    assert.equal(cut.code, 1);
    assert.match(cut.out, /not a complete trace/);
    assert.match(cut.out, /Perfetto will load these \d+ complete packets/);
    assert.match(cut.out, /^ {2}framing {2}packet \d+ at offset \d+: /m);
  });
  const t = wellFormed();
  for (let i = 0; i < 5; i++) t.splice(8, 0, bundle(1, [[T0 + 20n, 0x3, 5]]));
  await withTrace(encode(t), async (path) => {
    const bad = await run(["--max", "2", path]);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /5 violations:/);
    assert.match(bad.out, /task-state {2}packet 8 at offset \d+: cpu 1: .* prev_state 0x3/);
    assert.match(bad.out, /\.\.\. and 3 more task-state/);
  });
  for (
    const [args, message] of [
      [[], /which trace/],
      [["a", "b"], /one trace at a time/],
      [["--max", "x", "a"], /--max takes a whole number/],
      [["--frob", "a"], /Unknown option '--frob'$/m],
      [["/nonexistent/trace.pb"], /cannot read trace \/nonexistent\/trace.pb: /],
      [["/"], /it is a directory/],
    ] as const
  ) {
    const r = await run([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.out}`);
    assert.match(r.err, message);
    assert.doesNotMatch(r.err, /\n {4}at /, "no stack trace");
  }
});
