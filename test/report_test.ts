// `systing report` on a real recording (root, real BPF): two pipe ping-pong threads and a waiter
// blocked in D, focused by pid so that whatever else the shared machine runs does not matter.
// The latency percentiles are checked against a second, independent computation over the
// in-memory view of the same trace (test/trace_reader.ts).
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { PERCENTILE_RELATIVE_ERROR } from "../src/inspect/latency_histogram.ts";
import { fmtCount, fmtNs } from "../src/inspect/report_text.ts";
import type { Latency, Report } from "../src/inspect/trace_report.ts";
import { readTrace, type TraceView } from "./trace_reader.ts";
import { compile, compileC, record, type Recording, runJson, runRecorder } from "./workload.ts";

interface PingPong {
  pid: number;
  ping_tid: number;
  pong_tid: number;
}

interface DWaiter {
  tid: number;
  blocked_ns: number;
}

interface Recorded {
  rec: Recording<[PingPong, DWaiter]>;
  view: TraceView;
  /** Scratch files beside the recording: a gzip'd copy, a file that is no trace. */
  dataDir: string;
}

let recorded: Promise<Recorded> | undefined;

/** One recording for every test of this file. */
function recording(): Promise<Recorded> {
  recorded ??= (async () => {
    // A name of its own, so that its process is told apart from anything else running.
    const pingpong = await compile("pingpong.c", { output: "report_pingpong" });
    const dWaiter = await compileC("d_waiter");
    const dataDir = await Deno.makeTempDir({ prefix: "systing-report-" });
    await Deno.writeFile(`${dataDir}/data.bin`, new Uint8Array(1 << 20).map((_, i) => i >> 12));
    const cpu = navigator.hardwareConcurrency - 1;
    const rec = await record(
      () =>
        Promise.all([
          runJson<PingPong>(pingpong, ["100000"]),
          runJson<DWaiter>(dWaiter, [String(cpu), "200"]),
        ]),
      ["--no-cpu-stack-traces"],
    );
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(rec.dir, { recursive: true });
      Deno.removeSync(dataDir, { recursive: true });
    });
    assert.equal(rec.exit.code, 0, rec.exit.stderr);
    return { rec, view: await readTrace(rec.tracePath), dataDir };
  })();
  return recorded;
}

async function report(args: string[]): Promise<string> {
  const r = await runRecorder(["report", ...args]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  return r.stdout;
}

function focus(r: Recorded): string[] {
  const [pp, d] = r.rec.result;
  return ["--pid", String(pp.pid), "--pid", String(d.tid)];
}

/**
 * Scheduling latencies of TIDS computed straight from the trace's records, all CPUs merged by
 * time: a wait starts at a switch out as R (0, or 0x100 when preempted) or at a wake-up
 * (sched_waking, sched_wakeup_new) of a thread not running, and ends at its switch in. A thread
 * whose state before its first switch in is unknown has no wait.
 */
function latencies(view: TraceView, tids: Set<number>): Map<number, number[]> {
  type Ev = { ts: bigint; order: number; kind: "in" | "out" | "wake"; tid: number; state: number };
  const evs: Ev[] = [];
  for (const s of view.switches) {
    if (s.prevPid !== undefined && tids.has(s.prevPid)) {
      evs.push({ ts: s.ts, order: 2, kind: "out", tid: s.prevPid, state: s.prevState });
    }
    if (tids.has(s.nextPid)) evs.push({ ts: s.ts, order: 3, kind: "in", tid: s.nextPid, state: 0 });
  }
  for (const w of view.wakings) {
    if (tids.has(w.pid)) evs.push({ ts: w.ts, order: 1, kind: "wake", tid: w.pid, state: 0 });
  }
  for (const e of view.events) {
    if (e.event.case === "schedWakeupNew" && tids.has(e.event.value.pid)) {
      evs.push({ ts: e.ts, order: 0, kind: "wake", tid: e.event.value.pid, state: 0 });
    }
  }
  evs.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.order - b.order));
  const out = new Map<number, number[]>();
  const running = new Set<number>();
  const waitingSince = new Map<number, bigint>();
  for (const e of evs) {
    if (e.kind === "out") {
      running.delete(e.tid);
      if (e.state === 0 || e.state === 0x100) waitingSince.set(e.tid, e.ts);
      else waitingSince.delete(e.tid);
    } else if (e.kind === "wake") {
      if (!running.has(e.tid)) waitingSince.set(e.tid, e.ts);
    } else {
      const since = waitingSince.get(e.tid);
      if (since !== undefined) {
        let list = out.get(e.tid);
        if (!list) out.set(e.tid, list = []);
        list.push(Number(e.ts - since));
      }
      waitingSince.delete(e.tid);
      running.add(e.tid);
    }
  }
  return out;
}

