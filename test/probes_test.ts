/**
 * --trace-event: uprobes, uretprobes, USDT probes (a semaphore-guarded one too), tracepoints
 * and kernel functions on a C program that fires each a known number of times, counted in the
 * trace on the right thread with the right values; processes started after attach are covered
 * and --trace-event-pid limits user probes; a spec that cannot work is one line and no file.
 */
import assert from "node:assert/strict";
import type { InstantView, StackSampleView, TraceView } from "./trace_reader.ts";
import { readTrace } from "./trace_reader.ts";
import {
  assertTraceChecks,
  compileC,
  GatedWorkload,
  Recorder,
  recordWhile,
  runRecorder,
  withTempDir,
} from "./workload.ts";

const COUNT = 500;

interface Fired {
  pid: number;
  tid: number;
  count: number;
  guarded: number;
  sum: number;
}

/** probe_target, waiting for the word to go: its landmarks fire only once a tracer is attached. */
class Target extends GatedWorkload<Fired> {
  constructor(bin: string) {
    super(bin, [String(COUNT)]);
  }
}

const withDir = <T>(fn: (dir: string) => Promise<T>) => withTempDir("systing-probes-", fn);

/** Records while TARGET fires with the event config CONFIG. */
async function recordConfig(dir: string, config: unknown, target: Target) {
  await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
  return await recordFiring(dir, ["--trace-event-config", `${dir}/c.json`], [target]);
}

/** FN with a temp dir, probe_target compiled and one gated target of it (closed after). */
const withTarget = (fn: (dir: string, bin: string, target: Target) => Promise<void>) =>
  withDir(async (dir) => {
    const bin = await compileC("probe_target");
    const target = new Target(bin);
    try {
      await fn(dir, bin, target);
    } finally {
      await target.close();
    }
  });

/** The instants of event NAME fired by thread TID. */
function fired(view: TraceView, name: string, tid: number): InstantView[] {
  return view.instants.filter((i) => {
    const t = view.tracks.get(i.track);
    return i.name === name && t?.name === name && t.thread?.tid === tid;
  });
}

/** Records with ARGS while TARGETS fire (released once attached), returns the trace and them. */
function recordFiring(
  dir: string,
  args: string[],
  targets: Target[],
  started: () => Promise<Target[]> = () => Promise.resolve([]),
) {
  return recordWhile(`${dir}/t.pb`, ["-n", "--no-irq", ...args], async () => {
    const later = await started();
    return await Promise.all([...targets, ...later].map((t) => t.go()));
  });
}

Deno.test("probes: uprobe, uretprobe, USDT (guarded too) and a tracepoint, each exactly as often as fired", () =>
  withTarget(async (dir, bin, target) => {
    const ev = {
      up: `uprobe:${bin}:probe_target_double`,
      ret: `uretprobe:${bin}:probe_target_double`,
      tick: `usdt:${bin}:systing:tick`,
      guarded: `usdt:${bin}:systing:guarded`,
      tp: "tracepoint:syscalls:sys_enter_getppid",
    };
    const { view, results } = await recordFiring(
      dir,
      Object.values(ev).flatMap((e) => ["--trace-event", e]),
      [target],
    );
    const r = results[0];
    assert.equal(r.count, COUNT);
    assert.equal(r.guarded, COUNT, "the semaphore let the guarded probe fire while attached");
    const up = fired(view, ev.up, r.tid);
    assert.equal(up.length, COUNT);
    const ret = fired(view, ev.ret, r.tid);
    assert.equal(ret.length, COUNT);
    assert.deepEqual(
      ret.map((i) => Number(i.args.ret)).sort((a, b) => a - b),
      Array.from({ length: COUNT }, (_, i) => 2 * i),
      "every return value, 2i",
    );
    const tick = fired(view, ev.tick, r.tid);
    assert.equal(tick.length, COUNT);
    for (const t of tick) assert.equal(Number(t.args.arg1), 3 * Number(t.args.arg0));
    assert.deepEqual(
      tick.map((t) => Number(t.args.arg0)).sort((a, b) => a - b),
      Array.from({ length: COUNT }, (_, i) => i),
    );
    assert.equal(fired(view, ev.guarded, r.tid).length, COUNT);
    const tp = fired(view, ev.tp, r.tid);
    assert.equal(tp.length, COUNT);
    // The tracepoint's own field, decoded by its format.
    assert.ok(tp.every((i) => Number(i.args.__syscall_nr) === 110), "__syscall_nr is getppid's");
    // Each fires between the uprobe and the return of its call: on the same thread, in order.
    const first = (xs: InstantView[]) => xs.reduce((m, x) => (x.ts < m ? x.ts : m), xs[0].ts);
    assert.ok(first(up) <= first(ret));
  }));

