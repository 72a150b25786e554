/**
 * Scheduler-tracing benchmark: a context-switch-heavy workload (`perf bench sched pipe`, both
 * ends on CPU 0) untraced and under each tracer of the same two events (sched_switch,
 * sched_waking), interleaved round by round in one run so that the machine's drift hits all
 * alike:
 *   - systing -n (scheduler only) and systing with its defaults (sleep stacks too), and the
 *     defaults' two stack parts apart (--no-cpu-stack-traces: sleep stacks only;
 *     --no-sleep-stack-traces: 1000 Hz CPU samples only), to tell what the defaults pay for;
 *   - a tracefs instance with those events and a 64 MiB buffer per CPU that nobody reads: the
 *     kernel's own recording cost, the floor of every ftrace-based tool;
 *   - `perf record` of the two tracepoints;
 *   - `perf record -F 1000 -a` with no call graph and no tracepoint: what a 1000 Hz clock event
 *     costs this machine before any program or stack, the floor under the defaults' CPU samples;
 *   - Perfetto's tracebox (ftrace data source, compact_sched, 256 MiB buffer), where one is
 *     found (--tracebox PATH, or `tracebox` on PATH).
 * Then one more pass of each systing variant with the kernel's BPF statistics on, for each
 * program's ns/run (the statistics cost a clock read per run, so they are off for the ratios).
 * Prints figures; asserts nothing.
 *
 *   deno run -A bench/sched_bench.ts [--loops N] [--rounds R] [--soak SECS] [--tracebox PATH]
 *
 * --soak SECS additionally records SECS seconds under continuous load and
 * prints systing's RSS every few seconds (it should stay flat).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { parseArgs } from "node:util";
import { inflateSync } from "node:zlib";
import { type Trace, TraceSchema } from "../src/gen/perfetto_trace_pb.ts";
import { costs, programs, withBpfStats } from "./bpf_stats.ts";
import { type FtraceRun, withFtraceInstance } from "./ftrace_instance.ts";
import {
  killTree,
  median,
  pipeBench as pipeLoops,
  refuseIfTraced,
  REPO,
  rssKiB,
  systingCommand,
  type Traced,
  traced,
} from "./tracer_run.ts";

refuseIfTraced();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    loops: { type: "string", default: "200000" },
    rounds: { type: "string", default: "5" },
    soak: { type: "string", default: "0" },
    tracebox: { type: "string", default: "tracebox" },
    // Another checkout of systing (built), run alongside in the same rounds: before/after.
    before: { type: "string" },
  },
});
const BEFORE = values.before ? `${values.before.replace(/\/$/, "")}/` : undefined;
const LOOPS = Number(values.loops);
const ROUNDS = Number(values.rounds);
const SOAK = Number(values.soak);
const EVENTS = ["sched/sched_switch", "sched/sched_waking"];

const tmp = await Deno.makeTempDir({ prefix: "systing-bench-" });
const pipeBench = () => pipeLoops(LOOPS);

function systing(
  extra: string[] = [],
  during: (pid: number) => Promise<number> = () => pipeBench(),
  repo = REPO,
): Promise<Traced> {
  // Each run its own file: figures below are read from the -n runs' files.
  const out = `${tmp}/systing${extra.join("")}${repo === REPO ? "" : "-before"}.pb`;
  const run = systingCommand(repo);
  return traced(
    run.cmd,
    [...run.args, "-v", "-o", out, ...extra],
    /systing: recording/,
    out,
    during,
  );
}

function perfRecord(): Promise<Traced> {
  const out = `${tmp}/perf.data`;
  return traced(
    "perf",
    ["record", "-a", "-e", "sched:sched_switch", "-e", "sched:sched_waking", "-o", out],
    // perf prints nothing when ready; give it the time it needs to open its buffers.
    /^/,
    out,
    async () => {
      await new Promise((r) => setTimeout(r, 1000));
      return pipeBench();
    },
  );
}

/** The cost of sampling at all: a 1000 Hz clock event on every CPU, the IP only. */
function perfSampling(): Promise<Traced> {
  const out = `${tmp}/perf-sampling.data`;
  return traced("perf", ["record", "-F", "1000", "-a", "-o", out], /^/, out, async () => {
    await new Promise((r) => setTimeout(r, 1000));
    return pipeBench();
  });
}

/** The path of a runnable tracebox, or undefined. */
function findTracebox(name: string): string | undefined {
  const dirs = name.includes("/") ? [""] : (Deno.env.get("PATH") ?? "").split(":");
  for (const d of dirs) {
    const path = d ? `${d}/${name}` : name;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here */ }
  }
  return undefined;
}

const TRACEBOX_CONFIG = `
buffers { size_kb: 262144 fill_policy: RING_BUFFER }
data_sources {
  config {
    name: "linux.ftrace"
    ftrace_config {
      ftrace_events: "sched/sched_switch"
      ftrace_events: "sched/sched_waking"
      compact_sched { enabled: true }
    }
  }
}
duration_ms: 600000
`;

