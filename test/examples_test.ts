/**
 * The configs in examples/ do what examples/README.md says, on real programs: lock-wait ranges
 * that add up to the workload's own measured wait, exception unwinding slices, and file opens.
 */
import assert from "node:assert/strict";
import { readTrace, type TraceView } from "./trace_reader.ts";
import {
  assertTraceChecks,
  compile,
  compileC,
  GatedWorkload,
  Recorder,
  REPO,
  runRecorder,
  withTempDir,
} from "./workload.ts";

/** Slices NAME on tracks TRACK of the threads TIDS. */
function slicesOf(view: TraceView, track: string, name: string, tids: Set<number>) {
  return view.slices.filter((s) => {
    const t = view.tracks.get(s.track);
    return s.name === name && t?.name === track && tids.has(t.thread?.tid ?? -1) &&
      s.end !== undefined;
  });
}

const withDir = <T>(fn: (dir: string) => Promise<T>) => withTempDir("systing-examples-", fn);

Deno.test("examples: pthread_mutex.json's lock waits add up to the workload's own (±10 %)", () =>
  withDir(async (dir) => {
    const bin = await compileC("mutex_contend");
    const child = new GatedWorkload<{ tids: number[]; wait_ns: number }>(bin, [
      "2",
      "150",
      "1000",
    ]);
    let rec: Recorder | undefined;
    try {
      rec = await Recorder.start([
        "-n",
        "-o",
        `${dir}/t.pb`,
        "--trace-event-config",
        `${REPO}examples/pthread_mutex.json`,
        "--trace-event-pid",
        String(child.pid),
      ]);
      const r = await child.go();
      const exit = await rec.stop();
      assert.equal(exit.code, 0, exit.stderr);
      await assertTraceChecks(`${dir}/t.pb`);
      const view = await readTrace(`${dir}/t.pb`);
      const waits = slicesOf(view, "pthread", "lock wait", new Set(r.tids));
      assert.equal(waits.length, 2 * 150, "one slice per lock call");
      const total = waits.reduce((n, s) => n + Number(s.end! - s.begin), 0);
      assert.ok(
        Math.abs(total - r.wait_ns) <= 0.1 * r.wait_ns,
        `lock wait slices ${total} ns, the workload measured ${r.wait_ns} ns`,
      );
      // The other thread holds the lock 1 ms at a time: much of it is waiting.
      assert.ok(r.wait_ns > 50e6, `${r.wait_ns} ns of contention`);
      // "stack": true on lock_start: each call's stack, from the worker thread's start.
      const stacks = view.stackSamples.filter((s) =>
        s.source === "probe.lock_start" && r.tids.includes(s.tid)
      );
      assert.equal(stacks.length, 2 * 150, "one stack per lock call");
      for (const s of stacks) {
        const names = s.frames.map((f) => f.name);
        assert.deepEqual(names.slice(-2), ["worker", "pthread_mutex_lock"], names.join(" > "));
      }
    } finally {
      await rec?.close();
      await child.close();
    }
  }));

Deno.test("examples: cxx_exceptions.json shows each throw unwinding to its catch", () =>
  withDir(async (dir) => {
    const bin = await compile("thrower.cpp");
    const r = await runRecorder([
      "-n",
      "-o",
      `${dir}/t.pb`,
      "--trace-event-config",
      `${REPO}examples/cxx_exceptions.json`,
      "--",
      bin,
      "40",
    ]);
    assert.equal(r.code, 0, r.stderr);
    await assertTraceChecks(`${dir}/t.pb`);
    const view = await readTrace(`${dir}/t.pb`);
    const tids = new Set(
      view.threads.filter((t) => /thrower/.test(t.name ?? "")).map((t) => t.tid),
    );
    assert.equal(slicesOf(view, "exceptions", "unwinding", tids).length, 40);
    assert.equal(
      view.instants.filter((i) => i.name === "throw" && i.args.type_info !== undefined).length,
      40,
    );
  }));

Deno.test("examples: file_opens.json — the tracepoint ranges work; vfs_open needs fentry, and says so here", () =>
  withDir(async (dir) => {
    const r = await runRecorder([
      "-n",
      "-d",
      "1",
      "-o",
      `${dir}/t.pb`,
      "--trace-event-config",
      `${REPO}examples/file_opens.json`,
    ]);
    if (r.code !== 0) {
      // This kernel refuses fentry programs: one line naming the kernel function, no file.
      assert.match(
        r.stderr,
        /vfs_open.*this kernel has no kprobes, and refused the fentry\/fexit program/,
      );
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(!(await Deno.stat(`${dir}/t.pb`).catch(() => undefined)));
      return;
    }
    await assertTraceChecks(`${dir}/t.pb`);
    const view = await readTrace(`${dir}/t.pb`);
    assert.ok(view.slices.some((s) => s.name === "openat"));
  }));

Deno.test("examples: python_gc.json puts each of Debian's python3 garbage collections on the timeline", () =>
  withDir(async (dir) => {
    // Debian's interpreter, which has the USDT notes (a python3 first on PATH may be another build).
    const script = `${dir}/gc.py`;
    await Deno.writeTextFile(
      script,
      [
        "import gc",
        "gc.disable()  # only the collections asked for below",
        "for i in range(25):",
        "    junk = [[] for _ in range(1000)]",
        "    for j in junk: j.append(j)  # cycles: something to collect",
        "    del junk, j",
        "    gc.collect()",
      ].join("\n"),
    );
    const r = await runRecorder([
      "-n",
      "-o",
      `${dir}/t.pb`,
      "--trace-event-config",
      `${REPO}examples/python_gc.json`,
      "--",
      "/usr/bin/python3.11",
      script,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await assertTraceChecks(`${dir}/t.pb`);
    const view = await readTrace(`${dir}/t.pb`);
    const tids = new Set(view.threads.filter((t) => /python/.test(t.name ?? "")).map((t) => t.tid));
    const gcs = slicesOf(view, "python gc", "collection", tids);
    // The interpreter also collects on its own: young generations while starting, and at exit.
    const full = gcs.filter((s) => Number(s.args.generation) === 2)
      .sort((a, b) => (a.begin < b.begin ? -1 : 1));
    assert.ok(full.length >= 25, `${full.length} full collections`);
    for (const s of full.slice(0, 25)) {
      assert.ok(Number(s.args.collected) >= 1000, `${s.args.collected} objects collected`);
    }
  }));
