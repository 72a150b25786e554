/**
 * `systing report` against the floor of reading a trace at all: the same file streamed through
 * TraceStream with every packet decoded by the generated types (fromBinary), in the same run.
 * Each side runs as its own process under /usr/bin/time for its wall time and peak RSS. Without
 * --trace it records its own: a small trace (--small-seconds, default 3) and a big one
 * (--seconds, default 60) of pipe ping-pong threads plus a getppid() loop with --syscalls, both
 * in /tmp and removed at the end (--keep keeps them). Root, for the recordings.
 *
 *   deno run -A bench/report_bench.ts [--trace PATH]... [--seconds 60] [--small-seconds 3]
 *   deno run -A bench/report_bench.ts --decode-only PATH      (the floor, as a child process)
 */
import { parseArgs } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { TracePacketSchema } from "../src/gen/perfetto_trace_pb.ts";
import { TraceStream } from "../src/inspect/trace_stream.ts";
import { compileC } from "../test/workload.ts";

const REPO = new URL("../", import.meta.url).pathname;
const DENO = Deno.execPath();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    trace: { type: "string", multiple: true },
    seconds: { type: "string", default: "60" },
    "small-seconds": { type: "string", default: "3" },
    "decode-only": { type: "string" },
    keep: { type: "boolean", default: false },
  },
});

if (values["decode-only"]) {
  let packets = 0;
  const stream = new TraceStream(values["decode-only"]);
  for await (const p of stream.packets()) {
    fromBinary(TracePacketSchema, p.bytes);
    packets++;
  }
  console.log(JSON.stringify({ packets }));
  Deno.exit(0);
}

interface Measured {
  wallS: number;
  maxRssMiB: number;
  stdout: string;
}

/** Runs ARGS under /usr/bin/time -v: wall time (ours) and peak RSS (the kernel's, via time). */
async function measure(args: string[]): Promise<Measured> {
  const t = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-v", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallS = (performance.now() - t) / 1000;
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${args.join(" ")} failed:\n${err}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
  return {
    wallS,
    maxRssMiB: rss ? Number(rss[1]) / 1024 : NaN,
    stdout: new TextDecoder().decode(out.stdout),
  };
}

/** Records SECONDS of ping-pong plus a syscall loop into PATH; returns the events recorded. */
async function recordBusy(path: string, seconds: number): Promise<string> {
  const pingpong = await compileC("pingpong");
  const loop = await compileC("syscall_loop");
  const rec = new Deno.Command(DENO, {
    args: ["run", "-A", `${REPO}main.ts`, "-d", String(seconds), "--syscalls", "-o", path],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Load that outlasts the recording; killed when it ends.
  await new Promise((r) => setTimeout(r, 3000));
  const load = [
    new Deno.Command(pingpong, { args: ["1000000000"], stdout: "null", stderr: "null" }).spawn(),
    new Deno.Command(loop, { args: ["100000000000"], stdout: "null", stderr: "null" }).spawn(),
  ];
  const out = await rec.output();
  for (const l of load) {
    try {
      l.kill("SIGKILL");
    } catch { /* already gone */ }
    await l.status;
  }
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`recording failed:\n${err}`);
  return err.split("\n").filter((l) => /events|dropped/.test(l)).slice(0, 3).join("\n");
}

async function bench(path: string): Promise<void> {
  const size = (await Deno.stat(path)).size;
  const decode = await measure([DENO, "run", "-A", import.meta.filename!, "--decode-only", path]);
  const report = await measure([DENO, "run", "-A", `${REPO}main.ts`, "report", path, "--json"]);
  const rep = JSON.parse(report.stdout);
  const events = (rep.events as { count: number }[]).reduce((n, e) => n + e.count, 0);
  console.log(
    `${path}: ${(size / (1 << 20)).toFixed(1)} MiB, ${
      JSON.parse(decode.stdout).packets
    } packets, ` +
      `${events} events, span ${(rep.trace.durationNs / 1e9).toFixed(1)} s`,
  );
  console.log(
    `  decode (stream + fromBinary)  ${decode.wallS.toFixed(2)} s  peak RSS ${
      decode.maxRssMiB.toFixed(0)
    } MiB`,
  );
  console.log(
    `  report                        ${report.wallS.toFixed(2)} s  peak RSS ${
      report.maxRssMiB.toFixed(0)
    } MiB  (${(report.wallS / decode.wallS).toFixed(2)}× decode)`,
  );
}

const made: string[] = [];
try {
  let traces = values.trace ?? [];
  if (traces.length === 0) {
    for (const [name, secs] of [["small", values["small-seconds"]], ["big", values.seconds]]) {
      const path = `/tmp/systing-report-bench-${name}.pb`;
      made.push(path);
      console.log(`recording ${secs} s into ${path} ...`);
      console.log(await recordBusy(path, Number(secs)));
    }
    traces = made;
  }
  for (const t of traces) await bench(t);
} finally {
  if (!values.keep) { for (const p of made) await Deno.remove(p).catch(() => {}); }
}
