/**
 * Which parts of the one BPF object a recording loads: the core (rings, drop
 * counters, the process lifecycle) and the programs and maps of the recorders
 * that are on. Every other program stays unloaded and every other recorder's
 * map uncreated, so a recorder that is off costs the kernel nothing.
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
import { PROCESS_PROGRAMS } from "../processes/process_records.ts";
import type { Recorder } from "../recorders/recorder.ts";

/** Maps every recording creates, whichever recorders are on (bpf/common.bpf.h). */
export const CORE_MAPS = [
  "rings",
  "drops",
  "unreported",
  "switch_clock",
  "stage",
  "traced_tasks",
  // Kept by the process lifecycle programs, read by stack walks (bpf/python.bpf.h).
  "py_procs",
  "py_execs",
  "py_exes",
] as const;

/** Programs every recording loads besides the process lifecycle's (bpf/common.bpf.h). */
export const CORE_PROGRAMS = ["flush_staged"] as const;

/**
 * The programs to load and the maps to leave out, for the recorders ON out of ALL and the
 * core's EXTRA programs (the filter's).
 */
export function bpfSelection(
  on: readonly Recorder[],
  all: readonly Recorder[],
  extra: readonly string[] = [],
): { programs: Set<string>; dropMaps: string[] } {
  const programs = new Set<string>([...PROCESS_PROGRAMS, ...CORE_PROGRAMS, ...extra]);
  for (const r of on) {
    for (const p of [...r.bpf.programs, ...r.bpf.ownPrograms ?? []]) programs.add(p);
  }
  const wanted = new Set<string>([...CORE_MAPS, ...on.flatMap((r) => r.bpf.maps)]);
  const dropMaps = [...new Set(all.flatMap((r) => r.bpf.maps))].filter((m) => !wanted.has(m));
  return { programs, dropMaps };
}

export function selectBpf(
  obj: BpfObject,
  on: readonly Recorder[],
  all: readonly Recorder[],
  extra: readonly string[] = [],
): void {
  const { programs, dropMaps } = bpfSelection(on, all, extra);
  obj.keepOnly(programs, dropMaps);
}
