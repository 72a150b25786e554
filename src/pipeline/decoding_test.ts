import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { FtraceBundleBuilder, TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { type FtraceEvent, type FtraceEventBundle, TraceSchema } from "../gen/perfetto_trace_pb.ts";
import { ProtoWriter } from "../perfetto/proto_writer.ts";
import type { RecordDecoder } from "../records/record_decoder.ts";
import { Layout as L, RECORD_KIND_COUNT, RecordKind } from "../records/records.ts";
import { RECORDERS } from "../recorders/registry.ts";
import { Decoding } from "./decoding.ts";
import { Ring } from "../../test/record_ring.ts";

/** base with a non-zero high word: hi = 1, lo = 5. */
const BASE = 0x1_0000_0000n + 5n;
const encoder = new TextEncoder();

/** Every recorder's decoders, as a worker of a recording with all of them on has them. */
class Harness {
  readonly ring = new Ring();
  readonly scope: Decoding;
  readonly decoder: RecordDecoder;
  readonly builders: FtraceBundleBuilder[];
  constructor(cpus = 2, base = BASE) {
    this.scope = new Decoding(
      RECORDERS,
      { "perf-counters": { tracks: [], scale: [] } },
      base,
      cpus,
      1000,
    );
    this.decoder = this.scope.decoder;
    const tb = new TimestampBase(base);
    this.builders = Array.from(
      { length: cpus },
      (_, c) => new FtraceBundleBuilder(c, this.scope.comms, tb),
    );
  }
  feed(r: { off: number; len: number }, cpu = 0): void {
    this.decoder.decode(this.ring, r.off, r.len, this.builders[cpu]);
  }
  /** Flushes one CPU; null when nothing was written. */
  flush(cpu = 0): FtraceEventBundle | null {
    const w = new ProtoWriter(64);
    if (!this.builders[cpu].flush(w, Infinity, 1)) {
      assert.equal(w.pos, 0);
      return null;
    }
    const packets = fromBinary(TraceSchema, w.take()).packet;
    assert.equal(packets.length, 1);
    assert.equal(packets[0].data.case, "ftraceEvents");
    return packets[0].data.value as FtraceEventBundle;
  }
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    this.decoder.counts.forEach((n, k) => {
      if (n) out[k] = n;
    });
    return out;
  }
}

function onlyEvent(bundle: FtraceEventBundle | null): FtraceEvent {
  assert.ok(bundle);
  assert.equal(bundle.event.length, 1);
  return bundle.event[0];
}

Deno.test("sched_switch: state, next pid/prio/comm, timestamps across the 2^32 boundary", () => {
  const h = new Harness();
  // ts below and above 2^32 · k: lo word smaller and larger than the base's lo word.
  const stamps = [
    0x1_0000_0010n, // rel 11
    0x1_ffff_ffffn, // rel 2^32 - 6
    0x2_0000_0001n, // rel 2^32 - 4 (lo below base lo)
    0x2_0000_0005n, // rel 2^32
    0x5_8000_0000n, // rel 4.5 · 2^32 - 5
  ];
  const states = [0n, 1n, 2n, 0x100n, 0x402n];
  stamps.forEach((ts, i) => {
    h.feed(h.ring.switchRec(ts, {
      prevPid: 10 + i,
      nextPid: 100 + i,
      prevState: states[i],
      prio: i === 2 ? -51 : 120 + i,
      comm: i % 2 ? "odd-task" : "even",
    }));
  });
  const bundle = h.flush();
  assert.ok(bundle);
  assert.equal(bundle.cpu, 0);
  const cs = bundle.compactSched!;
  let t = 0n;
  assert.deepEqual(cs.switchTimestamp.map((d) => t += d), stamps);
  assert.deepEqual(cs.switchPrevState, states);
  assert.deepEqual(cs.switchNextPid, [100, 101, 102, 103, 104]);
  assert.deepEqual(cs.switchNextPrio, [120, 121, -51, 123, 124]);
  assert.deepEqual(cs.switchNextCommIndex.map((i) => cs.internTable[i]), [
    "even",
    "odd-task",
    "even",
    "odd-task",
    "even",
  ]);
  assert.deepEqual(h.counts(), { [RecordKind.SchedSwitch]: 5 });
  assert.equal(h.decoder.malformed, 0);
  assert.equal(h.builders[0].maxTs, Number(0x5_8000_0000n - BASE));
});

