// Integration tests of CPU-sampled stacks and sleep stacks: real BPF
// recordings (root) of C workloads with known call chains, checked through
// test/trace_reader.ts (which also refuses any interned id used before it is
// defined on its sequence). One recording of every workload at once serves
// most checks; two short ones cover -n and --no-interruptible-stack-traces.
import assert from "node:assert/strict";
import { type StackFrame, type StackSampleView, type TraceView } from "./trace_reader.ts";
import { compile, runJson } from "./workload.ts";
import { RecordingCache } from "./recording_cache.ts";

/** Not the default (1000 Hz): the weight of a CPU sample shows the option took effect. */
const FREQ = 800;
const PERIOD_NS = 1e9 / FREQ;
const SLEEP_MS = 1000;
const CHILDREN = 50;
const FP = ["-O0", "-fno-omit-frame-pointer"];

/** A spinning workload: its process CPU time and the spin's CLOCK_BOOTTIME ns (the trace's). */
interface Spin {
  pid: number;
  cpu_ns: number;
  start: number;
  end: number;
}

interface SleepStates {
  pid: number;
  vfork_tid: number;
  vfork_child: number;
  sleeper_tid: number;
  sleep_ms: number;
}

interface Workloads {
  migrate: { pid: number; tid: number; sleeps: number };
  spin: Spin;
  stripped: Spin;
  sleep: SleepStates;
  children: number[];
  cpp: Omit<Spin, "cpu_ns">;
}

async function binaries() {
  const [spin, stripped, sleep, children, cpp, migrate] = await Promise.all([
    compile("spin_stack.c", { flags: FP }),
    compile("spin_stack.c", { flags: [...FP, "-s"], output: "spin_stack_stripped" }),
    compile("sleep_states.c", { flags: FP }),
    compile("short_children.c", { flags: FP }),
    compile("cpp_work.cpp", { flags: FP }),
    compile("migrate_sleep.c"),
  ]);
  return { spin, stripped, sleep, children, cpp, migrate };
}

/** Every workload at once; the recorder must already be running. */
async function runWorkloads(): Promise<Workloads> {
  const bins = await binaries();
  const [spin, stripped, sleep, children, cpp, migrate] = await Promise.all([
    runJson<Spin>(bins.spin),
    runJson<Spin>(bins.stripped, ["500"]),
    runJson<SleepStates>(bins.sleep, [String(SLEEP_MS)]),
    runJson<{ children: number[] }>(bins.children, [String(CHILDREN), "20"]),
    runJson<Workloads["cpp"]>(bins.cpp, ["500"]),
    runJson<Workloads["migrate"]>(bins.migrate, ["1000"]),
  ]);
  return { spin, stripped, sleep, children: children.children, cpp, migrate };
}

const recordings = new RecordingCache(binaries);
const recording = <T>(extra: string[], workload: () => Promise<T>) =>
  recordings.get(extra, workload);

// A stack for every sleep: these tests hold each sleep's weight to its own wake-up, which a
// sampled stack (a sleeper past the default budget) stands in for others' (trace_edges_test).
const main = () =>
  recording(["-s", "--sample-freq", String(FREQ), "--sleep-stacks-per-sec", "0"], runWorkloads);

function test(name: string, fn: () => Promise<void>) {
  // No skip for non-root: these tests exist to load real BPF.
  Deno.test({ name: `stacks: ${name}`, fn });
}

/** Kernel frames carry the kernel address itself; user frames a module-relative one. */
function isKernel(f: StackFrame): boolean {
  return f.relPc >= 0xffff_8000_0000_0000n;
}

function names(s: StackSampleView): string[] {
  return s.frames.map((f) => f.name);
}

function show(s: StackSampleView): string {
  return `${s.source} ${s.pid}/${s.tid} w=${s.weight}: ${names(s).join(" > ")}`;
}

function fraction<T>(items: T[], pred: (t: T) => boolean): number {
  return items.length ? items.filter(pred).length / items.length : 0;
}

function onCpu(view: TraceView, pid: number): StackSampleView[] {
  return view.stackSamples.filter((s) => s.source === "on_cpu" && s.pid === pid);
}

