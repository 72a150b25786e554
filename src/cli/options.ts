/**
 * The command line: what it asks for (a recording, a list, help), checked
 * completely before anything is opened, so that every mistake is one line
 * naming the option, the value and the fix.
 */
import { parseArgs } from "node:util";
import {
  counterCatalog,
  counterProblem,
  type CounterSpec,
  resolveCounters,
} from "../recorders/counter_catalog.ts";
import type { Recorder, RecorderOptions } from "../recorders/recorder.ts";
import { RECORDERS } from "../recorders/registry.ts";
import { parseTraceEvent } from "../probes/probe_args.ts";
import { VERSION } from "../version.ts";
import { type Shell, SHELLS } from "./completions.ts";
import { chooseRecorders } from "./recorder_choice.ts";
import { SUBCOMMANDS } from "./subcommands.ts";

export class UsageError extends Error {
  override name = "UsageError";
}

const COMMANDS = SUBCOMMANDS.map((c) => `  systing ${c.usage}\n      ${c.summary}`).join("\n");

export const HELP = `systing ${VERSION} — record what this machine does into a Perfetto trace

Usage: systing [options]          record (see Options)
       systing [options] -- CMD [ARGS...]
                                  start CMD once recording, trace it and what it starts, stop
                                  when it exits, exit with its status
       systing COMMAND ...        work on a recorded trace (systing COMMAND --help)

Commands:
${COMMANDS}

Options:
  -d, --duration SECS        record for SECS seconds; 0 (default) records until Ctrl-C
  -o, --output PATH          trace file to write (default: trace.pb)
      --ringbuf-size-mib N   ring buffer per CPU in MiB, a power of two (default: 16)
      --compress             compress packets (zlib, read by Perfetto's UI and tools)
  -v, --verbose              more detail; repeat (-vv) for libbpf's debug log
  -h, --help                 show this help
  -V, --version              show the version
      --completions SHELL    print a completion script for bash, zsh or fish

Filters (the whole machine without them; the trace then keeps every context switch with a
traced side, the wake-ups of and by traced tasks, the interrupts of traced tasks, and the
stacks, system calls and probes of traced tasks only):
  -p, --pid PID              trace process PID, all its threads and every process it starts
                             (repeatable)
  -c, --cgroup PATH          trace every task in cgroup PATH and below it, including cgroups
                             created and tasks moved in later (repeatable; a v2 path, a v1
                             controller's, or as /proc/PID/cgroup shows it)
  -- CMD [ARGS...]           trace CMD and what it starts (with -p/-c: as well)

Recorders (see --list-recorders; on by default: sched, irq, cpu-stacks, sleep-stacks,
interruptible-stacks):
      --list-recorders       list every recorder, whether it is on by default and whether
                             this machine can run it
      --add-recorder NAME    turn recorder NAME on as well (repeatable)
      --only-recorder NAME   record with NAME only, the defaults off (repeatable)
      --no-sched             no context switches and wake-ups
      --no-irq               no interrupts
      --syscalls             every system call as a slice on its thread (--add-recorder syscalls)
      --cpu-frequency        each CPU's frequency (--add-recorder cpu-frequency)
      --perf-counter NAME    count a perf counter on every CPU (repeatable; a glob such as
                             '*faults' takes every match); turns perf-counters on
      --perf-counter-freq HZ how often every CPU's counters are read (default: 100); they
                             are also read at every CPU stack sample
      --list-perf-counters   list the counters this machine has

Probes (the probes recorder, on when --trace-event is given):
      --trace-event SPEC     an instant on a track of the firing thread each time SPEC fires
                             (repeatable): usdt:PATH:PROVIDER:NAME, uprobe:PATH:FUNC[+OFF],
                             uprobe:PATH:OFFSET, uretprobe:PATH:FUNC, tracepoint:CAT:NAME,
                             kprobe:FUNC, kretprobe:FUNC (fentry/fexit here: no kprobes). PATH
                             may be a library name (libc.so.6). USDT probes carry their
                             arguments, return probes the value, tracepoints their fields;
                             SPEC(TYPE NAME, ...) names them instead, by position (TYPE long,
                             string or retval; _ skips one): uprobe:libc.so.6:openat(_, string path)
      --trace-event-pid PID  user probes only in process PID (repeatable; default: every
                             process that maps the binary, started before or during the trace)
      --trace-event-config FILE
                             events, ranges (start/end pairs as slices), instants and stop
                             triggers from a JSON file (repeatable; see README)

Stacks:
      --sample-freq HZ       CPU stack samples per second on every CPU (default: 1000)
  -s, --sw-event             sample with the CPU clock even where a hardware PMU exists
  -n, --no-stack-traces      no stacks at all (cpu-stacks, sleep-stacks, interruptible-stacks off)
      --no-cpu-stack-traces  no CPU samples (cpu-stacks off)
      --no-sleep-stack-traces
                             no stacks of tasks going to sleep (sleep-stacks and
                             interruptible-stacks off)
      --no-interruptible-stack-traces
                             no stacks of tasks going to interruptible sleep (S)
      --user-stacks MODE     auto (default): copy the top of each user stack and unwind it
                             with the binaries' unwind tables, falling back to frame
                             pointers; fp: frame pointers only; dwarf: unwind tables only
      --user-stack-bytes N   user stack bytes copied per stack (default: 16384, max: 61440)
      --sleep-stacks-per-sec N
                             interruptible-sleep stacks per CPU per second before sleeps
                             are sampled, each sampled stack weighing for the sleeps it
                             stands for (default: 1000; 0: a stack for every sleep)
      --no-python-stacks     Python processes' stacks without their Python frames (by default
                             each Python frame replaces the interpreter's C frames that run it)

Examples:
  sudo systing --duration 10                  # 10 s of the whole machine into trace.pb
  sudo systing -o /tmp/boot.pb                # until Ctrl-C
  sudo systing -d 5 --syscalls                # add every system call
  sudo systing -d 5 --only-recorder syscalls  # system calls and nothing else
  sudo systing -d 5 --perf-counter context-switches --perf-counter '*faults'
  sudo systing -d 30 --ringbuf-size-mib 64    # bigger buffers for very busy hosts
  sudo systing -d 10 -n                       # scheduling and interrupts only, no stacks
  sudo systing -- make -j2                    # make and what it starts, while it runs
  sudo systing -d 10 -p 1234                  # process 1234 and its children only
  sudo systing -d 10 -c /sys/fs/cgroup/system.slice/nginx.service

Open the trace at https://ui.perfetto.dev (Open trace file).`;

