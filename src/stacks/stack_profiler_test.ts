// Unit tests of StackProfiler: crafted REC_STACK / REC_SLEEP_END records (the
// layout of bpf/systing.h) through a real Symbolizer over a made-up kallsyms
// and made-up mappings, decoded with the tests' strict trace reader.
import assert from "node:assert/strict";
import { decodeTrace, type StackSampleView } from "../../test/trace_reader.ts";
import { AddressSpaces, type Mapping } from "./address_spaces.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { Kallsyms } from "../symbolize/kallsyms.ts";
import { Layout, RecordKind, StackFlag, StackSource } from "../records/records.ts";
import { StackProfiler } from "./stack_profiler.ts";
import { Symbolizer } from "../symbolize/symbolizer.ts";

// Its low half is above every ts's low half below: the base subtraction must borrow.
const BASE = 0x1_ffff_ff00n;
const CPU_WEIGHT = 1_000_000;
const SEQ = { cpu: 100, d: 101, s: 102 };

const KALLSYMS = `\
ffffffff81000000 T _stext
ffffffff81100000 T entry_SYSCALL_64
ffffffff81100100 T do_syscall_64
ffffffff81100200 T __x64_sys_clock_nanosleep
ffffffff81100300 T hrtimer_nanosleep
ffffffff81100400 T do_nanosleep
ffffffff81100500 T schedule
ffffffff81100600 T __schedule
ffffffff81100700 T __traceiter_sched_switch
ffffffff81100800 T __bpf_trace_sched_switch
ffffffff81100900 T bpf_trace_run4
ffffffff81100a00 T asm_sysvec_apic_timer_interrupt
ffffffff81100b00 T _etext
ffffffffc0001000 t bpf_prog_6deef7357e7b4530_on_sched_switch\t[bpf]
`;
const K = {
  entry: 0xffffffff81100000n,
  syscall: 0xffffffff81100100n,
  sysNanosleep: 0xffffffff81100200n,
  hrtimer: 0xffffffff81100300n,
  doNanosleep: 0xffffffff81100400n,
  schedule: 0xffffffff81100500n,
  __schedule: 0xffffffff81100600n,
  traceiter: 0xffffffff81100700n,
  bpfTrace: 0xffffffff81100800n,
  bpfRun: 0xffffffff81100900n,
  apicTimer: 0xffffffff81100a00n,
  bpfProg: 0xffffffffc0001000n,
};

/** The kernel path of a nanosleep, leaf first, as sched_switch's BPF program sees it. */
const SLEEP_KERNEL = [
  K.bpfProg + 0x40n,
  K.bpfRun + 0x10n,
  K.bpfTrace + 0x10n,
  K.traceiter + 0x10n,
  K.__schedule + 0x10n,
  K.schedule + 0x10n,
  K.doNanosleep + 0x10n,
  K.hrtimer + 0x10n,
  K.sysNanosleep + 0x10n,
  K.syscall + 0x10n,
  K.entry + 0x10n,
];
const SLEEP_KERNEL_NAMES = [
  "entry_SYSCALL_64",
  "do_syscall_64",
  "__x64_sys_clock_nanosleep",
  "hrtimer_nanosleep",
  "do_nanosleep",
  "schedule",
  "__schedule",
];

const APP = 0x555500000000;
const OTHER = 0x7f0000000000;
const STACK = 0x7ffd00000000;
const TGID = 40;
const TID = 41;

/** User addresses in /opt/app, leaf first: leaf, middle, main. */
const U = { leaf: APP + 0x120, middle: APP + 0x180, main: APP + 0x1f0 };

function mapping(path: string, start: number, len: number, executable = true): Mapping {
  // Inode 0: no file is opened, frames are labelled "<basename>+0x<file offset>".
  return {
    start,
    end: start + len,
    pgoff: 0x1000,
    path,
    dev: "00:00",
    inode: 0,
    executable,
    since: 0,
  };
}

/** "app+0x…": the label of a user address in /opt/app. */
function appLabel(ip: number): string {
  return `app+0x${(ip - APP + 0x1000).toString(16)}`;
}

interface StackRecord {
  ts: number;
  pid?: number;
  tgid?: number;
  cpu?: number;
  source: number;
  flags?: number;
  kernel?: bigint[];
  user?: number[];
}

