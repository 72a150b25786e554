import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { CommInterner } from "./comm_interner.ts";
import { FtraceBundleBuilder, TimestampBase } from "./ftrace_bundle_builder.ts";
import {
  type FtraceEvent,
  type FtraceEventBundle,
  type TracePacket,
  TraceSchema,
} from "../gen/perfetto_trace_pb.ts";
import { ProtoWriter } from "./proto_writer.ts";

const SOFTIRQ_ENTRY = 24;
const IRQ_HANDLER_ENTRY = 36;

function setup(base = 1_000_000n, cpu = 3) {
  const comms = new CommInterner();
  const b = new FtraceBundleBuilder(cpu, comms, new TimestampBase(base));
  return { comms, b };
}

/** Flushes `b` into a fresh writer and decodes the result as a whole Trace. */
function flushDecode(
  b: FtraceBundleBuilder,
  cutoff = Infinity,
  seq = 7,
): { wrote: boolean; packets: TracePacket[]; raw: Uint8Array } {
  const w = new ProtoWriter(16);
  const wrote = b.flush(w, cutoff, seq);
  const raw = w.take();
  return { wrote, packets: fromBinary(TraceSchema, raw).packet, raw };
}

function bundleOf(p: TracePacket): FtraceEventBundle {
  assert.equal(p.data.case, "ftraceEvents");
  return p.data.value as FtraceEventBundle;
}

/** The one bundle a flush must produce. */
function flushOne(b: FtraceBundleBuilder, cutoff = Infinity, seq = 7): FtraceEventBundle {
  const { wrote, packets } = flushDecode(b, cutoff, seq);
  assert.equal(wrote, true);
  assert.equal(packets.length, 1);
  assert.equal(packets[0].optionalTrustedPacketSequenceId.case, "trustedPacketSequenceId");
  assert.equal(packets[0].optionalTrustedPacketSequenceId.value, seq);
  return bundleOf(packets[0]);
}

/** Undoes the delta encoding of a compact timestamp column. */
function absolute(deltas: bigint[]): bigint[] {
  const out: bigint[] = [];
  let t = 0n;
  for (const d of deltas) out.push(t += d);
  return out;
}

function softirq(b: FtraceBundleBuilder, ts: number, pid: number, vec: number): void {
  const e = b.beginEvent(ts, pid, SOFTIRQ_ENTRY);
  e.fieldVarint(1, vec);
  b.endEvent();
}

function softirqOf(ev: FtraceEvent): { ts: bigint; pid: number; vec: number } {
  assert.equal(ev.event.case, "softirqEntry");
  return { ts: ev.timestamp, pid: ev.pid, vec: ev.event.value.vec };
}

Deno.test("compact sched: first timestamp absolute (base + rel), then deltas", () => {
  const { comms, b } = setup(1_000_000n, 3);
  const a = comms.internString("a");
  b.addSwitch(10, 1, 100, 120, a);
  b.addSwitch(25, 0, 101, 120, a);
  b.addSwitch(25, 2, 102, 120, a);
  b.addSwitch(100, 0, 0, 120, a);
  b.addWaking(5, 200, 1, 120, a);
  b.addWaking(1005, 201, 2, 120, a);
  assert.equal(b.pending, 6);
  const bundle = flushOne(b, Infinity, 9);
  assert.equal(bundle.cpu, 3);
  assert.equal(bundle.lostEvents, false);
  assert.equal(bundle.event.length, 0);
  const cs = bundle.compactSched!;
  assert.deepEqual(cs.switchTimestamp, [1_000_010n, 15n, 0n, 75n]);
  assert.deepEqual(cs.switchPrevState, [1n, 0n, 2n, 0n]);
  assert.deepEqual(cs.switchNextPid, [100, 101, 102, 0]);
  assert.deepEqual(cs.switchNextPrio, [120, 120, 120, 120]);
  assert.deepEqual(cs.wakingTimestamp, [1_000_005n, 1000n]);
  assert.deepEqual(cs.wakingPid, [200, 201]);
  assert.deepEqual(cs.wakingTargetCpu, [1, 2]);
  assert.equal(b.pending, 0);
  assert.equal(b.maxTs, 1005);
});

