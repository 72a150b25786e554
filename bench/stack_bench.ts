/**
 * Stack-sampling benchmark. Prints figures; asserts nothing.
 *
 *   deno run -A bench/stack_bench.ts [--rounds R] [--iterations N] [--soak SECS]
 *
 * 1. Overhead: a fixed CPU-bound job on every CPU, untraced and under systing
 *    with 1000 Hz CPU samples (and sleep stacks), interleaved R rounds.
 * 2. Finish time: a 10 s whole-machine recording with stacks under a CPU and
 *    fork load; time from SIGINT to the finished file.
 * 3. Memory (--soak): SECS seconds of recording under a fork-heavy load,
 *    systing's RSS every few seconds.
 */
import { parseArgs } from "node:util";

const REPO = new URL("../", import.meta.url).pathname;
const DENO = Deno.execPath();
const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    // About 4 s of work per thread here: long enough that the tracer's one-time
    // costs (JIT warm-up, the first symbol tables) do not dominate.
    iterations: { type: "string", default: "2000000000" },
    soak: { type: "string", default: "0" },
  },
});
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

function rssKiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(
    Deno.readTextFileSync(`/proc/${pid}/status`),
  );
  return m ? Number(m[1]) : 0;
}

class Systing {
  child: Deno.ChildProcess;
  stderr = "";
  #reader: ReadableStreamDefaultReader<string>;
  private constructor(args: string[]) {
    this.child = new Deno.Command(DENO, {
      args: ["run", "-A", `${REPO}main.ts`, "-v", ...args],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#reader = this.child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  }
  static async start(args: string[]): Promise<Systing> {
    const s = new Systing(args);
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
    return performance.now() - t0;
  }
}

function procCpuSec(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

console.log(`stack benchmark, ${navigator.hardwareConcurrency} CPUs, ${ROUNDS} rounds`);
await job(); // warm-up
const plain: { wall: number; cpu: number }[] = [], traced: { wall: number; cpu: number }[] = [];
const tracerCpu: number[] = [];
let last = "";
for (let r = 0; r < ROUNDS; r++) {
  plain.push(await job());
  const s = await Systing.start(["-o", `${tmp}/overhead.pb`]);
  const c0 = procCpuSec(s.child.pid);
  traced.push(await job());
  tracerCpu.push(procCpuSec(s.child.pid) - c0);
  await s.stop();
  last = s.stderr;
}
const med = (xs: { wall: number; cpu: number }[], k: "wall" | "cpu") => median(xs.map((x) => x[k]));
const pct = (a: number, b: number) => `${((a / b - 1) * 100).toFixed(2)} %`;
console.log(`CPU-bound job on every CPU, median of ${ROUNDS}:`);
console.log(
  `  wall ${med(plain, "wall").toFixed(3)} s untraced, ${med(traced, "wall").toFixed(3)} s with ` +
    `1000 Hz stacks (${pct(med(traced, "wall"), med(plain, "wall"))}; the VM's steal included)`,
);
console.log(
  `  the job's CPU time ${med(plain, "cpu").toFixed(3)} s → ${med(traced, "cpu").toFixed(3)} s ` +
    `(${pct(med(traced, "cpu"), med(plain, "cpu"))}: sampling runs in its context)`,
);
console.log(
  `  systing's own CPU during the job ${median(tracerCpu).toFixed(2)} s ` +
    `(${((100 * median(tracerCpu)) / med(traced, "cpu")).toFixed(2)} % of the job's CPU time)`,
);
console.log(`  ${/stacks: .*/.exec(last)?.[0] ?? "(no stack line)"}`);

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