Deno.test("sched_waking: pid, target cpu, prio, comm, interrupt context", () => {
  const h = new Harness();
  h.feed(
    h.ring.wakingRec(RecordKind.SchedWaking, BASE + 7n, {
      pid: 4321,
      targetCpu: 1,
      prio: 98,
      comm: "kworker/1:2",
    }),
    1,
  );
  h.feed(
    h.ring.wakingRec(RecordKind.SchedWaking, BASE + 9n, {
      pid: 7,
      targetCpu: 0,
      prio: -1,
      comm: "rcu_sched",
    }),
    1,
  );
  assert.equal(h.flush(0), null);
  const bundle = h.flush(1);
  assert.ok(bundle);
  assert.equal(bundle.cpu, 1);
  const cs = bundle.compactSched!;
  assert.deepEqual(cs.wakingTimestamp, [BASE + 7n, 2n]);
  assert.deepEqual(cs.wakingPid, [4321, 7]);
  assert.deepEqual(cs.wakingTargetCpu, [1, 0]);
  assert.deepEqual(cs.wakingPrio, [98, -1]);
  assert.deepEqual(cs.wakingCommIndex.map((i) => cs.internTable[i]), ["kworker/1:2", "rcu_sched"]);
  // The record's common_flags (0x08: from a hard interrupt), one per waking.
  assert.deepEqual(cs.wakingCommonFlags, [0x08, 0x08]);
  assert.deepEqual(cs.switchTimestamp, []);
  assert.deepEqual(h.counts(), { [RecordKind.SchedWaking]: 2 });
});

Deno.test("sched_wakeup_new: full event with comm, pid, prio, target_cpu; pid of current task", () => {
  const h = new Harness();
  h.feed(
    h.ring.switchRec(BASE + 1n, { prevPid: 0, nextPid: 555, prevState: 0n, prio: 120, comm: "sh" }),
  );
  h.feed(h.ring.wakingRec(RecordKind.SchedWakeupNew, BASE + 2n, {
    pid: 556,
    targetCpu: 1,
    prio: -3,
    comm: "child",
  }));
  const bundle = h.flush();
  assert.ok(bundle);
  const ev = onlyEvent(bundle);
  assert.equal(ev.timestamp, BASE + 2n);
  assert.equal(ev.pid, 555);
  assert.equal(ev.event.case, "schedWakeupNew");
  assert.equal(ev.event.value.comm, "child");
  assert.equal(ev.event.value.pid, 556);
  assert.equal(ev.event.value.prio, -3);
  assert.equal(ev.event.value.success, 1);
  assert.equal(ev.event.value.targetCpu, 1);
  assert.equal(ev.commonFlags, 0x08);
  // Not in the compact wakings.
  assert.deepEqual(bundle.compactSched!.wakingPid, []);
  assert.deepEqual(h.counts(), { [RecordKind.SchedSwitch]: 1, [RecordKind.SchedWakeupNew]: 1 });
});

Deno.test("the current task is tracked per CPU", () => {
  const h = new Harness(2);
  h.feed(
    h.ring.switchRec(BASE + 1n, { prevPid: 0, nextPid: 11, prevState: 0n, prio: 120, comm: "a" }),
    0,
  );
  h.feed(
    h.ring.switchRec(BASE + 1n, { prevPid: 0, nextPid: 22, prevState: 0n, prio: 120, comm: "b" }),
    1,
  );
  const R = L.rec_softirq;
  const soft = (ts: bigint) =>
    h.ring.add(RecordKind.SoftirqEntry, R.size, ts, (o) => h.ring.u32At(o + R.vec, 3));
  h.feed(soft(BASE + 5n), 0);
  h.feed(soft(BASE + 6n), 1);
  assert.equal(onlyEvent(h.flush(0)).pid, 11);
  assert.equal(onlyEvent(h.flush(1)).pid, 22);
});