Deno.test("each bundle has its own intern table; comms are re-interned per bundle", () => {
  const { comms, b } = setup();
  const ids = ["zero", "one", "two", "three"].map((s) => comms.internString(s));
  b.addSwitch(1, 0, 11, 120, ids[1]);
  b.addSwitch(2, 0, 10, 120, ids[0]);
  b.addSwitch(3, 0, 11, 120, ids[1]);
  b.addWaking(4, 12, 0, 120, ids[2]);
  b.addWaking(5, 10, 0, 120, ids[0]);
  let cs = flushOne(b).compactSched!;
  assert.deepEqual(cs.internTable, ["one", "zero", "two"]);
  assert.deepEqual(cs.switchNextCommIndex, [0, 1, 0]);
  assert.deepEqual(cs.wakingCommIndex, [2, 1]);

  b.addWaking(6, 13, 0, 120, ids[3]);
  b.addSwitch(7, 0, 10, 120, ids[0]);
  cs = flushOne(b).compactSched!;
  // Switch comms are interned first, then waking comms.
  assert.deepEqual(cs.internTable, ["zero", "three"]);
  assert.deepEqual(cs.switchNextCommIndex, [0]);
  assert.deepEqual(cs.wakingCommIndex, [1]);

  b.addSwitch(8, 0, 11, 120, ids[1]);
  cs = flushOne(b).compactSched!;
  assert.deepEqual(cs.internTable, ["one"]);
  assert.deepEqual(cs.switchNextCommIndex, [0]);
  assert.deepEqual(cs.wakingCommIndex, []);
  assert.deepEqual(cs.wakingTimestamp, []);
});

Deno.test("intern table with comm ids beyond the local index's initial size", () => {
  const { comms, b } = setup();
  const ids: number[] = [];
  for (let i = 0; i < 600; i++) ids.push(comms.internString(`c${i}`));
  b.addSwitch(1, 0, 1, 120, ids[599]);
  b.addSwitch(2, 0, 2, 120, ids[3]);
  b.addSwitch(3, 0, 3, 120, ids[599]);
  const cs = flushOne(b).compactSched!;
  assert.deepEqual(cs.internTable, ["c599", "c3"]);
  assert.deepEqual(cs.switchNextCommIndex, [0, 1, 0]);
});

Deno.test("out-of-order switches are emitted sorted with all columns permuted", () => {
  const { comms, b } = setup(0n);
  const [x, y, z] = ["x", "y", "z"].map((s) => comms.internString(s));
  b.addSwitch(100, 1, 1001, 101, x);
  b.addSwitch(300, 2, 1003, 103, z);
  b.addSwitch(200, 64, 1002, -2, y);
  const cs = flushOne(b).compactSched!;
  assert.deepEqual(absolute(cs.switchTimestamp), [100n, 200n, 300n]);
  assert.deepEqual(cs.switchPrevState, [1n, 64n, 2n]);
  assert.deepEqual(cs.switchNextPid, [1001, 1002, 1003]);
  assert.deepEqual(cs.switchNextPrio, [101, -2, 103]);
  assert.deepEqual(cs.switchNextCommIndex.map((i) => cs.internTable[i]), ["x", "y", "z"]);
  assert.equal(b.reordered, 0);
});

Deno.test("out-of-order wakings are emitted sorted with all columns permuted", () => {
  const { comms, b } = setup(0n);
  const [x, y, z] = ["x", "y", "z"].map((s) => comms.internString(s));
  b.addWaking(100, 2001, 1, 91, x);
  b.addWaking(300, 2003, 3, 93, z);
  b.addWaking(200, 2002, 2, 92, y);
  b.addWaking(50, 2000, 0, 90, x);
  const cs = flushOne(b).compactSched!;
  assert.deepEqual(absolute(cs.wakingTimestamp), [50n, 100n, 200n, 300n]);
  assert.deepEqual(cs.wakingPid, [2000, 2001, 2002, 2003]);
  assert.deepEqual(cs.wakingTargetCpu, [0, 1, 2, 3]);
  assert.deepEqual(cs.wakingPrio, [90, 91, 92, 93]);
  assert.deepEqual(cs.wakingCommIndex.map((i) => cs.internTable[i]), ["x", "x", "y", "z"]);
});

