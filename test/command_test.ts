/**
 * `systing -- CMD`: the command starts only once every program is attached (its fork, wake-up and
 * exec are in the trace), the recording ends when it does, and its status becomes systing's; a
 * command that cannot run costs no trace and fails as a shell would.
 */
import assert from "node:assert/strict";
import type { CpuEvent, TraceView } from "./trace_reader.ts";
import { readTrace } from "./trace_reader.ts";
import { assertTraceChecks, compile, Recorder, runRecorder } from "./workload.ts";

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "systing-command-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function eventsOf<K extends NonNullable<CpuEvent["event"]["case"]>>(view: TraceView, kind: K) {
  return view.events.flatMap((e) =>
    e.event.case === kind
      ? [{ ts: e.ts, value: e.event.value as Extract<CpuEvent["event"], { case: K }>["value"] }]
      : []
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("-- CMD: its status is systing's, and the trace holds its whole life from the fork", () =>
  withDir(async (dir) => {
    const spin = await compile("spin_stack.c", { output: "command_spin" });
    const trace = `${dir}/t.pb`;
    // spin_stack exits 0 after its CPU time; `sh -c` adds a status of its own choosing.
    const r = await runRecorder(["-n", "-o", trace, "--", "sh", "-c", `${spin} 200; exit 7`]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /sh exited with 7/);
    await assertTraceChecks(trace);
    const view = await readTrace(trace);
    const exec = eventsOf(view, "schedProcessExec").find((e) => e.value.filename === spin);
    assert.ok(exec, "the command's child exec is in the trace");
    // The shell systing started: forked by the recorder itself, after the trace began.
    const shFork = eventsOf(view, "schedProcessFork").find((e) =>
      eventsOf(view, "schedProcessExec").some((x) =>
        x.value.pid === e.value.childPid && /\/sh$/.test(x.value.filename)
      )
    );
    assert.ok(shFork, "the fork of the command is in the trace");
    const pid = shFork.value.childPid;
    const firstSwitchIn = view.switches.filter((s) => s.nextPid === pid)
      .reduce((a, s) => (a === undefined || s.ts < a ? s.ts : a), undefined as bigint | undefined);
    assert.ok(firstSwitchIn !== undefined && firstSwitchIn >= shFork.ts, "it runs after its fork");
    assert.ok(
      view.wakings.some((w) => w.pid === pid) || eventsOf(view, "schedWakeupNew").length > 0,
      "its first wake-up is in the trace",
    );
  }));

Deno.test("-- CMD: killed by a signal → 128+N, as a shell reports it", () =>
  withDir(async (dir) => {
    const r = await runRecorder(["-n", "-o", `${dir}/t.pb`, "--", "sh", "-c", "kill -TERM $$"]);
    assert.equal(r.code, 128 + 15, r.stderr);
    assert.match(r.stderr, /killed by SIGTERM/);
    await assertTraceChecks(`${dir}/t.pb`);
  }));

Deno.test("-- CMD: a kill's SIGTERM to systing reaches the command too; the trace is complete", () =>
  withDir(async (dir) => {
    const rec = await Recorder.start(["-n", "-o", `${dir}/t.pb`, "--", "sleep", "60"]);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await rec.stop("SIGTERM");
      assert.equal(r.code, 128 + 15, r.stderr);
      await assertTraceChecks(`${dir}/t.pb`);
    } finally {
      await rec.close();
    }
  }));

Deno.test("-- CMD that cannot run: the shell's message and status, and no trace", () =>
  withDir(async (dir) => {
    const cases: [string[], number, RegExp][] = [
      [["systing-no-such-command"], 127, /systing-no-such-command: command not found/],
      [[`${dir}/missing`], 127, /No such file or directory/],
      [[dir], 126, /Is a directory/],
      [[`${dir}/plain`], 126, /Permission denied/],
    ];
    await Deno.writeTextFile(`${dir}/plain`, "not a program\n", { mode: 0o644 });
    for (const [cmd, status, message] of cases) {
      const trace = `${dir}/t.pb`;
      const r = await runRecorder(["-o", trace, "--", ...cmd]);
      assert.equal(r.code, status, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(!(await exists(trace)), `${cmd}: no trace`);
    }
    const r = await runRecorder(["-o", `${dir}/t.pb`, "--"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /-- needs a command/);
    assert.ok(!(await exists(`${dir}/t.pb`)));
  }));