/**
 * The CPU samples taken while W spun: what a check of the spinning code judges. Its start
 * (spawn, exec, the dynamic loader) and exit are on the CPU too, longer the busier the host.
 */
function spinning(view: TraceView, w: { pid: number; start: number; end: number }) {
  return onCpu(view, w.pid).filter((s) => Number(s.ts) >= w.start && Number(s.ts) <= w.end);
}

/** A few samples for a failure message. */
function sampleOf(samples: StackSampleView[], n = 5): string {
  return samples.slice(0, n).map(show).join("\n");
}

test("the trace has three stack sequences, declared on their first packets", async () => {
  const { view, rec } = await main();
  const seqs = [...view.stackSequences.values()].sort((a, b) => a.sequenceId - b.sequenceId);
  assert.deepEqual(seqs.map((s) => s.source).sort(), [
    "on_cpu",
    "sleep.interruptible",
    "sleep.uninterruptible",
  ]);
  assert.equal(new Set(seqs.map((s) => s.sequenceId)).size, 3);
  for (const s of seqs) {
    assert.equal(s.firstFlags, 3, `sequence ${s.sequenceId} first packet flags`);
    assert.equal(s.unit, 1, "weights in ns");
    const first = view.packets[s.firstPacketIndex];
    assert.equal(first.firstPacketOnSequence, true);
    assert.equal(first.data.case, "stackSample");
  }
  assert.equal(seqs.find((s) => s.source === "on_cpu")?.counterName, "cpu-clock");
  // -s is reported, and the summary counts what the trace holds.
  assert.match(rec.exit.stderr, /cpu-clock \(software events forced\)/);
  const m = rec.exit.stderr.match(/stacks: (\d+) CPU samples .*?, (\d+) sleep stacks/);
  assert.ok(m, `no stacks summary in:\n${rec.exit.stderr}`);
  const cpu = view.stackSamples.filter((s) => s.source === "on_cpu").length;
  assert.equal(Number(m[1]), cpu);
  assert.equal(Number(m[2]), view.stackSamples.length - cpu);
});