Deno.test("sched_process_fork: full event and process event", () => {
  const h = new Harness();
  const R = L.rec_sched_process_fork;
  h.feed(h.ring.add(RecordKind.SchedProcessFork, R.size, BASE + 0x1_0000_0000n, (o) => {
    h.ring.u32At(o + R.parent_pid, 100);
    h.ring.u32At(o + R.parent_tgid, 99);
    h.ring.u32At(o + R.child_pid, 200);
    h.ring.u32At(o + R.child_tgid, 200);
    h.ring.str(o + R.parent_comm, "bash");
    h.ring.str(o + R.child_comm, "bash-child");
  }));
  const ev = onlyEvent(h.flush());
  assert.equal(ev.timestamp, BASE + 0x1_0000_0000n);
  assert.equal(ev.pid, 100);
  assert.equal(ev.event.case, "schedProcessFork");
  assert.equal(ev.event.value.parentComm, "bash");
  assert.equal(ev.event.value.parentPid, 100);
  assert.equal(ev.event.value.childComm, "bash-child");
  assert.equal(ev.event.value.childPid, 200);
  assert.deepEqual(h.scope.processEvents, [{
    kind: "fork",
    ts: 2 ** 32,
    parentPid: 100,
    parentTgid: 99,
    childPid: 200,
    childTgid: 200,
    childComm: "bash-child",
  }]);
  assert.deepEqual(h.counts(), { [RecordKind.SchedProcessFork]: 1 });
});

function execRec(
  h: Harness,
  ts: bigint,
  args: Uint8Array,
  argsLen: number,
  filename = "/usr/bin/ls",
) {
  const R = L.rec_sched_process_exec;
  return h.ring.add(RecordKind.SchedProcessExec, R.size, ts, (o) => {
    h.ring.u32At(o + R.pid, 300);
    h.ring.u32At(o + R.tgid, 301);
    h.ring.u32At(o + R.old_pid, 302);
    h.ring.u32At(o + R.args_len, argsLen);
    h.ring.str(o + R.comm, "ls");
    h.ring.str(o + R.filename, filename);
    h.ring.bytes.fill(0, o + R.args, o + R.size);
    h.ring.str(o + R.args, args);
  });
}

Deno.test("sched_process_exec: full event and argv split on NULs, cut last arg kept", () => {
  const h = new Harness();
  // "ls\0-l\0/tmp/some-long-name" cut after "/tmp/so" by args_len.
  const args = encoder.encode("ls\0-l\0/tmp/some-long-name");
  h.feed(execRec(h, BASE + 3n, args, 13));
  const ev = onlyEvent(h.flush());
  assert.equal(ev.timestamp, BASE + 3n);
  assert.equal(ev.pid, 300);
  assert.equal(ev.event.case, "schedProcessExec");
  assert.equal(ev.event.value.filename, "/usr/bin/ls");
  assert.equal(ev.event.value.pid, 300);
  assert.equal(ev.event.value.oldPid, 302);
  assert.deepEqual(h.scope.processEvents, [{
    kind: "exec",
    ts: 3,
    pid: 300,
    tgid: 301,
    oldPid: 302,
    comm: "ls",
    filename: "/usr/bin/ls",
    argv: ["ls", "-l", "/tmp/so"],
  }]);

  // A trailing NUL does not add an empty argument.
  h.feed(execRec(h, BASE + 4n, encoder.encode("a\0bc\0"), 5));
  const second = h.scope.processEvents[1];
  assert.equal(second.kind, "exec");
  assert.deepEqual(second.kind === "exec" && second.argv, ["a", "bc"]);
  assert.deepEqual(h.counts(), { [RecordKind.SchedProcessExec]: 2 });
});

