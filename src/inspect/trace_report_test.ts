import assert from "node:assert/strict";
import { deflateSync, gzipSync } from "node:zlib";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { FtraceStats_Phase, TracePacketSchema, TrackEvent_Type } from "../gen/perfetto_trace_pb.ts";
import { UNTRACED_PID } from "../records/records.ts";
import { ReportBuilder, type ReportOptions, reportTrace } from "./trace_report.ts";
import { LatencyHistogram, PERCENTILE_RELATIVE_ERROR } from "./latency_histogram.ts";
import { reportText, WIDTH } from "./report_text.ts";
import type { StreamEnd } from "./trace_stream.ts";

type Init = MessageInitShape<typeof TracePacketSchema>;
const packet = (init: Init) => toBinary(TracePacketSchema, create(TracePacketSchema, init));
const seq = (value: number) =>
  ({ optionalTrustedPacketSequenceId: { case: "trustedPacketSequenceId", value } }) as const;

/** Switches as [ts, nextPid, prevState, comm]; wakings as [ts, pid, comm]: absolute times. */
function bundle(
  cpu: number,
  switches: [number, number, number, string][],
  wakings: [number, number, string][] = [],
  event: unknown[] = [],
  lostEvents = false,
): Uint8Array {
  const table: string[] = [];
  const idx = (c: string) => (table.includes(c) ? table.indexOf(c) : table.push(c) - 1);
  const deltas = (ts: number[]) => ts.map((t, i) => BigInt(i === 0 ? t : t - ts[i - 1]));
  return packet({
    data: {
      case: "ftraceEvents",
      value: {
        cpu,
        lostEvents,
        // deno-lint-ignore no-explicit-any
        event: event as any,
        compactSched: {
          switchTimestamp: deltas(switches.map((s) => s[0])),
          switchNextPid: switches.map((s) => s[1]),
          switchPrevState: switches.map((s) => BigInt(s[2])),
          switchNextPrio: switches.map(() => 120),
          switchNextCommIndex: switches.map((s) => idx(s[3])),
          wakingTimestamp: deltas(wakings.map((w) => w[0])),
          wakingPid: wakings.map((w) => w[1]),
          wakingTargetCpu: wakings.map(() => cpu),
          wakingPrio: wakings.map(() => 120),
          wakingCommIndex: wakings.map((w) => idx(w[2])),
          internTable: table,
        },
      },
    },
  });
}

const stats = (phase: FtraceStats_Phase, ts: number, dropped: number[]) =>
  packet({
    timestamp: BigInt(ts),
    data: {
      case: "ftraceStats",
      value: {
        phase,
        cpuStats: dropped.map((d, cpu) => ({ cpu: BigInt(cpu), droppedEvents: BigInt(d) })),
      },
    },
  });

/**
 * Two CPUs. cpu0: app (100) runs 1000..3000, sleeps (S), woken on cpu0 at 5000; an IRQ and a
 * softirq. cpu1, written to the file first: spin (200) from 900, preempted (R+) at 5600 for app,
 * which blocks (D) at 5900 until the end (10000). So app waits 600 ns to run, spin 300 ns.
 */
