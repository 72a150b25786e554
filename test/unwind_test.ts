// Integration tests of user-stack unwinding from a copy of the user stack
// with the binaries' .eh_frame (--user-stacks, --user-stack-bytes): real BPF
// recordings (root) of C workloads built without frame pointers, checked
// through test/trace_reader.ts. One recording with the default options serves
// most checks; two short ones cover --user-stacks fp and --user-stack-bytes 512.
import assert from "node:assert/strict";
import { type StackFrame, type StackSampleView, type TraceView } from "./trace_reader.ts";
import { compile, runJson, runRecorder } from "./workload.ts";
import { type Recorded, RecordingCache } from "./recording_cache.ts";

/** Plain `gcc -O2`, as distributions build: no frame pointers, asynchronous unwind tables. */
const O2 = ["-O2"];
/** Frame pointers and no unwind tables at all (-g0: no .debug_frame either). */
const FP_ONLY = ["-O2", "-fno-asynchronous-unwind-tables", "-fno-omit-frame-pointer", "-g0"];
const QSORT_SPIN_S = 1.5;
const QSORT_SLEEPS = 200;
const FP_SPIN_S = 1;
const DEEP_SPIN_S = 1;
/**
 * Samples per second of a workload's CPU time that a check may count on. The sampling is at
 * 1000 Hz of CPU time, but a guest vCPU the host takes away (no steal accounting here) goes on
 * counting CPU time while its sampling timer folds the missed ticks into one: 524 per second
 * seen on a busy host. 200 still judges a 90 % share.
 */
const MIN_HZ = 200;
/** About 270 bytes of stack per level: ~8 KiB, more than 512 bytes, less than 16384. */
const DEEP_DEPTH = 30;
/** The chain libc's startup code builds above main (glibc 2.36, libc without .symtab). */
const START = [
  "_start",
  "__libc_start_main",
  // Named when libc6-dbg is installed, labelled otherwise.
  /^(__libc_start_call_main|libc\.so\.6\+0x[0-9a-f]+)$/,
  "main",
];
const TRUNCATED = "[truncated stack]";

/** A workload's pid and its spin's first and last CLOCK_BOOTTIME ns (the trace's clock). */
interface Spin {
  pid: number;
  start: number;
  end: number;
}

interface Workloads {
  qsort: Spin;
  fp: Spin;
  deep: Spin & { depth: number };
}

async function binaries() {
  const [qsort, fpLib, fpMain, deep] = await Promise.all([
    compile("qsort_spin.c", { flags: O2 }),
    compile("fp_lib.c", { flags: ["-shared", "-fPIC", ...FP_ONLY], output: "libfp_lib.so" }),
    compile("fp_main.c", { flags: O2 }),
    compile("deep_stack.c", { flags: O2 }),
  ]);
  return { qsort, fpLib, fpMain, deep };
}

/** Every workload at once; the recorder must already be running. */
async function runWorkloads(): Promise<Workloads> {
  const bins = await binaries();
  const [qsort, fp, deep] = await Promise.all([
    runJson<Spin>(bins.qsort, [String(QSORT_SPIN_S), String(QSORT_SLEEPS)]),
    runJson<Spin>(bins.fpMain, [bins.fpLib, String(FP_SPIN_S)]),
    runJson<Workloads["deep"]>(bins.deep, [String(DEEP_DEPTH), String(DEEP_SPIN_S)]),
  ]);
  return { qsort, fp, deep };
}

const recordings = new RecordingCache(binaries);
const recording = <T>(extra: string[], workload: () => Promise<T>) =>
  recordings.get(extra, workload);

const defaults = () => recording([], runWorkloads);

const fpMode = () =>
  recording(
    ["--user-stacks", "fp"],
    async () => await runJson<Spin>((await binaries()).qsort, [String(QSORT_SPIN_S), "0"]),
  );

const smallCopy = () =>
  recording(
    ["--user-stack-bytes", "512"],
    async () =>
      await runJson<Workloads["deep"]>((await binaries()).deep, [
        String(DEEP_DEPTH),
        String(DEEP_SPIN_S),
      ]),
  );