Deno.test("sched_process_exec: args_len beyond the buffer is clamped to it", () => {
  const h = new Harness();
  const R = L.rec_sched_process_exec;
  const args = new Uint8Array(512).fill(0x78); // 512 × "x", no NUL
  args[3] = 0;
  const r = execRec(h, BASE + 3n, args, 5000, "/p".repeat(128)); // filename fills all 256 bytes
  // What follows the record is not argv.
  h.ring.bytes.fill(0x41, r.off + R.size, r.off + R.size + 64);
  h.feed(r);
  const pe = h.scope.processEvents[0];
  assert.equal(pe.kind, "exec");
  if (pe.kind !== "exec") return;
  assert.deepEqual(pe.argv, ["xxx", "x".repeat(508)]);
  assert.equal(pe.filename, "/p".repeat(128));
  assert.equal(
    onlyEvent(h.flush()).event.value?.$typeName,
    "perfetto.protos.SchedProcessExecFtraceEvent",
  );
});

Deno.test("sched_process_exit: full event, the thread's end, and process event", () => {
  const h = new Harness();
  const R = L.rec_sched_process_exit;
  h.feed(h.ring.add(RecordKind.SchedProcessExit, R.size, BASE + 20n, (o) => {
    h.ring.u32At(o + R.pid, 401);
    h.ring.u32At(o + R.tgid, 400);
    h.ring.i32At(o + R.prio, 120);
    h.ring.str(o + R.comm, "worker");
  }));
  const [ev, free, ...rest] = h.flush()!.event;
  assert.deepEqual(rest, []);
  // The importer ends a thread at sched_process_free: written at the exit itself.
  assert.equal(free.timestamp, BASE + 20n);
  assert.equal(free.event.case, "schedProcessFree");
  assert.deepEqual(
    [free.event.value.pid, free.event.value.comm, free.event.value.prio],
    [401, "worker", 120],
  );
  assert.equal(ev.timestamp, BASE + 20n);
  assert.equal(ev.pid, 401);
  assert.equal(ev.event.case, "schedProcessExit");
  assert.equal(ev.event.value.comm, "worker");
  assert.equal(ev.event.value.pid, 401);
  assert.equal(ev.event.value.tgid, 400);
  assert.equal(ev.event.value.prio, 120);
  assert.deepEqual(h.scope.processEvents, [
    { kind: "exit", ts: 20, pid: 401, tgid: 400, comm: "worker" },
  ]);
  assert.deepEqual(h.counts(), { [RecordKind.SchedProcessExit]: 1 });
});

Deno.test("task_rename: full event and process event", () => {
  const h = new Harness();
  const R = L.rec_task_rename;
  h.feed(h.ring.add(RecordKind.TaskRename, R.size, BASE + 21n, (o) => {
    h.ring.u32At(o + R.pid, 501);
    h.ring.u32At(o + R.tgid, 500);
    h.ring.str(o + R.oldcomm, "java");
    h.ring.str(o + R.newcomm, "GC Thread#0123");
  }));
  const ev = onlyEvent(h.flush());
  assert.equal(ev.timestamp, BASE + 21n);
  assert.equal(ev.pid, 501);
  assert.equal(ev.event.case, "taskRename");
  assert.equal(ev.event.value.pid, 501);
  assert.equal(ev.event.value.oldcomm, "java");
  assert.equal(ev.event.value.newcomm, "GC Thread#0123");
  assert.deepEqual(h.scope.processEvents, [
    { kind: "rename", ts: 21, pid: 501, tgid: 500, oldComm: "java", newComm: "GC Thread#0123" },
  ]);
});