function tracebox(path: string): Promise<Traced> {
  const out = `${tmp}/tracebox.pb`;
  Deno.writeTextFileSync(`${tmp}/tracebox.cfg`, TRACEBOX_CONFIG);
  return traced(
    path,
    ["-o", out, "--txt", "-c", `${tmp}/tracebox.cfg`],
    // Like perf, it says nothing once its buffers are set up.
    /^/,
    out,
    async () => {
      await new Promise((r) => setTimeout(r, 2000));
      return pipeBench();
    },
  );
}

function readTrace(path: string): Trace {
  const t = fromBinary(TraceSchema, Deno.readFileSync(path));
  const inner = t.packet.flatMap((p) =>
    p.data.case === "compressedPackets"
      ? fromBinary(TraceSchema, inflateSync(p.data.value)).packet
      : [p]
  );
  t.packet = inner;
  return t;
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Bytes the switch columns of compact_sched take, per switch (tags and lengths included). */
function switchBytes(t: Trace): { switches: number; columnBytes: number } {
  let switches = 0, columnBytes = 0;
  for (const p of t.packet) {
    if (p.data.case !== "ftraceEvents") continue;
    const cs = p.data.value.compactSched;
    if (!cs || cs.switchTimestamp.length === 0) continue;
    const n = cs.switchTimestamp.length;
    switches += n;
    const cols: number[][] = [
      cs.switchTimestamp.map((v, i) => i === 0 ? Number(v) : Number(v)),
      cs.switchPrevState.map(Number),
      cs.switchNextPid,
      cs.switchNextPrio,
      cs.switchNextCommIndex,
    ];
    for (const col of cols) {
      const body = col.reduce((a, v) => a + (v < 0 ? 10 : varintSize(v)), 0);
      columnBytes += 1 + varintSize(body) + body;
    }
  }
  return { switches, columnBytes };
}

function summaryNumber(stderr: string, re: RegExp): number {
  const m = re.exec(stderr);
  return m ? Number(m[1]) : NaN;
}

const traceboxPath = findTracebox(values.tracebox);
console.log(
  `sched pipe benchmark: ${LOOPS} loops × ${ROUNDS} rounds, ${navigator.hardwareConcurrency} CPUs`,
);
console.log(`  systing: ${systingCommand().label}`);
if (BEFORE) console.log(`  before: ${systingCommand(BEFORE).label}`);
const untraced: number[] = [], bySysting: Traced[] = [], byDefault: Traced[] = [];
const bySleepOnly: Traced[] = [], byCpuOnly: Traced[] = [];
const byFtrace: FtraceRun[] = [], byPerf: Traced[] = [], byTracebox: Traced[] = [];
const bySampling: Traced[] = [];
const beforeN: Traced[] = [], beforeDefault: Traced[] = [];
await pipeBench(); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  untraced.push(await pipeBench());
  bySysting.push(await systing(["-n"]));
  byDefault.push(await systing());
  bySleepOnly.push(await systing(["--no-cpu-stack-traces"]));
  byCpuOnly.push(await systing(["--no-sleep-stack-traces"]));
  if (BEFORE) {
    beforeN.push(await systing(["-n"], undefined, BEFORE));
    beforeDefault.push(await systing([], undefined, BEFORE));
  }
  byFtrace.push(await withFtraceInstance(EVENTS, 64 << 10, pipeBench));
  byPerf.push(await perfRecord());
  bySampling.push(await perfSampling());
  if (traceboxPath) byTracebox.push(await tracebox(traceboxPath));
}

const base = median(untraced);
const s = bySysting[bySysting.length - 1];
const ops = (runs: { measured: number }[]) => median(runs.map((x) => x.measured));
const events = summaryNumber(s.stderr, /, (\d+) events, /);
const drops = summaryNumber(s.stderr, /events, (\d+) dropped/);
const drainNs = summaryNumber(s.stderr, /drain worker CPU (\d+) ns\/event/);
const ringBytes = (t: Traced) => summaryNumber(t.stderr, /rings ([\d.]+) B\/event/);
const trace = readTrace(s.output);
const sw = switchBytes(trace);
const fileBytes = Deno.statSync(s.output).size;
const perfBytes = Deno.statSync(byPerf[byPerf.length - 1].output).size;

const compressed = await systing(["-n", "--compress"]);
const cFile = Deno.statSync(compressed.output).size;
const cTrace = readTrace(compressed.output);
const cSw = switchBytes(cTrace);

const f = (x: number, d = 2) => x.toFixed(d);
// Each round's run against that round's untraced run, seconds apart: the machine's drift over
// the benchmark cancels out of the ratio. The median of those ratios is printed.
const ratio = (runs: { measured: number }[]) =>
  median(runs.map((x, i) => x.measured / untraced[i]));
const row = (name: string, runs: { measured: number }[]) =>
  console.log(`  ${name.padEnd(40)} ${String(ops(runs)).padStart(7)}   ${f(ratio(runs), 3)}`);