function test(name: string, fn: () => Promise<void>) {
  // No skip for non-root: these tests exist to load real BPF.
  Deno.test({ name: `unwind: ${name}`, fn });
}

/** Kernel frames carry the kernel address itself; user frames a module-relative one. */
function isKernel(f: StackFrame): boolean {
  return f.relPc >= 0xffff_8000_0000_0000n;
}

function userFrames(s: StackSampleView): StackFrame[] {
  return s.frames.filter((f) => !isKernel(f));
}

function userNames(s: StackSampleView): string[] {
  return userFrames(s).map((f) => f.name);
}

function show(s: StackSampleView): string {
  return `${s.source} ${s.pid}/${s.tid}: ${s.frames.map((f) => f.name).join(" > ")}`;
}

function fraction<T>(items: T[], pred: (t: T) => boolean): number {
  return items.length ? items.filter(pred).length / items.length : 0;
}

function samplesOf(view: TraceView, source: string, pid: number): StackSampleView[] {
  return view.stackSamples.filter((s) => s.source === source && s.pid === pid);
}

/**
 * The CPU samples taken while W spun: what the checks judge. Its start (the spawn, exec and
 * dynamic loader) and exit are on the CPU too, longer the busier the machine.
 */
function spinning(view: TraceView, w: Spin): StackSampleView[] {
  return samplesOf(view, "on_cpu", w.pid).filter((s) =>
    Number(s.ts) >= w.start && Number(s.ts) <= w.end
  );
}

/** A few samples for a failure message. */
function sampleOf(samples: StackSampleView[], n = 5): string {
  return samples.slice(0, n).map(show).join("\n");
}

/** Asserts that PRED holds for at least MIN of SAMPLES (and that there are at least COUNT). */
function assertMost(
  samples: StackSampleView[],
  pred: (s: StackSampleView) => boolean,
  min: number,
  count: number,
  what: string,
): void {
  assert.ok(samples.length >= count, `${what}: only ${samples.length} samples`);
  const good = fraction(samples, pred);
  assert.ok(
    good >= min,
    `${what}: ${(good * 100).toFixed(1)} % of ${samples.length}, want ≥ ${min * 100} %:\n${
      sampleOf(samples.filter((s) => !pred(s)))
    }`,
  );
}

/** Whether NAMES holds WANT in order, not necessarily adjacent. */
function hasSubsequence(names: string[], want: string[]): boolean {
  let i = 0;
  for (const n of names) if (i < want.length && n === want[i]) i++;
  return i === want.length;
}

function matches(name: string, want: string | RegExp): boolean {
  return typeof want === "string" ? name === want : want.test(name);
}

/** Whether the user stack starts (root first) with libc's startup chain down to main. */
function reachesStart(s: StackSampleView): boolean {
  const names = userNames(s);
  return START.every((want, i) => i < names.length && matches(names[i], want));
}

interface UserStackSummary {
  unwound: number;
  complete: number;
  pastCopy: number;
  noUnwindInfo: number;
  framePointer: number;
}

/** The summary's "user stacks:" line, parsed. */
function userStackSummary(stderr: string): UserStackSummary {
  const m = stderr.match(
    /user stacks: (\d+) unwound from a stack copy \((\d+) to the outermost frame, (\d+) past the copy, (\d+) cut at code without unwind info\), (\d+) reused their task's last walk, (\d+) by frame pointers/,
  );
  assert.ok(m, `no "user stacks:" summary line in:\n${stderr}`);
  const [unwound, complete, pastCopy, noUnwindInfo, , framePointer] = m.slice(1).map(Number);
  return { unwound, complete, pastCopy, noUnwindInfo, framePointer };
}