Deno.test("probes: a process started after attach is covered; --trace-event-pid keeps to its processes", () =>
  withDir(async (dir) => {
    const bin = await compileC("probe_target");
    const chosen = new Target(bin), other = new Target(bin);
    let later: Target | undefined;
    try {
      const ev = `uprobe:${bin}:probe_target_double`;
      // Every process: one started before attach and one after.
      const all = await recordFiring(dir, ["--trace-event", ev], [chosen], () => {
        later = new Target(bin);
        return Promise.resolve([later]);
      });
      for (const r of all.results) assert.equal(fired(all.view, ev, r.tid).length, COUNT);

      const a = new Target(bin), b = new Target(bin);
      try {
        const limited = await recordFiring(
          dir,
          ["--trace-event", ev, "--trace-event-pid", String(a.pid), "-v"],
          [a, b],
        );
        const [ra, rb] = limited.results;
        assert.equal(fired(limited.view, ev, ra.tid).length, COUNT, "the chosen process");
        assert.equal(fired(limited.view, ev, rb.tid).length, 0, "not the other");
        assert.match(limited.stderr, new RegExp(`pids ${a.pid}`));
      } finally {
        await a.close();
        await b.close();
      }
    } finally {
      await chosen.close();
      await other.close();
      await later?.close();
    }
  }));

Deno.test("probes: kprobe: goes through fentry, or says plainly why this kernel cannot", () =>
  withTarget(async (dir, _bin, target) => {
    const ev = "kprobe:__do_sys_getppid";
    const trace = `${dir}/t.pb`;
    const rec = await Recorder.start(["-n", "-o", trace, "--trace-event", ev]).catch((e) => e);
    if (rec instanceof Error) {
      // This kernel has no kprobes and refuses fentry programs: one clear line, no file.
      assert.match(
        rec.message,
        /systing: loading the BPF object into the kernel failed: --trace-event kprobe:__do_sys_getppid: this kernel has no kprobes, and refused the fentry\/fexit program/,
      );
      assert.ok(!(await Deno.stat(trace).catch(() => undefined)), "no file");
      return;
    }
    try {
      const r = await target.go();
      const exit = await rec.stop();
      assert.equal(exit.code, 0, exit.stderr);
      const view = await readTrace(trace);
      assert.equal(fired(view, ev, r.tid).length, COUNT);
    } finally {
      await rec.close();
    }
  }));

