/**
 * cpu-frequency: each CPU's clock frequency as a counter track in Hz, from
 * cpufreq: the current value when recording starts (sysfs), then every
 * change the power:cpu_frequency tracepoint reports. A machine without a
 * cpufreq driver (most VMs) has nothing to report: the recorder says so and
 * the recording goes on without it.
 */
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { TrackEventWriter, trackUuid } from "../perfetto/track_event_writer.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import { Layout as L, RecordKind } from "../records/records.ts";
import type { DecoderScope, PacketSink, Recorder, RecorderContext, StartInfo } from "./recorder.ts";

const CPUFREQ = "/sys/devices/system/cpu";
const PARENT_TRACK = trackUuid("cpu-frequency");

export function frequencyTrack(cpu: number): bigint {
  return trackUuid(`cpu-frequency/cpu${cpu}`);
}

function decoders(scope: DecoderScope): DecoderTable {
  return {
    [RecordKind.CpuFrequency]: (mem, off, size, ts) => {
      if (size !== L.rec_cpu_frequency.size) return false;
      const w = off >> 2;
      scope.tracks.counter(ts, frequencyTrack(mem.u32[w + 4]), mem.u32[w + 5] * 1000);
      return true;
    },
  };
}

/** scaling_cur_freq of CPU in Hz, if cpufreq has it. */
function currentHz(cpu: number): number | undefined {
  try {
    const khz = Number(Deno.readTextFileSync(`${CPUFREQ}/cpu${cpu}/cpufreq/scaling_cur_freq`));
    return Number.isFinite(khz) && khz > 0 ? khz * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function session(ctx: RecorderContext) {
  return {
    started(out: PacketSink, at: StartInfo): void {
      const w = new TrackEventWriter(ctx.sequence(), new TimestampBase(at.ts));
      w.groupTrack(PARENT_TRACK, "CPU frequency");
      for (const cpu of ctx.cpus) {
        w.counterTrack({
          uuid: frequencyTrack(cpu),
          parent: PARENT_TRACK,
          name: `cpu${cpu} frequency`,
          unitName: "Hz",
        });
        const hz = currentHz(cpu);
        if (hz !== undefined) w.counter(0, frequencyTrack(cpu), hz);
      }
      out(w.take());
    },
  };
}

export const cpuFrequency: Recorder = {
  name: "cpu-frequency",
  description: "each CPU's clock frequency (Hz) from cpufreq, at start and at every change",
  defaultOn: false,
  bpf: { programs: ["on_cpu_frequency"], maps: [] },
  kinds: [RecordKind.CpuFrequency],
  unsupported: (m) => {
    if (!m.exists(`${CPUFREQ}/cpu0/cpufreq`)) {
      return `this machine has no cpufreq driver (${CPUFREQ}/cpu0/cpufreq does not exist)`;
    }
    return m.hasTracepoint("cpu_frequency")
      ? undefined
      : "this kernel has no power:cpu_frequency tracepoint";
  },
  decoders,
  start: session,
};