test("every sample is well formed: task, weight, frame order and names", async () => {
  const { view } = await main();
  assert.ok(view.stackSamples.length > 1000, `only ${view.stackSamples.length} samples`);
  const bad: string[] = [];
  for (const s of view.stackSamples) {
    const why = [];
    if (s.pid === 0 && s.tid === 0) why.push("pid 0 and tid 0");
    if (s.frames.length === 0) why.push("no frames");
    if (s.source === "on_cpu" && s.weight !== BigInt(PERIOD_NS)) why.push("cpu weight");
    if (s.source !== "on_cpu" && s.mode !== 2) why.push("sleep not kernel mode");
    // Root first: user frames, then kernel frames, never back.
    const firstKernel = s.frames.findIndex(isKernel);
    if (firstKernel >= 0 && s.frames.slice(firstKernel).some((f) => !isKernel(f))) {
      why.push("a user frame below a kernel frame");
    }
    if (s.source === "on_cpu" && s.mode === 1 && firstKernel >= 0) {
      why.push("kernel frames in a user-mode sample");
    }
    s.frames.forEach((f, i) => {
      if (f.name === "" || /^unknown$/i.test(f.name)) why.push(`frame ${i} unnamed`);
      if (f.name === "[truncated stack]" && i !== 0) why.push(`truncation marker at ${i}`);
    });
    if (why.length) bad.push(`${why.join(", ")}: ${show(s)}`);
  }
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} malformed samples`);
});

test("sleep stacks carry no tracing frames (bpf_prog_*, __bpf_trace_*, __traceiter_*)", async () => {
  const { view } = await main();
  const sleeps = view.stackSamples.filter((s) => s.source !== "on_cpu");
  assert.ok(sleeps.length > 10, `only ${sleeps.length} sleep samples`);
  const tracing = /^(bpf_prog_|__bpf_trace_|__traceiter_|bpf_trace_run)/;
  const bad = sleeps.filter((s) => s.frames.some((f) => tracing.test(f.name)));
  assert.equal(bad.length, 0, sampleOf(bad));
});

test("spin_stack: ≥ 90 % of its CPU samples while spinning are main → middle → leaf", async () => {
  const { view, rec } = await main();
  const { pid, cpu_ns } = rec.result.spin;
  const samples = onCpu(view, pid);
  // The sampling period shows in the count: one sample per period of its CPU time, or fewer
  // when the host takes the vCPU away (its CPU time goes on, missed timer ticks fold into one:
  // 0.52 of the count seen on a busy host), never more.
  const expected = (cpu_ns / 1e9) * FREQ;
  assert.ok(
    samples.length >= 0.4 * expected && samples.length <= 1.15 * expected,
    `${samples.length} samples for ${cpu_ns} ns of CPU at ${FREQ} Hz`,
  );
  const spun = spinning(view, rec.result.spin);
  const chain = (s: StackSampleView) => {
    const n = names(s);
    const at = n.indexOf("main");
    return at >= 0 && n.length === at + 3 && n[at + 1] === "middle" && n[at + 2] === "leaf" &&
      // Above main: libc's startup frames, under the program's own _start when the stack
      // copy was unwound to the outermost frame.
      s.frames.slice(0, at).every((f, i) =>
        /\/libc\.so\.6$/.test(f.mappingPath) ||
        (i === 0 && f.name === "_start" && f.mappingPath.endsWith("/spin_stack"))
      ) &&
      s.frames.slice(at).every((f) => f.mappingPath.endsWith("/spin_stack"));
  };
  const good = fraction(spun, chain);
  assert.ok(
    good >= 0.9,
    `${(good * 100).toFixed(1)} % of ${spun.length}:\n${sampleOf(spun.filter((s) => !chain(s)))}`,
  );
  assert.ok(samples.every((s) => s.tid === pid), "single-threaded: tid = pid");
});

/** Entry vaddr and size of each named function, by nm; the file offset of vaddr by readelf. */
async function symbolRanges(bin: string, fns: string[]) {
  const text = async (cmd: string, args: string[]) => {
    const out = await new Deno.Command(cmd, { args, stdout: "piped" }).output();
    assert.ok(out.success, `${cmd} ${args.join(" ")}`);
    return new TextDecoder().decode(out.stdout);
  };
  const load = (await text("readelf", ["-lW", bin])).split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[0] === "LOAD" && f.includes("E"));
  assert.ok(load, "an executable LOAD segment");
  const [offset, vaddr] = [parseInt(load[1], 16), parseInt(load[2], 16)];
  const ranges = new Map<string, [number, number]>();
  for (const line of (await text("nm", ["-S", "--defined-only", bin])).split("\n")) {
    const [addr, size, , name] = line.split(" ");
    if (fns.includes(name)) {
      const start = parseInt(addr, 16) - vaddr + offset;
      ranges.set(name, [start, start + parseInt(size, 16)]);
    }
  }
  assert.deepEqual([...ranges.keys()].sort(), [...fns].sort());
  return ranges;
}

test("stripped binary: its frames are labelled <basename>+0x<offset> at the right code", async () => {
  const { view, rec } = await main();
  const samples = onCpu(view, rec.result.stripped.pid);
  // 0.5 s of CPU time; a stolen vCPU's sampling timer skips ticks (see spin_stack's count).
  assert.ok(samples.length >= 0.5 * 0.3 * FREQ, `${samples.length} samples`);
  const own = samples.flatMap((s) => s.frames).filter((f) =>
    f.mappingPath.endsWith("/spin_stack_stripped")
  );
  assert.ok(own.length >= samples.length, `${own.length} frames in the binary`);
  const bad = own.filter((f) => !/^spin_stack_stripped\+0x[0-9a-f]+$/.test(f.name));
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} frames not labelled`);
  // The same code as the unstripped build: the labels' offsets fall in main, middle, leaf.
  const ranges = await symbolRanges((await binaries()).spin, ["main", "middle", "leaf"]);
  const within = (f: StackFrame, fn: string) => {
    const off = parseInt(f.name.split("+0x")[1], 16);
    const [lo, hi] = ranges.get(fn)!;
    return off >= lo && off <= hi; // a return address may sit just past the last byte
  };
  const chain = (s: StackSampleView) => {
    const n = s.frames.length;
    return n >= 3 && within(s.frames[n - 1], "leaf") && within(s.frames[n - 2], "middle") &&
      within(s.frames[n - 3], "main");
  };
  const spun = spinning(view, rec.result.stripped);
  const good = fraction(spun, chain);
  assert.ok(
    good >= 0.9,
    `${(good * 100).toFixed(1)} % of ${spun.length}:\n${sampleOf(spun.filter((s) => !chain(s)))}`,
  );
});

