// The recorder's own file and its signals under attack or accident: links planted where its
// temporary file will be, a directory planted at the final name, a full disk, a closed terminal,
// Ctrl-\, a second Ctrl-C while finishing, and SIGUSR1 (Deno's inspector). Real recordings.
import assert from "node:assert/strict";
import { readTrace } from "./trace_reader.ts";
import { assertTraceChecks, Recorder, runRecorder, type RunResult } from "./workload.ts";

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `output and signals: ${name}`, fn });
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "systing-output-" });
  Deno.chmodSync(dir, 0o1777);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** The lines after "systing: recording …": what a user sees once recording has begun. */
function afterStart(stderr: string): string[] {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  const i = lines.findIndex((l) => l.startsWith("systing: recording"));
  return lines.slice(i + 1);
}

function assertNoStackTrace(r: RunResult) {
  assert.ok(!r.stderr.includes("    at "), `a stack trace on stderr:\n${r.stderr}`);
}

test("links planted at the temporary names of the next 300 pids are never followed", () =>
  withDir(async (dir) => {
    const victim = `${dir}/victim`;
    Deno.writeTextFileSync(victim, "root's file\n");
    Deno.chmodSync(victim, 0o600);
    const next = Number(Deno.readTextFileSync("/proc/sys/kernel/ns_last_pid").trim()) + 1;
    for (let pid = next; pid < next + 300; pid++) {
      Deno.symlinkSync(victim, `${dir}/.t.pb.tmp-${pid}`);
    }
    const r = await runRecorder(["-n", "-d", "1", "-o", `${dir}/t.pb`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(victim), "root's file\n");
    await assertTraceChecks(`${dir}/t.pb`);
    const view = await readTrace(`${dir}/t.pb`);
    assert.ok(view.switches.length > 0);
    // Only the trace was added: no temporary file of ours is left.
    assert.deepEqual(names(dir).filter((n) => !n.startsWith(".t.pb.tmp-")), ["t.pb", "victim"]);
    assert.equal(names(dir).length, 302);
  }));

test("a full disk ends the recording with one line and no file left", () =>
  withDir(async (dir) => {
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "systing-full", dir],
    }).output();
    assert.ok(mount.success);
    try {
      // A few hundred processes started and ended: the trace outgrows 64 KiB at once.
      const rec = await Recorder.start(["-d", "3", "-o", `${dir}/t.pb`]);
      await new Deno.Command("sh", { args: ["-c", "for i in $(seq 300); do /bin/true; done"] })
        .output();
      const r = await rec.wait();
      assert.notEqual(r.code, 0);
      assertNoStackTrace(r);
      const after = afterStart(r.stderr);
      assert.equal(after.length, 1, `lines after the start:\n${after.join("\n")}`);
      assert.match(after[0], /^systing: writing .* failed: No space left on device/);
      assert.match(after[0], /the unfinished trace was removed \(free space, or choose another/);
      assert.deepEqual(names(dir), []);
    } finally {
      await new Deno.Command("umount", { args: [dir] }).output();
    }
  }));

test("a directory planted at the final name: the finished trace is kept and named", () =>
  withDir(async (dir) => {
    const rec = await Recorder.start(["-n", "-o", `${dir}/t.pb`]);
    try {
      Deno.mkdirSync(`${dir}/t.pb`);
      const r = await rec.stop("SIGINT");
      assert.equal(r.code, 1);
      assertNoStackTrace(r);
      const m = /it is kept as (\S+)$/m.exec(r.stderr);
      assert.ok(m, r.stderr);
      await assertTraceChecks(m[1]);
      const view = await readTrace(m[1]);
      assert.ok(view.switches.length > 0);
      assert.ok(view.ftraceStats.length >= 2, "the kept trace is complete");
    } finally {
      await rec.close();
    }
  }));

for (const signal of ["SIGHUP", "SIGQUIT", "SIGTERM"] as const) {
  test(`${signal} finishes a valid trace`, () =>
    withDir(async (dir) => {
      const rec = await Recorder.start(["-o", `${dir}/t.pb`]);
      const r = await rec.stop(signal);
      assert.equal(r.code, 0, r.stderr);
      await assertTraceChecks(`${dir}/t.pb`);
      const view = await readTrace(`${dir}/t.pb`);
      assert.ok(view.switches.length > 0 && view.ftraceStats.length >= 2);
      assert.deepEqual(names(dir), ["t.pb"]);
    }));
}

test("a second SIGINT while finishing removes the unfinished file and says so", () =>
  withDir(async (dir) => {
    // With stacks, finishing takes tens of milliseconds; the second signal lands in it.
    const rec = await Recorder.start(["-o", `${dir}/t.pb`]);
    Deno.kill(rec.pid, "SIGINT");
    await new Promise((r) => setTimeout(r, 10));
    const r = await rec.stop("SIGINT");
    assertNoStackTrace(r);
    if (r.code === 130) {
      assert.match(r.stderr, /stopped by a second signal; the unfinished trace was removed/);
      assert.deepEqual(names(dir), []);
    } else {
      // The first finished before the second arrived: then the trace is whole.
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(names(dir), ["t.pb"]);
      await assertTraceChecks(`${dir}/t.pb`);
      await readTrace(`${dir}/t.pb`);
    }
  }));

/** Inodes of the listening TCP sockets of this network namespace. */
function listeningInodes(): Set<string> {
  const out = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(file).split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A") out.add(f[9]); // state LISTEN, inode
    }
  }
  return out;
}

function socketInodesOf(pid: number): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
      if (m) out.push(m[1]);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

test("SIGUSR1 opens no debugger: nothing of the recorder listens, and it records on", () =>
  withDir(async (dir) => {
    const rec = await Recorder.start(["-n", "-o", `${dir}/t.pb`]);
    try {
      // Past Deno's half-second grace, when it installs its SIGUSR1 handler.
      await new Promise((r) => setTimeout(r, 1500));
      for (let i = 0; i < 3; i++) {
        Deno.kill(rec.pid, "SIGUSR1");
        await new Promise((r) => setTimeout(r, 300));
      }
      const listening = listeningInodes();
      const open = socketInodesOf(rec.pid).filter((i) => listening.has(i));
      assert.deepEqual(open, [], "the recorder listens on a socket");
      assert.ok(!rec.stderr.includes("Debugger listening"), rec.stderr);
      const r = await rec.stop("SIGINT");
      assert.equal(r.code, 0, r.stderr);
      await assertTraceChecks(`${dir}/t.pb`);
      await readTrace(`${dir}/t.pb`);
    } finally {
      await rec.close();
    }
  }));
