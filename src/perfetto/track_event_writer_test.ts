import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { TraceSchema } from "../gen/perfetto_trace_pb.ts";
import { decodeTrace } from "../../test/trace_reader.ts";
import { TimestampBase } from "./ftrace_bundle_builder.ts";
import { CounterUnit, TrackEventType, TrackEventWriter, trackUuid } from "./track_event_writer.ts";

const BASE = 2n ** 40n;

function writer(seq = 7) {
  return new TrackEventWriter(seq, new TimestampBase(BASE));
}

Deno.test("track events: slices with interned names and arguments decode on their thread track", () => {
  const w = writer();
  w.threadTrack(5, 100, 101, "syscalls");
  const read = w.nameIid("read");
  const ret = w.annotationIid("ret");
  const errno = w.annotationIid("errno");
  w.begin(10, TrackEventType.SliceBegin, 5, read);
  w.intArg(ret, -2);
  w.stringArg(errno, "ENOENT");
  w.end();
  w.sliceEnd(25, 5);
  // The same name again: no second definition.
  assert.equal(w.nameIid("read"), read);
  w.begin(30, TrackEventType.SliceBegin, 5, read);
  w.intArg(ret, 2 ** 40);
  w.end();
  w.sliceEnd(31, 5);
  w.begin(40, TrackEventType.Instant, 5, w.nameIid("exit_group"));
  w.end();
  const bytes = w.take();
  const view = decodeTrace(bytes);
  assert.deepEqual(view.tracks.get(5n)?.thread, { pid: 100, tid: 101 });
  assert.equal(view.tracks.get(5n)?.name, "syscalls");
  assert.deepEqual(view.slices.map((s) => [s.name, s.begin - BASE, s.end! - BASE, s.args]), [
    ["read", 10n, 25n, { ret: -2n, errno: "ENOENT" }],
    ["read", 30n, 31n, { ret: 2n ** 40n }],
  ]);
  assert.deepEqual(view.instants.map((i) => [i.name, i.ts - BASE]), [["exit_group", 40n]]);
  // Each name is sent once, in the packet that first uses it.
  const defined = fromBinary(TraceSchema, bytes).packet.flatMap((p) =>
    p.internedData?.eventNames.map((n) => n.name) ?? []
  );
  assert.deepEqual(defined, ["read", "exit_group"]);
});

Deno.test("track events: the first packet clears incremental state, later ones only need it", () => {
  const w = writer(9);
  w.counterTrack({ uuid: 1n, name: "c", unit: CounterUnit.Count });
  w.counter(1, 1n, 3);
  w.counter(2, 1n, 4);
  const packets = fromBinary(TraceSchema, w.take()).packet;
  assert.deepEqual(packets.map((p) => p.sequenceFlags), [1, 2, 2]);
  assert.ok(packets.every((p) => p.optionalTrustedPacketSequenceId.value === 9));
  // Later takes continue the sequence: no second clear.
  w.counter(3, 1n, 5);
  assert.deepEqual(fromBinary(TraceSchema, w.take()).packet.map((p) => p.sequenceFlags), [2]);
});

Deno.test("track events: counters, integer and fractional, under a parent track", () => {
  const w = writer();
  w.groupTrack(trackUuid("g"), "group");
  w.counterTrack({ uuid: trackUuid("g/a"), parent: trackUuid("g"), name: "a", unitName: "Hz" });
  w.counter(1, trackUuid("g/a"), 2_400_000_000);
  w.counter(2, trackUuid("g/a"), 0.5, true);
  w.counter(3, trackUuid("g/a"), 2 ** 60); // not a safe integer: sent as a double
  const view = decodeTrace(w.take());
  const a = view.tracks.get(trackUuid("g/a"))!;
  assert.equal(a.parent, trackUuid("g"));
  assert.deepEqual(a.counter, { unit: 0, unitName: "Hz" });
  assert.deepEqual(view.counterValues.map((c) => c.value), [2_400_000_000, 0.5, 2 ** 60]);
});

Deno.test("track events: a process's own track with a named track under it", () => {
  const w = writer();
  w.processTrack(7, 1234);
  w.childTrack(8, 7, "locks");
  const view = decodeTrace(w.take());
  assert.equal(view.tracks.get(7n)?.process, 1234);
  assert.equal(view.tracks.get(7n)?.name, "");
  assert.deepEqual(
    [view.tracks.get(8n)?.parent, view.tracks.get(8n)?.name, view.tracks.get(8n)?.process],
    [7n, "locks", undefined],
  );
});

Deno.test("track events: take() hands over what was written and the interning carries on", () => {
  const w = writer();
  w.threadTrack(5, 1, 1, "t");
  const a = w.nameIid("a");
  w.begin(1, TrackEventType.Instant, 5, a);
  w.end();
  const first = w.take();
  assert.equal(w.pending, 0);
  w.begin(2, TrackEventType.Instant, 5, a);
  w.end();
  const both = new Uint8Array([...first, ...w.take()]);
  assert.deepEqual(decodeTrace(both).instants.map((i) => i.name), ["a", "a"]);
});

Deno.test("track uuids: stable, below 2^63, never 0, distinct for distinct names", () => {
  assert.equal(trackUuid("perf-counters/cs/cpu0"), trackUuid("perf-counters/cs/cpu0"));
  const names = Array.from({ length: 2000 }, (_, i) => `perf-counters/x/cpu${i}`);
  const ids = new Set(names.map(trackUuid));
  assert.equal(ids.size, names.length);
  for (const id of ids) assert.ok(id > 0n && id < 2n ** 63n);
});