test("C++: frames are demangled (ns::Worker<int>::crunch(int)), no _Z names", async () => {
  const { view, rec } = await main();
  const samples = onCpu(view, rec.result.cpp.pid);
  assert.ok(samples.length >= 0.5 * 0.3 * FREQ, `${samples.length} samples`);
  const crunch = (s: StackSampleView) => names(s).at(-1) === "ns::Worker<int>::crunch(int)";
  const spun = spinning(view, rec.result.cpp);
  const good = fraction(spun, crunch);
  assert.ok(
    good >= 0.9,
    `${(good * 100).toFixed(1)} % of ${spun.length}:\n${sampleOf(spun.filter((s) => !crunch(s)))}`,
  );
  const mangled = samples.flatMap(names).filter((n) => /^_Z/.test(n));
  assert.deepEqual([...new Set(mangled)], []);
});

test("short-lived children: ≥ 95 % of their CPU samples are in child_spin or their own start and end", async () => {
  const { view, rec } = await main();
  const children = rec.result.children;
  assert.equal(children.length, CHILDREN);
  const pids = new Set(children);
  const samples = view.stackSamples.filter((s) => s.source === "on_cpu" && pids.has(s.pid));
  // 50 × 20 ms of CPU at FREQ, fewer on a stolen vCPU (see spin_stack's count).
  assert.ok(samples.length >= 0.4 * CHILDREN * 0.02 * FREQ, `${samples.length} samples`);
  const sampled = new Set(samples.map((s) => s.pid));
  assert.equal(sampled.size, CHILDREN, "every child was sampled");
  // Or in the child's own way in and out: returning from fork, its first writes to memory it
  // shares with its parent, its exit. A hypervisor that makes those slow (page-table updates,
  // interrupts re-enabled through a hypercall) puts several per cent of the samples there.
  const own = /^(ret_from_fork|do_wp_page|do_exit|do_group_exit|exit_mmap)$/;
  const spin = (s: StackSampleView) =>
    names(s).includes("child_spin") || names(s).some((n) => own.test(n));
  const good = fraction(samples, spin);
  assert.ok(
    good >= 0.95,
    `${(good * 100).toFixed(1)} %:\n${sampleOf(samples.filter((s) => !spin(s)))}`,
  );
});

/** The sleep of TID on SOURCE with the longest weight (the workload's one long sleep). */
function longestSleep(view: TraceView, source: string, tid: number): StackSampleView {
  const sleeps = view.stackSamples.filter((s) => s.source === source && s.tid === tid);
  assert.ok(sleeps.length > 0, `no ${source} sample of ${tid}`);
  return sleeps.reduce((a, b) => (b.weight > a.weight ? b : a));
}

function assertWeighsSleep(s: StackSampleView, ms: number): void {
  const w = Number(s.weight) / 1e6;
  assert.ok(w >= 0.7 * ms && w <= 1.3 * ms, `weight ${w} ms for a ${ms} ms sleep: ${show(s)}`);
}