Deno.test("out-of-order full events are emitted sorted with their bodies", () => {
  const { b } = setup(1000n);
  softirq(b, 100, 11, 1);
  softirq(b, 300, 33, 3);
  softirq(b, 200, 22, 2);
  const bundle = flushOne(b);
  assert.equal(bundle.compactSched, undefined);
  assert.deepEqual(bundle.event.map(softirqOf), [
    { ts: 1100n, pid: 11, vec: 1 },
    { ts: 1200n, pid: 22, vec: 2 },
    { ts: 1300n, pid: 33, vec: 3 },
  ]);
});

Deno.test("holdback: events newer than the cutoff wait for a later flush", () => {
  const { comms, b } = setup(500n);
  const a = comms.internString("a");
  b.addSwitch(100, 0, 1, 120, a);
  b.addSwitch(200, 0, 2, 120, a);
  b.addSwitch(300, 0, 3, 120, a);
  b.addWaking(150, 4, 0, 120, a);
  b.addWaking(250, 5, 0, 120, a);
  softirq(b, 120, 6, 1);
  softirq(b, 260, 7, 2);
  softirq(b, 400, 8, 3);

  let bundle = flushOne(b, 200);
  assert.deepEqual(bundle.compactSched!.switchTimestamp, [600n, 100n]);
  assert.deepEqual(bundle.compactSched!.switchNextPid, [1, 2]);
  assert.deepEqual(bundle.compactSched!.wakingTimestamp, [650n]);
  assert.deepEqual(bundle.compactSched!.wakingPid, [4]);
  assert.deepEqual(bundle.event.map(softirqOf), [{ ts: 620n, pid: 6, vec: 1 }]);
  assert.equal(b.pending, 4);

  // Nothing at or before 210 remains.
  const empty = flushDecode(b, 210);
  assert.equal(empty.wrote, false);
  assert.equal(empty.raw.length, 0);

  bundle = flushOne(b, 300);
  assert.deepEqual(bundle.compactSched!.switchTimestamp, [800n]);
  assert.deepEqual(bundle.compactSched!.switchNextPid, [3]);
  assert.deepEqual(bundle.compactSched!.wakingTimestamp, [750n]);
  assert.deepEqual(bundle.compactSched!.wakingPid, [5]);
  assert.deepEqual(bundle.event.map(softirqOf), [{ ts: 760n, pid: 7, vec: 2 }]);
  assert.equal(b.pending, 1);

  bundle = flushOne(b);
  assert.equal(bundle.compactSched, undefined);
  assert.deepEqual(bundle.event.map(softirqOf), [{ ts: 900n, pid: 8, vec: 3 }]);
  assert.equal(b.pending, 0);
  assert.equal(b.reordered, 0);
});

Deno.test("held-back full events survive many flushes and buffer compaction", () => {
  const { b } = setup(0n);
  // Bodies larger than 127 bytes so each event's length needed a shift.
  const name = "n".repeat(150);
  for (let i = 0; i < 600; i++) {
    const e = b.beginEvent(i * 10, i, IRQ_HANDLER_ENTRY);
    e.fieldInt(1, i);
    e.fieldString(2, `${name}${i}`);
    b.endEvent();
  }
  const seen: number[] = [];
  for (let cutoff = 995; cutoff < 6000; cutoff += 1000) {
    const bundle = flushOne(b, cutoff);
    for (const ev of bundle.event) {
      assert.equal(ev.event.case, "irqHandlerEntry");
      const i = ev.event.value.irq;
      assert.equal(ev.timestamp, BigInt(i * 10));
      assert.equal(ev.pid, i);
      assert.equal(ev.event.value.name, `${name}${i}`);
      assert.ok(i * 10 <= cutoff);
      seen.push(i);
    }
  }
  assert.deepEqual(seen, Array.from({ length: 600 }, (_, i) => i));
  assert.equal(b.pending, 0);
});

