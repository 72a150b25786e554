import assert from "node:assert/strict";
import type { CounterSpec } from "../recorders/counter_catalog.ts";
import { RECORDERS } from "../recorders/registry.ts";
import { parseOptions, type RecordingRequest, UsageError } from "./options.ts";
import { chooseRecorders, RecorderChoiceError } from "./recorder_choice.ts";

const fakeCounter = (name: string): CounterSpec => ({
  name,
  aliases: [],
  kind: "software",
  type: 1,
  config: 3n,
  config1: 0n,
  config2: 0n,
  scale: 1,
});
const resolve = (patterns: string[]) => patterns.map(fakeCounter);

function recording(args: string[]): RecordingRequest {
  const r = parseOptions(args, resolve);
  assert.equal(r.kind, "record");
  return (r as { options: RecordingRequest }).options;
}

const names = (args: string[]) => recording(args).recorders.map((r) => r.name);
const DEFAULTS = ["sched", "irq", "cpu-stacks", "sleep-stacks", "interruptible-stacks"];

Deno.test("options: the defaults, and flags that add or take away recorders", () => {
  assert.deepEqual(names([]), DEFAULTS);
  assert.deepEqual(names(["--syscalls"]), [...DEFAULTS, "syscalls"]);
  assert.deepEqual(names(["--add-recorder", "syscalls", "--add-recorder", "syscalls"]), [
    ...DEFAULTS,
    "syscalls",
  ]);
  assert.deepEqual(names(["--no-sched", "--no-irq"]), DEFAULTS.slice(2));
  assert.deepEqual(names(["-n"]), ["sched", "irq"]);
  assert.deepEqual(names(["--no-sleep-stack-traces"]), ["sched", "irq", "cpu-stacks"]);
  assert.deepEqual(names(["--no-interruptible-stack-traces"]), DEFAULTS.slice(0, 4));
  assert.deepEqual(names(["--only-recorder", "syscalls"]), ["syscalls"]);
  assert.deepEqual(names(["--only-recorder", "irq", "--only-recorder", "sched"]), ["sched", "irq"]);
  assert.deepEqual(names(["--only-recorder", "irq", "--syscalls"]), ["irq", "syscalls"]);
  assert.deepEqual(names(["--cpu-frequency", "-n"]), ["sched", "irq", "cpu-frequency"]);
  const o = recording(["--perf-counter", "cs", "--perf-counter", "faults"]);
  assert.deepEqual(o.recorders.map((r) => r.name), [...DEFAULTS, "perf-counters"]);
  assert.deepEqual(o.recorderOptions.perfCounters.map((c) => c.name), ["cs", "faults"]);
  assert.equal(o.recorderOptions.counterFreq, 100);
});

Deno.test("options: the lists and help are requests of their own", () => {
  assert.deepEqual(parseOptions(["--list-recorders"], resolve), { kind: "list-recorders" });
  assert.deepEqual(parseOptions(["--list-perf-counters"], resolve), {
    kind: "list-perf-counters",
  });
  assert.deepEqual(parseOptions(["-h"], resolve), { kind: "help" });
});

/** Every bad name and combination: a UsageError or RecorderChoiceError of one line. */
function bad(args: string[], ...parts: string[]) {
  let message = "";
  assert.throws(() => parseOptions(args, resolve), (e) => {
    message = (e as Error).message;
    return e instanceof UsageError || e instanceof RecorderChoiceError;
  }, args.join(" "));
  assert.ok(!message.includes("\n"), message);
  for (const p of parts) assert.ok(message.includes(p), `"${message}" lacks "${p}"`);
}

Deno.test("options: unknown recorder names list the valid ones", () => {
  const all = RECORDERS.map((r) => r.name).join(", ");
  bad(["--add-recorder", "schedule"], '"schedule"', "--add-recorder", all);
  bad(["--only-recorder", "stacks"], '"stacks"', "--only-recorder", all);
  bad(["--only-recorder", ""], '""');
});

