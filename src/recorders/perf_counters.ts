/**
 * perf-counters: the counters --perf-counter names (see counter_catalog.ts),
 * counted on every CPU from the moment recording starts. BPF reads each
 * CPU's counters on that CPU at a fixed interval (--perf-counter-freq) and at
 * every CPU stack sample; each becomes a counter track per CPU, grouped under
 * one track per counter, with a last value read when recording stops.
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
import {
  type CounterReading,
  CountingEvents,
  openSamplingEvents,
  type PerfEventSet,
} from "../ffi/perf_event.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { CounterUnit, TrackEventWriter, trackUuid } from "../perfetto/track_event_writer.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import { Layout as L, MAX_COUNTERS, RecordKind } from "../records/records.ts";
import type { CounterSpec } from "./counter_catalog.ts";
import type {
  BpfSetup,
  DecoderScope,
  PacketSink,
  Recorder,
  RecorderContext,
  RecorderSession,
  StartInfo,
} from "./recorder.ts";

/** What the drain workers need: each counter's track per CPU, and how to scale its values. */
interface WorkerConfig {
  /** tracks[i][cpu]: the track of counter i on cpu (absent: not counted there). */
  tracks: (bigint | undefined)[][];
  scale: number[];
}

function cpuTrack(counter: string, cpu: number): bigint {
  return trackUuid(`perf-counters/${counter}/cpu${cpu}`);
}

/** value × enabled / running: what a multiplexed counter would have counted. */
export function scaledValue(r: CounterReading): { value: number; scaled: boolean } {
  const value = Number(r.value);
  if (r.running > 0n && r.running < r.enabled) {
    return { value: value * (Number(r.enabled) / Number(r.running)), scaled: true };
  }
  return { value, scaled: false };
}

function decoders(scope: DecoderScope, config: unknown): DecoderTable {
  const { tracks, scale: scales } = config as WorkerConfig;
  const t = scope.tracks;
  const V = L.counter_value;
  return {
    [RecordKind.Counters]: (mem, off, size, ts) => {
      if (size !== L.rec_counters.size) return false;
      const { u32 } = mem;
      const w = off >> 2;
      const cpu = u32[w + 4];
      const count = Math.min(u32[w + 5] & 0xffff, tracks.length, MAX_COUNTERS);
      const failed = u32[w + 6];
      for (let i = 0; i < count; i++) {
        const track = tracks[i][cpu];
        if (track === undefined) continue; // a PMU that does not count on this CPU
        if (failed & (1 << i)) {
          scope.problem("perf counter values BPF could not read");
          continue;
        }
        // u64 words as numbers: exact below 2^53 (counts, and ns for 104 days).
        const v = (off + L.rec_counters.values + i * V.size) >> 2;
        const value = u32[v + 1] * 4294967296 + u32[v];
        const enabled = u32[v + 3] * 4294967296 + u32[v + 2];
        const running = u32[v + 5] * 4294967296 + u32[v + 4];
        if (running > 0 && running < enabled) {
          t.counter(ts, track, value * (enabled / running) * scales[i], true);
        } else {
          t.counter(ts, track, value * scales[i], scales[i] !== 1);
        }
      }
      return true;
    },
  };
}

class PerfCountersSession implements RecorderSession {
  #ctx: RecorderContext;
  #specs: CounterSpec[];
  #events = new CountingEvents();
  /** Per counter: [cpu, index into #events]. */
  #opened: [number, number][][] = [];
  #ticks?: PerfEventSet;
  #totals: number[] = [];
  #scaled = false;
  /** Descriptors, first and last values: the main thread's own sequence. */
  #out: TrackEventWriter;

  constructor(ctx: RecorderContext) {
    this.#ctx = ctx;
    this.#specs = ctx.options.perfCounters;
    this.#out = new TrackEventWriter(ctx.sequence(), new TimestampBase(ctx.base));
  }

