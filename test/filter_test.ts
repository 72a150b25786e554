/**
 * Filters (-p, -c): the traced tasks' samples, sleep stacks and system calls are all there and
 * nobody else's are; cgroups count with their descendants (one created after the start too) on
 * v2 and on a v1 hierarchy; -p follows forks; and a filtered trace gives a traced task exactly
 * the running intervals and wake-ups an unfiltered recording of the same moments gives it.
 */
import assert from "node:assert/strict";
import { UNTRACED_PID } from "../src/records/records.ts";
import { readTrace, type TraceView } from "./trace_reader.ts";
import { assertTraceChecks, compile, compileC, record, Recorder, runRecorder } from "./workload.ts";

// Killed when a test is done with them; this only has to outlast the tracer's start, which on a
// loaded machine took longer than the 4 s this once was (the workers ended before recording).
const WORKER_SECONDS = 30;

/** A running filter_worker: its pid, and a way to make it fork a child (whose pid it returns). */
class Worker {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffered = "";

  constructor(bin: string, procs?: string) {
    this.#child = new Deno.Command(bin, {
      args: [String(WORKER_SECONDS), ...procs ? [procs] : []],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = this.#child.stdout.getReader();
  }

  get pid(): number {
    return this.#child.pid;
  }

  async fork(): Promise<number> {
    await this.#writer.write(new TextEncoder().encode("\n"));
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`worker ${this.pid} ended before forking`);
      this.#buffered += new TextDecoder().decode(value);
    }
    const [line, ...rest] = this.#buffered.split("\n");
    this.#buffered = rest.join("\n");
    return Number(line);
  }

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#writer.close().catch(() => {});
    this.#reader.releaseLock();
    await this.#child.stdout.cancel().catch(() => {});
    await this.#child.status;
  }
}

/** What a trace holds of one process: CPU samples, sleep stacks and system calls. */
function holdings(view: TraceView, pid: number) {
  return {
    samples: view.stackSamples.filter((s) => s.source === "on_cpu" && s.pid === pid).length,
    sleeps: view.stackSamples.filter((s) => s.source === "sleep.interruptible" && s.pid === pid)
      .length,
    syscalls:
      [...view.tracks.values()].filter((t) =>
        t.name === "syscalls" && t.thread?.pid === pid &&
        (view.sliceCounts.get(t.uuid) ?? 0) > 0
      ).length,
  };
}

function assertTraced(view: TraceView, pid: number, what: string): void {
  const h = holdings(view, pid);
  assert.ok(
    h.samples > 0 && h.sleeps > 0 && h.syscalls > 0,
    `${what} ${pid}: ${JSON.stringify(h)}`,
  );
}

function assertUntraced(view: TraceView, pid: number, what: string): void {
  const h = holdings(view, pid);
  assert.deepEqual(h, { samples: 0, sleeps: 0, syscalls: 0 }, `${what} ${pid}`);
}

