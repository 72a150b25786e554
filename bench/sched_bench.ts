/**
 * Scheduler-tracing benchmark: a context-switch-heavy workload (`perf bench
 * sched pipe`) untraced, traced by systing, and traced by `perf record` of
 * the same two tracepoints, interleaved in one run so that the machine's
 * drift hits all three alike. Prints figures; asserts nothing.
 *
 *   deno run -A bench/sched_bench.ts [--loops N] [--rounds R] [--soak SECS]
 *
 * --soak SECS additionally records SECS seconds under continuous load and
 * prints systing's RSS every few seconds (it should stay flat).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { parseArgs } from "node:util";
import { inflateSync } from "node:zlib";
import { type Trace, TraceSchema } from "../src/gen/perfetto_trace_pb.ts";
import {
  DENO,
  killTree,
  median,
  pipeBench as pipeLoops,
  REPO,
  rssKiB,
  type Traced,
  traced,
} from "./tracer_run.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    loops: { type: "string", default: "400000" },
    rounds: { type: "string", default: "3" },
    soak: { type: "string", default: "0" },
  },
});
const LOOPS = Number(values.loops);
const ROUNDS = Number(values.rounds);
const SOAK = Number(values.soak);

const tmp = await Deno.makeTempDir({ prefix: "systing-bench-" });
const pipeBench = () => pipeLoops(LOOPS);

function systing(extra: string[] = []): Promise<Traced> {
  const out = `${tmp}/systing.pb`;
  return traced(
    DENO,
    // -n: scheduler events only, the same content as the perf record baseline.
    ["run", "-A", `${REPO}main.ts`, "-v", "-n", "-o", out, ...extra],
    /systing: recording/,
    out,
    () => pipeBench(),
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
    async (pid) => {
      await new Promise((r) => setTimeout(r, 1000));
      void pid;
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

console.log(
  `sched pipe benchmark: ${LOOPS} loops × ${ROUNDS} rounds, ${navigator.hardwareConcurrency} CPUs`,
);
const untraced: number[] = [], bySysting: Traced[] = [], byPerf: Traced[] = [];
await pipeBench(); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  untraced.push(await pipeBench());
  bySysting.push(await systing());
  byPerf.push(await perfRecord());
}

const base = median(untraced);
const s = bySysting[bySysting.length - 1];
const sOps = median(bySysting.map((x) => x.measured));
const pOps = median(byPerf.map((x) => x.measured));
const events = summaryNumber(s.stderr, /, (\d+) events, /);
const drops = summaryNumber(s.stderr, /events, (\d+) dropped/);
const drainNs = summaryNumber(s.stderr, /drain worker CPU (\d+) ns\/event/);
const trace = readTrace(s.output);
const sw = switchBytes(trace);
const fileBytes = Deno.statSync(s.output).size;
const perfBytes = Deno.statSync(byPerf[byPerf.length - 1].output).size;

const compressed = await systing(["--compress"]);
const cFile = Deno.statSync(compressed.output).size;
const cTrace = readTrace(compressed.output);
const cSw = switchBytes(cTrace);

const f = (x: number, d = 2) => x.toFixed(d);
console.log(`throughput (ops/s, median of ${ROUNDS}):`);
console.log(`  untraced            ${base}`);
console.log(`  systing             ${sOps}   (${f(sOps / base)} of untraced)`);
console.log(`  perf record         ${pOps}   (${f(pOps / base)} of untraced)`);
console.log(`  systing / perf      ${f(sOps / pOps)}`);
console.log(`systing, last round:`);
console.log(`  events ${events}, dropped ${drops}`);
console.log(
  `  drain worker CPU ${drainNs} ns/event, whole process CPU ${f(s.cpuNs / events, 0)} ns/event`,
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

if (SOAK > 0) {
  console.log(
    `soak: ${SOAK}s under continuous load, RSS (VmRSS) every ${
      Math.max(1, Math.round(SOAK / 12))
    }s:`,
  );
  const soak = await traced(
    DENO,
    ["run", "-A", `${REPO}main.ts`, "-v", "-n", "-o", `${tmp}/soak.pb`],
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