Deno.test("probes: a spec that cannot work is one line naming it, a non-zero exit and no file", () =>
  withDir(async (dir) => {
    const bin = await compileC("probe_target");
    const trace = `${dir}/t.pb`;
    const cases: [string[], RegExp][] = [
      [["--trace-event", "nonsense"], /unknown probe kind ""/],
      [["--trace-event", "kprobes:vfs_read"], /unknown probe kind "kprobes": give one of usdt/],
      [["--trace-event", "uprobe:/bin/true"], /give uprobe:PATH:FUNCTION\[\+OFFSET\]/],
      [["--trace-event", "uprobe::main"], /give uprobe:PATH:FUNCTION/],
      [["--trace-event", `uprobe:${bin}:main+zz`], /offset "zz" is not a number/],
      [["--trace-event", `uretprobe:${bin}:0x1000`], /a uretprobe needs a function name/],
      [["--trace-event", `uretprobe:${bin}:main+8`], /attaches to a function, not inside/],
      [["--trace-event", `uprobe:${bin}:no-such fn`], /is not a symbol name/],
      [["--trace-event", `usdt:${bin}:systing`], /give usdt:PATH:PROVIDER:NAME/],
      [["--trace-event", `usdt:${bin}:sys-ting:tick`], /provider "sys-ting" is not a name/],
      [["--trace-event", "tracepoint:syscalls"], /give tracepoint:CATEGORY:NAME/],
      [["--trace-event", "tracepoint:nosuch:event"], /no tracepoint nosuch:event/],
      [["--trace-event", "kprobe:vfs_read+4"], /drop the \+OFFSET/],
      [["--trace-event", `uprobe:${bin}:main(int x)`], /argument 1 "int x": give TYPE NAME/],
      [["--trace-event", `uprobe:${bin}:main(retval r)`], /retval needs a return probe/],
      [["--trace-event", "tracepoint:sched:sched_switch(long x)"], /carries its own fields/],
      [["--trace-event", "kprobe:no_such_function_at_all"], /BTF has no function/],
      [["--trace-event", "kprobe:getppid"], /close matches: .*__do_sys_getppid/],
      [["--trace-event", `uprobe:${dir}/missing:main`], /is not a file/],
      [["--trace-event", "uprobe:libnosuch.so.9:main"], /no library libnosuch\.so\.9 where/],
      [
        ["--trace-event", "uprobe:/bin/true:main", "--trace-event", "uprobe:/bin/true:main"],
        /given twice/,
      ],
      [["--trace-event-pid", "1"], /--trace-event-pid applies to probes, which is off/],
      [
        ["--trace-event", "tracepoint:sched:sched_switch", "--trace-event-pid", "x"],
        /invalid --trace-event-pid "x"/,
      ],
      [
        ["--trace-event", "tracepoint:sched:sched_switch", "--trace-event-pid", "4194303"],
        /--trace-event-pid 4194303: no such process/,
      ],
      [["--only-recorder", "probes"], /needs at least one --trace-event/],
    ];
    for (const [args, message] of cases) {
      const r = await runRecorder(["-d", "1", "-o", trace, ...args]);
      assert.notEqual(r.code, 0, args.join(" "));
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(lines[0], message, args.join(" "));
      assert.ok(!(await Deno.stat(trace).catch(() => undefined)), `${args.join(" ")}: no file`);
    }
  }));

Deno.test("probes config: ranges pair their events exactly, ends without a start are counted, open ones end with the trace", () =>
  withTarget(async (dir, bin, target) => {
    const config = {
      events: [
        {
          name: "in",
          event: `uprobe:${bin}:probe_target_double`,
          args: [{ arg_index: 0, arg_type: "long", arg_name: "x" }],
        },
        {
          name: "out",
          event: `uretprobe:${bin}:probe_target_double`,
          args: [{ arg_type: "retval", arg_name: "doubled" }],
        },
        { name: "tick", event: `usdt:${bin}:systing:tick` },
        { name: "done", event: `uretprobe:${bin}:main` },
      ],
      tracks: [
        {
          track_name: "work",
          ranges: [
            { name: "doubling", start: "in", end: "out" },
            // Its first end comes before any start: counted, dropped.
            { name: "between", start: "out", end: "in" },
          ],
        },
        // Ticks nest 8 deep at most, and main's return (not seen: see below) closes none.
        { track_name: "ticks", ranges: [{ name: "ticking", start: "tick", end: "done" }] },
        { track_name: "marks", instants: [{ event: "in" }, { event: "out" }] },
      ],
    };
    const { view, results, stderr } = await recordConfig(dir, config, target);
    const r = results[0];
    const on = (track: string, name: string) =>
      view.slices.filter((s) => {
        const t = view.tracks.get(s.track);
        return s.name === name && t?.name === track && t.thread?.tid === r.tid;
      });
    const marks = (name: string) =>
      view.instants.filter((i) => i.name === name && view.tracks.get(i.track)?.name === "marks")
        .map((i) => i.ts).sort((a, b) => (a < b ? -1 : 1));
    const ins = marks("in"), outs = marks("out");
    assert.equal(ins.length, COUNT);
    assert.equal(outs.length, COUNT);
    // Each slice runs exactly from its call's entry to its return.
    const doubling = on("work", "doubling").sort((a, b) => (a.begin < b.begin ? -1 : 1));
    assert.equal(doubling.length, COUNT);
    doubling.forEach((s, i) => {
      assert.equal(s.begin, ins[i], `slice ${i} begins at its entry`);
      assert.equal(s.end, outs[i], `slice ${i} ends at its return`);
      // The start event's argument and the end event's return value, on the slice.
      assert.equal(Number(s.args.doubled), 2 * Number(s.args.x), `slice ${i}'s arguments`);
    });
    assert.deepEqual(
      doubling.map((s) => Number(s.args.x)),
      Array.from({ length: COUNT }, (_, i) => i),
    );
    // From each return to the next call: the last return's is still open at the stop.
    const between = on("work", "between");
    const unfinished = (xs: typeof between) =>
      xs.filter((s) => s.args.unfinished === 1n || s.args.unfinished === 1).length;
    assert.equal(between.length, COUNT);
    assert.equal(unfinished(between), 1);
    assert.match(stderr, /between: 1 ends without a start dropped, 0 starts/);
    // 8 ticks open (the rest have no room: counted). main was entered before attach, so its
    // return is never seen (a uretprobe catches only calls made after it): all 8 reach the
    // end of the trace, marked, with the last "between".
    const ticking = on("ticks", "ticking");
    assert.equal(ticking.length, 8);
    assert.equal(unfinished(ticking), 8);
    assert.match(stderr, /9 still open at the end/);
    assert.match(
      stderr,
      new RegExp(`ticking: 0 ends without a start dropped, ${COUNT - 8} starts`),
    );
  }));