console.log(
  `throughput (ops/s, median of ${ROUNDS}; traced/untraced, the median of each round's ratio):`,
);
console.log(`  ${"untraced".padEnd(40)} ${String(base).padStart(7)}`);
row("systing -n", bySysting);
row("systing (defaults: sleep stacks)", byDefault);
row("  its sleep stacks alone", bySleepOnly);
row("  its 1000 Hz CPU samples alone", byCpuOnly);
row("ftrace instance, no reader, 64 MiB", byFtrace);
row("perf record", byPerf);
row("perf record -F 1000, no stacks (floor)", bySampling);
if (BEFORE) {
  row("before: systing -n", beforeN);
  row("before: systing (defaults)", beforeDefault);
}
if (traceboxPath) row("tracebox (compact_sched, 256 MiB)", byTracebox);
else console.log(`  tracebox: not found (${values.tracebox}); pass --tracebox PATH`);
const lastFtrace = byFtrace[byFtrace.length - 1];
console.log(
  `  ftrace, last round: ${lastFtrace.entries} entries, ${lastFtrace.overrun} overwritten ` +
    `(no reader), ${lastFtrace.dropped} dropped`,
);
const points = (a: { measured: number }[], b: { measured: number }[]) =>
  median(a.map((x, i) => (x.measured - b[i].measured) / untraced[i] * 100));
console.log(
  `  default − -n: ${f(points(bySysting, byDefault), 1)} points; -n − ftrace: ${
    f(points(bySysting, byFtrace), 1)
  } points (medians of each round's)`,
);
console.log(`systing -n, last round:`);
console.log(`  events ${events}, dropped ${drops}`);
console.log(
  `  drain worker CPU ${drainNs} ns/event, whole process CPU ${f(s.cpuNs / events, 0)} ns/event`,
);
console.log(
  `  on the rings: ${ringBytes(s)} B/event (-n), ${
    ringBytes(byDefault[byDefault.length - 1])
  } B/event (defaults)`,
);
console.log(
  `  sched_switch columns ${f(sw.columnBytes / sw.switches)} B/switch; whole file ${
    f(fileBytes / sw.switches)
  } B/switch`,
);
console.log(`  file ${fileBytes} B vs perf.data ${perfBytes} B`);
console.log(
  `  --compress: ${cFile} B, ${f(cFile / cSw.switches)} B/switch, ${
    f((fileBytes / sw.switches) / (cFile / cSw.switches))
  }× smaller per switch`,
);
console.log(`  peak RSS ${(s.peakRssKiB / 1024).toFixed(1)} MiB`);
console.log(
  `  start→attached ${
    f(median(bySysting.map((x) => x.attachMs)), 0)
  } ms (deno start included), stop→file finished ${
    f(median(bySysting.map((x) => x.finishMs)), 0)
  } ms (process exit included)`,
);
console.log(
  `perf record: start→ready not observable; stop→exit ${
    f(median(byPerf.map((x) => x.finishMs)), 0)
  } ms`,
);

// Per program, with the statistics on: the same load, one more recording of each variant.
console.log(
  `BPF programs (kernel.bpf_stats_enabled, one more round each; ns/run incl. one clock read):`,
);
await withBpfStats(async () => {
  const variants: [string, string[], string][] = [["-n", ["-n"], REPO]];
  if (BEFORE) variants.push(["before -n", ["-n"], BEFORE]);
  variants.push(["defaults", [], REPO]);
  if (BEFORE) variants.push(["before", [], BEFORE]);
  for (const [label, extra, repo] of variants) {
    const existing = await programs();
    let before = existing, after = existing;
    await systing([...extra], async () => {
      before = await programs();
      const measured = await pipeBench();
      after = await programs();
      return measured;
    }, repo);
    // The programs on this load's path (a few hundred runs of the rest say little).
    for (const c of costs(existing, before, after).filter((c) => c.runs >= 1000)) {
      console.log(
        `  ${label.padEnd(10)} ${c.name.padEnd(26)} ${String(c.runs).padStart(9)} runs ${
          f(c.nsPerRun, 0).padStart(6)
        } ns/run`,
      );
    }
  }
});

if (SOAK > 0) {
  console.log(
    `soak: ${SOAK}s under continuous load, RSS (VmRSS) every ${
      Math.max(1, Math.round(SOAK / 12))
    }s:`,
  );
  const soak = await traced(
    systingCommand().cmd,
    [...systingCommand().args, "-v", "-n", "-o", `${tmp}/soak.pb`],
    /systing: recording/,
    `${tmp}/soak.pb`,
    async (pid) => {
      const load = new Deno.Command("taskset", {
        args: ["-c", "0", "perf", "bench", "sched", "pipe", "-l", "100000000"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const samples: number[] = [];
      const step = Math.max(1, Math.round(SOAK / 12));
      for (let t = 0; t < SOAK; t += step) {
        await new Promise((r) => setTimeout(r, step * 1000));
        samples.push(rssKiB(pid, "VmRSS"));
      }
      killTree(load.pid);
      await load.status;
      console.log(`  ${samples.map((k) => (k / 1024).toFixed(0)).join(" ")} MiB`);
      return 0;
    },
  );
  console.log(`  ${/wrote .*/.exec(soak.stderr)?.[0] ?? soak.stderr}`);
}

await Deno.remove(tmp, { recursive: true });
