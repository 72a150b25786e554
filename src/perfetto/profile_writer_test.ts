// Unit tests of ProfileWriter: its packets decoded with the generated
// Perfetto types and resolved the way a reader of the sequence would, strictly
// (an interned id must be defined, once, before it is used).
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { TimestampBase } from "./ftrace_bundle_builder.ts";
import {
  type InternedData,
  StackSample_Mode,
  StackSample_Unit,
  type TracePacket,
  TraceSchema,
} from "../gen/perfetto_trace_pb.ts";
import {
  type FrameRef,
  type ModuleRef,
  type ProfileStream,
  ProfileWriter,
  StackMode,
  type StackSampleRecord,
  WeightUnit,
} from "./profile_writer.ts";
import { ProtoWriter } from "./proto_writer.ts";

const BASE = 1_700_000_000_000_000_000n; // beyond 2^53: the base must stay exact
const STREAM: ProfileStream = {
  source: "on_cpu",
  counterName: "cpu-clock",
  unit: WeightUnit.Nanoseconds,
  description: "CPU time sampled on every CPU",
};

const LIBC: ModuleRef = {
  key: "fe:01:1234",
  path: "/usr/lib/x86_64-linux-gnu/libc.so.6",
  buildId: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
};
const APP: ModuleRef = { key: "fe:01:99", path: "/opt/app" };
const KERNEL: ModuleRef = { key: "[kernel.kallsyms]", path: "[kernel.kallsyms]" };

const start: FrameRef = { module: LIBC, relPc: 0x2724an, name: "__libc_start_call_main" };
const main: FrameRef = { module: APP, relPc: 0x1190n, name: "main" };
const work: FrameRef = { module: APP, relPc: 0x1150n, name: "work" };
const leaf: FrameRef = { module: APP, relPc: 0x1120n, name: "leaf" };
const entry: FrameRef = { module: KERNEL, relPc: 0xffffffff82000010n, name: "entry_SYSCALL_64" };
const sched: FrameRef = { module: KERNEL, relPc: 0xffffffff81a00020n, name: "__schedule" };

function sample(frames: FrameRef[], extra: Partial<StackSampleRecord> = {}): StackSampleRecord {
  return {
    ts: 1000,
    pid: 40,
    tid: 41,
    cpu: 1,
    mode: StackMode.User,
    frames,
    weight: 1e6,
    ...extra,
  };
}

function newWriter(seq = 100, stream = STREAM): ProfileWriter {
  return new ProfileWriter(seq, stream, new TimestampBase(BASE));
}

function decode(w: ProtoWriter): TracePacket[] {
  return fromBinary(TraceSchema, w.take()).packet;
}

/** Writes each sample (with its optional key) and decodes the packets. */
function writeAll(writer: ProfileWriter, items: [StackSampleRecord, number?][]): TracePacket[] {
  const w = new ProtoWriter(64);
  for (const [s, key] of items) writer.write(w, s, key);
  return decode(w);
}

interface ResolvedFrame {
  name: string;
  path: string;
  buildId: string;
  relPc: bigint;
}

interface ResolvedSample {
  seq: number;
  ts: bigint;
  pid: number;
  tid: number;
  cpu: number;
  mode: number;
  weight: bigint;
  callstack: bigint;
  frames: ResolvedFrame[];
}

interface SequenceState {
  names: Map<bigint, string>;
  paths: Map<bigint, string>;
  builds: Map<bigint, string>;
  mappings: Map<bigint, { path: string; buildId: string }>;
  frames: Map<bigint, ResolvedFrame>;
  callstacks: Map<bigint, ResolvedFrame[]>;
}

/** A strict reader of the interned state, one per sequence. */
class Reader {
  #seqs = new Map<number, SequenceState>();
  /** Definitions per kind, over all sequences. */
  defined = { names: 0, paths: 0, builds: 0, mappings: 0, frames: 0, callstacks: 0 };