function sampleTrace(): Uint8Array[] {
  return [
    stats(FtraceStats_Phase.START_OF_TRACE, 500, [0, 0]),
    packet({
      timestamp: 600n,
      data: {
        case: "processTree",
        value: {
          processes: [{ pid: 100, cmdline: ["/usr/bin/app", "-x"] }, {
            pid: 200,
            cmdline: ["spin"],
          }],
          threads: [],
        },
      },
    }),
    bundle(1, [[900, 200, 0, "spin"], [5600, 100, 0x100, "app"], [5900, 200, 2, "spin"]]),
    bundle(0, [[1000, 100, 0, "app"], [3000, 0, 1, "swapper/0"]], [[5000, 100, "app"]], [
      {
        timestamp: 2000n,
        pid: 100,
        event: { case: "irqHandlerEntry", value: { irq: 5, name: "eth0" } },
      },
      { timestamp: 2100n, pid: 100, event: { case: "irqHandlerExit", value: { irq: 5, ret: 1 } } },
      { timestamp: 2200n, pid: 100, event: { case: "softirqEntry", value: { vec: 3 } } },
      { timestamp: 2500n, pid: 100, event: { case: "softirqExit", value: { vec: 3 } } },
    ]),
    // Syscall-like slices on app's thread track, and an instant.
    packet({
      data: {
        case: "trackDescriptor",
        value: {
          uuid: 42n,
          staticOrDynamicName: { case: "name", value: "syscalls" },
          thread: { pid: 100, tid: 100n },
        },
      },
    }),
    packet({
      ...seq(7),
      timestamp: 1500n,
      sequenceFlags: 3,
      internedData: { eventNames: [{ iid: 1n, name: "read" }] },
      data: {
        case: "trackEvent",
        value: {
          type: TrackEvent_Type.SLICE_BEGIN,
          trackUuid: 42n,
          nameField: { case: "nameIid", value: 1n },
        },
      },
    }),
    packet({
      ...seq(7),
      timestamp: 1800n,
      sequenceFlags: 2,
      data: { case: "trackEvent", value: { type: TrackEvent_Type.SLICE_END, trackUuid: 42n } },
    }),
    packet({
      ...seq(7),
      timestamp: 2000n,
      sequenceFlags: 2,
      data: {
        case: "trackEvent",
        value: {
          type: TrackEvent_Type.SLICE_BEGIN,
          trackUuid: 42n,
          nameField: { case: "nameIid", value: 1n },
        },
      },
    }),
    packet({
      ...seq(7),
      timestamp: 2600n,
      sequenceFlags: 2,
      data: { case: "trackEvent", value: { type: TrackEvent_Type.SLICE_END, trackUuid: 42n } },
    }),
    packet({
      ...seq(7),
      timestamp: 2700n,
      sequenceFlags: 2,
      data: {
        case: "trackEvent",
        value: {
          type: TrackEvent_Type.INSTANT,
          trackUuid: 42n,
          nameField: { case: "name", value: "mark" },
        },
      },
    }),
    // On-CPU samples of spin, and one D sleep of app.
    ...[1, 1, 2, 1].map((cs, i) =>
      packet({
        ...seq(9),
        timestamp: BigInt(1000 + i),
        sequenceFlags: i === 0 ? 3 : 2,
        ...(i === 0
          ? {
            tracePacketDefaults: { stackSampleDefaults: { source: "on_cpu" } },
            internedData: {
              functionNames: [{ iid: 1n, str: new TextEncoder().encode("main") }, {
                iid: 2n,
                str: new TextEncoder().encode("work"),
              }],
              frames: [{ iid: 1n, functionNameId: 1n }, { iid: 2n, functionNameId: 2n }],
              callstacks: [{ iid: 1n, frameIds: [1n, 2n] }, { iid: 2n, frameIds: [1n] }],
            },
          }
          : {}),
        data: {
          case: "stackSample",
          value: {
            taskContextField: { case: "taskContext", value: { pid: 200, tid: 200 } },
            callstackField: { case: "callstackIid", value: BigInt(cs) },
            primaryWeight: 1000000n,
          },
        },
      })
    ),
    packet({
      ...seq(10),
      timestamp: 5900n,
      sequenceFlags: 3,
      tracePacketDefaults: { stackSampleDefaults: { source: "sleep.uninterruptible" } },
      internedData: {
        functionNames: [{ iid: 1n, str: new TextEncoder().encode("io_schedule") }],
        frames: [{ iid: 1n, functionNameId: 1n }],
        callstacks: [{ iid: 1n, frameIds: [1n] }],
      },
      data: {
        case: "stackSample",
        value: {
          taskContextField: { case: "taskContext", value: { pid: 100, tid: 100 } },
          callstackField: { case: "callstackIid", value: 1n },
          primaryWeight: 4100n,
        },
      },
    }),
    stats(FtraceStats_Phase.END_OF_TRACE, 10000, [0, 3]),
  ];
}

const END: StreamEnd = {
  wholeBytes: 0,
  totalBytes: 0,
  packets: 0,
  compressedWrappers: 0,
  problem: undefined,
};

function report(packets: Uint8Array[], opts: ReportOptions = {}) {
  const b = new ReportBuilder(opts);
  for (const p of packets) b.add(p);
  return b.finish("t.pb", { ...END, packets: packets.length }, 0);
}

Deno.test("report: span, CPUs and their busy time, counted per CPU", () => {
  const r = report(sampleTrace());
  assert.equal(r.trace.startNs, 500);
  assert.equal(r.trace.endNs, 10000);
  assert.deepEqual(r.trace.cpus, [0, 1]);
  assert.deepEqual(r.cpus, [
    { cpu: 0, busyNs: 2000, idleNs: 7000, switches: 2 },
    { cpu: 1, busyNs: 9100, idleNs: 0, switches: 3 },
  ]);
});

