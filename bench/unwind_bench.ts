/**
 * User-stack unwinding benchmark. Prints figures; asserts nothing.
 *
 *   deno run -A bench/unwind_bench.ts [--seconds S] [--rounds R]
 *
 * 1. One qsort workload per CPU (plain gcc -O2: no frame pointers, calls
 *    back through libc) for S seconds under systing at 1000 Hz (auto:
 *    stack copy + unwind tables): unwinding CPU, stack bytes per sample,
 *    drops, and how many samples reach main; then the same workload under
 *    `perf record --call-graph dwarf -F 1000 -a`: bytes per sample and how
 *    many of its samples reach main.
 * 2. Slowdown of a fixed CPU-bound job on every CPU under systing (auto),
 *    against untraced, interleaved R rounds.
 */
import { parseArgs } from "node:util";
import { readTrace } from "../test/trace_reader.ts";

const REPO = new URL("../", import.meta.url).pathname;
const DENO = Deno.execPath();
const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    iterations: { type: "string", default: "2000000000" },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CPUS = navigator.hardwareConcurrency;
const tmp = await Deno.makeTempDir({ prefix: "systing-unwind-bench-" });

async function gcc(src: string, out: string): Promise<string> {
  const r = await new Deno.Command("gcc", { args: ["-O2", "-pthread", "-o", out, src] }).output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  return out;
}
const qsortSpin = await gcc(`${REPO}test/c/qsort_spin.c`, `${tmp}/qsort_spin`);
const cpuWork = await gcc(`${REPO}bench/c/cpu_work.c`, `${tmp}/cpu_work`);

async function qsortLoad(): Promise<void> {
  await Promise.all(
    Array.from(
      { length: CPUS },
      () => new Deno.Command(qsortSpin, { args: [String(SECONDS)], stdout: "null" }).output(),
    ),
  );
}

/** The job's CPU seconds (user + system): robust to the VM's swings in wall time. */
async function job(): Promise<number> {
  const r = await new Deno.Command(cpuWork, { args: [values.iterations] }).output();
  return Number(new TextDecoder().decode(r.stdout).trim().split(" ")[1]);
}

function procCpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function systing(args: string[], during: () => Promise<void>) {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", `${REPO}main.ts`, "-v", ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  while (!stderr.includes("systing: recording")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`systing exited early:\n${stderr}`);
    stderr += value;
  }
  const cpu0 = procCpuMs(child.pid);
  await during();
  const cpuMs = procCpuMs(child.pid) - cpu0;
  child.kill("SIGINT");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += value;
  }
  await child.status;
  return { stderr, cpuMs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

console.log(`unwind benchmark: ${CPUS} CPUs, qsort workload ${SECONDS}s per CPU`);

// 1a. systing
{
  const out = `${tmp}/systing.pb`;
  const { stderr, cpuMs } = await systing(["-o", out], qsortLoad);
  const view = await readTrace(out);
  const mine = view.stackSamples.filter((s) =>
    s.source === "on_cpu" && s.frames.some((f) => f.name === "comparator")
  );
  const toMain = mine.filter((s) => s.frames.some((f) => f.name === "main")).length;
  const toStart = mine.filter((s) => s.frames[0]?.name === "_start").length;
  const m = /main thread ([\d.]+) µs CPU\/stack[^;]*; ([\d.]+) mean\), unwinding ([\d.]+) µs/
    .exec(stderr);
  const bytes = /stacks: (\d+) B\/stack from BPF/.exec(stderr);
  console.log("systing (auto: stack copy + .eh_frame, 16 KiB copies):");
  console.log(`  ${/wrote .*/.exec(stderr)?.[0]}`);
  console.log(`  ${/user stacks: .*/.exec(stderr)?.[0]}`);
  console.log(
    `  workload samples ${mine.length}: ${
      ((100 * toMain) / mine.length).toFixed(1)
    } % reach main, ` +
      `${((100 * toStart) / mine.length).toFixed(1)} % reach _start`,
  );
  if (m) {
    console.log(
      `  main-thread CPU per stack ${m[1]} µs (median of batches; ${m[2]} µs mean), unwinding ` +
        `${m[3]} µs of wall time per stack ` +
        `(whole systing process ${((100 * cpuMs) / (SECONDS * 1000)).toFixed(1)} % of one core)`,
    );
  }
  if (bytes) console.log(`  ${bytes[1]} bytes per stack record from BPF`);
}

// 1b. perf record --call-graph dwarf
{
  const data = `${tmp}/perf.data`;
  const perf = new Deno.Command("perf", {
    args: ["record", "-q", "-a", "-F", "1000", "--call-graph", "dwarf", "-o", data],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await new Promise((r) => setTimeout(r, 1000));
  await qsortLoad();
  perf.kill("SIGINT");
  await perf.status;
  const size = Deno.statSync(data).size;
  const script = await new Deno.Command("perf", {
    args: ["script", "-i", data, "-F", "comm,ip,sym"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(script.stdout);
  const samples = text.split("\n\n").filter((b) => b.trim() !== "");
  const mine = samples.filter((b) => b.includes("comparator"));
  const toMain = mine.filter((b) => /\smain\b/.test(b)).length;
  console.log("perf record --call-graph dwarf -F 1000 -a:");
  console.log(
    `  ${samples.length} samples, perf.data ${size} B (${
      (size / Math.max(1, samples.length)).toFixed(0)
    } B/sample); ` +
      `workload samples ${mine.length}: ${
        ((100 * toMain) / Math.max(1, mine.length)).toFixed(1)
      } % reach main`,
  );
}

// 2. slowdown of a fixed CPU-bound job
{
  await job();
  const plain: number[] = [], traced: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    plain.push(await job());
    let t = 0;
    await systing(["-o", `${tmp}/slow.pb`], async () => {
      t = await job();
    });
    traced.push(t);
  }
  const ratio = median(traced) / median(plain);
  console.log(
    `CPU-bound job on every CPU (s, median of ${ROUNDS}): untraced ${median(plain).toFixed(3)}, ` +
      `under systing (auto, 1000 Hz) ${median(traced).toFixed(3)} → ${
        ((ratio - 1) * 100).toFixed(2)
      } % slower`,
  );
}
await Deno.remove(tmp, { recursive: true });