function stackRecord(r: StackRecord): Uint8Array {
  const L = Layout.rec_stack;
  const kernel = r.kernel ?? [];
  const user = r.user ?? [];
  const size = L.size + 8 * (kernel.length + user.length);
  const dv = new DataView(new ArrayBuffer(size));
  dv.setUint16(Layout.rec_hdr.kind, RecordKind.Stack, true);
  dv.setUint16(Layout.rec_hdr.size_, size, true);
  dv.setBigUint64(Layout.rec_hdr.ts, BASE + BigInt(r.ts), true);
  dv.setUint32(L.pid, r.pid ?? TID, true);
  dv.setUint32(L.tgid, r.tgid ?? TGID, true);
  dv.setUint32(L.cpu, r.cpu ?? 1, true);
  dv.setUint8(L.source, r.source);
  dv.setUint8(L.flags, r.flags ?? 0);
  dv.setUint16(L.kernel_frames, kernel.length, true);
  dv.setUint16(L.user_frames, user.length, true);
  kernel.forEach((ip, i) => dv.setBigUint64(L.size + 8 * i, ip, true));
  user.forEach((ip, i) => dv.setBigUint64(L.size + 8 * (kernel.length + i), BigInt(ip), true));
  return new Uint8Array(dv.buffer);
}

/**
 * A sleep end at TS (the switch back in); WOKE: its wake-up (by default at TS, as on an idle
 * CPU), null for none.
 */