  read(packets: TracePacket[]): ResolvedSample[] {
    return packets.map((p) => this.#packet(p));
  }

  #packet(p: TracePacket): ResolvedSample {
    assert.equal(p.optionalTrustedPacketSequenceId.case, "trustedPacketSequenceId");
    const seqId = p.optionalTrustedPacketSequenceId.value!;
    let s = this.#seqs.get(seqId);
    if (!s) {
      assert.equal(p.sequenceFlags & 1, 1, `first packet of sequence ${seqId} clears state`);
      s = {
        names: new Map(),
        paths: new Map(),
        builds: new Map(),
        mappings: new Map(),
        frames: new Map(),
        callstacks: new Map(),
      };
      this.#seqs.set(seqId, s);
    }
    if (p.internedData) this.#intern(s, p.internedData, seqId);
    assert.equal(p.data.case, "stackSample");
    const ss = p.data.value;
    assert.equal(ss.taskContextField.case, "taskContext");
    assert.equal(ss.executionContextField.case, "executionContext");
    assert.equal(ss.callstackField.case, "callstackIid");
    const frames = s.callstacks.get(ss.callstackField.value);
    assert.ok(frames, `callstack ${ss.callstackField.value} used before it is defined`);
    return {
      seq: seqId,
      ts: p.timestamp,
      pid: ss.taskContextField.value.pid,
      tid: ss.taskContextField.value.tid,
      cpu: ss.executionContextField.value.cpu,
      mode: ss.executionContextField.value.mode,
      weight: ss.primaryWeight,
      callstack: ss.callstackField.value,
      frames,
    };
  }

  #intern(s: SequenceState, d: InternedData, seq: number): void {
    const def = <T>(m: Map<bigint, T>, kind: keyof Reader["defined"], iid: bigint, v: T) => {
      assert.notEqual(iid, 0n, `${kind} with iid 0`);
      assert.ok(!m.has(iid), `${kind} ${iid} interned twice on sequence ${seq}`);
      m.set(iid, v);
      this.defined[kind]++;
    };
    const use = <T>(m: Map<bigint, T>, what: string, iid: bigint): T => {
      const v = m.get(iid);
      assert.ok(v !== undefined, `${what} ${iid} used before it is defined on sequence ${seq}`);
      return v;
    };
    const text = new TextDecoder("utf-8", { fatal: true });
    const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    for (const n of d.functionNames) def(s.names, "names", n.iid, text.decode(n.str));
    for (const n of d.mappingPaths) def(s.paths, "paths", n.iid, text.decode(n.str));
    for (const n of d.buildIds) def(s.builds, "builds", n.iid, hex(n.str));
    for (const m of d.mappings) {
      def(s.mappings, "mappings", m.iid, {
        path: m.pathStringIds.map((id) => use(s.paths, "mapping path", id)).join("/"),
        buildId: m.buildId ? use(s.builds, "build id", m.buildId) : "",
      });
    }
    for (const f of d.frames) {
      const m = use(s.mappings, "mapping", f.mappingId);
      def(s.frames, "frames", f.iid, {
        name: use(s.names, "function name", f.functionNameId),
        path: m.path,
        buildId: m.buildId,
        relPc: f.relPc,
      });
    }
    for (const c of d.callstacks) {
      def(s.callstacks, "callstacks", c.iid, c.frameIds.map((id) => use(s.frames, "frame", id)));
    }
  }
}

function expected(frames: FrameRef[]): ResolvedFrame[] {
  const hex = (b?: Uint8Array) =>
    b ? Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("") : "";
  return frames.map((f) => ({
    name: f.name,
    path: f.module.path,
    buildId: hex(f.module.buildId),
    relPc: f.relPc,
  }));
}