Deno.test("many switches and wakings grow the columns and stay sorted", () => {
  const { comms, b } = setup(0n);
  const a = comms.internString("a");
  const n = 5000;
  // Pairs swapped: 1, 0, 3, 2, ...
  for (let i = 0; i < n; i++) {
    const t = i ^ 1;
    b.addSwitch(t * 3, t & 0xff, t, t % 140, a);
    b.addWaking(t * 3 + 1, t, t % 8, 0 - (t % 100), a);
  }
  const cs = flushOne(b).compactSched!;
  const idx = Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(absolute(cs.switchTimestamp), idx.map((i) => BigInt(i * 3)));
  assert.deepEqual(cs.switchPrevState, idx.map((i) => BigInt(i & 0xff)));
  assert.deepEqual(cs.switchNextPid, idx);
  assert.deepEqual(cs.switchNextPrio, idx.map((i) => i % 140));
  assert.deepEqual(absolute(cs.wakingTimestamp), idx.map((i) => BigInt(i * 3 + 1)));
  assert.deepEqual(cs.wakingPid, idx);
  assert.deepEqual(cs.wakingTargetCpu, idx.map((i) => i % 8));
  assert.deepEqual(cs.wakingPrio, idx.map((i) => 0 - (i % 100)));
});

Deno.test("an event older than what was flushed is raised to the flushed timestamp", () => {
  const { comms, b } = setup(10_000n);
  const a = comms.internString("a");
  b.addSwitch(100, 0, 1, 120, a);
  b.addSwitch(300, 0, 3, 120, a);
  flushOne(b, 300);
  assert.equal(b.reordered, 0);

  b.addSwitch(250, 0, 2, 120, a); // older than 300, already written
  b.addWaking(120, 9, 0, 120, a);
  softirq(b, 50, 5, 4);
  softirq(b, 400, 6, 5); // newer: untouched
  assert.equal(b.reordered, 3);
  const bundle = flushOne(b);
  assert.deepEqual(bundle.compactSched!.switchTimestamp, [10_300n]);
  assert.deepEqual(bundle.compactSched!.switchNextPid, [2]);
  assert.deepEqual(bundle.compactSched!.wakingTimestamp, [10_300n]);
  assert.deepEqual(bundle.event.map(softirqOf), [
    { ts: 10_300n, pid: 5, vec: 4 },
    { ts: 10_400n, pid: 6, vec: 5 },
  ]);
  assert.equal(b.maxTs, 400);
});

Deno.test("the flushed floor spans streams: a switch flushed at 300 raises a later waking", () => {
  const { comms, b } = setup(0n);
  const a = comms.internString("a");
  b.addSwitch(300, 0, 1, 120, a);
  b.addWaking(500, 2, 0, 120, a);
  flushOne(b, 400);
  b.addWaking(200, 3, 0, 120, a);
  assert.equal(b.reordered, 1);
  const cs = flushOne(b).compactSched!;
  assert.deepEqual(absolute(cs.wakingTimestamp), [300n, 500n]);
  assert.deepEqual(cs.wakingPid, [3, 2]);
});

Deno.test("lost flag marks the next bundle only, even when it has no events", () => {
  const { comms, b } = setup(0n);
  const a = comms.internString("a");
  b.markLost();
  b.addSwitch(10, 0, 1, 120, a);
  assert.equal(flushOne(b).lostEvents, true);
  b.addSwitch(20, 0, 1, 120, a);
  assert.equal(flushOne(b).lostEvents, false);

  // Lost with nothing pending still produces a bundle carrying the flag.
  b.markLost();
  const bundle = flushOne(b);
  assert.equal(bundle.lostEvents, true);
  assert.equal(bundle.cpu, 3);
  assert.equal(bundle.compactSched, undefined);
  assert.equal(bundle.event.length, 0);
  assert.equal(flushDecode(b).wrote, false);

  // Lost while everything pending is held back.
  b.addSwitch(1000, 0, 1, 120, a);
  b.markLost();
  const held = flushOne(b, 500);
  assert.equal(held.lostEvents, true);
  assert.equal(held.compactSched, undefined);
  const rest = flushOne(b);
  assert.equal(rest.lostEvents, false);
  assert.deepEqual(rest.compactSched!.switchTimestamp, [1000n]);
});

