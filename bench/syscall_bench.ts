/**
 * System-call tracing benchmark: a loop of getppid() calls (test/c/syscall_loop.c, pinned to
 * CPU 0) untraced, traced by systing's syscalls recorder alone, by systing with its default
 * recorders plus --syscalls, and by `perf record -e raw_syscalls:sys_enter -e
 * raw_syscalls:sys_exit -a`, interleaved in one run so that the machine's drift hits all alike.
 * Prints ns per call, ratios, and what each tracer kept and lost; asserts nothing.
 *
 *   deno run -A bench/syscall_bench.ts [--calls N] [--rounds R]
 */
import { parseArgs } from "node:util";
import { DENO, median, refuseIfTraced, REPO, type Traced, traced } from "./tracer_run.ts";

refuseIfTraced();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    calls: { type: "string", default: "1000000" },
    rounds: { type: "string", default: "3" },
  },
});
const CALLS = Number(values.calls);
const ROUNDS = Number(values.rounds);
const tmp = await Deno.makeTempDir({ prefix: "systing-bench-" });

const bin = `${tmp}/syscall_loop`;
const cc = await new Deno.Command("gcc", {
  args: ["-O2", "-pthread", "-o", bin, `${REPO}test/c/syscall_loop.c`],
}).output();
if (!cc.success) throw new Error("gcc failed");

/** ns per getppid() call, measured by the loop itself, on CPU 0. */
async function loop(): Promise<number> {
  const out = await new Deno.Command("taskset", {
    args: ["-c", "0", bin, String(CALLS)],
    stdout: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).ns_per_call;
}

type Run = Traced;

/** Starts a tracer, waits until it is ready (and SETTLE_MS more), runs the loop, stops it. */
function tracedLoop(cmd: string, args: string[], ready: RegExp, settleMs = 0): Promise<Run> {
  return traced(cmd, args, ready, "", async () => {
    await new Promise((r) => setTimeout(r, settleMs));
    return await loop();
  });
}

const systing = (extra: string[]) =>
  tracedLoop(
    DENO,
    ["run", "-A", `${REPO}main.ts`, "-o", `${tmp}/systing.pb`, ...extra],
    /systing: recording/,
  );

const perf = () =>
  tracedLoop(
    "perf",
    [
      "record",
      "-a",
      "-e",
      "raw_syscalls:sys_enter",
      "-e",
      "raw_syscalls:sys_exit",
      "-o",
      `${tmp}/perf.data`,
    ],
    // perf prints nothing when ready; give it the time it needs to open its buffers.
    /^/,
    1000,
  );

console.log(`syscall benchmark: ${CALLS} getppid() calls × ${ROUNDS} rounds on CPU 0`);
const runs: Record<string, number[]> = { untraced: [], alone: [], defaults: [], perf: [] };
let alone: Run | undefined, defaults: Run | undefined, byPerf: Run | undefined;
await loop(); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  runs.untraced.push(await loop());
  alone = await systing(["--only-recorder", "syscalls"]);
  runs.alone.push(alone.measured);
  defaults = await systing(["--syscalls"]);
  runs.defaults.push(defaults.measured);
  byPerf = await perf();
  runs.perf.push(byPerf.measured);
}

const f = (x: number, d = 2) => x.toFixed(d);
const base = median(runs.untraced);
const row = (name: string, ns: number) =>
  console.log(`  ${name.padEnd(34)} ${f(ns, 1).padStart(7)} ns/call  ${f(ns / base)}× untraced`);
console.log(`ns per call (median of ${ROUNDS}):`);
row("untraced", base);
row("systing --only-recorder syscalls", median(runs.alone));
row("systing --syscalls (+ defaults)", median(runs.defaults));
row("perf record raw_syscalls -a", median(runs.perf));
console.log(`  systing (syscalls alone) / perf: ${f(median(runs.alone) / median(runs.perf))}`);
const line = (re: RegExp, s?: Run) => re.exec(s?.stderr ?? "")?.[0] ?? "(none)";
console.log("last round, what was kept:");
console.log(`  systing alone:    ${line(/events: .*/, alone)}; ${line(/dropped: .*/, alone)}`);
console.log(
  `  systing defaults: ${line(/syscall \d+/, defaults)}; ${line(/dropped: .*/, defaults)}`,
);
console.log(`  perf:             ${line(/\[ perf record: Captured.*/, byPerf)}`);
console.log(`                    ${line(/.*lost.*/i, byPerf)}`);

await Deno.remove(tmp, { recursive: true });