Deno.test("report: thread states and latency, a wake-up written after the switch it caused", () => {
  const r = report(sampleTrace());
  const app = r.threads.find((t) => t.tid === 100)!;
  const spin = r.threads.find((t) => t.tid === 200)!;
  assert.deepEqual(
    { ...app, latency: undefined },
    {
      tid: 100,
      pid: 100,
      name: "app",
      runningNs: 2300,
      runnableNs: 600,
      sleepingNs: 2000,
      blockedNs: 4100,
      otherNs: 0,
      switches: 2,
      latency: undefined,
    },
  );
  assert.deepEqual(app.latency, {
    count: 1,
    p50Ns: 600,
    p90Ns: 600,
    p99Ns: 600,
    maxNs: 600,
    meanNs: 600,
  });
  assert.equal(spin.runningNs, 8800);
  assert.equal(spin.runnableNs, 300);
  assert.equal(r.threads[0].tid, 200, "the busiest thread leads");
  assert.deepEqual(r.latency.all, {
    count: 2,
    p50Ns: 300,
    p90Ns: 600,
    p99Ns: 600,
    maxNs: 600,
    meanNs: 450,
  });
  assert.equal(r.drops.late, 0);
  assert.deepEqual(r.processes.map((p) => [p.pid, p.name, p.runningNs]), [
    [200, "spin", 8800],
    [100, "app", 2300],
  ]);
});

Deno.test("report: events by kind, drops, IRQs and softirqs", () => {
  const r = report(sampleTrace());
  const count = (k: string) => r.events.find((e) => e.kind === k)?.count;
  assert.equal(count("sched_switch (compact)"), 5);
  assert.equal(count("sched_waking"), 1);
  assert.equal(count("irq_handler_entry"), 1);
  assert.equal(count("track_event slice"), 2);
  assert.equal(count("track_event instant"), 1);
  assert.equal(count("stack_sample on_cpu"), 4);
  assert.deepEqual(r.drops.byCpu, [{ cpu: 0, events: 0 }, { cpu: 1, events: 3 }]);
  assert.equal(r.drops.total, 3);
  assert.deepEqual(r.irqs, [{ number: 5, name: "eth0", count: 1, totalNs: 100, maxNs: 100 }]);
  assert.deepEqual(r.softirqs, [{ number: 3, name: "NET_RX", count: 1, totalNs: 300, maxNs: 300 }]);
});

Deno.test("report: stacks folded with their thread, counts and shares", () => {
  const r = report(sampleTrace());
  assert.deepEqual(r.stacks.onCpu, {
    count: 4,
    distinct: 2,
    top: [
      { stack: "spin;main;work", count: 3, share: 0.75 },
      { stack: "spin;main", count: 1, share: 0.25 },
    ],
  });
  assert.deepEqual(r.stacks.blockedD, {
    count: 1,
    ns: 4100,
    distinct: 1,
    top: [{ stack: "app;io_schedule", count: 1, ns: 4100, share: 1 }],
  });
  assert.equal(r.stacks.blockedS, undefined);
});

Deno.test("report: track-event slices and instants by name", () => {
  const r = report(sampleTrace());
  assert.deepEqual(r.slices, [{
    track: "syscalls",
    name: "read",
    count: 2,
    unfinished: 0,
    totalNs: 900,
    p50Ns: 300,
    p99Ns: 600,
    maxNs: 600,
  }]);
  assert.deepEqual(r.instants, [{ track: "syscalls", name: "mark", count: 1 }]);
});

Deno.test("report: --pid and --comm narrow threads, latency, stacks and slices", () => {
  const byPid = report(sampleTrace(), { pids: [200] });
  assert.deepEqual(byPid.threads.map((t) => t.tid), [200]);
  assert.equal(byPid.latency.all?.count, 1);
  assert.equal(byPid.stacks.blockedD, undefined);
  assert.equal(byPid.stacks.onCpu?.count, 4);
  assert.deepEqual(byPid.slices, []);
  // A process's name from its command line (its basename) counts as well.
  const byComm = report(sampleTrace(), { comms: ["app"] });
  assert.deepEqual(byComm.threads.map((t) => t.tid), [100]);
  assert.equal(byComm.slices[0].count, 2);
  assert.equal(byComm.stacks.onCpu, undefined);
  assert.equal(report(sampleTrace(), { comms: ["nothing"] }).threads.length, 0);
});

Deno.test("report: a switch out as R and then a wake-up starts the wait at the wake-up", () => {
  const r = report([
    stats(FtraceStats_Phase.START_OF_TRACE, 0, [0]),
    bundle(0, [[10, 7, 0, "t"], [20, 0, 0, "swapper/0"], [100, 7, 0, "t"]], [[80, 7, "t"]]),
  ]);
  const t = r.threads[0];
  assert.equal(t.runnableNs, 20);
  assert.equal(t.otherNs, 60);
  assert.equal(t.latency?.maxNs, 20);
});

Deno.test("report: lost data forgets the CPU's current task", () => {
  const r = report([
    stats(FtraceStats_Phase.START_OF_TRACE, 0, [0]),
    bundle(0, [[10, 7, 0, "t"]]),
    bundle(0, [[50, 8, 1, "u"], [70, 0, 1, "swapper/0"]], [], [], true),
  ]);
  assert.equal(r.drops.lostBundles, 1);
  // 7's time after the loss is unknown: only from 10 to the loss would be a guess.
  assert.equal(r.threads.find((t) => t.tid === 7)?.runningNs ?? 0, 0);
  assert.equal(r.threads.find((t) => t.tid === 8)?.runningNs, 20);
});