export interface RecordingRequest {
  durationSec: number;
  /** `-- CMD ARGS…`: the command to start once attached; the recording ends when it does. */
  command?: string[];
  /** -p PIDs and -c cgroup paths, as given (checked for form, not yet resolved). */
  pids: number[];
  cgroups: string[];
  /** --trace-event specs (checked for form; resolved on the machine by main). */
  traceEvents: string[];
  /** --trace-event-config files (read and checked by main). */
  traceEventConfigs: string[];
  output: string;
  ringbufSizeMib: number;
  verbosity: number;
  compress: boolean;
  recorders: Recorder[];
  recorderOptions: RecorderOptions;
}

export type Request =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "list-recorders" }
  | { kind: "list-perf-counters" }
  | { kind: "completions"; shell: Shell }
  | { kind: "record"; options: RecordingRequest };

const VALUE_OPTIONS: Record<string, string> = {
  "-d": "--duration",
  "--duration": "--duration",
  "-o": "--output",
  "--output": "--output",
  "--ringbuf-size-mib": "--ringbuf-size-mib",
  "--sample-freq": "--sample-freq",
  "--user-stack-bytes": "--user-stack-bytes",
  "--sleep-stacks-per-sec": "--sleep-stacks-per-sec",
  "--perf-counter-freq": "--perf-counter-freq",
  "-p": "--pid",
  "--pid": "--pid",
  "--trace-event-pid": "--trace-event-pid",
  "--trace-event-config": "--trace-event-config",
};

/** `-d -1` is a value error, not a missing argument: join such values so validation names them. */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const long = VALUE_OPTIONS[args[i]];
    if (long && /^-\d/.test(args[i + 1] ?? "")) out.push(`${long}=${args[++i]}`);
    else out.push(args[i]);
  }
  return out;
}