Deno.test("options: contradictions and knobs of recorders that are off", () => {
  bad(["--only-recorder", "sched", "--no-sched"], "--no-sched contradicts --only-recorder sched");
  bad(["--add-recorder", "cpu-stacks", "-n"], "--no-stack-traces contradicts --add-recorder");
  bad(["--syscalls", "--only-recorder", "irq", "--no-irq"], "--no-irq contradicts");
  bad(["--no-sched", "--no-irq", "-n"], "every recorder is off");
  bad(["-n", "--sample-freq", "99"], "--sample-freq applies to cpu-stacks, which is off");
  bad(["--no-cpu-stack-traces", "-s"], "--sw-event applies to cpu-stacks");
  bad(["-n", "--user-stacks", "fp"], "--user-stacks applies to");
  bad(["--only-recorder", "syscalls", "--user-stack-bytes", "4096"], "--user-stack-bytes");
  bad(["--no-interruptible-stack-traces", "--sleep-stacks-per-sec", "10"], "applies to");
  bad(["--sleep-stacks-per-sec", "-1"], "--sleep-stacks-per-sec");
  bad(["--sleep-stacks-per-sec", "lots"], "--sleep-stacks-per-sec");
  bad(["--perf-counter-freq", "10"], "--perf-counter-freq applies to perf-counters");
  bad(["--add-recorder", "perf-counters"], "needs at least one --perf-counter");
  bad(["--perf-counter", "cs", "--perf-counter-freq", "0"], "--perf-counter-freq");
});

Deno.test("options: a counter the resolver refuses is a usage error with its message", () => {
  let message = "";
  assert.throws(
    () =>
      parseOptions(["--perf-counter", "cycles"], () => {
        throw new Error("cannot count cycles: no hardware PMU");
      }),
    (e) => {
      message = (e as Error).message;
      return e instanceof UsageError;
    },
  );
  assert.equal(message, "cannot count cycles: no hardware PMU");
});

Deno.test("recorder choice: --only-recorder starts from nothing, defaults do not sneak back", () => {
  const chosen = chooseRecorders({ only: ["syscalls"], add: [], on: [], off: [] }, RECORDERS);
  assert.deepEqual(chosen.map((r) => r.name), ["syscalls"]);
  // Turning off what --only-recorder already left out is no contradiction.
  const quiet = chooseRecorders({
    only: ["syscalls"],
    add: [],
    on: [],
    off: [{ flag: "--no-sched", names: ["sched"] }],
  }, RECORDERS);
  assert.deepEqual(quiet.map((r) => r.name), ["syscalls"]);
});

Deno.test("options: everything after -- is the command, options included", () => {
  assert.deepEqual(recording(["-d", "1", "--", "ls", "-l", "--", "-d"]).command, [
    "ls",
    "-l",
    "--",
    "-d",
  ]);
  assert.equal(recording(["-d", "1", "--", "ls"]).durationSec, 1);
  assert.equal(recording(["-d", "1"]).command, undefined);
  assert.throws(() => parseOptions(["-d", "1", "--"], resolve), UsageError);
});

Deno.test("options: -p and -c are repeatable; their form is checked before anything runs", () => {
  const r = recording(["-p", "12", "--pid", "34", "-c", "/sys/fs/cgroup/a", "--cgroup=b"]);
  assert.deepEqual(r.pids, [12, 34]);
  assert.deepEqual(r.cgroups, ["/sys/fs/cgroup/a", "b"]);
  assert.deepEqual(recording([]).pids, []);
  for (const bad of [["-p", "0"], ["-p", "abc"], ["-p", "-3"], ["-p", "1.5"], ["--pid="]]) {
    assert.throws(() => recording(bad), (e) => e instanceof UsageError && /--pid/.test(e.message));
  }
  assert.throws(() => recording(["-c", ""]), /invalid --cgroup/);
  assert.throws(() => recording(["-p"]), UsageError);
  // Contradictions of the command with the filters do not exist: they add up.
  const both = recording(["-p", "5", "--", "true"]);
  assert.deepEqual([both.pids, both.command], [[5], ["true"]]);
});