Deno.test("report: a filtered trace's stand-ins are one process, not a task's pid", () => {
  const U = UNTRACED_PID;
  const r = report([
    stats(FtraceStats_Phase.START_OF_TRACE, 0, [0, 0]),
    bundle(0, [[10, 7, 0, "t"], [20, U, 1, "untraced"], [50, 7, 0, "t"], [60, U, 1, "untraced"]]),
    bundle(1, [[10, U + 1, 0, "untraced"], [40, 8, 0, "t"], [70, U + 1, 1, "untraced"]]),
  ]);
  const standIns = r.processes.filter((p) => p.pid === U);
  assert.equal(standIns.length, 1);
  assert.equal(standIns[0].name, "(tasks the filter left out)");
  assert.equal(standIns[0].threads, 2);
  // cpu0: 20–50 and 60 to the end (70); cpu1: 10–40.
  assert.equal(standIns[0].runningNs, 30 + 10 + 30);
  assert.deepEqual(
    r.threads.filter((t) => t.pid === U).map((t) => t.name).sort(),
    ["untraced cpu0", "untraced cpu1"],
  );
  const text = reportText(r);
  assert.match(text, /\n\s+- \(tasks the filter left out\)/);
  assert.ok(!text.includes(String(U)), "no stand-in pid printed");
});

Deno.test("report: the same numbers from a plain, a compressed_packets and a gzip'd file", async () => {
  const packets = sampleTrace();
  const frame = (p: Uint8Array) => {
    const len: number[] = [];
    for (let n = p.length;; n >>>= 7) {
      if (n < 0x80) {
        len.push(n);
        break;
      }
      len.push((n & 0x7f) | 0x80);
    }
    return new Uint8Array([0x0a, ...len, ...p]);
  };
  const concat = (parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) out.set(p, (at += p.length) - p.length);
    return out;
  };
  const plain = concat(packets.map(frame));
  const compressed = frame(
    packet({ data: { case: "compressedPackets", value: deflateSync(plain) } }),
  );
  const dir = await Deno.makeTempDir({ prefix: "systing-report-" });
  try {
    const results = [];
    for (
      const [name, bytes] of [["p.pb", plain], ["c.pb", compressed], [
        "g.pb.gz",
        gzipSync(plain),
      ]] as const
    ) {
      await Deno.writeFile(`${dir}/${name}`, bytes);
      const r = await reportTrace(`${dir}/${name}`);
      results.push({ ...r, trace: undefined });
      assert.equal(r.trace.packets, packets.length);
    }
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[2], results[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report text: every line fits in 100 columns", () => {
  const r = report(sampleTrace());
  r.stacks.onCpu!.top[0].stack = "spin;" + Array(40).fill("a_rather_long_function_name").join(";");
  r.processes[0].name = "x".repeat(300);
  const text = reportText(r);
  for (const line of text.split("\n")) assert.ok(line.length <= WIDTH, `${line.length}: ${line}`);
  assert.match(text, /^ {8}…\S*;a_rather_long_function_name$/m);
});

Deno.test("latency histogram: percentiles within its bound of the exact nearest rank", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const values = Array.from({ length: 20000 }, () => Math.floor(Math.exp(rand() * 25)));
  const h = new LatencyHistogram();
  for (const v of values) h.add(v);
  values.sort((a, b) => a - b);
  for (const p of [1, 50, 90, 99, 99.9, 100]) {
    const exact = values[Math.ceil((p / 100) * values.length) - 1];
    const got = h.percentile(p);
    assert.ok(
      Math.abs(got - exact) <= exact * PERCENTILE_RELATIVE_ERROR + 0.5,
      `p${p}: ${got} vs ${exact}`,
    );
  }
  assert.equal(h.max, values[values.length - 1]);
  assert.equal(h.min, values[0]);
});

Deno.test("latency histogram: exact while small, merged within its bound past that", () => {
  const a = new LatencyHistogram(), b = new LatencyHistogram();
  for (let i = 1; i <= 700; i++) a.add(i * 1001);
  assert.ok(a.exact);
  assert.equal(a.percentile(50), 350 * 1001);
  for (let i = 701; i <= 1400; i++) b.add(i * 1001);
  a.merge(b);
  assert.ok(!a.exact);
  assert.equal(a.count, 1400);
  assert.equal(a.sum, (1400 * 1401 / 2) * 1001);
  for (const p of [50, 90, 99]) {
    const exact = Math.ceil((p / 100) * 1400) * 1001;
    assert.ok(Math.abs(a.percentile(p) - exact) <= exact * PERCENTILE_RELATIVE_ERROR, `p${p}`);
  }
});