Deno.test("irq_handler_entry (name) / exit (ret), softirq entry / exit (vec)", () => {
  const h = new Harness();
  h.feed(
    h.ring.switchRec(BASE + 1n, { prevPid: 0, nextPid: 77, prevState: 0n, prio: 120, comm: "t" }),
  );
  const I = L.rec_irq;
  h.feed(h.ring.add(RecordKind.IrqHandlerEntry, I.size, BASE + 10n, (o) => {
    h.ring.i32At(o + I.irq, 24);
    h.ring.i32At(o + I.ret, 0);
    h.ring.str(o + I.name, "nvme0q3");
  }));
  h.feed(h.ring.add(RecordKind.IrqHandlerExit, I.size, BASE + 11n, (o) => {
    h.ring.i32At(o + I.irq, 24);
    h.ring.i32At(o + I.ret, 1);
  }));
  const S = L.rec_softirq;
  h.feed(
    h.ring.add(RecordKind.SoftirqEntry, S.size, BASE + 12n, (o) => h.ring.u32At(o + S.vec, 3)),
  );
  h.feed(h.ring.add(RecordKind.SoftirqExit, S.size, BASE + 13n, (o) => h.ring.u32At(o + S.vec, 3)));
  const bundle = h.flush();
  assert.ok(bundle);
  const evs = bundle.event;
  assert.equal(evs.length, 4);
  assert.deepEqual(evs.map((e) => e.timestamp), [BASE + 10n, BASE + 11n, BASE + 12n, BASE + 13n]);
  assert.deepEqual(evs.map((e) => e.pid), [77, 77, 77, 77]);
  assert.deepEqual(evs.map((e) => e.event.case), [
    "irqHandlerEntry",
    "irqHandlerExit",
    "softirqEntry",
    "softirqExit",
  ]);
  const [entry, exit, sEntry, sExit] = evs.map((e) => e.event.value);
  assert.ok(entry?.$typeName === "perfetto.protos.IrqHandlerEntryFtraceEvent");
  assert.equal(entry.irq, 24);
  assert.equal(entry.name, "nvme0q3");
  assert.ok(exit?.$typeName === "perfetto.protos.IrqHandlerExitFtraceEvent");
  assert.equal(exit.irq, 24);
  assert.equal(exit.ret, 1);
  assert.ok(sEntry?.$typeName === "perfetto.protos.SoftirqEntryFtraceEvent");
  assert.equal(sEntry.vec, 3);
  assert.ok(sExit?.$typeName === "perfetto.protos.SoftirqExitFtraceEvent");
  assert.equal(sExit.vec, 3);
  assert.deepEqual(h.counts(), {
    [RecordKind.SchedSwitch]: 1,
    [RecordKind.IrqHandlerEntry]: 1,
    [RecordKind.IrqHandlerExit]: 1,
    [RecordKind.SoftirqEntry]: 1,
    [RecordKind.SoftirqExit]: 1,
  });
});

Deno.test("lost in the header: lostByCpu and lostEvents on that CPU's next bundle", () => {
  const h = new Harness(2);
  const sw = { prevPid: 0, nextPid: 1, prevState: 0n, prio: 120, comm: "a" };
  h.feed(h.ring.switchRec(BASE + 1n, sw, { lost: 3 }), 1);
  h.feed(h.ring.switchRec(BASE + 2n, sw, { lost: 4 }), 1);
  h.feed(h.ring.switchRec(BASE + 3n, sw), 0);
  assert.deepEqual([...h.decoder.lostByCpu], [0, 7]);
  assert.equal(h.flush(0)!.lostEvents, false);
  const b1 = h.flush(1);
  assert.ok(b1);
  assert.equal(b1.lostEvents, true);
  assert.deepEqual(b1.compactSched!.switchNextPid, [1, 1]);
  h.feed(h.ring.switchRec(BASE + 4n, sw), 1);
  assert.equal(h.flush(1)!.lostEvents, false);
  assert.deepEqual(h.counts(), { [RecordKind.SchedSwitch]: 4 });
});

Deno.test("bad size or unknown kind: malformed, nothing emitted, not counted", () => {
  const h = new Harness();
  const S = L.rec_sched_switch;
  const sw = (o: number) => {
    h.ring.u32At(o + S.next_pid, 9);
    h.ring.str(o + S.next_comm, "x");
  };
  // Size smaller than the layout.
  h.feed(h.ring.add(RecordKind.SchedSwitch, S.size - 8, BASE + 1n, sw));
  // Size larger than what was reserved.
  h.feed(h.ring.add(RecordKind.SchedSwitch, S.size, BASE + 1n, sw, { len: 48 }));
  // Waking with the switch's size.
  h.feed(h.ring.add(RecordKind.SchedWaking, S.size, BASE + 1n, sw));
  // Rare kinds with the wrong size.
  h.feed(h.ring.add(RecordKind.IrqHandlerEntry, L.rec_softirq.size, BASE + 1n));
  h.feed(h.ring.add(RecordKind.SoftirqEntry, L.rec_irq.size, BASE + 1n));
  h.feed(h.ring.add(RecordKind.SchedProcessExec, 800, BASE + 1n));
  h.feed(h.ring.add(RecordKind.SchedWakeupNew, L.rec_sched_process_exit.size + 8, BASE + 1n));
  // Unknown kinds.
  h.feed(h.ring.add(0, 24, BASE + 1n));
  h.feed(h.ring.add(RECORD_KIND_COUNT, 24, BASE + 1n));
  h.feed(h.ring.add(0xffff, 24, BASE + 1n));
  assert.equal(h.decoder.malformed, 10);
  assert.deepEqual(h.counts(), {});
  assert.equal(h.builders[0].pending, 0);
  assert.equal(h.flush(), null);
  assert.deepEqual(h.scope.processEvents, []);
  assert.deepEqual([...h.decoder.lostByCpu], [0, 0]);
  // A good record after the bad ones still decodes.
  h.feed(
    h.ring.switchRec(BASE + 2n, { prevPid: 0, nextPid: 9, prevState: 0n, prio: 1, comm: "x" }),
  );
  assert.deepEqual(h.flush()!.compactSched!.switchNextPid, [9]);
  assert.equal(h.decoder.malformed, 10);
});