Deno.test("profile writer: the first packet clears incremental state and carries the defaults", () => {
  const writer = newWriter(100);
  const packets = writeAll(writer, [[sample([main, leaf])], [sample([main, leaf], { ts: 2000 })]]);
  assert.equal(packets.length, 2);
  const [first, second] = packets;
  assert.equal(first.optionalTrustedPacketSequenceId.value, 100);
  assert.equal(first.sequenceFlags, 3); // INCREMENTAL_STATE_CLEARED | NEEDS_INCREMENTAL_STATE
  assert.equal(first.firstPacketOnSequence, true);
  const d = first.tracePacketDefaults?.stackSampleDefaults;
  assert.ok(d, "stack_sample_defaults on the first packet");
  assert.equal(d.source, "on_cpu");
  assert.equal(d.primaryDescriptor?.name, "cpu-clock");
  assert.deepEqual(d.primaryDescriptor?.unitField, {
    case: "unit",
    value: StackSample_Unit.NANOSECONDS,
  });
  assert.equal(d.primaryDescriptor?.description, "CPU time sampled on every CPU");
  assert.equal(first.timestamp, BASE + 1000n);

  assert.equal(second.optionalTrustedPacketSequenceId.value, 100);
  assert.equal(second.sequenceFlags, 2); // NEEDS_INCREMENTAL_STATE only
  assert.equal(second.firstPacketOnSequence, false);
  assert.equal(second.tracePacketDefaults, undefined);
  assert.equal(second.timestamp, BASE + 2000n);
  assert.equal(writer.samples, 2);
});

Deno.test("profile writer: sample fields and weight rounding", () => {
  const packets = writeAll(newWriter(), [
    [sample([main], { ts: 0, pid: 7, tid: 9, cpu: 63, mode: StackMode.Kernel, weight: 1.6 })],
    [sample([main], { ts: 5, weight: 1.4 })],
    [sample([main], { ts: 6, weight: -50 })],
    [sample([main], { ts: 7, weight: 3_000_000_000_123 })],
  ]);
  const [a, b, c, d] = new Reader().read(packets);
  assert.deepEqual(
    { ts: a.ts, pid: a.pid, tid: a.tid, cpu: a.cpu, mode: a.mode, weight: a.weight },
    { ts: BASE, pid: 7, tid: 9, cpu: 63, mode: StackSample_Mode.KERNEL, weight: 2n },
  );
  assert.equal(b.mode, StackSample_Mode.USER);
  assert.equal(b.weight, 1n);
  assert.equal(c.weight, 0n);
  assert.equal(d.weight, 3_000_000_000_123n);
});

Deno.test("profile writer: frames resolve root first, in the order given", () => {
  const stacks = [
    [start, main, work, leaf],
    [leaf, work, main, start], // the reverse is another stack
    [start, main, work, leaf, entry, sched], // user frames, then kernel ones
    [sched],
  ];
  const packets = writeAll(newWriter(), stacks.map((f) => [sample(f)]));
  const got = new Reader().read(packets);
  assert.deepEqual(got.map((s) => s.frames), stacks.map(expected));
  assert.equal(new Set(got.map((s) => s.callstack)).size, 4);
});

Deno.test("profile writer: everything is interned once per sequence, in the packet that first uses it", () => {
  const packets = writeAll(newWriter(), [
    [sample([start, main, work, leaf])],
    [sample([start, main, work, leaf])],
    [sample([start, main, leaf])], // no new frame: only a new callstack
    [sample([start, main, work, leaf, entry, sched])], // two kernel frames, a new module
    [sample([start, main, work, leaf])],
  ]);
  const interned = packets.map((p) => p.internedData);
  assert.ok(interned[0]);
  assert.deepEqual(
    interned[0].functionNames.map((n) => new TextDecoder().decode(n.str)),
    ["__libc_start_call_main", "main", "work", "leaf"],
  );
  assert.equal(interned[0].mappings.length, 2);
  assert.equal(interned[0].mappingPaths.length, 2);
  assert.equal(interned[0].buildIds.length, 1);
  assert.equal(interned[0].frames.length, 4);
  assert.equal(interned[0].callstacks.length, 1);
  assert.equal(interned[1], undefined);
  assert.ok(interned[2]);
  assert.deepEqual(
    {
      names: interned[2].functionNames.length,
      mappings: interned[2].mappings.length,
      frames: interned[2].frames.length,
      callstacks: interned[2].callstacks.length,
    },
    { names: 0, mappings: 0, frames: 0, callstacks: 1 },
  );
  assert.ok(interned[3]);
  assert.deepEqual(
    {
      names: interned[3].functionNames.length,
      paths: interned[3].mappingPaths.length,
      builds: interned[3].buildIds.length,
      mappings: interned[3].mappings.length,
      frames: interned[3].frames.length,
      callstacks: interned[3].callstacks.length,
    },
    { names: 2, paths: 1, builds: 0, mappings: 1, frames: 2, callstacks: 1 },
  );
  assert.equal(interned[4], undefined);

  const reader = new Reader();
  const got = reader.read(packets);
  assert.deepEqual(reader.defined, {
    names: 6,
    paths: 3,
    builds: 1,
    mappings: 3,
    frames: 6,
    callstacks: 3,
  });
  assert.equal(got[0].callstack, got[1].callstack);
  assert.equal(got[0].callstack, got[4].callstack);
  assert.deepEqual(got[2].frames, expected([start, main, leaf]));
});