async function withCgroup<T>(root: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = `${root}/systing-test-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await Deno.mkdir(dir);
  try {
    return await fn(dir);
  } finally {
    // Children first; a cgroup goes only once its tasks have.
    for (let i = 0; i < 100; i++) {
      try {
        for (const e of Deno.readDirSync(dir)) {
          if (e.isDirectory) Deno.removeSync(`${dir}/${e.name}`);
        }
        Deno.removeSync(dir);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/**
 * A worker in a fresh cgroup under ROOT from before the start, a second in a child cgroup made
 * after it, a third outside: the first two are traced, the third is not.
 */
async function cgroupCase(root: string): Promise<void> {
  const bin = await compileC("filter_worker");
  await withCgroup(root, async (dir) => {
    const workers: Worker[] = [];
    try {
      const inside = new Worker(bin, `${dir}/cgroup.procs`);
      workers.push(inside);
      const rec = await record(async () => {
        await Deno.mkdir(`${dir}/later`);
        const later = new Worker(bin, `${dir}/later/cgroup.procs`);
        const outside = new Worker(bin);
        workers.push(later, outside);
        await new Promise((r) => setTimeout(r, 1500));
        return { later: later.pid, outside: outside.pid };
      }, ["-c", dir, "--syscalls"]);
      try {
        assert.equal(rec.exit.code, 0, rec.exit.stderr);
        assert.match(rec.exit.stderr, new RegExp(`filter: traced cgroup ${dir} and those below`));
        const view = await readTrace(rec.tracePath, {
          keepSlicesOf: () => false,
          keepPackets: false,
        });
        assertTraced(view, inside.pid, "the worker in the cgroup");
        assertTraced(view, rec.result.later, "the worker in a cgroup made later");
        assertUntraced(view, rec.result.outside, "the worker outside");
        assertUntraced(view, rec.pid, "the tracer");
      } finally {
        await Deno.remove(rec.dir, { recursive: true });
      }
    } finally {
      for (const w of workers) await w.close();
    }
  });
}

Deno.test("filter -c: a v2 cgroup and every cgroup below it, made before or after the start", () =>
  cgroupCase("/sys/fs/cgroup/unified"));

Deno.test("filter -c: a cgroup of a v1 hierarchy, matched on that hierarchy", async () => {
  const v1 = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"]
    .find((p) => {
      try {
        return Deno.statSync(`${p}/cgroup.procs`).isFile;
      } catch {
        return false;
      }
    });
  assert.ok(v1, "this host has a v1 cpu, pids or memory hierarchy (hybrid cgroups)");
  await cgroupCase(v1);
});

Deno.test("filter -p: the process and the children it forks while recording, nobody else", async () => {
  const bin = await compileC("filter_worker");
  const parent = new Worker(bin);
  const other = new Worker(bin);
  try {
    const rec = await record(async () => {
      const children = [await parent.fork(), await parent.fork()];
      await new Promise((r) => setTimeout(r, 1500));
      return children;
    }, ["-p", String(parent.pid), "--syscalls", "-v"]);
    try {
      assert.equal(rec.exit.code, 0, rec.exit.stderr);
      assert.match(rec.exit.stderr, new RegExp(`filter: pid ${parent.pid}: 1 threads marked`));
      const view = await readTrace(rec.tracePath, {
        keepSlicesOf: () => false,
        keepPackets: false,
      });
      assertTraced(view, parent.pid, "the -p process");
      for (const c of rec.result) assertTraced(view, c, "a child it forked");
      assertUntraced(view, other.pid, "an unrelated busy process");
    } finally {
      await Deno.remove(rec.dir, { recursive: true });
    }
  } finally {
    await parent.close();
    await other.close();
  }
});

interface Interval {
  tid: number;
  cpu: number;
  start: bigint;
  end: bigint;
}

/**
 * Running intervals from the compact switches, as Perfetto reads them (a switch's prev is the
 * CPU's last next), of the tasks KEEP accepts.
 */
function runningIntervals(view: TraceView, keep: (tid: number) => boolean): Interval[] {
  const out: Interval[] = [];
  for (const [cpu, switches] of view.switchesByCpu) {
    const sorted = [...switches].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    for (let i = 0; i + 1 < sorted.length; i++) {
      if (keep(sorted[i].nextPid)) {
        out.push({ tid: sorted[i].nextPid, cpu, start: sorted[i].ts, end: sorted[i + 1].ts });
      }
    }
  }
  return out;
}

/** Those of A with no counterpart in B: same thread and CPU, both ends within TOL ns. */
function unmatched(a: Interval[], b: Interval[], tol: bigint): Interval[] {
  const byTask = new Map<string, bigint[][]>();
  for (const y of b) {
    const k = `${y.tid}/${y.cpu}`;
    if (!byTask.has(k)) byTask.set(k, []);
    byTask.get(k)!.push([y.start, y.end]);
  }
  for (const list of byTask.values()) list.sort((p, q) => (p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : 0));
  const abs = (x: bigint) => (x < 0n ? -x : x);
  return a.filter((x) => {
    const list = byTask.get(`${x.tid}/${x.cpu}`) ?? [];
    // The first that starts no earlier than x.start - tol, then on while within tol.
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid][0] < x.start - tol) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < list.length && list[i][0] <= x.start + tol; i++) {
      if (abs(list[i][1] - x.end) <= tol) return false;
    }
    return true;
  });
}

/**
 * The switches in and out of the tasks TRACED, CPU by CPU, of two recordings of the same moments
 * set side by side: those of A from FROM to TO against B's. Both recorders see every such switch,
 * so the two lists are the same switches in the same order; `differ` names those that are not.
 * Paired by their place in the list, not their stamps: the two recorders' programs run one after
 * the other, usually ~200 ns apart, but now and then this VM's vCPU is held up between them for
 * tens of µs, while the ping-pong switches every few µs. `late` are the stamps more than TOL apart.
 */
function sideBySide(
  a: TraceView,
  b: TraceView,
  traced: (tid: number) => boolean,
  from: bigint,
  to: bigint,
  tol: bigint,
) {
  const abs = (x: bigint) => (x < 0n ? -x : x);
  const differ: string[] = [], late: bigint[] = [];
  let compared = 0;
  for (const [cpu, all] of a.switchesByCpu) {
    const touching = (v: TraceView) =>
      [...(v.switchesByCpu.get(cpu) ?? [])]
        .filter((s) => (s.prevPid !== undefined && traced(s.prevPid)) || traced(s.nextPid))
        .sort((x, y) => (x.ts < y.ts ? -1 : x.ts > y.ts ? 1 : 0));
    const sa = touching(a), sb = touching(b);
    const first = sa.findIndex((s) => s.ts >= from);
    if (first < 0 || !all.length) continue;
    // An untraced task is any other: the filtered trace shows a stand-in where it left some out.
    const who = (tid?: number) => tid !== undefined && traced(tid) ? `${tid}` : "other";
    const key = (s: TraceView["switches"][number]) =>
      `${who(s.prevPid)}>${who(s.nextPid)}:${s.prevState}`;
    // B's list is A's shifted by K places: the K under which the most stamps agree.
    let near = sb.findIndex((s) => s.ts >= sa[first].ts);
    if (near < 0) near = sb.length - 1;
    let k = 0, best = -1;
    for (let j = Math.max(0, near - 64); j <= near + 64 && j < sb.length; j++) {
      let agree = 0;
      for (let i = first; i < first + 200 && i < sa.length && i + j - first < sb.length; i++) {
        const y = sb[i + j - first];
        if (key(y) === key(sa[i]) && abs(y.ts - sa[i].ts) <= tol) agree++;
      }
      if (agree > best) [best, k] = [agree, j - first];
    }
    for (let i = first; i < sa.length && sa[i].ts <= to; i++) {
      compared++;
      const x = sa[i], y = sb[i + k];
      if (!y || key(x) !== key(y)) {
        differ.push(
          `cpu ${cpu} at ${x.ts}: ${key(x)} against ${y ? `${key(y)} at ${y.ts}` : "none"}`,
        );
      } else if (abs(y.ts - x.ts) > tol) late.push(y.ts - x.ts);
    }
  }
  return { compared, differ, late };
}

Deno.test("filter: a traced task runs exactly when an unfiltered recording of the same moments says", async () => {
  const pingpong = await compileC("pingpong");
  const spin = await compileC("filter_worker");
  const dir = await Deno.makeTempDir({ prefix: "systing-filter-" });
  let whole: Recorder | undefined, focused: Recorder | undefined;
  // Untraced work on the same CPUs: its switches among themselves are what the filter leaves out.
  const noise = [new Worker(spin), new Worker(spin), new Worker(spin)];
  try {
    // The traced process waits for both recorders before it starts bouncing: 6 s, as two
    // starting at once on a loaded machine took more than the 2.5 s this once was.
    const child = new Deno.Command(pingpong, {
      args: ["20000", "6000"],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    [whole, focused] = await Promise.all([
      Recorder.start(["-n", "-o", `${dir}/whole.pb`]),
      Recorder.start(["-n", "-p", String(child.pid), "-o", `${dir}/focused.pb`]),
    ]);
    const out = await child.output();
    assert.ok(out.success, "pingpong ran");
    const w = JSON.parse(new TextDecoder().decode(out.stdout));
    const r2 = await focused.stop();
    const r1 = await whole.stop();
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    await assertTraceChecks(`${dir}/whole.pb`);
    await assertTraceChecks(`${dir}/focused.pb`);
    const skipped = Number(
      /(\d+) switches between untraced tasks not recorded/.exec(r2.stderr)?.[1],
    );
    assert.ok(skipped > 0, `the filter left switches out: ${r2.stderr}`);
    const tids = new Set<number>([w.pid, w.ping_tid, w.pong_tid]);
    const viewA = await readTrace(`${dir}/whole.pb`, { keepPackets: false });
    const viewB = await readTrace(`${dir}/focused.pb`, { keepPackets: false });
    // The two recorders stamp the same switch a program's run apart.
    const tol = 50_000n;
    // Compared where both recorded: from the later first switch to the earlier last one.
    const span = (v: TraceView) => {
      const ts = v.switches.map((x) => x.ts);
      return [ts.reduce((m, t) => t < m ? t : m), ts.reduce((m, t) => t > m ? t : m)];
    };
    const [a0, a1] = span(viewA), [b0, b1] = span(viewB);
    const from = (a0 > b0 ? a0 : b0) + 1_000_000n, to = (a1 < b1 ? a1 : b1) - 1_000_000n;
    const inside = (xs: Interval[]) => xs.filter((x) => x.start >= from && x.end <= to);
    const show = (xs: Interval[]) =>
      JSON.stringify(xs.slice(0, 2), (_, v) => typeof v === "bigint" ? `${v}` : v);

    // The traced tasks: the same switches in and out, no more, no fewer, at the same moments
    // (but for the few the VM held up between the two recorders' programs).
    const a = runningIntervals(viewA, (t) => tids.has(t));
    assert.ok(inside(a).length > 1000, `intervals of pingpong: ${inside(a).length}`);
    const same = sideBySide(viewA, viewB, (t) => tids.has(t), from, to, tol);
    assert.ok(same.compared >= inside(a).length, `${same.compared} switches compared`);
    assert.deepEqual(same.differ.slice(0, 3), [], `${same.differ.length} switches differ`);
    const held = same.late.filter((d) => d > -1_000_000n && d < 1_000_000n);
    assert.ok(
      held.length === same.late.length && same.late.length <= Math.max(2, same.compared / 1000),
      `${same.late.length} of ${same.compared} switches stamped > ${tol} ns apart: ` +
        same.late.slice(0, 5).join(", "),
    );
    // Every other task the filtered trace shows running (the stand-in aside) ran just then: no
    // untraced task is handed the time of the switches left out.
    const others = inside(runningIntervals(viewB, (t) => !tids.has(t) && t < UNTRACED_PID));
    const all = runningIntervals(viewA, () => true);
    const wrong = unmatched(others, all, tol);
    assert.ok(others.length > 20, `untraced intervals next to traced ones: ${others.length}`);
    // At most a couple: where the kernel switched without the tracepoint (it does, to and from
    // idle), each recorder estimates the switch-in from the CPU's last switch it stamped, and a
    // filtered recording stamps fewer. Without the stand-in it is one in 10 to 30.
    assert.ok(wrong.length <= 2, `${wrong.length} of ${others.length}: ${show(wrong)}`);
    const standIn = inside(runningIntervals(viewB, (t) => t >= UNTRACED_PID));
    assert.ok(standIn.length > 0, "the stand-in covers the untraced stretches");
  } finally {
    await focused?.close();
    await whole?.close();
    for (const n of noise) await n.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("filter: what cannot be applied is one line, a non-zero exit and no file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "systing-filter-" });
  try {
    const trace = `${dir}/t.pb`;
    const cases: [string[], RegExp][] = [
      [["-p", "abc"], /^systing: invalid --pid "abc": give the id of a running process$/],
      [["-p", "0"], /^systing: invalid --pid "0"/],
      [["-p", "4194303"], /^systing: -p 4194303: no such process/],
      [
        ["-c", `${dir}/none`],
        /^systing: -c .*: no such cgroup directory; mounted cgroup hierarchies: .*\(v2\)/,
      ],
      [["-c", "/etc/hostname"], /^systing: -c \/etc\/hostname: .* is not a cgroup directory/],
      [["-c", dir], /is not a cgroup directory/],
      [["-c", "/sys/fs/cgroup/systemd"], /has no controller \(name=systemd\)/],
      [["-p", "1", "--"], /^systing: -- needs a command after it/],
    ];
    for (const [args, message] of cases) {
      const r = await runRecorder(["-d", "1", "-o", trace, ...args]);
      assert.notEqual(r.code, 0, args.join(" "));
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(lines[0], message);
      assert.ok(!(await Deno.stat(trace).catch(() => undefined)), `${args.join(" ")}: no file`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("filter: -- CMD with -p traces both, and nothing else; the command's status is systing's", async () => {
  const bin = await compileC("filter_worker");
  const cmd = await compile("filter_worker.c", { output: "filter_command" });
  const dir = await Deno.makeTempDir({ prefix: "systing-filter-" });
  const also = new Worker(bin), other = new Worker(bin);
  try {
    const trace = `${dir}/t.pb`;
    const r = await runRecorder([
      "-o",
      trace,
      "--syscalls",
      "-p",
      String(also.pid),
      "--",
      cmd,
      "1.5",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`traced process ${also.pid} and what it starts; the command`),
    );
    await assertTraceChecks(trace);
    const view = await readTrace(trace, { keepSlicesOf: () => false, keepPackets: false });
    const started = view.events.find((e) =>
      e.event.case === "schedProcessExec" && e.event.value.filename === cmd
    );
    assert.ok(started, "the command's exec is in the trace");
    assertTraced(view, started.pid, "the command");
    assertTraced(view, also.pid, "the -p process");
    assertUntraced(view, other.pid, "an unrelated busy process");
  } finally {
    await also.close();
    await other.close();
    await Deno.remove(dir, { recursive: true });
  }
});