Deno.test("counts per kind over a mixed stream", () => {
  const h = new Harness();
  const sw = { prevPid: 0, nextPid: 1, prevState: 0n, prio: 120, comm: "a" };
  const wk = { pid: 2, targetCpu: 0, prio: 120, comm: "b" };
  for (let i = 0; i < 5; i++) h.feed(h.ring.switchRec(BASE + BigInt(i), sw));
  for (let i = 0; i < 3; i++) {
    h.feed(h.ring.wakingRec(RecordKind.SchedWaking, BASE + BigInt(i), wk));
  }
  h.feed(h.ring.wakingRec(RecordKind.SchedWakeupNew, BASE + 9n, wk));
  const S = L.rec_softirq;
  for (let i = 0; i < 2; i++) h.feed(h.ring.add(RecordKind.SoftirqExit, S.size, BASE + 10n));
  assert.equal(h.decoder.counts.length, RECORD_KIND_COUNT);
  const expected = new Array(RECORD_KIND_COUNT).fill(0);
  expected[RecordKind.SchedSwitch] = 5;
  expected[RecordKind.SchedWaking] = 3;
  expected[RecordKind.SchedWakeupNew] = 1;
  expected[RecordKind.SoftirqExit] = 2;
  assert.deepEqual([...h.decoder.counts], expected);
  const bundle = h.flush();
  assert.ok(bundle);
  assert.equal(bundle.compactSched!.switchNextPid.length, 5);
  assert.equal(bundle.compactSched!.wakingPid.length, 3);
  assert.equal(bundle.event.length, 3);
});

/** A REC_BATCH holding copies of RECORDS (each as the ring holds it), as bpf/common.bpf.h writes one. */
function batchOf(h: Harness, records: { off: number; len: number }[], lost = 0) {
  const sizes = records.map((r) => h.ring.dv.getUint16(r.off + L.rec_hdr.size_, true));
  const total = 16 + sizes.reduce((n, s) => n + ((s + 7) & ~7), 0);
  const buf = new ArrayBuffer(total + 8);
  const mem = { bytes: new Uint8Array(buf), u32: new Uint32Array(buf), i32: new Int32Array(buf) };
  const dv = new DataView(buf);
  dv.setUint16(L.rec_hdr.kind, RecordKind.Batch, true);
  dv.setUint16(L.rec_hdr.size_, total, true);
  dv.setUint32(L.rec_hdr.lost, lost, true);
  let at = 16;
  records.forEach((r, i) => {
    mem.bytes.set(h.ring.bytes.subarray(r.off, r.off + sizes[i]), at);
    at += (sizes[i] + 7) & ~7;
  });
  return { mem, len: total, dv };
}

