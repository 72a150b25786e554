/**
 * What a uprobe costs per hit: loops calling one function N times (bench/c/uprobe_loop.c), one
 * per CPU at once, untraced, under systing --trace-event uprobe:…, under systing recording the
 * same event's stack each time ("stack": true), and under Debian's bpftrace counting the same
 * uprobe, interleaved in one run. Prints ns per call, the per-hit cost, the hit rate and what
 * systing kept and lost; asserts nothing.
 *
 *   deno run -A bench/probe_bench.ts [--calls N] [--rounds R]
 */
import { parseArgs } from "node:util";
import { DENO, median, refuseIfTraced, REPO } from "./tracer_run.ts";

refuseIfTraced();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    calls: { type: "string", default: "1000000" },
    rounds: { type: "string", default: "3" },
    procs: { type: "string", default: String(navigator.hardwareConcurrency) },
  },
});
const PROCS = Number(values.procs);
const CALLS = Number(values.calls);
const ROUNDS = Number(values.rounds);
const tmp = await Deno.makeTempDir({ prefix: "systing-probe-bench-" });
const bin = `${tmp}/uprobe_loop`;
const cc = await new Deno.Command("gcc", {
  args: ["-O2", "-o", bin, `${REPO}bench/c/uprobe_loop.c`],
}).output();
if (!cc.success) throw new Error("gcc failed");
const spec = `uprobe:${bin}:uprobe_loop_hit`;

/**
 * Runs the loops once TRACER (if any) has printed READY; returns their median ns/call, the hits
 * per second of all of them together, and the tracer's output.
 */
async function run(tracer?: { cmd: string; args: string[]; ready: RegExp; settleMs?: number }) {
  const loops = Array.from(
    { length: PROCS },
    () => new Deno.Command(bin, { args: [String(CALLS)], stdin: "piped", stdout: "piped" }).spawn(),
  );
  let child: Deno.ChildProcess | undefined;
  let err = "";
  const reader = (() => {
    if (!tracer) return undefined;
    child = new Deno.Command(tracer.cmd, { args: tracer.args, stdout: "piped", stderr: "piped" })
      .spawn();
    return child;
  })();
  const both = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s.pipeThrough(new TextDecoderStream())) err += c;
  };
  const drained = reader ? [both(reader.stderr), both(reader.stdout)] : [];
  if (tracer) {
    const deadline = Date.now() + 60_000;
    while (!tracer.ready.test(err)) {
      if (Date.now() > deadline) throw new Error(`${tracer.cmd} not ready:\n${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // bpftrace says "Attaching" before it has: give it time, or the loops run untraced.
    await new Promise((r) => setTimeout(r, tracer.settleMs ?? 0));
  }
  for (const loop of loops) {
    const w = loop.stdin.getWriter();
    await w.write(new TextEncoder().encode("go\n"));
    await w.close();
  }
  const each = await Promise.all(loops.map(async (loop) => {
    const out = await loop.output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).ns_per_call as number;
  }));
  const nsPerCall = median(each);
  const rate = each.reduce((a, ns) => a + 1e9 / ns, 0);
  if (child) {
    // bpftrace under a heavy uprobe load has been seen to miss a SIGINT: then TERM, then KILL.
    for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"] as const) {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      const done = await Promise.race([
        child.status.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
      ]);
      if (done) break;
    }
    await Promise.all(drained);
  }
  return { nsPerCall, rate, err };
}

const systing = {
  cmd: DENO,
  args: [
    "run",
    "-A",
    `${REPO}main.ts`,
    "-n",
    "--no-irq",
    "-o",
    `${tmp}/t.pb`,
    "--trace-event",
    spec,
  ],
  ready: /systing: recording/,
};
await Deno.writeTextFile(
  `${tmp}/stack.json`,
  JSON.stringify({ events: [{ name: "hit", event: spec, stack: true }] }),
);
const systingStack = {
  ...systing,
  args: [...systing.args.slice(0, -2), "--trace-event-config", `${tmp}/stack.json`],
};
const bpftrace = {
  cmd: "bpftrace",
  // Line-buffered: its "Attaching" line says it is ready.
  args: ["-B", "line", "-e", `uprobe:${bin}:uprobe_loop_hit { @ = count(); }`],
  ready: /Attaching 1 probe/,
  settleMs: 2000,
};

console.log(`uprobe benchmark: ${PROCS} loops at once × ${CALLS} calls × ${ROUNDS} rounds`);
const runs: Record<string, number[]> = { untraced: [], systing: [], "+stack": [], bpftrace: [] };
const rates: Record<string, number[]> = { untraced: [], systing: [], "+stack": [], bpftrace: [] };
let last = "", lastStack = "", lastBpftrace = "";
for (let r = 0; r < ROUNDS; r++) {
  const u = await run();
  runs.untraced.push(u.nsPerCall);
  rates.untraced.push(u.rate);
  const s = await run(systing);
  runs.systing.push(s.nsPerCall);
  rates.systing.push(s.rate);
  last = s.err;
  const k = await run(systingStack);
  runs["+stack"].push(k.nsPerCall);
  rates["+stack"].push(k.rate);
  lastStack = k.err;
  const b = await run(bpftrace);
  runs.bpftrace.push(b.nsPerCall);
  rates.bpftrace.push(b.rate);
  lastBpftrace = b.err;
}
const base = median(runs.untraced);
const f = (x: number) => x.toFixed(1);
for (const [name, xs] of Object.entries(runs)) {
  const m = median(xs);
  const hit = m - base;
  console.log(
    `  ${name.padEnd(9)} ${f(m).padStart(8)} ns/call` +
      (name === "untraced"
        ? ""
        : `   ${f(hit)} ns per hit, ${f(median(rates[name]) / 1000)}k hits/s in all`),
  );
}
console.log(
  `  systing / bpftrace per hit: ${
    ((median(runs.systing) - base) / (median(runs.bpftrace) - base)).toFixed(2)
  }`,
);
console.log(
  `  systing, last round: ${/events: .*/.exec(last)?.[0]}; ${/dropped: .*/.exec(last)?.[0]}`,
);
console.log(
  `  systing with stacks, last round: ${/stacks: [^;]*/.exec(lastStack)?.[0]}; ` +
    `${/dropped: .*/.exec(lastStack)?.[0]}; ${/stack processing .*/.exec(lastStack)?.[0] ?? ""}`,
);
console.log(
  `  bpftrace, last round: ${/@: \d+/.exec(lastBpftrace)?.[0] ?? lastBpftrace.slice(-200)}`,
);
await Deno.remove(tmp, { recursive: true });
