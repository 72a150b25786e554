/**
 * Stack-sampling benchmark. Prints figures; asserts nothing.
 *
 *   deno run -A bench/stack_bench.ts [--rounds R] [--iterations N] [--soak SECS] [--before DIR]
 *
 * 1. Overhead: a fixed CPU-bound job on every CPU (a C one, then a Python one), untraced,
 *    under systing (1000 Hz CPU samples, sleep stacks, Python frames) and under
 *    `perf record -F 1000 -a --call-graph dwarf`, and under `perf record -F 1000 -a` with no call
 *    graph (the sampling floor: what a 1000 Hz clock event costs this machine before any stack
 *    is taken), interleaved R rounds; each tracer's cost is
 *    (job CPU + the tracer's own CPU) / untraced job CPU − 1, in each round against that round's
 *    untraced job, the median of the rounds printed. systing's is given for the first
 *    job after it started (what a short recording pays) and for a second job in the same
 *    recording (its cost once V8 has compiled its code). With --before DIR (another built
 *    checkout), that checkout's systing runs the same two jobs in every round: before/after
 *    figures from one run.
 * 2. Finish time: a 10 s whole-machine recording with stacks under a CPU and
 *    fork load; time from SIGINT to the finished file.
 * 3. Memory (--soak): SECS seconds of recording under a fork-heavy load,
 *    systing's RSS every few seconds.
 */
import { parseArgs } from "node:util";
import { CpuMeter, median, refuseIfTraced, REPO, rssKiB, systingCommand } from "./tracer_run.ts";

refuseIfTraced();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    // About 4 s of work per thread here: long enough that the tracer's one-time
    // costs (JIT warm-up, the first symbol tables) do not dominate.
    iterations: { type: "string", default: "2000000000" },
    soak: { type: "string", default: "0" },
    before: { type: "string" },
  },
});
const BEFORE = values.before ? `${values.before.replace(/\/$/, "")}/` : undefined;
const ROUNDS = Number(values.rounds);
const SOAK = Number(values.soak);
const tmp = await Deno.makeTempDir({ prefix: "systing-stack-bench-" });

async function gcc(name: string): Promise<string> {
  const out = `${tmp}/${name}`;
  const r = await new Deno.Command("gcc", {
    args: ["-O2", "-pthread", "-o", out, `${REPO}bench/c/${name}.c`],
  }).output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  return out;
}

const cpuWork = await gcc("cpu_work");
const forkLoad = await gcc("fork_load");

/** Wall seconds and CPU seconds (user + system) of the fixed job. */
async function job(): Promise<{ wall: number; cpu: number }> {
  const r = await new Deno.Command(cpuWork, { args: [values.iterations] }).output();
  const [wall, cpu] = new TextDecoder().decode(r.stdout).trim().split(" ").map(Number);
  return { wall, cpu };
}