test("D sleep: the vfork parent waits uninterruptibly, with kernel and user stack", async () => {
  const { view, rec } = await main();
  const w = rec.result.sleep;
  const s = longestSleep(view, "sleep.uninterruptible", w.vfork_tid);
  assert.equal(s.pid, w.pid);
  const kernel = s.frames.filter(isKernel).map((f) => f.name);
  const user = s.frames.filter((f) => !isKernel(f)).map((f) => f.name);
  // wait_for_vfork_done is inlined into kernel_clone on current kernels.
  assert.ok(kernel.includes("kernel_clone"), show(s));
  assert.ok(
    kernel.some((n) =>
      /^(wait_for_vfork_done|wait_for_completion_state|wait_for_completion_killable)$/.test(n)
    ),
    show(s),
  );
  assert.equal(kernel.at(-1), "__schedule", show(s));
  // main called vfork_parent, which called vfork (libc keeps no frame: vfork_parent is skipped).
  assert.match(user.at(-1) ?? "", /vfork/, show(s));
  assert.ok(user.includes("main"), show(s));
  assert.ok(user.indexOf("main") < user.length - 1, show(s));
  assertWeighsSleep(s, w.sleep_ms);
});

test("S sleep: the nanosleep of sleeper_s, weighed by its length", async () => {
  const { view, rec } = await main();
  const w = rec.result.sleep;
  const s = longestSleep(view, "sleep.interruptible", w.sleeper_tid);
  assert.equal(s.pid, w.pid);
  const kernel = s.frames.filter(isKernel).map((f) => f.name);
  const user = s.frames.filter((f) => !isKernel(f)).map((f) => f.name);
  assert.ok(kernel.includes("hrtimer_nanosleep"), show(s));
  assert.ok(kernel.includes("do_nanosleep"), show(s));
  assert.ok(user.includes("sleeper_s"), show(s));
  assertWeighsSleep(s, w.sleep_ms);
  // The vfork child slept as long, in S too.
  assertWeighsSleep(longestSleep(view, "sleep.interruptible", w.vfork_child), w.sleep_ms);
});

/**
 * For each sleep sample of TIDS (all when undefined) that the trace shows
 * ending: its weight against the task's wake-up (its sched_waking), which BPF
 * stamps with the very timestamp of the sleep's end — or 0, for a sleep no
 * wake-up ended (a pending signal cut it short). A wake-up on
 * another CPU within a microsecond of the switch out may be seen by BPF on
 * either side of it (a race the kernel does not order): a few per thousand
 * sleeps come out the other way, so the callers allow that many.
 */
/** How many of N sleeps may meet a wake-up that raced their switch out (see sleepEnds). */
function racing(n: number): number {
  return Math.max(2, Math.floor(n / 500));
}

