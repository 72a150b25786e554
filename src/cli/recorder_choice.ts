/**
 * Which recorders a command line turns on: the defaults, or exactly those of
 * --only-recorder; plus --add-recorder and the flags that imply a recorder
 * (--syscalls, --perf-counter, --cpu-frequency); minus the flags that turn
 * one off (--no-sched, -n, …). Unknown names and contradictions are errors.
 */
import type { Recorder } from "../recorders/recorder.ts";

export class RecorderChoiceError extends Error {
  override name = "RecorderChoiceError";
}

/** A flag and the recorders it turns on or off. */
export interface RecorderFlag {
  flag: string;
  names: readonly string[];
}

export interface RecorderFlags {
  only: readonly string[];
  add: readonly string[];
  on: readonly RecorderFlag[];
  off: readonly RecorderFlag[];
}

export function chooseRecorders(flags: RecorderFlags, all: readonly Recorder[]): Recorder[] {
  const known = all.map((r) => r.name);
  const check = (name: string, flag: string) => {
    if (!known.includes(name)) {
      throw new RecorderChoiceError(
        `unknown recorder ${JSON.stringify(name)} in ${flag}; the recorders are ` +
          `${known.join(", ")} (see --list-recorders)`,
      );
    }
  };
  flags.only.forEach((n) => check(n, "--only-recorder"));
  flags.add.forEach((n) => check(n, "--add-recorder"));
  /** Each recorder asked for by name, with the flag that asked. */
  const asked = new Map<string, string>();
  for (const n of flags.only) asked.set(n, `--only-recorder ${n}`);
  for (const n of flags.add) asked.set(n, `--add-recorder ${n}`);
  for (const f of flags.on) for (const n of f.names) asked.set(n, f.flag);
  const on = new Set(flags.only.length ? [] : all.filter((r) => r.defaultOn).map((r) => r.name));
  for (const n of asked.keys()) on.add(n);
  for (const f of flags.off) {
    for (const n of f.names) {
      const by = asked.get(n);
      if (by) throw new RecorderChoiceError(`${f.flag} contradicts ${by}: choose one`);
      on.delete(n);
    }
  }
  if (on.size === 0) {
    throw new RecorderChoiceError(
      "every recorder is off, so there is nothing to record: leave one on, or add one with " +
        "--add-recorder (see --list-recorders)",
    );
  }
  return all.filter((r) => on.has(r.name));
}
