/**
 * Three recorders of stacks, sharing one StackSession (stack_session.ts):
 * - cpu-stacks: every CPU sampled at --sample-freq (kernel and user stacks);
 * - sleep-stacks: the stack of a task going to sleep uninterruptibly (D),
 *   weighed by how long it was blocked (until its wake-up);
 * - interruptible-stacks: the same for interruptible sleep (S).
 */
import { openSamplingEvents, type PerfEventSet } from "../ffi/perf_event.ts";
import { ConfigStackBit, Part, RecordKind } from "../records/records.ts";
import type { Machine, Recorder } from "./recorder.ts";
import { STACK_MAPS, stackDecoders, stackSession } from "./stack_session.ts";

function switchTracepoint(m: Machine): string | undefined {
  return m.hasTracepoint("sched_switch") ? undefined : "this kernel has no sched_switch tracepoint";
}

export const cpuStacks: Recorder = {
  name: "cpu-stacks",
  description: "kernel and user stacks of whatever runs, sampled on every CPU (--sample-freq)",
  defaultOn: true,
  bpf: {
    // Its part of the shared switch program (bpf/dispatch.bpf.c): who is switching in.
    programs: ["on_sched_switch"],
    ownPrograms: ["on_cpu_sample"],
    maps: [...STACK_MAPS, "current_task"],
  },
  kinds: [RecordKind.Stack, RecordKind.PyCode],
  unsupported: (m) =>
    m.exists("/proc/sys/kernel/perf_event_paranoid")
      ? switchTracepoint(m)
      : "this kernel has no perf events (CONFIG_PERF_EVENTS)",
  decoders: stackDecoders,
  start(ctx) {
    const shared = stackSession(ctx);
    let sampling: PerfEventSet | undefined;
    return {
      configure({ config }) {
        config.or("parts", Part.CurrentTask);
        const o = ctx.options;
        sampling = openSamplingEvents([...ctx.cpus], o.sampleFreq, {
          forceSoftware: o.softwareEvent,
        });
        shared.sampling = sampling;
        if (ctx.verbosity > 0) {
          ctx.log(
            `cpu samples: ${sampling.source} at ${o.sampleFreq} Hz` +
              (sampling.fallback ? ` (${sampling.fallback})` : ""),
          );
        }
      },
      attach(obj) {
        const events = sampling!.events.slice();
        for (const { fd } of events) {
          obj.attachPerfEvent("on_cpu_sample", fd);
          sampling!.release(fd); // the link owns it now
        }
        return [`on_cpu_sample ×${events.length}`];
      },
      close() {
        sampling?.close();
      },
    };
  },
};

/** sleep-stacks and interruptible-stacks: the same part of the programs, told which states by a bit. */
function sleepRecorder(name: string, description: string, bit: number): Recorder {
  return {
    name,
    description,
    defaultOn: true,
    bpf: {
      programs: ["on_sched_switch", "on_sched_waking"],
      maps: [...STACK_MAPS, "sleeping", "copy_budget", "sleep_sampling"],
    },
    kinds: [RecordKind.Stack, RecordKind.SleepEnd, RecordKind.PyCode],
    unsupported: switchTracepoint,
    decoders: stackDecoders,
    start(ctx) {
      stackSession(ctx);
      return {
        configure: ({ config }) => {
          config.or("parts", Part.Sleep);
          config.or("stack_bits", bit);
        },
      };
    },
  };
}

export const sleepStacks = sleepRecorder(
  "sleep-stacks",
  "stacks of tasks blocking in uninterruptible sleep (D), weighed by the time blocked",
  ConfigStackBit.SleepD,
);

export const interruptibleStacks = sleepRecorder(
  "interruptible-stacks",
  "stacks of tasks waiting in interruptible sleep (S), weighed by the time waited",
  ConfigStackBit.SleepS,
);