function sleepEnd(ts: number, pid: number, outTs: number, woke: number | null = ts): Uint8Array {
  const L = Layout.rec_sleep_end;
  const dv = new DataView(new ArrayBuffer(L.size));
  dv.setUint16(Layout.rec_hdr.kind, RecordKind.SleepEnd, true);
  dv.setUint16(Layout.rec_hdr.size_, L.size, true);
  dv.setBigUint64(Layout.rec_hdr.ts, BASE + BigInt(ts), true);
  dv.setUint32(L.pid, pid, true);
  dv.setBigUint64(L.out_ts, BASE + BigInt(outTs), true);
  if (woke !== null) dv.setBigUint64(L.woke_ts, BASE + BigInt(woke), true);
  return new Uint8Array(dv.buffer);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

class Harness {
  spaces = new AddressSpaces();
  symbolizer: Symbolizer;
  profiler: StackProfiler;
  #out: Uint8Array[] = [];

  constructor() {
    this.spaces.seed(TGID, [
      mapping("/opt/app", APP, 0x2000),
      mapping("/usr/lib/libother.so", OTHER, 0x10000),
      mapping("[stack]", STACK, 0x21000, false),
    ]);
    this.symbolizer = new Symbolizer(Kallsyms.parse(KALLSYMS), this.spaces);
    this.profiler = new StackProfiler({
      base: new TimestampBase(BASE),
      symbolizer: this.symbolizer,
      spaces: this.spaces,
      sequenceIds: [SEQ.cpu, SEQ.d, SEQ.s],
      cpuSampleWeight: CPU_WEIGHT,
      cpuCounterName: "cpu-clock",
    });
  }

  /** Feeds one batch; returns how many bytes of packets it produced. */
  consume(...records: Uint8Array[]): number {
    const out = this.profiler.consume(concat(records));
    if (out) this.#out.push(out);
    return out?.length ?? 0;
  }

  finish(endTs: number): number {
    const out = this.profiler.finish(endTs);
    if (out) this.#out.push(out);
    return out?.length ?? 0;
  }

  /** Everything written so far, decoded (strictly: ids defined before use). */
  samples(): StackSampleView[] {
    return decodeTrace(concat(this.#out)).stackSamples;
  }
}

function names(s: StackSampleView): string[] {
  return s.frames.map((f) => f.name);
}

Deno.test("stack profiler: a user-mode CPU sample, root first, with its task and weight", () => {
  const h = new Harness();
  h.consume(stackRecord({
    ts: 0x300,
    cpu: 3,
    source: StackSource.Cpu,
    flags: StackFlag.UserMode,
    user: [U.leaf, U.middle, U.main],
  }));
  const [s, ...rest] = h.samples();
  assert.equal(rest.length, 0);
  assert.deepEqual(
    {
      seq: s.sequenceId,
      source: s.source,
      ts: s.ts,
      pid: s.pid,
      tid: s.tid,
      cpu: s.cpu,
      mode: s.mode,
      weight: s.weight,
    },
    {
      seq: SEQ.cpu,
      source: "on_cpu",
      ts: BASE + 0x300n,
      pid: TGID,
      tid: TID,
      cpu: 3,
      mode: 1,
      weight: BigInt(CPU_WEIGHT),
    },
  );
  assert.deepEqual(names(s), [appLabel(U.main), appLabel(U.middle), appLabel(U.leaf)]);
  assert.deepEqual(s.frames.map((f) => f.mappingPath), ["/opt/app", "/opt/app", "/opt/app"]);
  assert.equal(h.profiler.stats.cpuSamples, 1);
  assert.equal(h.profiler.stats.truncated, 0);
});

Deno.test("stack profiler: a kernel-mode CPU sample: user frames first, then kernel ones", () => {
  const h = new Harness();
  h.consume(stackRecord({
    ts: 500,
    source: StackSource.Cpu,
    kernel: [K.doNanosleep + 0x10n, K.syscall + 0x22n, K.entry + 0x30n],
    user: [OTHER + 0x500, U.middle, U.main],
  }));
  const [s] = h.samples();
  assert.equal(s.mode, 2);
  assert.deepEqual(names(s), [
    appLabel(U.main),
    appLabel(U.middle),
    "libother.so+0x1500",
    "entry_SYSCALL_64",
    "do_syscall_64",
    "do_nanosleep",
  ]);
  assert.deepEqual(s.frames.slice(3).map((f) => f.mappingPath), [
    "[kernel.kallsyms]",
    "[kernel.kallsyms]",
    "[kernel.kallsyms]",
  ]);
  assert.equal(s.frames[5].relPc, K.doNanosleep + 0x10n);
});

Deno.test("stack profiler: a return address at a function's first byte names the caller", () => {
  // schedule's first byte as a return address: the call was the last instruction of
  // do_nanosleep (the function before it), so the frame is do_nanosleep. As a leaf (an
  // interrupted instruction) the same address is schedule itself, whichever comes first.
  const leaf = stackRecord({ ts: 1, source: StackSource.Cpu, kernel: [K.schedule, K.entry + 8n] });
  const ret = stackRecord({
    ts: 2,
    source: StackSource.Cpu,
    kernel: [K.__schedule + 4n, K.schedule, K.entry + 8n],
  });
  for (const order of [[leaf, ret], [ret, leaf]]) {
    const h = new Harness();
    h.consume(...order);
    const got = h.samples().map(names).sort((a, b) => a.length - b.length);
    assert.deepEqual(got, [
      ["entry_SYSCALL_64", "schedule"],
      ["entry_SYSCALL_64", "do_nanosleep", "__schedule"],
    ], `leaf sample ${order[0] === leaf ? "first" : "second"}`);
  }
});

Deno.test("stack profiler: CPU samples keep BPF frames (time spent in BPF is CPU time)", () => {
  const h = new Harness();
  h.consume(stackRecord({
    ts: 1,
    source: StackSource.Cpu,
    kernel: [K.bpfProg + 0x10n, K.bpfRun + 0x10n, K.apicTimer + 0x10n],
  }));
  const [s] = h.samples();
  assert.deepEqual(names(s), [
    "asm_sysvec_apic_timer_interrupt",
    "bpf_trace_run4",
    "bpf_prog_6deef7357e7b4530_on_sched_switch",
  ]);
  assert.equal(s.frames[2].mappingPath, "[bpf]");
});

Deno.test("stack profiler: sleep stacks lose the tracing frames above the code that slept", () => {
  const h = new Harness();
  h.consume(
    stackRecord({ ts: 1000, source: StackSource.SleepS, kernel: SLEEP_KERNEL, user: [U.middle] }),
    sleepEnd(2000, TID, 1000),
  );
  const [s] = h.samples();
  assert.equal(s.source, "sleep.interruptible");
  assert.deepEqual(names(s), [appLabel(U.middle), ...SLEEP_KERNEL_NAMES]);
  for (const f of s.frames) {
    assert.doesNotMatch(f.name, /bpf_|__traceiter_/);
    assert.notEqual(f.mappingPath, "[bpf]");
  }
});

Deno.test("stack profiler: a sleep weighs sleep end − stack time and is written at its end", () => {
  const h = new Harness();
  const stack = stackRecord({
    ts: 0x1000,
    cpu: 0,
    source: StackSource.SleepS,
    kernel: SLEEP_KERNEL,
    user: [U.middle, U.main],
  });
  assert.equal(h.consume(stack), 0, "nothing is written before the sleep ends");
  assert.equal(h.profiler.stats.sleepSamples, 0);
  assert.ok(h.consume(sleepEnd(0x1000 + 250_000, TID, 0x1000)) > 0);
  const [s, ...rest] = h.samples();
  assert.equal(rest.length, 0);
  assert.deepEqual(
    {
      seq: s.sequenceId,
      ts: s.ts,
      pid: s.pid,
      tid: s.tid,
      cpu: s.cpu,
      mode: s.mode,
      weight: s.weight,
    },
    { seq: SEQ.s, ts: BASE + 0x1000n, pid: TGID, tid: TID, cpu: 0, mode: 2, weight: 250_000n },
  );
  assert.equal(h.profiler.stats.sleepSamples, 1);
  // The end was consumed: the end of the trace writes nothing more.
  assert.equal(h.finish(1e9), 0);
});

Deno.test("stack profiler: a woken sleep weighs up to its wake-up, not its switch back in", () => {
  const h = new Harness();
  h.consume(stackRecord({ ts: 0x1000, cpu: 0, source: StackSource.SleepD, kernel: SLEEP_KERNEL }));
  // Woken 40 µs after it slept, ran again 190 µs after: blocked 40 µs, runnable 150.
  assert.ok(h.consume(sleepEnd(0x1000 + 190_000, TID, 0x1000, 0x1000 + 40_000)) > 0);
  assert.deepEqual(h.samples().map((s) => s.weight), [40_000n]);
  assert.equal(h.profiler.stats.unwoken, 0);
  // Without a wake-up (a sleep a pending signal cut short): it never blocked.
  h.consume(
    stackRecord({ ts: 0x100000, cpu: 0, source: StackSource.SleepD, kernel: SLEEP_KERNEL }),
  );
  h.consume(sleepEnd(0x100000 + 7_000, TID, 0x100000, null));
  assert.deepEqual(h.samples().map((s) => s.weight), [40_000n, 0n]);
  assert.equal(h.profiler.stats.unwoken, 1);
});

Deno.test("stack profiler: uninterruptible and interruptible sleeps go to their own streams", () => {
  const h = new Harness();
  h.consume(
    stackRecord({ ts: 100, pid: 41, source: StackSource.SleepD, kernel: SLEEP_KERNEL }),
    stackRecord({ ts: 150, pid: 42, source: StackSource.SleepS, kernel: SLEEP_KERNEL }),
    sleepEnd(400, 42, 150),
    sleepEnd(900, 41, 100),
  );
  const got = h.samples().map((s) => [s.sequenceId, s.source, s.tid, s.weight]);
  assert.deepEqual(got, [
    [SEQ.s, "sleep.interruptible", 42, 250n],
    [SEQ.d, "sleep.uninterruptible", 41, 800n],
  ]);
});

Deno.test("stack profiler: a sleep without an end is written by finish() with weight up to the end", () => {
  const h = new Harness();
  h.consume(
    stackRecord({ ts: 5_000, pid: 41, source: StackSource.SleepD, kernel: SLEEP_KERNEL }),
    stackRecord({ ts: 7_000, pid: 43, source: StackSource.SleepS, kernel: SLEEP_KERNEL }),
    sleepEnd(8_000, 99, 1), // the end of a sleep whose stack this profiler never saw
  );
  assert.equal(h.samples().length, 0);
  h.finish(1_000_000);
  const got = h.samples().map((s) => [s.tid, s.ts - BASE, s.weight]);
  got.sort((a, b) => Number(a[0]) - Number(b[0]));
  assert.deepEqual(got, [[41, 5_000n, 995_000n], [43, 7_000n, 993_000n]]);
  assert.equal(h.profiler.stats.sleepSamples, 2);
  assert.equal(h.finish(2_000_000), 0, "finish writes each pending sleep once");
});

Deno.test("stack profiler: a sleep whose end was lost ends no later than the next sleep", () => {
  const h = new Harness();
  // The first sleep's end record was lost.
  h.consume(
    stackRecord({ ts: 1_000, source: StackSource.SleepS, kernel: SLEEP_KERNEL, user: [U.leaf] }),
  );
  h.consume(
    stackRecord({ ts: 4_000, source: StackSource.SleepD, kernel: SLEEP_KERNEL, user: [U.main] }),
  );
  h.consume(sleepEnd(9_000, TID, 4_000));
  h.finish(1_000_000);
  const got = h.samples().map((s) => [s.source, s.ts - BASE, s.weight, s.frames[0].name])
    .sort((a, b) => Number(a[1]) - Number(b[1]));
  assert.deepEqual(got, [
    ["sleep.interruptible", 1_000n, 3_000n, appLabel(U.leaf)],
    ["sleep.uninterruptible", 4_000n, 5_000n, appLabel(U.main)],
  ]);
});

Deno.test("stack profiler: a user ip outside executable mappings cuts the stack", () => {
  const h = new Harness();
  h.consume(
    // A return address in the (non-executable) stack: the walk went astray there.
    stackRecord({
      ts: 1,
      source: StackSource.Cpu,
      flags: StackFlag.UserMode,
      user: [U.leaf, U.middle, STACK + 0x800, U.main],
    }),
    // An address in no mapping at all.
    stackRecord({
      ts: 2,
      source: StackSource.Cpu,
      kernel: [K.entry + 1n],
      user: [U.leaf, 0xdead, U.main],
    }),
  );
  const [a, b] = h.samples();
  assert.deepEqual(names(a), ["[truncated stack]", appLabel(U.middle), appLabel(U.leaf)]);
  assert.deepEqual(names(b), ["[truncated stack]", appLabel(U.leaf), "entry_SYSCALL_64"]);
  assert.equal(h.profiler.stats.truncated, 2);
});

Deno.test("stack profiler: a user-only stack whose first ip is unmapped is only a truncation", () => {
  const h = new Harness();
  h.consume(stackRecord({
    ts: 1,
    source: StackSource.Cpu,
    flags: StackFlag.UserMode,
    user: [0x1234, U.main],
  }));
  assert.deepEqual(names(h.samples()[0]), ["[truncated stack]"]);
});

Deno.test("stack profiler: a record without frames still has a one-frame callstack", () => {
  const h = new Harness();
  h.consume(stackRecord({ ts: 1, source: StackSource.Cpu }));
  assert.deepEqual(names(h.samples()[0]), ["[no stack]"]);
});

Deno.test("stack profiler: identical raw stacks resolve once", () => {
  const h = new Harness();
  const user = [U.leaf, U.middle, U.main];
  const kernel = [K.doNanosleep + 0x10n, K.entry + 0x10n];
  h.consume(
    stackRecord({ ts: 1, source: StackSource.Cpu, flags: StackFlag.UserMode, user }),
    stackRecord({ ts: 2, source: StackSource.Cpu, flags: StackFlag.UserMode, user }),
    stackRecord({ ts: 3, source: StackSource.Cpu, kernel, user }),
  );
  const frames = h.symbolizer.named + h.symbolizer.labelled;
  assert.equal(frames, 3 + 5);
  h.consume(
    stackRecord({ ts: 4, source: StackSource.Cpu, flags: StackFlag.UserMode, user }),
    stackRecord({ ts: 5, source: StackSource.Cpu, kernel, user }),
    // The same words as a sleep: resolved once more, since sleep stacks are trimmed.
    stackRecord({ ts: 6, source: StackSource.SleepS, kernel: SLEEP_KERNEL }),
    stackRecord({ ts: 7, pid: 50, source: StackSource.SleepS, kernel: SLEEP_KERNEL }),
  );
  h.finish(100);
  assert.equal(h.profiler.stats.distinctStacks, 3);
  assert.equal(h.symbolizer.named + h.symbolizer.labelled, frames + SLEEP_KERNEL.length);
  const got = h.samples();
  assert.equal(got.length, 7);
  assert.equal(got[0].callstackIid, got[1].callstackIid);
  assert.equal(got[0].callstackIid, got[3].callstackIid);
  assert.equal(got[2].callstackIid, got[4].callstackIid);
  assert.notEqual(got[0].callstackIid, got[2].callstackIid);
  assert.deepEqual(names(got[4]), [...names(got[0]), "entry_SYSCALL_64", "do_nanosleep"]);
});

Deno.test("stack profiler: a kernel-only stack is shared by every process", () => {
  const h = new Harness();
  const kernel = [K.doNanosleep + 0x10n, K.entry + 0x10n];
  h.consume(
    stackRecord({ ts: 1, pid: 7, tgid: 7, source: StackSource.Cpu, kernel }),
    stackRecord({ ts: 2, pid: 8, tgid: 8, source: StackSource.Cpu, kernel }),
  );
  assert.equal(h.profiler.stats.distinctStacks, 1);
  const [a, b] = h.samples();
  assert.deepEqual([a.pid, b.pid], [7, 8]);
  assert.equal(a.callstackIid, b.callstackIid);
});

Deno.test("stack profiler: the same user addresses in another process or image resolve apart", () => {
  const h = new Harness();
  h.spaces.seed(60, [mapping("/opt/tool", APP, 0x2000)]);
  const user = [U.leaf, U.main];
  h.consume(
    stackRecord({ ts: 10, source: StackSource.Cpu, flags: StackFlag.UserMode, user }),
    stackRecord({ ts: 11, pid: 60, tgid: 60, source: StackSource.Cpu, flags: 1, user }),
  );
  // Process 40 execs another program mapped at the same addresses.
  h.spaces.exec(TGID, 100);
  h.spaces.map(TGID, { ...mapping("/opt/next", APP, 0x2000), since: 101 });
  h.consume(stackRecord({ ts: 200, source: StackSource.Cpu, flags: 1, user }));
  h.consume(stackRecord({ ts: 201, source: StackSource.Cpu, flags: 1, user }));
  const got = h.samples().map((s) => [s.pid, s.frames.map((f) => f.mappingPath)[0]]);
  assert.deepEqual(got, [
    [TGID, "/opt/app"],
    [60, "/opt/tool"],
    [TGID, "/opt/next"],
    [TGID, "/opt/next"],
  ]);
  assert.equal(h.profiler.stats.distinctStacks, 3);
  assert.equal(h.samples()[3].frames[1].name, `next+0x${(U.leaf - APP + 0x1000).toString(16)}`);
});

Deno.test("stack profiler: garbage past a cut does not make stacks distinct", () => {
  const h = new Harness();
  for (const [ts, garbage] of [[1, 0x1111], [2, 0x2222], [3, STACK + 8]]) {
    h.consume(stackRecord({
      ts,
      source: StackSource.Cpu,
      flags: StackFlag.UserMode,
      user: [U.leaf, U.middle, STACK + 0x100, garbage],
    }));
  }
  assert.equal(h.profiler.stats.distinctStacks, 1);
  assert.equal(h.profiler.stats.truncated, 3);
  const got = h.samples();
  assert.equal(new Set(got.map((s) => s.callstackIid)).size, 1);
  assert.deepEqual(names(got[2]), ["[truncated stack]", appLabel(U.middle), appLabel(U.leaf)]);
});

Deno.test("stack profiler: records of several kinds in one batch, other kinds skipped", () => {
  const h = new Harness();
  // A sched_switch-sized record of another kind between the stack records.
  const other = new Uint8Array(Layout.rec_sched_switch.size);
  new DataView(other.buffer).setUint16(0, RecordKind.SchedSwitch, true);
  new DataView(other.buffer).setUint16(2, other.length, true);
  h.consume(
    stackRecord({ ts: 10, source: StackSource.Cpu, flags: 1, user: [U.leaf] }),
    other,
    stackRecord({ ts: 20, source: StackSource.SleepD, kernel: SLEEP_KERNEL }),
    other,
    sleepEnd(70, TID, 20),
  );
  const got = h.samples().map((s) => [s.source, s.ts - BASE, s.weight]);
  assert.deepEqual(got, [["on_cpu", 10n, BigInt(CPU_WEIGHT)], ["sleep.uninterruptible", 20n, 50n]]);
  assert.equal(h.profiler.stats.cpuSamples, 1);
  assert.equal(h.profiler.stats.sleepSamples, 1);
});

Deno.test("stack profiler: a sleep end consumed before its stack still ends that sleep", () => {
  // Sleep on CPU 1, switched back in on CPU 0: the end sits in CPU 0's ring,
  // which may be drained before CPU 1's (out_ts names the sleep it ends).
  const stack = stackRecord({
    ts: 1_000,
    cpu: 1,
    source: StackSource.SleepS,
    kernel: SLEEP_KERNEL,
  });
  const end = sleepEnd(5_000, TID, 1_000);
  for (const batches of [[[end, stack]], [[end], [stack]]]) {
    const h = new Harness();
    for (const b of batches) h.consume(...b);
    h.finish(1_000_000);
    const got = h.samples().map((s) => [s.tid, s.ts - BASE, s.weight]);
    assert.deepEqual(got, [[TID, 1_000n, 4_000n]], `${batches.length} batches`);
  }
});
