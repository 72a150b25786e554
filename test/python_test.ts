/**
 * Python frames in the stacks of Debian's python3 (3.11), with no configuration: a hot loop
 * outer → middle → inner in two threads named with their current lines, a sleeping thread's
 * S-state stack showing the function that called time.sleep, Python → C → Python in order, and
 * processes forked, exec'd and started (and gone) during the trace still named. A version this
 * build cannot walk keeps its native frames and is reported once.
 */
import assert from "node:assert/strict";
import { APPROXIMATE } from "../src/python/python_stack.ts";
import { ElfFile } from "../src/symbolize/elf_file.ts";
import { readTrace, type StackSampleView, type TraceView } from "./trace_reader.ts";
import {
  assertTraceChecks,
  GatedWorkload,
  Recorder,
  recordWhile,
  REPO,
  withTempDir,
} from "./workload.ts";

/** Debian's interpreter: the one with the headers this build took its offsets from. */
const PY = "/usr/bin/python3.11";
const SCRIPT = `${REPO}test/py/py_work.py`;
const SECONDS = "2";

/** The lines of py_work.py marked `# line: NAME`. */
const LINE: Record<string, number> = Object.fromEntries(
  Deno.readTextFileSync(SCRIPT).split("\n").flatMap((l, i) => {
    const m = /# line: (\w+)/.exec(l);
    return m ? [[m[1], i + 1]] : [];
  }),
);

interface Work {
  pid: number;
  main: number;
  worker?: number;
  sleeper?: number;
  child?: number;
  /** threads: when each thread's hot loop ran (BOOTTIME ns), by thread id. */
  hot?: Record<number, [number, number]>;
}

const withDir = <T>(fn: (dir: string) => Promise<T>) => withTempDir("systing-python-", fn);

const names = (s: StackSampleView) => s.frames.map((f) => f.name);
const isPython = (f: StackSampleView["frames"][number]) => f.mappingPath.endsWith(".py");
const at = (fn: string, line: string) => `${fn} (${SCRIPT}:${LINE[line]})`;

/** Whether S shows outer → middle → inner, each at its current line, innermost Python last. */
function wholeChain(s: StackSampleView): boolean {
  const n = names(s);
  const o = n.indexOf(at("outer_zq", "outer"));
  const m = n.indexOf(at("middle_zq", "middle"));
  const i = n.findIndex((x) => x.startsWith(`inner_zq (${SCRIPT}:`));
  if (o < 0 || m !== o + 1 || i !== m + 1) return false;
  const line = Number(/:(\d+)\)$/.exec(n[i])?.[1]);
  // inner_zq's body: from its `s = 0` to its return.
  return line >= LINE.inner - 2 && line <= LINE.inner + 1 &&
    !s.frames.slice(i + 1).some(isPython);
}

function record<T>(dir: string, work: GatedWorkload<T>[], extra: string[] = []) {
  return recordWhile(
    `${dir}/t.pb`,
    ["--no-irq", ...extra],
    () => Promise.all(work.map((w) => w.go())),
  );
}

const samplesOf = (view: TraceView, source: string, tid: number) =>
  view.stackSamples.filter((s) => s.source === source && s.tid === tid);