Deno.test("probes config: a range over its threshold, or a stop instant, ends the recording there", () =>
  withDir(async (dir) => {
    const bin = await compileC("probe_target");
    for (const trigger of ["threshold", "instant"]) {
      const target = new Target(bin);
      try {
        const config = {
          events: [
            { name: "in", event: `uprobe:${bin}:probe_target_double` },
            { name: "out", event: `uretprobe:${bin}:probe_target_double` },
          ],
          tracks: [{ track_name: "work", ranges: [{ name: "doubling", start: "in", end: "out" }] }],
          stop_triggers: trigger === "threshold"
            ? { thresholds: [{ start: "in", end: "out", duration_us: 1 }] }
            : { instants: [{ event: "out" }] },
        };
        await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
        const trace = `${dir}/t.pb`;
        // No duration: only the trigger can end it (the test's deadline turns a miss into a failure).
        const rec = await Recorder.start([
          "-n",
          "-o",
          trace,
          "--trace-event-config",
          `${dir}/c.json`,
        ]);
        try {
          await target.go();
          const exit = await rec.wait();
          assert.equal(exit.code, 0, exit.stderr);
          assert.match(
            exit.stderr,
            trigger === "threshold"
              ? /stopping: range doubling lasted \d+ µs, over its 1 µs stop threshold/
              : /stopping: stop trigger out fired/,
          );
          await assertTraceChecks(trace);
        } finally {
          await rec.close();
        }
      } finally {
        await target.close();
      }
    }
  }));

Deno.test("probes config: \"stack\": true records each firing's stack, a uprobe's user stack and a tracepoint's kernel and user stack", () =>
  withTarget(async (dir, bin, target) => {
    const config = {
      events: [
        { name: "doubled", event: `uprobe:${bin}:probe_target_double`, stack: true },
        { name: "ppid", event: "tracepoint:syscalls:sys_enter_getppid", stack: true },
      ],
    };
    const { view, results, stderr } = await recordConfig(dir, config, target);
    const r = results[0];
    const stacks = (name: string) =>
      view.stackSamples.filter((s) => s.source === `probe.${name}` && s.tid === r.tid);
    const names = (s: StackSampleView) => s.frames.map((f) => f.name);

    // One stack per firing, at the firing's time, under the firing thread.
    const doubled = stacks("doubled");
    assert.equal(doubled.length, COUNT);
    assert.deepEqual(
      doubled.map((s) => s.ts).sort(),
      fired(view, "doubled", r.tid).map((i) => i.ts).sort(),
      "each stack at its instant's time",
    );
    for (const s of doubled) {
      assert.equal(s.mode, 1, "a uprobe interrupted user code");
      assert.equal(s.weight, 1n);
      // Leaf last: the probed function, called from main; no kernel frames (the trap's).
      const n = names(s);
      assert.equal(n.at(-1), "probe_target_double", n.join(" > "));
      assert.equal(n.at(-2), "main", n.join(" > "));
      assert.ok(s.frames.every((f) => !f.mappingPath.includes("kernel")), n.join(" > "));
    }

    const ppid = stacks("ppid");
    assert.equal(ppid.length, COUNT);
    for (const s of ppid) {
      const n = names(s);
      // The kernel path of the system call (the tracing machinery above it trimmed), under
      // the user code that made it.
      assert.ok(n.includes("main"), n.join(" > "));
      assert.ok(n.some((f) => /do_syscall_64|entry_SYSCALL_64/.test(f)), n.join(" > "));
      assert.ok(!n.some((f) => /^bpf_prog_|^bpf_trace_run/.test(f)), n.join(" > "));
      assert.ok(
        n.indexOf("main") < n.findIndex((f) => /do_syscall_64/.test(f)),
        "user, then kernel",
      );
    }
    const seq = [...view.stackSequences.values()].find((q) => q.source === "probe.ppid");
    assert.equal(seq?.counterName, "ppid hits");
    assert.equal(seq?.unit, 9, "weights count firings");
    assert.match(stderr, new RegExp(`${2 * COUNT} probe stacks`));
  }));

