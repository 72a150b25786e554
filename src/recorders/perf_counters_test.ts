import assert from "node:assert/strict";
import { FtraceBundleBuilder, TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { TrackEventWriter, trackUuid } from "../perfetto/track_event_writer.ts";
import { Decoding } from "../pipeline/decoding.ts";
import { CountersReason, Layout as L, RecordKind } from "../records/records.ts";
import { decodeTrace } from "../../test/trace_reader.ts";
import { Ring } from "../../test/record_ring.ts";
import { perfCounters, scaledValue } from "./perf_counters.ts";

const BASE = 5_000_000n;

Deno.test("perf counters: a multiplexed counter is scaled by enabled/running", () => {
  assert.deepEqual(scaledValue({ value: 100n, enabled: 10n, running: 10n }), {
    value: 100,
    scaled: false,
  });
  assert.deepEqual(scaledValue({ value: 100n, enabled: 10n, running: 5n }), {
    value: 200,
    scaled: true,
  });
  // Never ran: nothing to scale by.
  assert.deepEqual(scaledValue({ value: 0n, enabled: 10n, running: 0n }), {
    value: 0,
    scaled: false,
  });
});

Deno.test("perf counters: a record is one value per counter on the CPU's track", () => {
  const tracks = [
    [trackUuid("a/cpu0"), trackUuid("a/cpu1")],
    [undefined, trackUuid("b/cpu1")], // b counts on cpu1 only (a PMU cpumask)
  ];
  const scope = new Decoding(
    [perfCounters],
    {
      "perf-counters": { tracks, scale: [1, 0.5] },
    },
    BASE,
    2,
    1000,
  );
  // The tracks, as the session describes them on the main sequence.
  const main = new TrackEventWriter(1, new TimestampBase(BASE));
  for (const t of tracks.flat()) if (t) main.counterTrack({ uuid: t, name: String(t) });
  const ring = new Ring();
  const cpu = new FtraceBundleBuilder(0, scope.comms, new TimestampBase(BASE));
  const R = L.rec_counters, V = L.counter_value;
  const record = (c: number, ts: bigint, values: [bigint, bigint, bigint][], failed = 0) => {
    const at = ring.add(RecordKind.Counters, R.size, ts, (o) => {
      ring.u32At(o + R.cpu, c);
      ring.dv.setUint16(o + R.count, values.length, true);
      ring.dv.setUint16(o + R.reason, CountersReason.Tick, true);
      ring.u32At(o + R.failed, failed);
      values.forEach(([v, e, r], i) => {
        const at = o + R.values + i * V.size;
        ring.dv.setBigUint64(at + V.value, v, true);
        ring.dv.setBigUint64(at + V.enabled, e, true);
        ring.dv.setBigUint64(at + V.running, r, true);
      });
    });
    scope.decoder.decode(ring, at.off, at.len, cpu);
  };
  record(0, BASE + 10n, [[5n, 1n, 1n], [0n, 0n, 0n]]);
  record(1, BASE + 20n, [[2n ** 40n, 9n, 9n], [8n, 4n, 2n]]);
  record(1, BASE + 30n, [[7n, 1n, 1n], [9n, 1n, 1n]], 0b10);
  assert.equal(scope.decoder.counts[RecordKind.Counters], 3);
  assert.deepEqual(Object.fromEntries(scope.problems), {
    "perf counter values BPF could not read": 1,
  });
  const view = decodeTrace(new Uint8Array([...main.take(), ...scope.tracks.take()]));
  assert.deepEqual(view.counterValues.map((c) => [c.track, c.ts - BASE, c.value]), [
    [tracks[0][0], 10n, 5],
    [tracks[0][1], 20n, 2 ** 40],
    [tracks[1][1], 20n, 8], // 8 × (4/2) scaled, × 0.5 per sysfs scale
    [tracks[0][1], 30n, 7],
  ]);
});
