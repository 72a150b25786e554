import assert from "node:assert/strict";
import { FtraceBundleBuilder, TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { TrackEventWriter } from "../perfetto/track_event_writer.ts";
import { Decoding } from "../pipeline/decoding.ts";
import { Layout as L, RecordKind } from "../records/records.ts";
import { decodeTrace } from "../../test/trace_reader.ts";
import { Ring } from "../../test/record_ring.ts";
import { cpuFrequency, frequencyTrack } from "./cpu_frequency.ts";

Deno.test("cpu frequency: power:cpu_frequency's kHz become Hz on the CPU's track", () => {
  const base = 1000n;
  const scope = new Decoding([cpuFrequency], {}, base, 2, 1000);
  const main = new TrackEventWriter(1, new TimestampBase(base));
  for (const c of [0, 1]) main.counterTrack({ uuid: frequencyTrack(c), name: `cpu${c}` });
  const ring = new Ring();
  const b = new FtraceBundleBuilder(0, scope.comms, new TimestampBase(base));
  const R = L.rec_cpu_frequency;
  for (const [ts, cpu, khz] of [[5n, 1, 2_400_000], [9n, 0, 800_000]] as const) {
    const at = ring.add(RecordKind.CpuFrequency, R.size, base + ts, (o) => {
      ring.u32At(o + R.cpu, cpu);
      ring.u32At(o + R.khz, khz);
    });
    scope.decoder.decode(ring, at.off, at.len, b);
  }
  const view = decodeTrace(new Uint8Array([...main.take(), ...scope.tracks.take()]));
  assert.deepEqual(view.counterValues.map((c) => [c.track, c.ts - base, c.value]), [
    [frequencyTrack(1), 5n, 2_400_000_000],
    [frequencyTrack(0), 9n, 800_000_000],
  ]);
});

Deno.test("cpu frequency: without cpufreq it says why, naming the missing directory", () => {
  const none = cpuFrequency.unsupported({ hasTracepoint: () => true, exists: () => false });
  assert.match(none!, /no cpufreq driver \(\/sys\/devices\/system\/cpu\/cpu0\/cpufreq/);
  const ok = cpuFrequency.unsupported({ hasTracepoint: () => true, exists: () => true });
  assert.equal(ok, undefined);
  const noTp = cpuFrequency.unsupported({ hasTracepoint: () => false, exists: () => true });
  assert.match(noTp!, /cpu_frequency tracepoint/);
});