Deno.test("python: two threads' hot loops show outer → middle → inner at their lines; a sleeper shows who slept", () =>
  withDir(async (dir) => {
    const w = new GatedWorkload<Work>(PY, [SCRIPT, "threads", SECONDS]);
    try {
      const { view, results, stderr } = await record(dir, [w]);
      const r = results[0];
      for (const tid of [r.main, r.worker!]) {
        // The samples of its hot loop: before it, the thread starts; after it, the main
        // thread joins the others and the interpreter exits.
        const [from, to] = r.hot![tid].map(BigInt);
        const cpu = samplesOf(view, "on_cpu", tid).filter((s) => s.ts >= from && s.ts <= to);
        assert.ok(cpu.length > 200, `${cpu.length} samples of ${tid}`);
        const whole = cpu.filter(wholeChain).length;
        const shapes = new Map<string, number>();
        for (const s of cpu.filter((s) => !wholeChain(s))) {
          const k = names(s).filter((n) => n.startsWith("[") || /_zq|_PyEval/.test(n)).join(" > ");
          shapes.set(k, (shapes.get(k) ?? 0) + 1);
        }
        assert.ok(
          whole >= 0.95 * cpu.length,
          `${whole} of ${cpu.length} samples of thread ${tid} show the whole chain; the others: ` +
            JSON.stringify([...shapes].sort((a, b) => b[1] - a[1]).slice(0, 4)),
        );
      }
      // The Python frames stand where the interpreter's C loop was: below them, its C callers.
      const one = samplesOf(view, "on_cpu", r.main).find(wholeChain)!;
      const n = names(one);
      assert.ok(n.indexOf(at("outer_zq", "outer")) > 0, n.join(" > "));
      assert.ok(!n.includes("_PyEval_EvalFrameDefault"), "the C loop's frames are replaced");
      const slept = samplesOf(view, "sleep.interruptible", r.sleeper!);
      assert.ok(slept.length > 20, `${slept.length} sleeps`);
      const named = slept.filter((s) => names(s).includes(at("sleeper_zq", "sleeper")));
      assert.ok(named.length >= 0.9 * slept.length, `${named.length} of ${slept.length}`);
      assert.match(
        stderr,
        /python: \d+ processes \(3\.11 ×\d+\); \d+ stacks with \d+ Python frames/,
      );
    } finally {
      await w.close();
    }
  }));

Deno.test("python: Python → C → Python comes out in that order", () =>
  withDir(async (dir) => {
    const w = new GatedWorkload<Work>(PY, [SCRIPT, "callback", SECONDS]);
    try {
      const { view, results } = await record(dir, [w]);
      const cpu = samplesOf(view, "on_cpu", results[0].main);
      const keyed = cpu.filter((s) => names(s).some((n) => n.startsWith("key_zq (")));
      assert.ok(keyed.length > 0.5 * cpu.length, `${keyed.length} of ${cpu.length}`);
      // A sample taken as the call begins or ends may not pair its frames up: it says so.
      const exact = keyed.filter((s) => !names(s).includes(APPROXIMATE));
      assert.ok(exact.length >= 0.95 * keyed.length, `${exact.length} of ${keyed.length} exact`);
      for (const s of exact) {
        const n = names(s);
        const caller = n.indexOf(at("caller_zq", "caller"));
        const key = n.findIndex((x) => x.startsWith("key_zq ("));
        assert.ok(caller >= 0 && caller < key, n.join(" > "));
        // sorted() is C: the frames between the caller and the key function are native.
        const between = s.frames.slice(caller + 1, key);
        assert.ok(between.length > 0 && between.every((f) => !isPython(f)), n.join(" > "));
      }
    } finally {
      await w.close();
    }
  }));