function parse(args: string[]) {
  try {
    return parseArgs({
      args: joinNegativeValues(args),
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: "string", short: "d", default: "0" },
        pid: { type: "string", short: "p", multiple: true, default: [] },
        "trace-event": { type: "string", multiple: true, default: [] },
        "trace-event-pid": { type: "string", multiple: true, default: [] },
        "trace-event-config": { type: "string", multiple: true, default: [] },
        cgroup: { type: "string", short: "c", multiple: true, default: [] },
        output: { type: "string", short: "o", default: "trace.pb" },
        "ringbuf-size-mib": { type: "string", default: "16" },
        compress: { type: "boolean", default: false },
        "list-recorders": { type: "boolean", default: false },
        "add-recorder": { type: "string", multiple: true, default: [] },
        "only-recorder": { type: "string", multiple: true, default: [] },
        "no-sched": { type: "boolean", default: false },
        "no-irq": { type: "boolean", default: false },
        syscalls: { type: "boolean", default: false },
        "cpu-frequency": { type: "boolean", default: false },
        "perf-counter": { type: "string", multiple: true, default: [] },
        "perf-counter-freq": { type: "string" },
        "list-perf-counters": { type: "boolean", default: false },
        "sample-freq": { type: "string" },
        "sw-event": { type: "boolean", short: "s", default: false },
        "no-stack-traces": { type: "boolean", short: "n", default: false },
        "no-cpu-stack-traces": { type: "boolean", default: false },
        "no-sleep-stack-traces": { type: "boolean", default: false },
        "no-interruptible-stack-traces": { type: "boolean", default: false },
        "user-stacks": { type: "string" },
        "user-stack-bytes": { type: "string" },
        "sleep-stacks-per-sec": { type: "string" },
        "no-python-stacks": { type: "boolean", default: false },
        verbose: { type: "boolean", short: "v", multiple: true },
        help: { type: "boolean", short: "h" },
        completions: { type: "string" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (e) {
    // node:util's first sentence names the option; the rest is hint text.
    const first = (e as Error).message.split(/\.(?:\s|$)/)[0];
    throw new UsageError(`${first}; see --help`);
  }
}

function integer(
  flag: string,
  value: string,
  ok: (n: number) => boolean,
  what: string,
): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !ok(n)) {
    throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: ${what}`);
  }
  return n;
}

export function parseOptions(
  args: string[],
  resolve: (patterns: string[]) => CounterSpec[] = (p) =>
    resolveCounters(p, counterCatalog(), counterProblem),
): Request {
  // Everything after the first "--" is the command, never options.
  const dash = args.indexOf("--");
  const command = dash >= 0 ? args.slice(dash + 1) : undefined;
  if (command && command.length === 0) {
    throw new UsageError("-- needs a command after it: systing [options] -- CMD [ARGS...]");
  }
  const v = parse(dash >= 0 ? args.slice(0, dash) : args).values;
  if (v.help) return { kind: "help" };
  if (v.version) return { kind: "version" };
  if (v["list-recorders"]) return { kind: "list-recorders" };
  if (v["list-perf-counters"]) return { kind: "list-perf-counters" };
  if (v.completions !== undefined) {
    const shell = SHELLS.find((sh) => sh === v.completions);
    if (!shell) {
      throw new UsageError(
        `invalid --completions ${JSON.stringify(v.completions)}: give ${SHELLS.join(", ")}`,
      );
    }
    return { kind: "completions", shell };
  }
  const duration = Number(v.duration);
  if (!/^\s*\d+(\.\d+)?\s*$/.test(v.duration) || !Number.isFinite(duration)) {
    throw new UsageError(
      `invalid --duration ${
        JSON.stringify(v.duration)
      }: give seconds as a number ≥ 0 (0 = until Ctrl-C)`,
    );
  }
  const mib = Number(v["ringbuf-size-mib"]);
  if (!Number.isInteger(mib) || mib < 1 || mib > 1024 || (mib & (mib - 1)) !== 0) {
    throw new UsageError(
      `invalid --ringbuf-size-mib ${JSON.stringify(v["ringbuf-size-mib"])}: ` +
        "give a power of two between 1 and 1024",
    );
  }
  if (v.output === "") throw new UsageError("invalid --output: give a file path");
  const hz = integer(
    "--sample-freq",
    v["sample-freq"] ?? "1000",
    (n) => n >= 1 && n <= 100000,
    "give samples per second, 1 to 100000",
  );
  const mode = v["user-stacks"] ?? "auto";
  if (mode !== "auto" && mode !== "fp" && mode !== "dwarf") {
    throw new UsageError(`invalid --user-stacks ${JSON.stringify(mode)}: give auto, fp or dwarf`);
  }
  const copy = integer(
    "--user-stack-bytes",
    v["user-stack-bytes"] ?? "16384",
    (n) => n >= 512 && n <= 61440 && n % 8 === 0,
    "give a multiple of 8 from 512 to 61440",
  );
  const sleepStacks = integer(
    "--sleep-stacks-per-sec",
    v["sleep-stacks-per-sec"] ?? "1000",
    (n) => n >= 0 && n <= 10_000_000,
    "give stacks per second, 0 (every sleep) to 10000000",
  );
  const counterHz = integer(
    "--perf-counter-freq",
    v["perf-counter-freq"] ?? "100",
    (n) => n >= 1 && n <= 10000,
    "give reads per second, 1 to 10000",
  );

  const pids = v.pid.map((p) =>
    integer("--pid", p.trim(), (n) => n >= 1 && n <= 4194304, "give the id of a running process")
  );
  for (const c of v.cgroup) {
    if (c.trim() === "") throw new UsageError("invalid --cgroup: give a cgroup directory's path");
  }

  const stackRecorders = ["cpu-stacks", "sleep-stacks", "interruptible-stacks"];
  const flag = (set: boolean, name: string, names: string[]) => set ? [{ flag: name, names }] : [];
  const recorders = chooseRecorders({
    only: v["only-recorder"],
    add: v["add-recorder"],
    on: [
      ...flag(v.syscalls, "--syscalls", ["syscalls"]),
      ...flag(v["cpu-frequency"], "--cpu-frequency", ["cpu-frequency"]),
      ...flag(v["perf-counter"].length > 0, "--perf-counter", ["perf-counters"]),
      ...flag(v["trace-event"].length > 0, "--trace-event", ["probes"]),
      ...flag(v["trace-event-config"].length > 0, "--trace-event-config", ["probes"]),
    ],
    off: [
      ...flag(v["no-sched"], "--no-sched", ["sched"]),
      ...flag(v["no-irq"], "--no-irq", ["irq"]),
      ...flag(v["no-stack-traces"], "--no-stack-traces", stackRecorders),
      ...flag(v["no-cpu-stack-traces"], "--no-cpu-stack-traces", ["cpu-stacks"]),
      ...flag(v["no-sleep-stack-traces"], "--no-sleep-stack-traces", stackRecorders.slice(1)),
      ...flag(
        v["no-interruptible-stack-traces"],
        "--no-interruptible-stack-traces",
        ["interruptible-stacks"],
      ),
    ],
  }, RECORDERS);
  const on = new Set(recorders.map((r) => r.name));
  // A knob of a recorder that is off would silently do nothing.
  const needs = (given: boolean, option: string, names: string[]) => {
    if (given && !names.some((n) => on.has(n))) {
      throw new UsageError(
        `${option} applies to ${names.join(" or ")}, which ${names.length > 1 ? "are" : "is"} ` +
          "off: drop the option or turn the recorder on",
      );
    }
  };
  needs(v["sample-freq"] !== undefined, "--sample-freq", ["cpu-stacks"]);
  needs(v["sw-event"], "--sw-event", ["cpu-stacks"]);
  needs(v["user-stacks"] !== undefined, "--user-stacks", stackRecorders);
  needs(v["user-stack-bytes"] !== undefined, "--user-stack-bytes", stackRecorders);
  needs(v["no-python-stacks"], "--no-python-stacks", stackRecorders);
  needs(v["sleep-stacks-per-sec"] !== undefined, "--sleep-stacks-per-sec", [
    "interruptible-stacks",
  ]);
  needs(v["perf-counter-freq"] !== undefined, "--perf-counter-freq", ["perf-counters"]);
  needs(v["trace-event-pid"].length > 0, "--trace-event-pid", ["probes"]);
  if (on.has("probes") && !v["trace-event"].length && !v["trace-event-config"].length) {
    throw new UsageError(
      "the probes recorder needs at least one --trace-event SPEC or --trace-event-config FILE",
    );
  }
  for (const spec of v["trace-event"]) {
    try {
      parseTraceEvent(spec);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const probePids = v["trace-event-pid"].map((p) =>
    integer("--trace-event-pid", p.trim(), (n) => n >= 1 && n <= 4194304, "give a process id")
  );
  let perfCounters: CounterSpec[] = [];
  if (on.has("perf-counters")) {
    if (v["perf-counter"].length === 0) {
      throw new UsageError(
        "the perf-counters recorder needs at least one --perf-counter NAME or glob " +
          "(see --list-perf-counters)",
      );
    }
    try {
      perfCounters = resolve(v["perf-counter"]);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return {
    kind: "record",
    options: {
      durationSec: duration,
      ...command ? { command } : {},
      pids,
      cgroups: v.cgroup,
      traceEvents: v["trace-event"],
      traceEventConfigs: v["trace-event-config"],
      output: v.output,
      ringbufSizeMib: mib,
      verbosity: v.verbose?.length ?? 0,
      compress: v.compress,
      recorders,
      recorderOptions: {
        sampleFreq: hz,
        softwareEvent: v["sw-event"],
        userStacks: mode,
        userStackBytes: copy,
        sleepStacksPerSec: sleepStacks,
        pythonStacks: !v["no-python-stacks"],
        perfCounters,
        counterFreq: counterHz,
        probes: { events: [], ranges: [], tracks: [], pids: probePids },
      },
    },
  };
}