async function text(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  assert.ok(out.success, `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** [start, end) of every FDE that `readelf -wf` lists (.eh_frame and .debug_frame). */
async function fdeRanges(bin: string): Promise<[number, number][]> {
  const out = await text("readelf", ["-wf", bin]);
  return [...out.matchAll(/ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)/g)]
    .map((m) => [parseInt(m[1], 16), parseInt(m[2], 16)]);
}

/** The link-time address of symbol NAME, by nm. */
async function symbolAddress(bin: string, name: string): Promise<number> {
  const line = (await text("nm", ["--defined-only", bin])).split("\n")
    .find((l) => l.endsWith(` ${name}`));
  assert.ok(line, `${name} not in ${bin}'s symbols`);
  return parseInt(line.split(" ")[0], 16);
}

async function coveredByFde(bin: string, fn: string): Promise<boolean> {
  const at = await symbolAddress(bin, fn);
  return (await fdeRanges(bin)).some(([lo, hi]) => at >= lo && at < hi);
}

// 1. CPU samples through libc without frame pointers.

/** main → a → b → c → qsort_r → … → comparator, comparator the leaf. */
function qsortChain(s: StackSampleView): boolean {
  const names = userNames(s);
  return names.at(-1) === "comparator" &&
    hasSubsequence(names, ["main", "a", "b", "c", "qsort_r", "comparator"]);
}

test("qsort_spin is built with .eh_frame, an FDE covering comparator", async () => {
  const { qsort } = await binaries();
  const sections = await text("readelf", ["-SW", qsort]);
  assert.match(sections, / \.eh_frame +PROGBITS /);
  assert.ok(await coveredByFde(qsort, "comparator"), "no FDE covers comparator");
});

test("qsort_spin: ≥ 90 % of CPU samples are main → a → b → c → qsort_r → … → comparator", async () => {
  const { view, rec } = await defaults();
  const samples = spinning(view, rec.result.qsort);
  assertMost(samples, qsortChain, 0.9, MIN_HZ * QSORT_SPIN_S, "qsort chain");
  // The frames are where they belong: main…c in the program, qsort_r in libc.
  const good = samples.filter(qsortChain);
  const bad = good.filter((s) => {
    const user = userFrames(s);
    const at = (name: string) => user.find((f) => f.name === name)!.mappingPath;
    return !["main", "a", "b", "c", "comparator"].every((n) => at(n).endsWith("/qsort_spin")) ||
      !at("qsort_r").endsWith("/libc.so.6");
  });
  assert.deepEqual(bad.slice(0, 3).map(show), [], `${bad.length} with frames in the wrong file`);
});

test("qsort_spin: ≥ 90 % of CPU samples reach the outermost frame (_start)", async () => {
  const { view, rec } = await defaults();
  const samples = spinning(view, rec.result.qsort);
  assertMost(
    samples,
    reachesStart,
    0.9,
    MIN_HZ * QSORT_SPIN_S,
    "_start > __libc_start_main > libc+0x… > main",
  );
  const truncated = samples.filter((s) => s.frames[0].name === TRUNCATED);
  assert.ok(truncated.length <= 0.1 * samples.length, sampleOf(truncated));
});

// 2. Sleep stacks get a stack copy too (within the per-CPU budget).

test("qsort_spin: ≥ 80 % of its usleep stacks reach main and _start", async () => {
  const { view, rec } = await defaults();
  const samples = samplesOf(view, "sleep.interruptible", rec.result.qsort.pid);
  const throughUsleep = (s: StackSampleView) => {
    const names = userNames(s);
    return hasSubsequence(names, ["main", "a", "b", "c", "usleep"]) && reachesStart(s);
  };
  // 200 sleeps of 2 ms: well under the 1000 copies per second and CPU, unless other tasks
  // sleep so often that they use the budget up (it is shared): then the message says so.
  assertMost(
    samples,
    throughUsleep,
    0.8,
    0.9 * QSORT_SLEEPS,
    `usleep from main (${sleepRate(view, samples)} sleep stacks/s/CPU machine-wide meanwhile)`,
  );
  // The kernel part is there below the user part: the sleep itself.
  const nanosleep = (s: StackSampleView) =>
    s.frames.filter(isKernel).some((f) => f.name === "do_nanosleep");
  assertMost(samples, nanosleep, 0.9, 0.9 * QSORT_SLEEPS, "do_nanosleep in the kernel part");
});

/** Sleep stacks of any task per second and CPU over the span of SAMPLES. */
function sleepRate(view: TraceView, samples: StackSampleView[]): number {
  if (samples.length < 2) return 0;
  const from = samples.reduce((a, s) => (s.ts < a ? s.ts : a), samples[0].ts);
  const to = samples.reduce((a, s) => (s.ts > a ? s.ts : a), samples[0].ts);
  const n = view.stackSamples.filter((s) => s.source !== "on_cpu" && s.ts >= from && s.ts <= to)
    .length;
  return Math.round(n / (Number(to - from) / 1e9) / navigator.hardwareConcurrency);
}

// 3. The frame-pointer walk alone does not get through qsort.

test("--user-stacks fp: qsort_spin's CPU samples do not reach main; no stack copies", async () => {
  const { view, rec } = await fpMode();
  const samples = spinning(view, rec.result);
  assert.ok(samples.length >= MIN_HZ * QSORT_SPIN_S, `only ${samples.length} samples`);
  const withMain = samples.filter((s) => userNames(s).includes("main"));
  assert.ok(
    withMain.length < 0.1 * samples.length,
    `${withMain.length} of ${samples.length} reach main:\n${sampleOf(withMain)}`,
  );
  // The walk still starts in the leaf: the samples are not empty.
  assertMost(samples, (s) => userNames(s).at(-1) === "comparator", 0.9, 1, "comparator leaf");
  const sum = userStackSummary(rec.exit.stderr);
  assert.equal(sum.unwound, 0, "unwound from a stack copy");
  assert.equal(sum.complete + sum.pastCopy + sum.noUnwindInfo, 0);
  assert.ok(sum.framePointer >= samples.length, `${sum.framePointer} by frame pointers`);
});

// 4. A module without unwind tables is crossed through its frame pointers.

test("fp_lib has no FDE for fp_spin or fp_outer; fp_main has one for main", async () => {
  const { fpLib, fpMain } = await binaries();
  assert.equal(await coveredByFde(fpLib, "fp_spin"), false, "an FDE covers fp_spin");
  assert.equal(await coveredByFde(fpLib, "fp_outer"), false, "an FDE covers fp_outer");
  // The same check finds an FDE where there is one.
  assert.equal(await coveredByFde(fpMain, "main"), true, "no FDE covers fp_main's main");
});

test("fp_spin: ≥ 80 % of its CPU samples reach main → fp_outer → fp_spin and _start", async () => {
  const { view, rec } = await defaults();
  const samples = spinning(view, rec.result.fp)
    .filter((s) => userNames(s).at(-1) === "fp_spin");
  const chain = (s: StackSampleView) => {
    const user = userFrames(s);
    const n = user.length;
    return n >= 3 && user[n - 3].name === "main" && user[n - 3].mappingPath.endsWith("/fp_main") &&
      user[n - 2].name === "fp_outer" && user[n - 2].mappingPath.endsWith("/libfp_lib.so") &&
      reachesStart(s);
  };
  // 1 s of CPU time at 1000 Hz, nearly all of it in fp_spin.
  assertMost(samples, chain, 0.8, MIN_HZ * FP_SPIN_S, "main > fp_outer > fp_spin");
});

// 5. The size of the stack copy.

/** main → recurse × depth → bottom, whole; or cut: [truncated stack] → recurse… → bottom. */
function deepWhole(s: StackSampleView, depth: number): boolean {
  const names = userNames(s);
  const at = names.indexOf("main");
  return reachesStart(s) && names.length === at + depth + 2 && names.at(-1) === "bottom" &&
    names.slice(at + 1, -1).every((n) => n === "recurse");
}

function deepCut(s: StackSampleView): boolean {
  const names = userNames(s);
  return names[0] === TRUNCATED && names.length >= 2 && names.at(-1) === "bottom" &&
    names.slice(1, -1).every((n) => n === "recurse");
}

test("deep_stack, default 16384-byte copy: ≥ 90 % unwound whole, all 30 levels", async () => {
  const { view, rec } = await defaults();
  const { depth } = rec.result.deep;
  assert.equal(depth, DEEP_DEPTH);
  const samples = spinning(view, rec.result.deep);
  assertMost(samples, (s) => deepWhole(s, depth), 0.9, MIN_HZ * DEEP_SPIN_S, "whole deep stack");
});

test("--user-stack-bytes 512: deep stacks are cut past the copy and marked", async () => {
  const { view, rec } = await smallCopy();
  const { depth } = rec.result;
  const samples = spinning(view, rec.result);
  // The copy holds bottom's frame and one or two recurse frames; every sample is cut.
  assertMost(samples, deepCut, 0.9, MIN_HZ * DEEP_SPIN_S, "[truncated stack] > … > bottom");
  const lengths = samples.filter(deepCut).map((s) => userNames(s).length - 1);
  assert.ok(Math.max(...lengths) < depth, `up to ${Math.max(...lengths)} frames from 512 bytes`);
  const sum = userStackSummary(rec.exit.stderr);
  assert.ok(sum.pastCopy > 0, `past the copy: ${sum.pastCopy}`);
  // Each of them was unwound from the copy and ran past its end.
  const cut = samples.filter(deepCut).length;
  assert.ok(sum.pastCopy >= cut, `${sum.pastCopy} past the copy, ${cut} deep_stack samples cut`);
  assert.equal(sum.unwound, sum.complete + sum.pastCopy + sum.noUnwindInfo);
});

test("the default copy truncates fewer deep stacks than a 512-byte one", async () => {
  const small = await smallCopy();
  const full = await defaults();
  const cut = (r: Recorded<unknown>, w: Spin) =>
    fraction(spinning(r.view, w), (s) => s.frames[0].name === TRUNCATED);
  const cutSmall = cut(small, small.rec.result);
  const cutFull = cut(full, full.rec.result.deep);
  assert.ok(cutSmall >= 0.9, `512 bytes: ${(cutSmall * 100).toFixed(1)} % cut`);
  assert.ok(cutFull <= 0.1, `16384 bytes: ${(cutFull * 100).toFixed(1)} % cut`);
});

test("the summary counts every stack unwound to _start as 'to the outermost frame'", async () => {
  const { view, rec } = await defaults();
  const { qsort, fp, deep } = rec.result;
  // Only the stack copy gets through these -O2 frames to _start, so each such sample of the
  // three workloads is one the summary counts (other processes only add to it).
  const whole = [qsort.pid, fp.pid, deep.pid]
    .flatMap((
      pid,
    ) => [...samplesOf(view, "on_cpu", pid), ...samplesOf(view, "sleep.interruptible", pid)])
    .filter((s) => userNames(s)[0] === "_start").length;
  const sum = userStackSummary(rec.exit.stderr);
  const least = MIN_HZ * (QSORT_SPIN_S + FP_SPIN_S + DEEP_SPIN_S);
  assert.ok(whole >= least, `only ${whole} samples reach _start`);
  assert.ok(sum.complete >= whole, `${JSON.stringify(sum)}: ${whole} samples reach _start`);
  assert.equal(sum.unwound, sum.complete + sum.pastCopy + sum.noUnwindInfo);
});

// 6. Bad values are refused before any BPF work, in one line naming the option.

for (
  const [args, option] of [
    [["--user-stacks", "foo"], "--user-stacks"],
    [["--user-stack-bytes", "100"], "--user-stack-bytes"],
    [["--user-stack-bytes", "70000"], "--user-stack-bytes"],
    [["--user-stack-bytes", "1001"], "--user-stack-bytes"],
  ] as const
) {
  Deno.test(`unwind: cli: ${args.join(" ")} is refused`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "systing-unwind-cli-" });
    try {
      const res = await runRecorder([...args, "-d", "1", "-o", `${dir}/trace.pb`], 15_000);
      const lines = res.stderr.split("\n").filter((l) => l.trim() !== "");
      assert.notEqual(res.code, 0, `exit code; stderr: ${res.stderr}`);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.ok(lines[0].includes(option), `"${lines[0]}" should name ${option}`);
      assert.ok(lines[0].includes(args[1]), `"${lines[0]}" should quote ${args[1]}`);
      assert.deepEqual([...Deno.readDirSync(dir)], [], "files left behind");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
