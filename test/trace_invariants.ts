/**
 * What every trace must satisfy, whatever it recorded: header packets first, per-CPU time that
 * never goes backwards, valid switch states, interrupt entries and exits that pair up, the
 * START/END statistics around the data, and each CPU's row starting at the trace's start. The
 * record tests check these on their recordings one by one; assertTraceInvariants runs them all
 * on any other test's trace.
 */
import assert from "node:assert/strict";
import { FtraceStats_Phase } from "../src/gen/perfetto_trace_pb.ts";
import type { TraceView } from "./trace_reader.ts";

export function assertHeaderFirst(view: TraceView): void {
  const kinds = view.packets.map((p) => p.data.case);
  const firstBundle = kinds.indexOf("ftraceEvents");
  const clock = kinds.indexOf("clockSnapshot");
  const sys = kinds.indexOf("systemInfo");
  const end = firstBundle === -1 ? kinds.length : firstBundle;
  assert.ok(clock !== -1 && clock < end, `clock snapshot at ${clock}, first bundle ${firstBundle}`);
  assert.ok(sys !== -1 && sys < end, `system info at ${sys}, first bundle ${firstBundle}`);
  // Perfetto converts ftrace timestamps through BOOTTIME (builtin clock 6).
  assert.ok(view.clockSnapshots[0].clocks.some((c) => c.clockId === 6 && c.timestamp > 0n));
}

export function assertTimeNeverGoesBack(view: TraceView): void {
  for (const [cpu, bundles] of view.bundlesByCpu) {
    let prevMax: bigint | undefined;
    for (const b of bundles) {
      const where = `cpu ${cpu}, packets[${b.packetIndex}]`;
      for (
        const [what, ts] of [
          ["switch", b.switches.map((s) => s.ts)],
          ["waking", b.wakings.map((w) => w.ts)],
          ["event", b.events.map((e) => e.ts)],
        ] as const
      ) {
        for (let i = 1; i < ts.length; i++) {
          assert.ok(ts[i] >= ts[i - 1], `${where}: ${what}[${i}] ${ts[i]} < ${ts[i - 1]}`);
        }
      }
      if (b.minTs === undefined) continue;
      assert.ok(
        prevMax === undefined || b.minTs >= prevMax,
        `${where}: starts at ${b.minTs}, before the previous bundle's end ${prevMax}`,
      );
      prevMax = b.maxTs;
    }
  }
}

const VALID_STATES = new Set([0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100]);

export function assertValidSwitchStates(view: TraceView): void {
  const bad = view.switches.filter((s) => !VALID_STATES.has(s.prevState));
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} switches with an invalid prev_state`);
}

export function assertInterruptsPair(view: TraceView): void {
  for (const [cpu, events] of view.eventsByCpu) {
    const open = new Map<string, { id: number; ts: bigint }>();
    const seen = new Set<string>();
    for (const [i, e] of events.entries()) {
      let kind: string, id: number, entry: boolean;
      switch (e.event.case) {
        case "irqHandlerEntry":
        case "irqHandlerExit":
          [kind, id, entry] = ["irq", e.event.value.irq, e.event.case === "irqHandlerEntry"];
          break;
        case "softirqEntry":
        case "softirqExit":
          [kind, id, entry] = ["softirq", e.event.value.vec, e.event.case === "softirqEntry"];
          break;
        default:
          continue;
      }
      const where = `cpu ${cpu} event ${i} (${e.event.case} ${id} at ${e.ts})`;
      const o = open.get(kind);
      if (entry) {
        assert.equal(o, undefined, `${where}: ${kind} ${o?.id} entered at ${o?.ts} still open`);
        open.set(kind, { id, ts: e.ts });
      } else if (o === undefined) {
        // Only the very first one may close something begun before the recording.
        assert.ok(!seen.has(kind), `${where}: exit without entry`);
      } else {
        assert.equal(id, o.id, `${where}: exit does not match the entry at ${o.ts}`);
        open.delete(kind);
      }
      seen.add(kind);
    }
  }
}

/** START stats before the data, END stats after it, each naming every CPU with data. */
export function assertStatsAround(view: TraceView): void {
  const kinds = view.packets.map((p) => p.data.case);
  const phases = view.packets.flatMap((p, i) =>
    p.data.case === "ftraceStats" ? [{ i, stats: p.data.value }] : []
  );
  assert.deepEqual(phases.map((p) => p.stats.phase), [
    FtraceStats_Phase.START_OF_TRACE,
    FtraceStats_Phase.END_OF_TRACE,
  ]);
  const [start, end] = phases;
  const first = kinds.indexOf("ftraceEvents");
  assert.ok(first === -1 || start.i < first, `START stats at ${start.i}, first bundle ${first}`);
  assert.ok(end.i > kinds.lastIndexOf("ftraceEvents"), `END stats at ${end.i}`);
  for (const { stats } of phases) {
    const cpus = stats.cpuStats.map((c) => Number(c.cpu));
    for (const cpu of view.bundlesByCpu.keys()) assert.ok(cpus.includes(cpu), `cpu ${cpu} stats`);
  }
}

/**
 * Where the scheduler was recorded, each CPU's first switch is a full one at the trace's start
 * (to what ran there then), and no switch of the CPU comes before it.
 */
export function assertRowsFromStart(view: TraceView): void {
  if (view.switches.length === 0) return;
  const start = view.packets.find((p) => p.data.case === "ftraceStats")!.timestamp;
  for (const [cpu, events] of view.eventsByCpu) {
    const full = events.filter((e) => e.event.case === "schedSwitch");
    if (full.length === 0 && (view.switchesByCpu.get(cpu) ?? []).length === 0) continue;
    assert.equal(full.length, 1, `cpu${cpu}: one full switch, to the task running at the start`);
    assert.equal(full[0].ts, start, `cpu${cpu}'s first switch is at the trace's start`);
    for (const s of view.switchesByCpu.get(cpu) ?? []) assert.ok(s.ts >= start);
  }
}

export function assertTraceInvariants(view: TraceView): void {
  assertHeaderFirst(view);
  assertTimeNeverGoesBack(view);
  assertValidSwitchStates(view);
  assertInterruptsPair(view);
  assertStatsAround(view);
  assertRowsFromStart(view);
}
