/**
 * Every recorder systing has, in the order --list-recorders shows them and
 * the pipeline runs them. A new recorder is its own files plus one line here.
 */
import { cpuFrequency } from "./cpu_frequency.ts";
import { irq } from "./irq.ts";
import { markers } from "./markers.ts";
import { perfCounters } from "./perf_counters.ts";
import { probes } from "./probes.ts";
import type { Recorder } from "./recorder.ts";
import { sched } from "./sched.ts";
import { cpuStacks, interruptibleStacks, sleepStacks } from "./stacks.ts";
import { syscalls } from "./syscalls.ts";

export const RECORDERS: readonly Recorder[] = [
  sched,
  irq,
  cpuStacks,
  sleepStacks,
  interruptibleStacks,
  syscalls,
  perfCounters,
  cpuFrequency,
  probes,
  markers,
];

export function recorderNamed(name: string): Recorder | undefined {
  return RECORDERS.find((r) => r.name === name);
}