  configure({ obj, config }: BpfSetup): void {
    for (const spec of this.#specs) {
      const cpus = spec.cpus?.filter((c) => this.#ctx.cpus.includes(c)) ?? this.#ctx.cpus;
      this.#opened.push(cpus.map((cpu) => [
        cpu,
        this.#events.open(
          {
            type: spec.type,
            config: spec.config,
            config1: spec.config1,
            config2: spec.config2,
            bits: [],
          },
          cpu,
          spec.name,
        ),
      ]));
    }
    obj.setMaxEntries("counters", MAX_COUNTERS * obj.possibleCpus);
    config.set("counter_count", this.#specs.length);
    config.set("counter_stride", obj.possibleCpus);
    this.#ticks = openSamplingEvents([...this.#ctx.cpus], this.#ctx.options.counterFreq, {
      forceSoftware: true,
    });
  }

  workerConfig(): WorkerConfig {
    return {
      tracks: this.#specs.map((s, i) => {
        const row: (bigint | undefined)[] = [];
        for (const [cpu] of this.#opened[i]) row[cpu] = cpuTrack(s.name, cpu);
        return row;
      }),
      scale: this.#specs.map((s) => s.scale),
    };
  }

  attach(obj: BpfObject): string[] {
    const stride = obj.possibleCpus;
    this.#opened.forEach((events, i) => {
      for (const [cpu, e] of events) {
        obj.updateU32("counters", i * stride + cpu, this.#events.fd(e));
      }
    });
    this.#events.enable();
    const ticks = this.#ticks!.events.slice();
    for (const { fd } of ticks) {
      obj.attachPerfEvent("on_counters_tick", fd);
      this.#ticks!.release(fd);
    }
    return [`on_counters_tick ×${ticks.length}`];
  }

  started(out: PacketSink, at: StartInfo): void {
    const w = this.#out;
    const ts = Number(at.ts - this.#ctx.base);
    this.#specs.forEach((spec, i) => {
      const parent = trackUuid(`perf-counters/${spec.name}`);
      w.groupTrack(parent, spec.name);
      for (const [cpu] of this.#opened[i]) {
        w.counterTrack({
          uuid: cpuTrack(spec.name, cpu),
          parent,
          name: `${spec.name} cpu${cpu}`,
          unit: spec.unit ? undefined : CounterUnit.Count,
          unitName: spec.unit,
        });
        // Counting began with recording: every track starts at 0 there.
        w.counter(ts, cpuTrack(spec.name, cpu), 0);
      }
    });
    out(w.take());
  }

  finish(end: bigint, out: PacketSink): void {
    const w = this.#out;
    const ts = Number(end - this.#ctx.base);
    this.#specs.forEach((spec, i) => {
      let total = 0;
      for (const [cpu, e] of this.#opened[i]) {
        const { value, scaled } = scaledValue(this.#events.read(e));
        this.#scaled ||= scaled;
        total += value * spec.scale;
        w.counter(ts, cpuTrack(spec.name, cpu), value * spec.scale, scaled || spec.scale !== 1);
      }
      this.#totals[i] = total;
    });
    out(w.take());
  }

  summary(): string[] {
    if (this.#totals.length === 0) return [];
    const each = this.#specs.map((s, i) =>
      `${s.name} ${fmtValue(this.#totals[i])}${s.unit ? ` ${s.unit}` : ""}`
    );
    return [
      `perf counters: ${each.join(", ")}` +
      (this.#scaled ? " (some multiplexed: values scaled by enabled/running time)" : ""),
    ];
  }

  close(): void {
    this.#events.close();
    this.#ticks?.close();
  }
}

function fmtValue(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(6);
}

export const perfCounters: Recorder = {
  name: "perf-counters",
  description: "perf counters (--perf-counter NAME|GLOB) per CPU, at an interval and each sample",
  defaultOn: false,
  bpf: { programs: [], ownPrograms: ["on_counters_tick"], maps: ["counters"] },
  kinds: [RecordKind.Counters],
  unsupported: (m) =>
    m.exists("/proc/sys/kernel/perf_event_paranoid")
      ? undefined
      : "this kernel has no perf events (CONFIG_PERF_EVENTS)",
  decoders,
  start: (ctx) => new PerfCountersSession(ctx),
};