Deno.test("a batch: its records decode in order, as if written one by one; its lost counts", () => {
  const h = new Harness();
  const sw = { prevPid: 0, nextPid: 5, prevState: 1n, prio: 120, comm: "five" };
  const wk = { pid: 6, targetCpu: 1, prio: 110, comm: "six" };
  const b = batchOf(h, [
    h.ring.switchRec(BASE + 10n, sw),
    h.ring.wakingRec(RecordKind.SchedWaking, BASE + 11n, wk),
    h.ring.switchRec(BASE + 12n, { ...sw, nextPid: 6, comm: "six" }),
    h.ring.wakingRec(RecordKind.SchedWakeupNew, BASE + 13n, wk),
  ], 2);
  h.decoder.decode(b.mem, 0, b.len, h.builders[0]);
  assert.equal(h.decoder.malformed, 0);
  assert.deepEqual(h.counts(), {
    [RecordKind.SchedSwitch]: 2,
    [RecordKind.SchedWaking]: 1,
    [RecordKind.SchedWakeupNew]: 1,
  });
  assert.deepEqual([...h.decoder.lostByCpu], [2, 0]);
  const bundle = h.flush()!;
  assert.equal(bundle.lostEvents, true);
  assert.deepEqual(bundle.compactSched!.switchNextPid, [5, 6]);
  assert.deepEqual(bundle.compactSched!.wakingPid, [6]);
  // The wakeup_new came after the switch to 6: the current task it names is 6.
  assert.equal(onlyEvent(bundle).pid, 6);
});

Deno.test("a batch: an inner record running past its end, or a batch inside, is malformed", () => {
  const h = new Harness();
  const sw = { prevPid: 0, nextPid: 5, prevState: 1n, prio: 120, comm: "five" };
  const b = batchOf(h, [h.ring.switchRec(BASE + 1n, sw), h.ring.switchRec(BASE + 2n, sw)]);
  // The second record claims more than the batch holds: the first still decodes.
  b.dv.setUint16(16 + 56 + L.rec_hdr.size_, 200, true);
  h.decoder.decode(b.mem, 0, b.len, h.builders[0]);
  assert.equal(h.decoder.malformed, 1);
  assert.deepEqual(h.counts(), { [RecordKind.SchedSwitch]: 1 });
  const nested = batchOf(h, [h.ring.switchRec(BASE + 3n, sw)]);
  nested.dv.setUint16(16 + L.rec_hdr.kind, RecordKind.Batch, true);
  h.decoder.decode(nested.mem, 0, nested.len, h.builders[0]);
  assert.equal(h.decoder.malformed, 2);
  assert.deepEqual(h.counts(), { [RecordKind.SchedSwitch]: 1 });
});

Deno.test("a base with a large high word (above 2^53) still gives exact timestamps", () => {
  const base = 2n ** 60n + 0xffff_fff0n;
  const h = new Harness(1, base);
  const stamps = [base + 5n, base + 0x20n, base + 0x3_0000_0000n];
  for (const ts of stamps) {
    h.feed(h.ring.switchRec(ts, { prevPid: 0, nextPid: 1, prevState: 0n, prio: 120, comm: "a" }));
  }
  const cs = h.flush()!.compactSched!;
  let t = 0n;
  assert.deepEqual(cs.switchTimestamp.map((d) => t += d), stamps);
});

Deno.test("every record kind has a decoder: the process table's or its recorder's", () => {
  for (const r of RECORDERS) {
    const own = r.decoders?.(
      new Decoding([], {}, BASE, 1, 1000),
      r.name === "perf-counters" ? { tracks: [], scale: [] } : undefined,
    ) ?? {};
    assert.deepEqual(
      Object.keys(own).map(Number).filter((k) => (r.kinds as number[]).includes(k)).sort(),
      [...r.kinds].sort(),
      `${r.name} decodes the kinds it emits`,
    );
  }
  const recorderKinds = new Set<number>(RECORDERS.flatMap((r) => r.kinds));
  const processKinds = [
    RecordKind.SchedProcessFork,
    RecordKind.SchedProcessExec,
    RecordKind.SchedProcessExit,
    RecordKind.TaskRename,
  ];
  for (const kind of Object.values(RecordKind)) {
    if (kind === RecordKind.Batch) continue; // opened by RecordDecoder itself
    assert.ok(
      recorderKinds.has(kind) || processKinds.includes(kind as typeof processKinds[number]),
      `kind ${kind} belongs to no recorder`,
    );
  }
});