Deno.test("negative prio and target cpu encode and decode as negative", () => {
  const { comms, b } = setup(0n);
  const a = comms.internString("a");
  b.addSwitch(1, -1, 5, -1, a);
  b.addWaking(2, 6, -1, -51, a);
  const cs = flushOne(b).compactSched!;
  assert.deepEqual(cs.switchNextPrio, [-1]);
  assert.deepEqual(cs.switchPrevState, [-1n]);
  assert.deepEqual(cs.wakingPrio, [-51]);
  assert.deepEqual(cs.wakingTargetCpu, [-1]);
  assert.deepEqual(cs.switchNextPid, [5]);
});

Deno.test("TimestampBase above 2^53 gives exact absolute timestamps", () => {
  for (const base of [2n ** 60n, 2n ** 60n + 1n, 2n ** 53n - 10n, 2n ** 64n - 1000n]) {
    const { comms, b } = setup(base);
    const a = comms.internString("a");
    b.addSwitch(123, 0, 1, 120, a);
    b.addSwitch(130, 0, 1, 120, a);
    b.addWaking(20, 2, 0, 120, a);
    softirq(b, 7, 1, 1);
    const bundle = flushOne(b);
    const cs = bundle.compactSched!;
    assert.deepEqual(cs.switchTimestamp, [base + 123n, 7n], `base ${base}`);
    assert.deepEqual(cs.wakingTimestamp, [base + 20n], `base ${base}`);
    assert.equal(bundle.event[0].timestamp, base + 7n, `base ${base}`);
  }
  const tb = new TimestampBase(2n ** 60n + 1n);
  assert.equal(tb.abs(5), 2n ** 60n + 6n);
  assert.equal(tb.big, 2n ** 60n + 1n);
});

Deno.test("flush with nothing pending returns false and writes nothing", () => {
  const { b } = setup();
  const w = new ProtoWriter(16);
  w.fieldVarint(1, 1);
  assert.equal(b.flush(w, Infinity, 1), false);
  assert.equal(w.pos, 2);
  assert.deepEqual([...w.take()], [0x08, 0x01]);
});

Deno.test("full events via beginEvent/endEvent keep timestamp, pid and case", () => {
  const { comms, b } = setup(5_000n, 0);
  softirq(b, 40, 77, 3);
  const e = b.beginEvent(45, 78, IRQ_HANDLER_ENTRY);
  e.fieldInt(1, 16);
  e.fieldString(2, "eth0-rx");
  b.endEvent();
  b.addSwitch(42, 0, 9, 120, comms.internString("a"));
  const bundle = flushOne(b);
  assert.equal(bundle.cpu, 0);
  assert.equal(bundle.event.length, 2);
  assert.deepEqual(softirqOf(bundle.event[0]), { ts: 5_040n, pid: 77, vec: 3 });
  const irq = bundle.event[1];
  assert.equal(irq.timestamp, 5_045n);
  assert.equal(irq.pid, 78);
  assert.equal(irq.event.case, "irqHandlerEntry");
  assert.equal(irq.event.value.irq, 16);
  assert.equal(irq.event.value.name, "eth0-rx");
  assert.deepEqual(bundle.compactSched!.switchTimestamp, [5_042n]);
});

Deno.test("several builders flush into one writer as separate packets", () => {
  const comms = new CommInterner();
  const base = new TimestampBase(0n);
  const b0 = new FtraceBundleBuilder(0, comms, base);
  const b1 = new FtraceBundleBuilder(1, comms, base);
  const a = comms.internString("a");
  b0.addSwitch(1, 0, 1, 120, a);
  b1.addSwitch(2, 0, 2, 120, a);
  const w = new ProtoWriter(4);
  assert.equal(b0.flush(w, Infinity, 100), true);
  assert.equal(b1.flush(w, Infinity, 101), true);
  const packets = fromBinary(TraceSchema, w.take()).packet;
  assert.deepEqual(packets.map((p) => bundleOf(p).cpu), [0, 1]);
  assert.deepEqual(packets.map((p) => p.optionalTrustedPacketSequenceId.value), [100, 101]);
  assert.deepEqual(packets.map((p) => bundleOf(p).compactSched!.switchNextPid[0]), [1, 2]);
});
