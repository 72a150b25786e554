/**
 * What a filter saves, in one run (prints figures; asserts nothing):
 *
 * 1. The pipe benchmark (both ends on CPU 0) outside an idle cgroup, untraced, under a
 *    whole-machine recording and under `-c` of that cgroup (default recorders), interleaved:
 *    what untraced work pays for the filter's checks.
 * 2. A busy host (the pipe benchmark running all along) and a small traced application
 *    (test/c/filter_worker.c): file bytes of a whole-machine recording against `-p` of the
 *    application, each SECS seconds, and the share of events the application accounts for.
 *
 *   deno run -A bench/filter_bench.ts [--loops N] [--rounds R] [--seconds SECS]
 */
import { parseArgs } from "node:util";
import {
  DENO,
  killTree,
  median,
  pipeBench,
  refuseIfTraced,
  REPO,
  type Traced,
  traced,
} from "./tracer_run.ts";

refuseIfTraced();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    loops: { type: "string", default: "200000" },
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "5" },
  },
});
const LOOPS = Number(values.loops);
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);

const tmp = await Deno.makeTempDir({ prefix: "systing-filter-bench-" });
const cgroup = `/sys/fs/cgroup/unified/systing-bench-${Deno.pid}`;
await Deno.mkdir(cgroup);

function systing(args: string[], during: () => Promise<number>): Promise<Traced> {
  const out = `${tmp}/t.pb`;
  return traced(
    DENO,
    ["run", "-A", `${REPO}main.ts`, "-v", "-o", out, ...args],
    /systing: recording/,
    out,
    during,
  );
}

const number = (stderr: string, re: RegExp) => Number(re.exec(stderr)?.[1] ?? NaN);
const f = (x: number, d = 2) => x.toFixed(d);

try {
  console.log(
    `filter benchmark: ${navigator.hardwareConcurrency} CPUs; pipe ${LOOPS} loops × ${ROUNDS} ` +
      `rounds; busy host ${SECONDS}s`,
  );
  const untraced: number[] = [], whole: number[] = [], idle: number[] = [];
  let skipped = 0;
  await pipeBench(LOOPS); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    untraced.push(await pipeBench(LOOPS));
    whole.push((await systing([], () => pipeBench(LOOPS))).measured);
    const c = await systing(["-c", cgroup], () => pipeBench(LOOPS));
    idle.push(c.measured);
    skipped = number(c.stderr, /(\d+) switches between untraced tasks not recorded/);
  }
  const base = median(untraced);
  console.log(`1. pipe benchmark outside an idle cgroup (ops/s, median of ${ROUNDS}):`);
  console.log(`  untraced                      ${base}`);
  console.log(
    `  whole machine (default)       ${median(whole)}   (${f(median(whole) / base)} of untraced)`,
  );
  console.log(
    `  -c idle cgroup (default)      ${median(idle)}   (${f(median(idle) / base)} of untraced; ` +
      `${skipped} switches left out in the last round)`,
  );

  // 2. A busy host: the pipe benchmark all along; the application is small beside it.
  const load = new Deno.Command("taskset", {
    args: ["-c", "0", "perf", "bench", "sched", "pipe", "-l", "1000000000"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const worker = `${tmp}/filter_worker`;
  const cc = await new Deno.Command("gcc", {
    args: ["-O1", "-g", "-o", worker, `${REPO}test/c/filter_worker.c`],
  }).output();
  if (!cc.success) throw new Error("cannot build filter_worker");
  const app = new Deno.Command(worker, {
    args: [String(4 * SECONDS + 30)],
    stdin: "null",
    stdout: "null",
  }).spawn();
  const runFor = () => new Promise<number>((r) => setTimeout(() => r(0), SECONDS * 1000));
  try {
    const all = await systing([], runFor);
    const allBytes = Deno.statSync(all.output).size;
    const gone = await Promise.race([
      app.status,
      new Promise((r) => setTimeout(() => r(undefined), 10)),
    ]);
    if (gone) throw new Error(`the application ended early: ${JSON.stringify(gone)}`);
    const one = await systing(["-p", String(app.pid)], runFor);
    const oneBytes = Deno.statSync(one.output).size;
    const events = (t: Traced) => number(t.stderr, /, (\d+) events, /);
    const secs = (t: Traced) => number(t.stderr, /: ([\d.]+) s, \d+ events/);
    const rate = (t: Traced) => events(t) / secs(t);
    console.log(
      `2. busy host (pipe benchmark on CPU 0), application: filter_worker, ${SECONDS}s each:`,
    );
    console.log(
      `  whole machine   ${allBytes} B, ${events(all)} events (${f(rate(all), 0)}/s), ` +
        `dropped ${number(all.stderr, /events, (\d+) dropped/)}`,
    );
    console.log(
      `  -p application  ${oneBytes} B, ${events(one)} events (${f(rate(one), 0)}/s), ` +
        `dropped ${number(one.stderr, /events, (\d+) dropped/)}`,
    );
    console.log(
      `  the application's share of events ${f(100 * rate(one) / rate(all), 1)}%; ` +
        `filtered file ${f(100 * (oneBytes / secs(one)) / (allBytes / secs(all)), 1)}% of the ` +
        `whole machine's bytes per second`,
    );
    console.log(
      `  tracer CPU: whole ${f(all.cpuNs / 1e9)} s, filtered ${f(one.cpuNs / 1e9)} s`,
    );
  } finally {
    killTree(load.pid);
    await load.status;
    try {
      app.kill("SIGKILL");
    } catch { /* gone */ }
    await app.status;
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
  await Deno.remove(cgroup).catch(() => {});
}