/** The times of EVENTS by the task KEY names, each list in order. */
function timesBy<T extends { ts: bigint }>(events: T[], key: (e: T) => number) {
  const m = new Map<number, bigint[]>();
  for (const e of events) {
    let list = m.get(key(e));
    if (!list) m.set(key(e), list = []);
    list.push(e.ts);
  }
  for (const list of m.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return m;
}

function sleepEnds(view: TraceView, tids?: Set<number>) {
  const switchIns = timesBy(view.switches, (s) => s.nextPid);
  const wakes = timesBy(view.wakings, (w) => w.pid);
  const switchAt = new Map<string, number | undefined>();
  for (const s of view.switches) switchAt.set(`${s.cpu}:${s.ts}`, s.prevPid);
  // This kernel (this VM) never emits sched_switch when some threads leave
  // the CPU — `perf record -e sched:sched_switch` misses the same switches —
  // so a task can be switched in without a trace of it. A sleep that begins
  // on a CPU whose last traced switch-in was someone else reveals one: the
  // task's previous sleep ended at an untraced switch-in and cannot be checked.
  const sleeps = view.stackSamples.filter((s) => s.source !== "on_cpu")
    .sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  const lastSleep = new Map<number, StackSampleView>();
  const unverifiable = new Set<StackSampleView>();
  for (const s of sleeps) {
    const implied = switchAt.get(`${s.cpu}:${s.ts}`);
    const before = lastSleep.get(s.tid);
    if (before && implied !== undefined && implied !== s.tid) unverifiable.add(before);
    lastSleep.set(s.tid, s);
  }
  const exact: StackSampleView[] = [];
  const wrong: string[] = [];
  let open = 0;
  for (const s of sleeps) {
    if ((tids && !tids.has(s.tid)) || unverifiable.has(s)) continue;
    const back = switchIns.get(s.tid)?.find((t) => t > s.ts);
    if (back === undefined) { // still asleep when the recording stopped
      open++;
      continue;
    }
    // Its wake-up: the task's first waking since it last ran (one may race the switch out by
    // a few hundred ns: then it was blocked for no time; later ones, while it waited to run,
    // end nothing).
    const ranBefore = switchIns.get(s.tid)?.findLast((t) => t < s.ts) ?? -1n;
    const woke = wakes.get(s.tid)?.find((t) => t <= back && t > ranBefore);
    const end = woke !== undefined && woke > s.ts ? woke : s.ts;
    if (s.ts + s.weight === end) exact.push(s);
    else wrong.push(`${show(s)}: woken after ${end - s.ts} ns`);
  }
  const skipped = [...unverifiable].filter((s) => !tids || tids.has(s.tid)).length;
  return { exact, wrong, unverifiable: skipped, open };
}

test("sleeps that end on another CPU weigh exactly up to their wake-up", async () => {
  const { view, rec } = await main();
  const m = rec.result.migrate;
  const { exact, wrong, unverifiable, open } = sleepEnds(view, new Set([m.tid]));
  // Every switch out to sleep has its stack. Sleeps whose end this VM's kernel did not report
  // (see sleepEnds) still count as there. A nanosleep whose timer ran out before the thread
  // could switch out (on a busy machine) is no sleep: so each of the thread's sleeps, less a
  // few, is one.
  const outs = view.switches.filter((s) => s.prevPid === m.tid && (s.prevState & 1) !== 0);
  const stacks = exact.length + wrong.length + unverifiable + open;
  const said = `${exact.length + wrong.length} sleeps checked, ${unverifiable} unverifiable, ` +
    `${open} open; ${outs.length} switches out in S; ${m.sleeps} nanosleeps`;
  assert.ok(stacks >= outs.length, said);
  assert.ok(stacks >= 0.95 * m.sleeps, said);
  assert.ok(unverifiable <= m.sleeps / 20, `${unverifiable} of ${m.sleeps} unverifiable`);
  assert.deepEqual(
    wrong.length <= racing(exact.length + wrong.length) ? [] : wrong.slice(0, 5),
    [],
    `${wrong.length} of ${exact.length + wrong.length} wrong`,
  );
});

test("every sleep in the trace weighs exactly up to its task's wake-up", async () => {
  const { view } = await main();
  const { exact, wrong } = sleepEnds(view);
  assert.ok(exact.length > 100, `${exact.length} sleeps`);
  assert.deepEqual(
    wrong.length <= racing(exact.length + wrong.length) ? [] : wrong.slice(0, 5),
    [],
    `${wrong.length} of ${exact.length + wrong.length} wrong`,
  );
});

// Short recordings for the options that turn stacks off.

interface Small {
  spin: Spin;
  sleep: SleepStates;
}

async function smallWorkloads(): Promise<Small> {
  const bins = await binaries();
  const [spin, sleep] = await Promise.all([
    runJson<Spin>(bins.spin, ["300"]),
    runJson<SleepStates>(bins.sleep, ["300"]),
  ]);
  return { spin, sleep };
}

test("-n records no stack sample at all", async () => {
  const { view, rec } = await recording(["-n"], smallWorkloads);
  assert.equal(view.stackSamples.length, 0);
  assert.equal(view.stackSequences.size, 0);
  assert.doesNotMatch(rec.exit.stderr, /stacks:/);
  // The recording itself worked: the spinning process was scheduled in.
  assert.ok(view.switches.some((s) => s.nextPid === rec.result.spin.pid));
});

test("--no-interruptible-stack-traces records no S sleeps, but D sleeps and CPU", async () => {
  const { view, rec } = await recording(["--no-interruptible-stack-traces"], smallWorkloads);
  const bySource = new Map<string, number>();
  for (const s of view.stackSamples) bySource.set(s.source, (bySource.get(s.source) ?? 0) + 1);
  assert.equal(bySource.get("sleep.interruptible"), undefined);
  assert.ok(onCpu(view, rec.result.spin.pid).length > 0.3 * 0.3 * FREQ);
  const d = longestSleep(view, "sleep.uninterruptible", rec.result.sleep.vfork_tid);
  assertWeighsSleep(d, 300);
});
