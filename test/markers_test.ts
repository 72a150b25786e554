/**
 * Userspace markers: a C program's instants and begin/end ranges, and the Python and shell
 * (perl) forms of the convention the README documents, each land on the marking thread's track.
 */
import assert from "node:assert/strict";
import { readTrace, type TraceView } from "./trace_reader.ts";
import { assertTraceChecks, compileC, GatedWorkload, Recorder } from "./workload.ts";

const COUNT = 50;

function onTrack(view: TraceView, track: string, tid: number) {
  const mine = (uuid: bigint) => {
    const t = view.tracks.get(uuid);
    return t?.name === track && t.thread?.tid === tid;
  };
  return {
    instants: view.instants.filter((i) => mine(i.track)),
    slices: view.slices.filter((s) => mine(s.track)),
  };
}

Deno.test("markers: a C program's instants and ranges, on its thread's tracks", async () => {
  const bin = await compileC("marker_target");
  const dir = await Deno.makeTempDir({ prefix: "systing-markers-" });
  const child = new GatedWorkload<{ tid: number; step_ns: number }>(bin, [String(COUNT)]);
  let rec: Recorder | undefined;
  try {
    rec = await Recorder.start(["-n", "--add-recorder", "markers", "-o", `${dir}/t.pb`]);
    const r = await child.go();
    const exit = await rec.stop();
    assert.equal(exit.code, 0, exit.stderr);
    await assertTraceChecks(`${dir}/t.pb`);
    const view = await readTrace(`${dir}/t.pb`);
    const work = onTrack(view, "work", r.tid);
    assert.equal(work.instants.filter((i) => i.name === "tick").length, COUNT);
    const steps = work.slices.filter((s) => s.name === "step" && s.end !== undefined);
    assert.equal(steps.length, COUNT);
    // The steps' time is what the program measured around the same calls, less its clock reads.
    const total = steps.reduce((n, s) => n + Number(s.end! - s.begin), 0);
    assert.ok(total <= r.step_ns && total >= 0.9 * r.step_ns, `${total} of ${r.step_ns} ns`);
    assert.equal(
      onTrack(view, "markers", r.tid).instants.filter((i) => i.name === "lonely").length,
      1,
    );
  } finally {
    await rec?.close();
    await child.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("markers: the Python and shell forms of the convention", async () => {
  const dir = await Deno.makeTempDir({ prefix: "systing-markers-" });
  let rec: Recorder | undefined;
  try {
    rec = await Recorder.start(["-n", "--only-recorder", "markers", "-o", `${dir}/t.pb`]);
    const python = await new Deno.Command("python3", {
      args: [
        "-c",
        [
          "import ctypes, os",
          "libc = ctypes.CDLL(None, use_errno=True)",
          "def mark(what, kind): libc.syscall(439, -1, what.encode(), 0x53590000 | kind, 0)",
          "mark('py:hello', 1)",
          "mark('py:block', 2); mark('py:block', 3)",
          "print(os.getpid())",
        ].join("\n"),
      ],
      stdout: "piped",
    }).output();
    const shell = await new Deno.Command("sh", {
      args: ["-c", `perl -e '$t = "sh:hello"; syscall(439, -1, $t, 0x53590001, 0)'; echo $$`],
      stdout: "piped",
    }).output();
    assert.ok(python.success && shell.success);
    const exit = await rec.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const view = await readTrace(`${dir}/t.pb`);
    const byName = (track: string) =>
      view.instants.filter((i) => view.tracks.get(i.track)?.name === track).map((i) => i.name);
    assert.deepEqual(byName("py"), ["hello"]);
    assert.equal(view.slices.filter((s) => s.name === "block").length, 1);
    assert.deepEqual(byName("sh"), ["hello"]);
  } finally {
    await rec?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
