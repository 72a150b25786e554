import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { TraceSchema } from "../gen/perfetto_trace_pb.ts";
import { FtraceBundleBuilder, TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { Decoding } from "../pipeline/decoding.ts";
import { Layout as L, RecordKind, SyscallFlag } from "../records/records.ts";
import { decodeTrace } from "../../test/trace_reader.ts";
import { Ring } from "../../test/record_ring.ts";
import {
  INVALID_SYSCALL,
  SYSCALL_TRACK_NAME,
  syscallName,
  syscalls,
  syscallTrack,
} from "./syscalls.ts";

const BASE = 1_000_000_000n;

function harness() {
  const scope = new Decoding([syscalls], {}, BASE, 1, 1000);
  const ring = new Ring();
  const cpu = new FtraceBundleBuilder(0, scope.comms, new TimestampBase(BASE));
  const call = (
    r: {
      tid: number;
      tgid: number;
      nr: number;
      flags?: number;
      enter: bigint;
      exit: bigint;
      ret: bigint;
    },
    size: number = L.rec_syscall.size,
  ) => {
    const R = L.rec_syscall;
    const at = ring.add(RecordKind.Syscall, size, r.exit, (o) => {
      ring.u32At(o + R.pid, r.tid);
      ring.u32At(o + R.tgid, r.tgid);
      ring.u32At(o + R.nr, r.nr);
      ring.u32At(o + R.flags, r.flags ?? 0);
      ring.dv.setBigUint64(o + R.enter_ts, r.enter, true);
      ring.dv.setBigInt64(o + R.ret, r.ret, true);
    });
    scope.decoder.decode(ring, at.off, at.len, cpu);
  };
  return { scope, call, view: () => decodeTrace(scope.tracks.take()) };
}

Deno.test("syscalls: names from the headers, ia32 numbers and unknown numbers", () => {
  assert.equal(syscallName(110, false), "getppid");
  assert.equal(syscallName(0, false), "read");
  assert.equal(syscallName(64, true), "getppid"); // ia32 numbering
  assert.equal(syscallName(500, false), "syscall_500"); // newer than the headers
  assert.equal(syscallName(500, true), "syscall_500_ia32");
  assert.equal(syscallName(0xffffffff, false), INVALID_SYSCALL);
  assert.equal(syscallName(100000, true), INVALID_SYSCALL);
});

Deno.test("syscalls: one record, one slice on its thread's syscalls track, with ret and errno", () => {
  const h = harness();
  h.call({ tid: 11, tgid: 10, nr: 110, enter: BASE + 100n, exit: BASE + 150n, ret: 7n });
  h.call({ tid: 11, tgid: 10, nr: 2, enter: BASE + 200n, exit: BASE + 260n, ret: -2n });
  h.call({
    tid: 12,
    tgid: 10,
    nr: 9,
    enter: BASE + 300n,
    exit: BASE + 310n,
    ret: 0x7f00_1234_5000n,
  });
  h.call({
    tid: 11,
    tgid: 10,
    nr: 231,
    flags: SyscallFlag.NoReturn,
    enter: BASE + 400n,
    exit: BASE + 400n,
    ret: 0n,
  });
  h.call({
    tid: 13,
    tgid: 13,
    nr: 64,
    flags: SyscallFlag.Compat,
    enter: BASE + 500n,
    exit: BASE + 501n,
    ret: 1n,
  });
  assert.equal(h.scope.decoder.counts[RecordKind.Syscall], 5);
  const view = h.view();
  const rel = (t: bigint | undefined) => t === undefined ? undefined : t - BASE;
  assert.deepEqual(
    view.slices.map((s) => [s.track, s.name, rel(s.begin), rel(s.end), s.args]),
    [
      [BigInt(syscallTrack(10, 11)), "getppid", 100n, 150n, { ret: 7n }],
      [BigInt(syscallTrack(10, 11)), "open", 200n, 260n, { ret: -2n, errno: "ENOENT" }],
      [BigInt(syscallTrack(10, 12)), "mmap", 300n, 310n, { ret: 0x7f00_1234_5000n }],
      [BigInt(syscallTrack(13, 13)), "getppid", 500n, 501n, { ret: 1n }],
    ],
  );
  assert.deepEqual(view.instants.map((i) => [i.name, rel(i.ts)]), [["exit_group", 400n]]);
  // One descriptor per thread, named and owned by the thread.
  const tracks = [...view.tracks.values()];
  assert.deepEqual(
    tracks.map((t) => [t.name, t.thread]),
    [
      [SYSCALL_TRACK_NAME, { pid: 10, tid: 11 }],
      [SYSCALL_TRACK_NAME, { pid: 10, tid: 12 }],
      [SYSCALL_TRACK_NAME, { pid: 13, tid: 13 }],
    ],
  );
});

Deno.test("syscalls: a reused tid in another process is another track", () => {
  assert.notEqual(syscallTrack(10, 11), syscallTrack(20, 11));
  assert.ok(syscallTrack(4194303, 4194303) < Number.MAX_SAFE_INTEGER);
  const h = harness();
  h.call({ tid: 11, tgid: 10, nr: 110, enter: BASE + 1n, exit: BASE + 2n, ret: 0n });
  h.call({ tid: 11, tgid: 20, nr: 110, enter: BASE + 3n, exit: BASE + 4n, ret: 0n });
  const view = h.view();
  assert.equal(view.tracks.size, 2);
  assert.equal(new Set(view.slices.map((s) => s.track)).size, 2);
});

Deno.test("syscalls: numbers no call has share one name, whatever a user passes", () => {
  const h = harness();
  for (let i = 0; i < 1000; i++) {
    const nr = 1024 + i * 4_294_000; // spread over the u32 range
    h.call({
      tid: 1,
      tgid: 1,
      nr,
      enter: BASE + BigInt(2 * i),
      exit: BASE + BigInt(2 * i + 1),
      ret: -38n,
    });
  }
  const bytes = h.scope.tracks.take();
  const view = decodeTrace(bytes);
  assert.equal(view.slices.length, 1000);
  assert.deepEqual([...new Set(view.slices.map((s) => s.name))], [INVALID_SYSCALL]);
  assert.deepEqual(view.slices[1].args, { nr: 1024n + 4_294_000n, ret: -38n, errno: "ENOSYS" });
  // One interned name for all of them, not a thousand.
  const names = fromBinary(TraceSchema, bytes).packet.flatMap((p) =>
    p.internedData?.eventNames ?? []
  );
  assert.equal(names.length, 1);
});

Deno.test("syscalls: a record of the wrong size is malformed and writes nothing", () => {
  const h = harness();
  h.call({ tid: 1, tgid: 1, nr: 1, enter: BASE, exit: BASE, ret: 0n }, L.rec_syscall.size - 8);
  assert.equal(h.scope.decoder.malformed, 1);
  assert.equal(h.scope.tracks.pending, 0);
});