Deno.test("probes: a --trace-event spec's argument list names what it records, strings too", () =>
  withTarget(async (dir, bin, target) => {
    const ev = {
      name: `uprobe:${bin}:probe_target_name`,
      ret: `uretprobe:${bin}:probe_target_double`,
      tick: `usdt:${bin}:systing:tick`,
    };
    const { view, results } = await recordFiring(dir, [
      "--trace-event",
      `${ev.name}(string label, long n)`,
      "--trace-event",
      `${ev.ret}(retval doubled)`,
      "--trace-event",
      `${ev.tick}(_, long triple)`,
    ], [target]);
    const r = results[0];
    // The track keeps the spec's name; the list only says what each instant carries.
    const named = fired(view, ev.name, r.tid);
    assert.equal(named.length, COUNT);
    for (const i of named) assert.equal(i.args.label, `item-${i.args.n}`);
    assert.deepEqual(
      named.map((i) => Number(i.args.n)).sort((a, b) => a - b),
      Array.from({ length: COUNT }, (_, i) => i),
    );
    const ret = fired(view, ev.ret, r.tid);
    assert.equal(ret.length, COUNT);
    assert.equal(ret.reduce((n, i) => n + Number(i.args.doubled), 0), COUNT * (COUNT - 1));
    const tick = fired(view, ev.tick, r.tid);
    assert.equal(tick.length, COUNT);
    // Only the second argument, under its name: the first was skipped.
    for (const t of tick) assert.deepEqual(Object.keys(t.args), ["triple"]);
    assert.equal(
      tick.reduce((n, t) => n + Number(t.args.triple), 0),
      (3 * COUNT * (COUNT - 1)) / 2,
    );
  }));

Deno.test("probes config: process-scope ranges sit under the process's own track, CPU-scope instants on one track per CPU", () =>
  withTarget(async (dir, bin, target) => {
    const config = {
      events: [
        { name: "in", event: `uprobe:${bin}:probe_target_double`, scope: "process" },
        { name: "out", event: `uretprobe:${bin}:probe_target_double`, scope: "process" },
        { name: "tick", event: `usdt:${bin}:systing:tick`, scope: "cpu" },
      ],
      tracks: [
        {
          track_name: "work",
          ranges: [
            { name: "doubling", start: "in", end: "out" },
            { name: "between", start: "out", end: "in" },
          ],
        },
        { track_name: "ticks", instants: [{ event: "tick" }] },
      ],
    };
    const { view, results } = await recordConfig(dir, config, target);
    const r = results[0];
    const parentOf = (uuid: bigint) => view.tracks.get(view.tracks.get(uuid)!.parent!);
    const on = (name: string) => view.slices.filter((s) => s.name === name);
    const doubling = on("doubling"), between = on("between");
    assert.equal(doubling.length, COUNT);
    // The last "between" is still open at the stop: closed there, on the same track.
    assert.equal(between.length, COUNT);
    for (const s of [...doubling, ...between]) {
      const t = view.tracks.get(s.track)!;
      assert.equal(t.name, "work");
      assert.equal(t.thread, undefined, "not a thread's track");
      assert.equal(parentOf(s.track)?.process, r.pid, "under the process's own track");
    }
    assert.equal(new Set([...doubling, ...between].map((s) => s.track)).size, 1);
    const ticks = view.instants.filter((i) => i.name === "tick");
    assert.equal(ticks.length, COUNT);
    for (const i of ticks) {
      assert.match(view.tracks.get(i.track)!.name, /^ticks cpu\d+$/);
      assert.equal(parentOf(i.track)?.name, "ticks (per CPU)");
    }
  }));