function assertLatency(got: Latency | undefined, values: number[], what: string): void {
  assert.ok(got, `${what}: no latency in the report`);
  assert.equal(got.count, values.length, `${what}: waits`);
  const sorted = values.toSorted((a, b) => a - b);
  const rank = (p: number) => sorted[Math.ceil((p / 100) * sorted.length) - 1];
  for (const [p, v] of [[50, got.p50Ns], [90, got.p90Ns], [99, got.p99Ns]] as const) {
    const exact = rank(p);
    assert.ok(
      Math.abs(v - exact) <= exact * PERCENTILE_RELATIVE_ERROR + 1,
      `${what}: p${p} ${v} ns, computed from the trace ${exact} ns`,
    );
  }
  assert.equal(got.maxNs, sorted[sorted.length - 1], `${what}: max`);
}

Deno.test("report: focused on the workload, the ping-pong threads lead by CPU time", async () => {
  const r = await recording();
  const [pp, d] = r.rec.result;
  const rep = JSON.parse(
    await report([r.rec.tracePath, "--json", "--pid", String(pp.pid)]),
  ) as Report;
  const lead = rep.threads.slice(0, 2).map((t) => t.tid).sort((a, b) => a - b);
  assert.deepEqual(lead, [pp.ping_tid, pp.pong_tid].sort((a, b) => a - b));
  assert.deepEqual(rep.threads.slice(0, 2).map((t) => t.name).sort(), ["ping", "pong"]);
  for (const t of rep.threads) assert.equal(t.pid, pp.pid, `thread ${t.tid} out of focus`);
  // By name: the two threads, and nothing else on the machine is called so... unless it is.
  const byName = JSON.parse(
    await report([r.rec.tracePath, "--json", "--comm", "ping", "--comm", "pong"]),
  ) as Report;
  for (const tid of [pp.ping_tid, pp.pong_tid]) {
    assert.ok(byName.threads.some((t) => t.tid === tid), `${tid} not found by --comm`);
  }
  for (const t of byName.threads) assert.ok(["ping", "pong"].includes(t.name), t.name);
  // A --pid names a thread or a whole process.
  const both = JSON.parse(await report([r.rec.tracePath, "--json", ...focus(r)])) as Report;
  for (const t of both.threads) {
    assert.ok(
      t.pid === pp.pid || t.tid === d.tid || t.pid === d.tid,
      `thread ${t.tid} of ${t.pid} out of focus`,
    );
  }
  assert.equal(rep.processes.find((p) => p.pid === pp.pid)?.name, "report_pingpong");
  // Each ping-pong thread ran and slept in S: a round trip blocks in read().
  for (const tid of [pp.ping_tid, pp.pong_tid]) {
    const t = rep.threads.find((x) => x.tid === tid)!;
    assert.ok(t.runningNs > 0 && t.sleepingNs > 0 && t.switches > 1000, JSON.stringify(t));
  }
});

Deno.test("report: the D-state waiter's blocked time and its stack appear", async () => {
  const r = await recording();
  const [, d] = r.rec.result;
  const rep = JSON.parse(await report([r.rec.tracePath, "--json", ...focus(r)])) as Report;
  const waiter = rep.threads.find((t) => t.tid === d.tid);
  assert.ok(waiter, `the waiter ${d.tid} is not among the focused threads`);
  // The kernel's account covers its vfork loop only; the trace sees at least that.
  assert.ok(
    waiter.blockedNs >= 0.9 * d.blocked_ns,
    `D ${waiter.blockedNs} ns, the kernel's ${d.blocked_ns} ns`,
  );
  const section = rep.stacks.blockedD;
  assert.ok(section && section.ns! > 0, "no blocked (D) stacks");
  const mine = section.top.filter((s) => s.stack.startsWith(`${waiter.name};`));
  assert.ok(mine.length > 0, `no D stack of ${waiter.name}: ${JSON.stringify(section.top)}`);
  assert.ok(mine.some((s) => /schedule/.test(s.stack)), JSON.stringify(mine));
  // The text shows the same section with the waiter's share.
  const text = await report([r.rec.tracePath, ...focus(r)]);
  assert.match(text, /^TOP BLOCKED STACKS, UNINTERRUPTIBLE \(D\)/m);
  assert.ok(text.includes(`${(mine[0].share * 100).toFixed(1)}%`));
});