Deno.test("python: processes forked, exec'd and started during the trace, and gone before its end, are named", () =>
  withDir(async (dir) => {
    const forker = new GatedWorkload<Work>(PY, [SCRIPT, "fork", SECONDS]);
    const execer = new GatedWorkload<Work>(PY, [SCRIPT, "exec", SECONDS]);
    const trace = `${dir}/t.pb`;
    const rec = await Recorder.start(["--no-irq", "-o", trace]);
    let short: Deno.CommandOutput | undefined;
    let shortPid = 0;
    try {
      const running = [forker.go(), execer.go()];
      // Started after the recording, and gone well before its end. A second of work: on a loaded
      // machine the interpreter's start took half of a shorter run.
      const p = new Deno.Command(PY, { args: [SCRIPT, "execd", "1"], stdout: "piped" }).spawn();
      shortPid = p.pid;
      short = await p.output();
      const [forked, execd] = await Promise.all(running);
      const exit = await rec.stop();
      assert.equal(exit.code, 0, exit.stderr);
      await assertTraceChecks(trace);
      const view = await readTrace(trace);
      // Of each process's samples in Python code (the C loop, or Python frames: not the
      // interpreter starting or its libraries loading), the share in the loop, named whole;
      // and no Python frame of it left unnamed (each code object was told while it lived).
      const share = (pid: number, frame: string) => {
        const inPython = view.stackSamples.filter((s) =>
          s.source === "on_cpu" && s.pid === pid &&
          (s.frames.some(isPython) || names(s).includes("_PyEval_EvalFrameDefault"))
        );
        const unnamed = inPython.filter((s) => names(s).some((n) => n.startsWith("[python code")));
        assert.equal(unnamed.length, 0, names(unnamed[0] ?? inPython[0]).join(" > "));
        const named = inPython.filter((s) => names(s).includes(frame) && wholeChain(s));
        return [named.length, inPython.length];
      };
      const [c, cn] = share(forked.child!, at("child_zq", "child"));
      assert.ok(cn > 200 && c >= 0.9 * cn, `forked child: ${c} of ${cn}`);
      const [e, en] = share(execd.pid, at("execd_zq", "execd"));
      assert.ok(en > 200 && e >= 0.8 * en, `exec'd: ${e} of ${en}`);
      assert.ok(short.success);
      // A second, much of it the interpreter starting (its own Python code included).
      const [s, sn] = share(shortPid, at("execd_zq", "execd"));
      assert.ok(sn > 50 && s >= 0.6 * sn, `short-lived: ${s} of ${sn}`);
    } finally {
      await rec.close();
      await forker.close();
      await execer.close();
    }
  }));

Deno.test("python: a version this build cannot walk keeps its native frames, with one clear line", () =>
  withDir(async (dir) => {
    // Debian's interpreter, claiming to be 3.10 (its Py_Version): it runs the same.
    const fake = `${dir}/python3.11`;
    Deno.copyFileSync(PY, fake);
    Deno.chmodSync(fake, 0o755);
    {
      using elf = ElfFile.open(PY);
      const sym = elf.lookupSymbol("Py_Version")!;
      const f = Deno.openSync(fake, { write: true });
      f.seekSync(elf.vaddrToFileOffset(sym.value)!, Deno.SeekMode.Start);
      f.writeSync(new Uint8Array([0xf0, 0x02, 0x0a, 0x03])); // 3.10.2 final
      f.close();
    }
    const w = new GatedWorkload<Work>(fake, [SCRIPT, "threads", "1"]);
    try {
      const { view, results, stderr } = await record(dir, [w]);
      const cpu = view.stackSamples.filter((s) => s.pid === results[0].pid);
      assert.ok(cpu.length > 100, `${cpu.length} samples`);
      assert.ok(cpu.every((s) => !s.frames.some(isPython)), "no Python frames");
      assert.ok(cpu.some((s) => names(s).includes("_PyEval_EvalFrameDefault")), "C frames kept");
      const lines = stderr.split("\n").filter((l) => /keep their C frames only/.test(l));
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0], /Python 3\.10 \(.*python3\.11\): versions before 3\.11/);
    } finally {
      await w.close();
    }
  }));