Deno.test("profile writer: ids are defined before use across many mixed stacks", () => {
  const pool = [start, main, work, leaf, entry, sched];
  const mods: ModuleRef[] = Array.from({ length: 5 }, (_, i) => ({
    key: `mod${i}`,
    path: `/lib/m${i}.so`,
    ...(i % 2 ? { buildId: new Uint8Array([i, i + 1]) } : {}),
  }));
  for (let i = 0; i < 40; i++) {
    pool.push({ module: mods[i % 5], relPc: BigInt(0x1000 + 16 * i), name: `fn${i % 17}` });
  }
  // A deterministic pseudo-random walk over the pool: stacks share prefixes, frames and modules.
  let x = 12345;
  const rnd = (n: number) => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % n;
  const stacks: FrameRef[][] = [];
  for (let i = 0; i < 300; i++) {
    const len = 1 + rnd(12);
    stacks.push(Array.from({ length: len }, () => pool[rnd(pool.length)]));
  }
  const writer = newWriter();
  const packets = writeAll(writer, stacks.map((f, i) => [sample(f, { ts: i })]));
  const reader = new Reader();
  const got = reader.read(packets);
  assert.deepEqual(got.map((s) => s.frames), stacks.map(expected));
  const names = new Set(stacks.flat().map((f) => f.name));
  const frames = new Set(stacks.flat().map((f) => `${f.module.key}/${f.relPc}/${f.name}`));
  const modules = new Set(stacks.flat().map((f) => f.module.key));
  const callstacks = new Set(
    stacks.map((s) => s.map((f) => `${f.module.key}/${f.relPc}/${f.name}`).join(";")),
  );
  assert.equal(reader.defined.names, names.size);
  assert.equal(reader.defined.frames, frames.size);
  assert.equal(reader.defined.mappings, modules.size);
  assert.equal(reader.defined.callstacks, callstacks.size);
});

Deno.test("profile writer: modules share one mapping by key; names are shared across modules", () => {
  const appCopy: ModuleRef = { key: APP.key, path: APP.path }; // the same file, another process
  const other: ModuleRef = { key: "fe:01:77", path: "/opt/other" };
  const packets = writeAll(newWriter(), [
    [sample([{ module: APP, relPc: 0x10n, name: "main" }])],
    [sample([{ module: appCopy, relPc: 0x20n, name: "init" }])],
    [sample([{ module: other, relPc: 0x10n, name: "main" }])],
  ]);
  assert.equal(packets[0].internedData?.mappings.length, 1);
  assert.equal(packets[1].internedData?.mappings.length, 0);
  assert.equal(packets[2].internedData?.mappings.length, 1);
  assert.equal(packets[2].internedData?.functionNames.length, 0); // "main" again
  assert.equal(packets[2].internedData?.frames.length, 1);
  const got = new Reader().read(packets);
  assert.deepEqual(got[2].frames, [{
    name: "main",
    path: "/opt/other",
    buildId: "",
    relPc: 0x10n,
  }]);
});