Deno.test("report: latency percentiles agree with the trace's own records", async () => {
  const r = await recording();
  const [pp, d] = r.rec.result;
  const rep = JSON.parse(
    await report([r.rec.tracePath, "--json", ...focus(r), "--top", "50"]),
  ) as Report;
  assert.equal(rep.drops.late, 0, "scheduler events the report could not put in order");
  const focused = new Set(rep.threads.map((t) => t.tid));
  for (const tid of [pp.ping_tid, pp.pong_tid, d.tid]) assert.ok(focused.has(tid));
  const lat = latencies(r.view, focused);
  for (const tid of [pp.ping_tid, pp.pong_tid]) {
    const row = rep.latency.threads.find((t) => t.tid === tid);
    assertLatency(row?.latency, lat.get(tid) ?? [], `thread ${tid}`);
  }
  assertLatency(rep.latency.all, [...lat.values()].flat(), "all focused threads");
});

Deno.test("report: --json and the text say the same; lines fit 100 columns; gzip reads the same", async () => {
  const r = await recording();
  const args = [r.rec.tracePath, ...focus(r)];
  const rep = JSON.parse(await report([...args, "--json"])) as Report;
  const text = await report(args);
  for (const line of text.split("\n")) assert.ok(line.length <= 100, line);
  const block = (title: string) => {
    const at = text.indexOf(`\n${title}`);
    assert.ok(at >= 0, `no ${title} in\n${text}`);
    return text.slice(at + 1).split("\n\n")[0].split("\n").slice(2);
  };
  assert.equal(block("TOP THREADS BY CPU TIME").length, rep.threads.length);
  rep.threads.forEach((t, i) => {
    const line = block("TOP THREADS BY CPU TIME")[i];
    assert.match(line, new RegExp(`^\\s*${t.tid}\\s+${t.pid}\\s`));
    assert.ok(line.includes(` ${fmtNs(t.runningNs)} `), `${line} vs ${fmtNs(t.runningNs)}`);
    assert.ok(line.endsWith(` ${fmtCount(t.switches)}`), line);
  });
  const all = block("SCHEDULING LATENCY")[0];
  const l = rep.latency.all!;
  assert.deepEqual(
    all.trim().split(/\s+/).slice(-5),
    [fmtCount(l.count), fmtNs(l.p50Ns), fmtNs(l.p90Ns), fmtNs(l.p99Ns), fmtNs(l.maxNs)],
  );
  // The same trace gzip'd whole gives the same report.
  const gz = `${r.dataDir}/trace.pb.gz`;
  await Deno.writeFile(gz, gzipSync(await Deno.readFile(r.rec.tracePath)));
  const fromGz = JSON.parse(await report([gz, "--json", ...focus(r)])) as Report;
  assert.deepEqual({ ...fromGz, trace: undefined }, { ...rep, trace: undefined });
  assert.equal(fromGz.trace.traceBytes, rep.trace.fileBytes);
});

Deno.test("report: bad input is one line and a non-zero exit", async () => {
  const r = await recording();
  const cases: [string[], number, RegExp][] = [
    [[], 2, /which trace/],
    [[r.rec.tracePath, "--pid", "x"], 2, /--pid takes/],
    [[r.rec.tracePath, "--bogus"], 2, /bogus/],
    [["/nonexistent/trace.pb"], 1, /nonexistent/],
    [[r.rec.dir], 1, /systing report/],
  ];
  for (const [args, code, message] of cases) {
    const out = await runRecorder(["report", ...args]);
    assert.equal(out.code, code, `${args.join(" ")}: ${out.stderr}`);
    assert.match(out.stderr, message);
    assert.ok(!/\n\s+at /.test(out.stderr), `a stack trace: ${out.stderr}`);
  }
  const notTrace = `${r.dataDir}/data.bin`;
  const out = await runRecorder(["report", notTrace]);
  assert.equal(out.code, 1, out.stderr);
  assert.equal(out.stderr.trim().split("\n").length, 1, out.stderr);
});