class Systing {
  child: Deno.ChildProcess;
  /** Its CPU, threads that have exited included. */
  cpu: CpuMeter;
  stderr = "";
  #reader: ReadableStreamDefaultReader<string>;
  private constructor(args: string[], repo: string) {
    const run = systingCommand(repo);
    this.child = new Deno.Command(run.cmd, {
      args: [...run.args, "-v", ...args],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.cpu = new CpuMeter(this.child.pid);
    this.#reader = this.child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  }
  static async start(args: string[], repo = REPO): Promise<Systing> {
    const s = new Systing(args, repo);
    while (!s.stderr.includes("systing: recording")) {
      const { value, done } = await s.#reader.read();
      if (done) throw new Error(`systing exited early:\n${s.stderr}`);
      s.stderr += value;
    }
    return s;
  }
  /** SIGINT, then the time until the process is gone (the file is complete by then). */
  async stop(): Promise<number> {
    const t0 = performance.now();
    this.child.kill("SIGINT");
    for (;;) {
      const { value, done } = await this.#reader.read();
      if (done) break;
      this.stderr += value;
    }
    await this.child.status;
    this.cpu.close();
    return performance.now() - t0;
  }
}

/**
 * A CPU-bound Python job on every CPU: each process runs ITERATIONS / 15 loop iterations, about
 * as long as the C job (Debian's 3.11).
 */
const PY_JOB = `
import sys, time
def inner(n):
    s = 0
    for i in range(n):
        s += i * i
    return s
def outer(k):
    for _ in range(k):
        inner(1000)
w, c = time.monotonic(), time.process_time()
outer(int(sys.argv[1]))
print(time.monotonic() - w, time.process_time() - c)
`;

async function pythonJob(): Promise<{ wall: number; cpu: number }> {
  const loops = String(Math.round(Number(values.iterations) / 15_000));
  const runs = await Promise.all(
    Array.from(
      { length: navigator.hardwareConcurrency },
      () => new Deno.Command("/usr/bin/python3.11", { args: ["-c", PY_JOB, loops] }).output(),
    ),
  );
  const each = runs.map((r) => new TextDecoder().decode(r.stdout).trim().split(" ").map(Number));
  return { wall: Math.max(...each.map((e) => e[0])), cpu: each.reduce((t, e) => t + e[1], 0) };
}

/**
 * perf record of the whole machine at 1000 Hz: with DWARF call graphs, the baseline; with none
 * (CALLS false), the floor every sampler stands on here (the clock event's interrupt, the IP).
 */
async function perfStart(out: string, calls = true): Promise<Deno.ChildProcess> {
  const p = new Deno.Command("perf", {
    args: ["record", "-F", "1000", "-a", ...(calls ? ["--call-graph", "dwarf"] : []), "-o", out],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await new Promise((r) => setTimeout(r, 1500)); // it has no "ready" line
  return p;
}

interface Round {
  plain: { wall: number; cpu: number };
  /** The first job after systing started: its one-time costs (V8 compiling its code) included. */
  systing: { wall: number; cpu: number; tracer: number; details: string };
  /** A second job in the same recording: the tracer's cost once warm. */
  warm: { wall: number; cpu: number; tracer: number };
  perf: { wall: number; cpu: number; tracer: number };
  /** perf record with no call graph: the cost of sampling at all. */
  floor: { wall: number; cpu: number; tracer: number };
  /** --before: the other checkout's first and second job. */
  before?: { wall: number; cpu: number; tracer: number };
  beforeWarm?: { wall: number; cpu: number; tracer: number };
}

/** A first and a second job under the systing of REPO. */
async function underSysting(job: () => Promise<{ wall: number; cpu: number }>, repo: string) {
  const s = await Systing.start(["-o", `${tmp}/overhead.pb`], repo);
  const c0 = s.cpu.seconds();
  const sj = await job();
  const c1 = s.cpu.seconds();
  const wj = await job();
  const wTracer = s.cpu.seconds() - c1;
  await s.stop();
  return {
    first: { ...sj, tracer: c1 - c0, details: s.stderr },
    warm: { ...wj, tracer: wTracer },
  };
}

/** JOB under `perf record`, with or without call graphs: the job's figures and perf's CPU. */
async function underPerf(job: () => Promise<{ wall: number; cpu: number }>, calls: boolean) {
  const p = await perfStart(`${tmp}/perf.data`, calls);
  const pCpu = new CpuMeter(p.pid);
  const p0 = pCpu.seconds();
  const pj = await job();
  const tracer = pCpu.seconds() - p0;
  p.kill("SIGINT");
  await p.status;
  pCpu.close();
  return { ...pj, tracer };
}

/** JOB untraced, under systing and under perf, interleaved for ROUNDS rounds. */
async function overhead(job: () => Promise<{ wall: number; cpu: number }>): Promise<Round[]> {
  await job(); // warm-up
  const rounds: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const plain = await job();
    const now = await underSysting(job, REPO);
    const before = BEFORE ? await underSysting(job, BEFORE) : undefined;
    const perf = await underPerf(job, true);
    const floor = await underPerf(job, false);
    rounds.push({
      plain,
      systing: now.first,
      warm: now.warm,
      perf,
      floor,
      before: before?.first,
      beforeWarm: before?.warm,
    });
  }
  return rounds;
}

function report(name: string, rounds: Round[]): void {
  const m = (f: (r: Round) => number) => median(rounds.map(f));
  const plain = m((r) => r.plain.cpu);
  const s = rounds[rounds.length - 1].systing.details;
  const stacks = Number(/stacks: (\d+) CPU samples/.exec(s)?.[1] ?? 0) +
    Number(/(\d+) sleep stacks/.exec(s)?.[1] ?? 0);
  console.log(`${name}, median of ${rounds.length} (job CPU ${plain.toFixed(2)} s untraced):`);
  const rows = [
    "systing",
    "warm",
    "perf",
    "floor",
    ...(BEFORE ? ["before", "beforeWarm"] as const : []),
  ];
  const labels: Record<string, string> = {
    warm: "systing, a second job (warm)",
    floor: "floor (perf, no call graph)",
    before: "before (--before), first job",
    beforeWarm: "before (--before), second job",
  };
  // Each round's figures against that round's own untraced job, which ran minutes, not a whole
  // benchmark, apart: the machine's drift over the run cancels out of the ratio.
  for (const t of rows as ("systing" | "warm" | "perf" | "floor" | "before" | "beforeWarm")[]) {
    const jobUp = (r: Round) => (r[t]!.cpu / r.plain.cpu - 1) * 100;
    const cost = (r: Round) => ((r[t]!.cpu + r[t]!.tracer) / r.plain.cpu - 1) * 100;
    const label = labels[t] ?? t;
    console.log(
      `  ${label.padEnd(7)} job CPU +${m(jobUp).toFixed(2)} %, its own CPU ` +
        `${m((r) => r[t]!.tracer).toFixed(2)} s: (job + tracer) / untraced − 1 = ${
          m(cost).toFixed(2)
        } % (rounds: ${rounds.map((r) => cost(r).toFixed(1)).join(", ")})`,
    );
  }
  console.log(
    `  systing's whole CPU per stack ${
      ((m((r) => r.systing.tracer + r.warm.tracer) / Math.max(1, stacks)) * 1e6).toFixed(1)
    } µs` +
      ` (${stacks} stacks in both jobs); ${/stack processing [^\n]*/.exec(s)?.[0] ?? ""}`,
  );
  console.log(`  ${/stacks: [^\n]*/.exec(s)?.[0] ?? ""}`);
  const py = /python: [^\n]*/.exec(s)?.[0];
  if (py) console.log(`  ${py}`);
}

console.log(`stack benchmark, ${navigator.hardwareConcurrency} CPUs, ${ROUNDS} rounds`);
console.log(`  systing: ${systingCommand().label}`);
if (BEFORE) console.log(`  before: ${systingCommand(BEFORE).label}`);
report("CPU-bound C job on every CPU", await overhead(job));
report("CPU-bound Python job on every CPU", await overhead(pythonJob));

// 10 s whole machine, CPU + fork load, then the time to finish.
{
  const s = await Systing.start(["-o", `${tmp}/ten.pb`]);
  const fork = new Deno.Command(forkLoad, { stdout: "null", stderr: "null" }).spawn();
  const cpu = new Deno.Command(cpuWork, { args: ["10000000000", "1"], stdout: "null" }).spawn();
  await new Promise((r) => setTimeout(r, 10_000));
  const stopMs = await s.stop();
  fork.kill("SIGKILL");
  cpu.kill("SIGKILL");
  await fork.status;
  await cpu.status;
  console.log(
    `10 s whole-machine trace with stacks: SIGINT → file complete and process gone ${
      stopMs.toFixed(0)
    } ms`,
  );
  console.log(`  ${/wrote .*/.exec(s.stderr)?.[0]}`);
  console.log(`  ${/stacks: .*/.exec(s.stderr)?.[0]}`);
  console.log(`  ${/attach .*/.exec(s.stderr)?.[0]}`);
}

if (SOAK > 0) {
  const s = await Systing.start(["-o", `${tmp}/soak.pb`]);
  const fork = new Deno.Command(forkLoad, { stdout: "null", stderr: "null" }).spawn();
  const step = Math.max(1, Math.round(SOAK / 12));
  const samples: number[] = [];
  for (let t = 0; t < SOAK; t += step) {
    await new Promise((r) => setTimeout(r, step * 1000));
    samples.push(rssKiB(s.child.pid, "VmRSS"));
  }
  const hwm = rssKiB(s.child.pid, "VmHWM");
  fork.kill("SIGKILL");
  await fork.status;
  const stopMs = await s.stop();
  console.log(
    `soak ${SOAK}s, fork-heavy: RSS every ${step}s ${
      samples.map((k) => (k / 1024).toFixed(0)).join(" ")
    } MiB, peak ${(hwm / 1024).toFixed(0)} MiB, stop ${stopMs.toFixed(0)} ms`,
  );
  console.log(`  ${/wrote .*/.exec(s.stderr)?.[0]}`);
  console.log(`  ${/events: .*/.exec(s.stderr)?.[0]}`);
  console.log(`  ${/stacks: .*/.exec(s.stderr)?.[0]}`);
}
await Deno.remove(tmp, { recursive: true });