Deno.test("profile writer: build ids and 64-bit kernel addresses round-trip", () => {
  const packets = writeAll(newWriter(), [[sample([start, entry])]]);
  const d = packets[0].internedData!;
  assert.deepEqual([...d.buildIds[0].str], [0xde, 0xad, 0xbe, 0xef]);
  const libc = d.mappings.find((m) => m.buildId !== 0n);
  assert.ok(libc);
  assert.equal(libc.buildId, d.buildIds[0].iid);
  const kernel = d.mappings.find((m) => m.buildId === 0n);
  assert.ok(kernel, "a module without build id references none");
  const got = new Reader().read(packets);
  assert.equal(got[0].frames[1].relPc, 0xffffffff82000010n);
  assert.equal(got[0].frames[0].buildId, "deadbeef");
});

Deno.test("profile writer: names with any UTF-8 and long stacks encode intact", () => {
  const cpp: FrameRef = { module: APP, relPc: 1n, name: "ns::Worker<int>::crunch(int)" };
  const utf: FrameRef = { module: APP, relPc: 2n, name: "grüße_λ_🦀" };
  const deep = Array.from({ length: 254 }, (_, i): FrameRef => ({
    module: APP,
    relPc: BigInt(0x400000 + i),
    name: `recurse_${i}_${"x".repeat(i % 50)}`,
  }));
  const stacks = [[cpp, utf], [...deep, cpp]];
  const got = new Reader().read(writeAll(newWriter(), stacks.map((f) => [sample(f)])));
  assert.deepEqual(got.map((s) => s.frames), stacks.map(expected));
});

Deno.test("profile writer: two writers have their own sequences and independent iids", () => {
  const cpu = newWriter(100);
  const sleep = newWriter(101, { ...STREAM, source: "sleep.uninterruptible" });
  const w = new ProtoWriter(64);
  cpu.write(w, sample([main, leaf]));
  sleep.write(w, sample([sched]));
  sleep.write(w, sample([main, leaf])); // already known on 100, not on 101
  cpu.write(w, sample([sched]));
  const packets = decode(w);
  assert.deepEqual(
    packets.map((p) => [p.optionalTrustedPacketSequenceId.value, p.sequenceFlags]),
    [[100, 3], [101, 3], [101, 2], [100, 2]],
  );
  assert.equal(
    packets[1].tracePacketDefaults?.stackSampleDefaults?.source,
    "sleep.uninterruptible",
  );
  // Each sequence numbers its own entries from 1: the first callstack of each is iid 1.
  const got = new Reader().read(packets);
  assert.deepEqual(got.map((s) => [s.seq, s.callstack]), [[100, 1n], [101, 1n], [101, 2n], [
    100,
    2n,
  ]]);
  assert.deepEqual(
    got.map((s) => s.frames),
    [[main, leaf], [sched], [main, leaf], [sched]].map(
      expected,
    ),
  );
  // The second writer interned main and leaf itself.
  assert.equal(packets[2].internedData?.frames.length, 2);
  assert.equal(packets[3].internedData?.frames.length, 1);
  assert.equal(packets[1].internedData?.functionNames[0].iid, 1n);
  assert.equal(cpu.samples, 2);
  assert.equal(sleep.samples, 2);
});

Deno.test("profile writer: a stackKey reuses its callstack without looking at the frames", () => {
  const writer = newWriter();
  const packets = writeAll(writer, [
    [sample([start, main, leaf]), 5],
    // Same key: the writer trusts it (the caller promises the same frames).
    [sample([sched]), 5],
    // A new key for frames already interned: the same callstack, nothing new.
    [sample([start, main, leaf]), 6],
    [sample([start, main, leaf])],
    [sample([sched]), 7],
    [sample([sched]), 7],
  ]);
  const got = new Reader().read(packets);
  assert.equal(got[1].callstack, got[0].callstack);
  assert.deepEqual(got[1].frames, expected([start, main, leaf]));
  assert.equal(packets[1].internedData, undefined);
  assert.equal(got[2].callstack, got[0].callstack);
  assert.equal(packets[2].internedData, undefined);
  assert.equal(got[3].callstack, got[0].callstack);
  assert.notEqual(got[4].callstack, got[0].callstack);
  assert.deepEqual(got[4].frames, expected([sched]));
  assert.equal(packets[4].internedData?.frames.length, 1);
  assert.equal(got[5].callstack, got[4].callstack);
  assert.equal(packets[5].internedData, undefined);
});