Deno.test("python: code objects freed and made again at the same address are each named right", () =>
  withDir(async (dir) => {
    const w = new GatedWorkload<Work & { spans: [number, number, number][]; addresses: number }>(
      PY,
      [SCRIPT, "reuse", SECONDS],
    );
    try {
      const { view, results } = await record(dir, [w]);
      const r = results[0];
      // The workload's own check that the addresses were reused.
      assert.ok(r.spans.length >= 20 && r.addresses <= r.spans.length / 4, JSON.stringify(r));
      const span = new Map<number, [number, number]>(r.spans.map(([k, t0, t1]) => [k, [t0, t1]]));
      let named = 0;
      for (const s of samplesOf(view, "on_cpu", r.main)) {
        const m = names(s).map((n) => /^fresh_(\d+)_zq \(/.exec(n)).find((x) => x);
        if (!m) continue;
        named++;
        const [t0, t1] = span.get(Number(m[1]))!;
        // A sample named after code object k was taken while k ran (a stale name would not be).
        assert.ok(
          s.ts >= BigInt(t0) - 1_000_000n && s.ts <= BigInt(t1) + 1_000_000n,
          `fresh_${m[1]}_zq at ${s.ts}, outside its ${t0}..${t1}`,
        );
      }
      assert.ok(named > 500, `${named} samples in the fresh functions`);
    } finally {
      await w.close();
    }
  }));

Deno.test("python: asyncio tasks show their coroutine chain", () =>
  withDir(async (dir) => {
    const w = new GatedWorkload<Work>(PY, [SCRIPT, "asyncio", SECONDS]);
    try {
      const { view, results } = await record(dir, [w]);
      const cpu = samplesOf(view, "on_cpu", results[0].main);
      const inLeaf = cpu.filter((s) => names(s).includes(at("leaf_async_zq", "leaf_async")));
      assert.ok(inLeaf.length > 0.5 * cpu.length, `${inLeaf.length} of ${cpu.length}`);
      for (const s of inLeaf) {
        const n = names(s);
        // The task's coroutine awaits the leaf coroutine: caller before callee.
        const task = n.indexOf(at("task_async_zq", "task_async"));
        assert.ok(task >= 0 && task < n.indexOf(at("leaf_async_zq", "leaf_async")), n.join(" > "));
      }
    } finally {
      await w.close();
    }
  }));

Deno.test("python: a probe's stack has the Python frames too (python3's own gc__start USDT probe)", () =>
  withDir(async (dir) => {
    const w = new GatedWorkload<Work>(PY, [SCRIPT, "gc", "30"]);
    const config = {
      events: [{ name: "gc", event: `usdt:${PY}:python:gc__start`, stack: true }],
    };
    await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(config));
    try {
      const { view, results } = await record(dir, [w], [
        "-n",
        "--trace-event-config",
        `${dir}/c.json`,
      ]);
      const stacks = view.stackSamples.filter((s) =>
        s.source === "probe.gc" && s.pid === results[0].pid
      );
      // 30 collections asked for; the interpreter may add its own at exit.
      const ours = stacks.filter((s) => names(s).includes(at("collector_zq", "collector")));
      assert.equal(ours.length, 30, names(stacks[0]).join(" > "));
      for (const s of ours) {
        const n = names(s);
        assert.ok(n.indexOf(at("main", "gc_main")) < n.indexOf(at("collector_zq", "collector")));
      }
    } finally {
      await w.close();
    }
  }));

Deno.test("python: a sub-interpreter's frames sit under the frames of the interpreter that ran it", () =>
  withDir(async (dir) => {
    const w = new GatedWorkload<Work>(PY, [SCRIPT, "subinterpreter", SECONDS]);
    try {
      const { view, results } = await record(dir, [w]);
      const cpu = samplesOf(view, "on_cpu", results[0].main);
      const sub = cpu.filter((s) => names(s).some((n) => n.startsWith("sub_zq (<string>:")));
      assert.ok(sub.length > 0.5 * cpu.length, `${sub.length} of ${cpu.length}`);
      const nested = sub.filter((s) => {
        const n = names(s);
        const outer = n.indexOf(at("main", "run"));
        return outer >= 0 && outer < n.findIndex((x) => x.startsWith("sub_zq ("));
      });
      assert.ok(nested.length >= 0.9 * sub.length, `${nested.length} of ${sub.length}`);
    } finally {
      await w.close();
    }
  }));
