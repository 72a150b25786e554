// The edges of a trace against ground truth (root, real BPF), each trace also held to every
// invariant the suite checks (trace_invariants.ts): what ran on each CPU when the
// recording began, checked against a spinner that logs every time it was switched out; which
// wake-ups came from interrupts.
import assert from "node:assert/strict";
import { readTrace as read, type TraceView } from "./trace_reader.ts";
import { assertTraceInvariants } from "./trace_invariants.ts";
import { assertTraceChecks, compileC, record, Recorder, runJson } from "./workload.ts";

/** Reads a trace and checks it against every invariant a trace must hold. */
async function readTrace(path: string): Promise<TraceView> {
  const view = await read(path);
  assertTraceInvariants(view);
  return view;
}

interface SpinLog {
  tid: number;
  cpu: number;
  start: number;
  end: number;
  /** [switched out, back] in CLOCK_BOOTTIME ns. */
  gaps: [number, number][];
  more_gaps: number;
}

/** Starts spin_logged on CPU; returns a function that stops it and gives its log. */
async function spinOn(cpu: number): Promise<() => Promise<SpinLog>> {
  const child = new Deno.Command(await compileC("spin_logged"), {
    args: [String(cpu), "fifo"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("ready\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`spin_logged ended before spinning: ${out}`);
    out += value;
  }
  return async () => {
    await child.stdin.close();
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    await child.stderr.cancel();
    assert.ok(status.success, `spin_logged exited ${status.code}`);
    return JSON.parse(out.slice(out.indexOf("\n") + 1)) as SpinLog;
  };
}

Deno.test("edges: the task running on each CPU when recording begins shows from the start", async () => {
  const cpu = navigator.hardwareConcurrency - 1;
  const stopSpin = await spinOn(cpu);
  const dir = await Deno.makeTempDir({ prefix: "systing-edges-" });
  let rec: Recorder | undefined;
  try {
    rec = await Recorder.start(["-n", "--no-irq", "-o", `${dir}/trace.pb`]);
    // Past a second: RT throttling then switches the FIFO spinner out at least once.
    await new Promise((r) => setTimeout(r, 1200));
    const exit = await rec.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const spin = await stopSpin();
    assert.equal(spin.more_gaps, 0);
    await assertTraceChecks(`${dir}/trace.pb`);
    const view = await readTrace(`${dir}/trace.pb`);
    const since = view.ftraceStats.length
      ? view.packets.find((p) => p.data.case === "ftraceStats")!.timestamp
      : 0n;
    const cpus = view.systemInfos[0].numCpus;
    // Every CPU: one full switch at the very start, to whatever ran there (idle included).
    const starts = new Map<number, number>();
    for (let c = 0; c < cpus; c++) {
      const full = (view.eventsByCpu.get(c) ?? []).filter((e) => e.event.case === "schedSwitch");
      assert.equal(full.length, 1, `full switches on cpu${c}`);
      assert.equal(full[0].ts, since, `cpu${c}'s first switch is at the start`);
      const sw = full[0].event.value as { nextPid: number; prevPid: number };
      assert.equal(sw.prevPid, 0);
      starts.set(c, sw.nextPid);
      // Nothing of the CPU comes before it.
      for (const s of view.switchesByCpu.get(c) ?? []) assert.ok(s.ts >= since);
    }
    // The spinner's own log says whether it was on its CPU at that instant.
    const t = Number(since);
    const running = spin.start < t && !spin.gaps.some(([a, b]) => a < t && t < b);
    if (!running) {
      assert.notEqual(starts.get(cpu), spin.tid, "the spinner was switched out at the start");
      return;
    }
    assert.equal(starts.get(cpu), spin.tid, "the spinner, running at the start, is named");
    // And it ran until its first switch out: the CPU's first switch happens in its first gap.
    const out = view.switchesByCpu.get(cpu)?.[0];
    const gap = spin.gaps.find(([, b]) => b > t);
    const last = view.switches.reduce((m, s) => (s.ts > m ? s.ts : m), since);
    if (!out) {
      assert.ok(!gap || gap[0] > Number(last), "no switch on its CPU, and it never left it");
      return;
    }
    assert.ok(gap, `the trace switches it out at ${out.ts}, its log never left the CPU`);
    assert.ok(
      gap[0] <= Number(out.ts) && Number(out.ts) <= gap[1],
      `switched out at ${out.ts}, its first gap after the start is [${gap[0]}, ${gap[1]}]`,
    );
  } finally {
    await rec?.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("edges: timer wake-ups are marked as from an interrupt, pipe wake-ups are not", async () => {
  const [sleeper, pingpong] = await Promise.all([compileC("timer_sleeper"), compileC("pingpong")]);
  const rec = await record(() =>
    Promise.all([
      runJson<{ tid: number; sleeps: number }>(sleeper, ["200"]),
      runJson<{ ping_tid: number; pong_tid: number }>(pingpong, ["--lockstep", "1000"]),
    ]), ["-n"]);
  try {
    assert.equal(rec.exit.code, 0, rec.exit.stderr);
    const view = await readTrace(rec.tracePath);
    const [sleep, pp] = rec.result;
    const irq = (w: { commonFlags: number }) => (w.commonFlags & (0x08 | 0x10)) !== 0;
    // Each 1 ms nanosleep ends in the hrtimer interrupt.
    const timer = view.wakings.filter((w) => w.pid === sleep.tid);
    assert.ok(timer.length >= 0.95 * sleep.sleeps, `${timer.length} wake-ups of the sleeper`);
    const fromIrq = timer.filter(irq).length;
    assert.ok(fromIrq >= 0.95 * timer.length, `${fromIrq} of ${timer.length} from an interrupt`);
    // Each ping-pong wake-up is the other thread's write().
    const piped = view.wakings.filter((w) => w.pid === pp.ping_tid || w.pid === pp.pong_tid);
    assert.ok(piped.length >= 2 * 1000, `${piped.length} ping-pong wake-ups`);
    assert.deepEqual(piped.filter(irq).map((w) => `${w.ts}: ${w.commonFlags}`), []);
  } finally {
    await Deno.remove(rec.dir, { recursive: true });
  }
});

Deno.test("edges: a sleep stack weighs the time blocked, not the wait to run after the wake-up", async () => {
  const bin = await compileC("busy_sleeper");
  const cpu = navigator.hardwareConcurrency - 1;
  const rec = await record(
    () =>
      runJson<{ tid: number; sleeps: number; sleep_us: number }>(bin, [String(cpu), "100", "2000"]),
    ["--no-cpu-stack-traces"],
  );
  try {
    assert.equal(rec.exit.code, 0, rec.exit.stderr);
    const view = await readTrace(rec.tracePath);
    const { tid, sleeps, sleep_us } = rec.result;
    const sleepNs = BigInt(sleep_us * 1000);
    const samples = view.stackSamples.filter((s) =>
      s.tid === tid && s.source === "sleep.interruptible"
    );
    assert.ok(samples.length >= 0.9 * sleeps, `${samples.length} of ${sleeps} sleeps`);
    const ins = view.switches.filter((s) => s.nextPid === tid).map((s) => s.ts)
      .sort((a, b) => (a < b ? -1 : 1));
    let onTime = 0, waitedToRun = 0;
    for (const s of samples) {
      // Woken by its 2 ms timer: blocked 2 ms and a little (timer slack, interrupt latency).
      if (s.weight >= sleepNs && s.weight <= sleepNs + 1_000_000n) onTime++;
      // The hog then often held the CPU: it ran again much later than it was woken.
      const back = ins.find((t) => t > s.ts);
      if (back !== undefined && back - s.ts >= s.weight + 3_000_000n) waitedToRun++;
    }
    assert.ok(onTime >= 0.95 * samples.length, `${onTime} of ${samples.length} weigh ~2 ms`);
    assert.ok(waitedToRun >= 0.1 * samples.length, `${waitedToRun} waited ≥ 3 ms to run`);
  } finally {
    await Deno.remove(rec.dir, { recursive: true });
  }
});

Deno.test("edges: a storm of short sleeps is sampled, and the samples still weigh the time blocked", async () => {
  const bin = await compileC("pingpong");
  // The default budget, 1000 stacks a second per CPU: the ping-pong sleeps tens of thousands of
  // times a second on one CPU, so most of its sleeps go without a stack and the sampled ones
  // weigh for them. The estimate's spread is about sqrt(odds / sleeps): a few per cent here.
  const rec = await record(
    () =>
      runJson<{ ping_tid: number; pong_tid: number; round_trips: number }>(bin, [
        "--lockstep",
        "40000",
      ]),
    ["--no-cpu-stack-traces", "--sleep-stacks-per-sec", "1000"],
  );
  try {
    assert.equal(rec.exit.code, 0, rec.exit.stderr);
    assert.match(rec.exit.stderr, /standing for \d+ more interruptible sleeps, sampled under load/);
    const view = await readTrace(rec.tracePath);
    const r = rec.result;
    for (const tid of [r.ping_tid, r.pong_tid]) {
      // The kernel's account, from the trace: each switch out in S to the wake-up that ends it.
      const outs = view.switches.filter((s) => s.prevPid === tid && (s.prevState & 1) !== 0)
        .map((s) => s.ts).sort((a, b) => (a < b ? -1 : 1));
      const wakes = view.wakings.filter((w) => w.pid === tid).map((w) => w.ts)
        .sort((a, b) => (a < b ? -1 : 1));
      let blocked = 0n, w = 0;
      for (const out of outs) {
        while (w < wakes.length && wakes[w] <= out) w++;
        if (w < wakes.length) blocked += wakes[w] - out;
      }
      const samples = view.stackSamples.filter((s) =>
        s.tid === tid && s.source === "sleep.interruptible"
      );
      const weighed = samples.reduce((n, s) => n + s.weight, 0n);
      assert.ok(outs.length >= 39000, `${outs.length} sleeps of ${tid}`);
      assert.ok(
        samples.length < outs.length / 4,
        `${samples.length} stacks for ${outs.length} sleeps: not sampled`,
      );
      // Unbiased in the odds, but a sampled sleep runs after a stack walk has cooled the caches, and
      // its partner answers a little later: measured 1.0-1.3x on a ping-pong, never the 2^k x.
      const ratio = Number(weighed) / Number(blocked);
      assert.ok(
        ratio > 0.7 && ratio < 1.5,
        `${tid}: stacks weigh ${weighed} ns for ${blocked} ns blocked (${samples.length} stacks)`,
      );
    }
  } finally {
    await Deno.remove(rec.dir, { recursive: true });
  }
});

Deno.test("edges: a reused pid is two threads and two processes, each ending at its exit", async () => {
  const bin = await compileC("pid_reuse");
  const rec = await record(() => runJson<{ pid: number; a: number; b: number }>(bin), ["-n"]);
  try {
    assert.equal(rec.exit.code, 0, rec.exit.stderr);
    const view = await readTrace(rec.tracePath);
    const pid = rec.result.a;
    assert.equal(rec.result.b, pid);
    const of = <K extends string>(kind: K) =>
      view.events.filter((e) =>
        e.event.case === kind && (e.event.value as { pid: number }).pid === pid
      )
        .sort((a, b) => (a.ts < b.ts ? -1 : 1));
    // The importer begins a thread at task_newtask (a process, without CLONE_THREAD) and ends it
    // at sched_process_free.
    const born = of("taskNewtask");
    const ended = of("schedProcessFree");
    const exits = of("schedProcessExit");
    assert.equal(born.length, 2, "two births of the pid");
    assert.equal(ended.length, 2, "two ends");
    for (const b of born) {
      const flags = (b.event.value as { cloneFlags: bigint }).cloneFlags;
      assert.equal(flags & 0x10000n, 0n, "a process, not a thread");
      assert.equal(b.pid, rec.result.pid, "born of the workload");
    }
    // One life after the other, each ending at its exit.
    assert.ok(born[0].ts < ended[0].ts && ended[0].ts < born[1].ts && born[1].ts < ended[1].ts);
    assert.deepEqual(ended.map((e) => e.ts), exits.map((e) => e.ts));
    // Each life has its own name.
    const renames = of("taskRename").map((e) => ({
      ts: e.ts,
      name: (e.event.value as { newcomm: string }).newcomm,
    }));
    const nameIn = (from: bigint, to: bigint) =>
      renames.filter((r) => r.ts > from && r.ts < to).map((r) => r.name);
    assert.deepEqual(nameIn(born[0].ts, ended[0].ts), ["reuse-a"]);
    assert.deepEqual(nameIn(born[1].ts, ended[1].ts), ["reuse-b"]);
  } finally {
    await Deno.remove(rec.dir, { recursive: true });
  }
});

Deno.test("edges: a D-state waiter behind a CPU hog weighs its time in D (±5 %), not its waits", async () => {
  const bin = await compileC("d_waiter");
  const waits = 200;
  const cpu = navigator.hardwareConcurrency - 1;
  const rec = await record(
    () =>
      runJson<{ tid: number; blocked_ns: number; delay_ns: number; start: number; end: number }>(
        bin,
        [String(cpu), String(waits)],
      ),
    ["--no-cpu-stack-traces"],
  );
  try {
    assert.equal(rec.exit.code, 0, rec.exit.stderr);
    const view = await readTrace(rec.tracePath);
    const r = rec.result;
    const inLoop = view.stackSamples.filter((s) =>
      s.tid === r.tid && s.source === "sleep.uninterruptible" &&
      Number(s.ts) >= r.start && Number(s.ts) <= r.end
    );
    // Said when it fails: whether the switches out in D were in the trace (the stacks lost)
    // or not (the kernel did not report them).
    const dOut = view.switches.filter((s) =>
      s.prevPid === r.tid && (s.prevState & 2) !== 0 && Number(s.ts) >= r.start &&
      Number(s.ts) <= r.end
    ).length;
    // Every vfork blocks its parent in D until the child, asleep for 1 ms, exits; and every
    // switch out in D has its stack.
    assert.ok(
      inLoop.length >= dOut && dOut >= waits,
      `${inLoop.length} D sleeps for ${waits} vforks; ${dOut} switches out in D; ` +
        `${/dropped: .*/.exec(rec.exit.stderr)?.[0]}`,
    );
    const weighed = inLoop.reduce((n, s) =>
      n + Number(s.weight), 0);
    // The kernel's account: the loop's time neither on the CPU nor waiting for it.
    const heaviest = inLoop.map((s) => s.weight).sort((a, b) => (a > b ? -1 : 1)).slice(0, 5);
    assert.ok(
      Math.abs(weighed - r.blocked_ns) <= 0.05 * r.blocked_ns,
      `D weight ${weighed} ns, the kernel's blocked time ${r.blocked_ns} ns (run delay ` +
        `${r.delay_ns} ns, ${inLoop.length} sleeps, heaviest ${heaviest.join(" ")}; ` +
        `${/dropped: .*/.exec(rec.exit.stderr)?.[0]})`,
    );
    // And the wait to run was real: from switch out to switch back in is much more.
    const ins = view.switches.filter((s) => s.nextPid === r.tid).map((s) => s.ts);
    const offCpu = inLoop.reduce((n, s) => {
      const back = ins.find((t) => t > s.ts);
      return back === undefined ? n : n + Number(back - s.ts);
    }, 0);
    assert.ok(
      r.delay_ns > 0.1 * r.blocked_ns && offCpu >= weighed + 0.5 * r.delay_ns,
      `off the CPU ${offCpu} ns in all, run delay ${r.delay_ns} ns`,
    );
  } finally {
    await Deno.remove(rec.dir, { recursive: true });
  }
});
