// Integration tests: real BPF recordings (root) of known C workloads, checked
// through test/trace_reader.ts. One recording serves most checks; a few more
// cover --compress, SIGINT mid-workload and -d.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { FtraceStats_Phase, TraceSchema } from "../src/gen/perfetto_trace_pb.ts";
import { type CpuEvent, readTrace, type TraceView } from "./trace_reader.ts";
import {
  assertTraceChecks,
  compileC,
  record,
  Recorder,
  type Recording,
  runJson,
} from "./workload.ts";
import {
  assertHeaderFirst,
  assertInterruptsPair,
  assertRowsFromStart,
  assertStatsAround,
  assertTimeNeverGoesBack,
  assertValidSwitchStates,
} from "./trace_invariants.ts";

const ROUND_TRIPS = 20_000;

interface PingPong {
  pid: number;
  ping_tid: number;
  pong_tid: number;
  round_trips: number;
  ping_nvcsw: number;
  pong_nvcsw: number;
}

interface Workloads {
  pingpong: PingPong;
  exec: { child_pid: number; target: string; token: string };
  rename: { pid: number; tid: number };
  /** CLOCK_BOOTTIME (from /proc/uptime, 10 ms steps) before and after, in ns. */
  bootBefore: bigint;
  bootAfter: bigint;
}

async function binaries() {
  const [pingpong, execChild, execTarget, renameThread] = await Promise.all(
    ["pingpong", "exec_child", "exec_target", "rename_thread"].map(compileC),
  );
  return { pingpong, execChild, execTarget, renameThread };
}

function bootNs(): bigint {
  const seconds = Deno.readTextFileSync("/proc/uptime").split(" ")[0];
  return BigInt(Math.round(Number(seconds) * 1e3)) * 1_000_000n;
}

/** Synced writes: virtio-blk completions are the hard IRQs this test can count on. */
async function diskIo(dir: string): Promise<void> {
  const file = await Deno.open(`${dir}/io.bin`, { write: true, create: true });
  try {
    for (let i = 0; i < 4; i++) {
      await file.write(new Uint8Array(256 * 1024).fill(i + 1));
      await file.sync();
    }
  } finally {
    file.close();
    await Deno.remove(`${dir}/io.bin`);
  }
}

/** Runs every workload concurrently; the recorder must already be running. */
async function runWorkloads(): Promise<Workloads> {
  const bins = await binaries();
  const token = crypto.randomUUID().slice(0, 8);
  const ioDir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "systing-io-" });
  const bootBefore = bootNs();
  try {
    const [pingpong, exec, rename] = await Promise.all([
      // Lockstep: each round trip then blocks, wakes and switches in each thread exactly once.
      runJson<PingPong>(bins.pingpong, ["--lockstep", String(ROUND_TRIPS)]),
      runJson<{ child_pid: number }>(bins.execChild, [bins.execTarget, token]),
      runJson<{ pid: number; tid: number }>(bins.renameThread),
      diskIo(ioDir),
    ]);
    return {
      pingpong,
      exec: { ...exec, target: bins.execTarget, token },
      rename,
      bootBefore,
      bootAfter: bootNs(),
    };
  } finally {
    await Deno.remove(ioDir, { recursive: true });
  }
}

const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  if (Deno.env.get("SYSTING_KEEP_TRACES")) return;
  for (const d of tempDirs) Deno.removeSync(d, { recursive: true });
});

interface Recorded {
  rec: Recording<Workloads>;
  view: TraceView;
  size: number;
}

const recordings = new Map<string, Promise<Recorded>>();

/** One recording per distinct argument list, shared by the tests that check it. */
function recording(extra: string[] = []): Promise<Recorded> {
  const key = extra.join(" ");
  let r = recordings.get(key);
  if (!r) {
    r = (async () => {
      await binaries(); // compile before recording starts, not during it
      const rec = await record(runWorkloads, extra);
      tempDirs.push(rec.dir);
      assert.equal(rec.exit.code, 0, `recorder exit code; stderr:\n${rec.exit.stderr}`);
      const view = await readTrace(rec.tracePath);
      return { rec, view, size: (await Deno.stat(rec.tracePath)).size };
    })();
    recordings.set(key, r);
  }
  return r;
}

function test(name: string, fn: () => Promise<void>) {
  // No skip for non-root: these tests exist to load real BPF, and a run
  // without it must fail rather than pass empty.
  Deno.test({ name: `record: ${name}`, fn });
}

function eventsOf<K extends NonNullable<CpuEvent["event"]["case"]>>(view: TraceView, kind: K) {
  return view.events.flatMap((e) =>
    e.event.case === kind
      ? [{
        ts: e.ts,
        cpu: e.cpu,
        value: e.event.value as Extract<CpuEvent["event"], { case: K }>["value"],
      }]
      : []
  );
}

/** JSON for failure messages; bigints as strings. */
function show(value: unknown): string {
  return JSON.stringify(value, (_, v) => typeof v === "bigint" ? String(v) : v);
}

function count<T>(items: T[], pred: (t: T) => boolean): number {
  let n = 0;
  for (const t of items) if (pred(t)) n++;
  return n;
}

test("the recorder exits 0 after SIGINT and prints a summary", async () => {
  const { rec } = await recording();
  const lines = rec.exit.stderr.split("\n").filter((l) => l.trim() !== "");
  const ready = lines.findIndex((l) => l.startsWith("systing: recording"));
  assert.notEqual(ready, -1, rec.exit.stderr);
  assert.ok(lines.length > ready + 1, `no summary after the recording line:\n${rec.exit.stderr}`);
  assert.deepEqual([...Deno.readDirSync(rec.dir)].map((e) => e.name), ["trace.pb"]);
});

test("ClockSnapshot and SystemInfo come before the first ftrace bundle", async () => {
  const { view } = await recording();
  assert.ok(view.packets.some((p) => p.data.case === "ftraceEvents"), "no ftrace bundle");
  assertHeaderFirst(view);
  const uts = view.systemInfos[0].utsname;
  assert.equal(uts?.sysname, "Linux");
  assert.equal(uts?.release, Deno.osRelease());
});

test("timestamps are CLOCK_BOOTTIME and never go backwards on a CPU", async () => {
  const { view, rec } = await recording();
  const { bootBefore, bootAfter, pingpong } = rec.result;
  const pingSwitches = view.switches.filter((s) => s.nextPid === pingpong.ping_tid);
  assert.ok(pingSwitches.length > 0);
  const slack = 1_000_000_000n;
  for (const s of [pingSwitches[0], pingSwitches.at(-1)!]) {
    assert.ok(
      s.ts > bootBefore - slack && s.ts < bootAfter + slack,
      `switch at ${s.ts} outside boot time [${bootBefore}, ${bootAfter}]`,
    );
  }
  assertTimeNeverGoesBack(view);
});

test("each CPU's row begins at the trace's start, with what ran there", async () => {
  const { view } = await recording();
  assertRowsFromStart(view);
  assert.equal(
    view.events.filter((e) => e.event.case === "schedSwitch").length,
    view.systemInfos[0].numCpus,
  );
});

test("ping and pong are switched in and woken every round trip, under their names", async () => {
  const { view, rec } = await recording();
  const pp = rec.result.pingpong;
  assert.equal(pp.round_trips, ROUND_TRIPS);
  const renames = eventsOf(view, "taskRename");
  for (
    const [tid, name, nvcsw] of [
      [pp.ping_tid, "ping", pp.ping_nvcsw],
      [pp.pong_tid, "pong", pp.pong_nvcsw],
    ] as const
  ) {
    const rename = renames.find((r) => r.value.pid === tid);
    assert.ok(rename, `no task_rename for ${name} (${tid})`);
    assert.equal(rename.value.newcomm, name);
    const ins = view.switches.filter((s) => s.nextPid === tid);
    const wakes = view.wakings.filter((w) => w.pid === tid);
    assert.ok(ins.length >= ROUND_TRIPS, `${name} switched in ${ins.length} times`);
    assert.ok(wakes.length >= ROUND_TRIPS, `${name} woken ${wakes.length} times`);
    // Every voluntary switch the kernel counted for the thread is in the trace.
    const blocked = count(
      view.switches,
      (s) => s.prevPid === tid && s.prevState !== 0 && s.prevState !== 0x100,
    );
    assert.ok(nvcsw >= ROUND_TRIPS, `${name} nvcsw ${nvcsw}: the workload did not lockstep`);
    assert.ok(blocked >= nvcsw, `${name} blocked ${blocked} times, kernel counted ${nvcsw}`);
    const badSwitch = ins.find((s) => s.ts > rename.ts && s.nextComm !== name);
    assert.equal(badSwitch, undefined, `switch into ${name} after its rename`);
    const badWake = wakes.find((w) => w.ts > rename.ts && w.comm !== name);
    assert.equal(badWake, undefined, `waking of ${name} after its rename`);
    // The implied prev_pid chain: on each CPU the thread leaves as often as it arrives.
    for (const cpu of view.switchesByCpu.keys()) {
      const sw = view.switchesByCpu.get(cpu)!;
      const arrive = count(sw, (s) => s.nextPid === tid);
      const leave = count(sw, (s) => s.prevPid === tid);
      assert.ok(Math.abs(arrive - leave) <= 1, `${name} on cpu ${cpu}: in ${arrive}, out ${leave}`);
    }
    const thread = view.threads.find((t) => t.tid === tid && t.name === name);
    assert.ok(thread, `no ProcessTree thread ${tid} named ${name}`);
    assert.equal(thread.tgid, pp.pid);
  }
});

test("the exec'd child shows its new cmdline, name, exec and exit", async () => {
  const { view, rec } = await recording();
  const { child_pid: pid, target, token } = rec.result.exec;
  // The fork delta legitimately repeats the parent's cmdline; the exec delta must follow it.
  const entries = view.processes.filter((p) => p.pid === pid);
  const want = JSON.stringify([target, "--marker", token]);
  const proc = entries.find((p) => JSON.stringify(p.cmdline) === want);
  assert.ok(proc, `no ProcessTree process ${pid} with ${want}: ${show(entries)}`);
  assert.notEqual(proc.ts, undefined, "a ProcessTree delta carries its timestamp");
  assert.ok(
    view.threads.some((t) => t.tid === pid && t.name === "exec_target"),
    `thread names of ${pid}: ${show(view.threads.filter((t) => t.tid === pid))}`,
  );
  const fork = eventsOf(view, "schedProcessFork").find((e) => e.value.childPid === pid);
  const exec = eventsOf(view, "schedProcessExec").find((e) => e.value.pid === pid);
  const exit = eventsOf(view, "schedProcessExit").find((e) => e.value.pid === pid);
  assert.ok(fork, "sched_process_fork of the child");
  assert.ok(exec, "sched_process_exec of the child");
  assert.ok(exit, "sched_process_exit of the child");
  assert.equal(fork.value.parentComm, "exec_child");
  assert.equal(exec.value.filename, target);
  assert.equal(exit.value.comm, "exec_target");
  assert.equal(exit.value.tgid, pid);
  assert.ok(
    fork.ts < exec.ts && exec.ts < exit.ts,
    `fork ${fork.ts} exec ${exec.ts} exit ${exit.ts}`,
  );
  assert.ok(proc.ts! >= exec.ts, `cmdline delta at ${proc.ts}, exec at ${exec.ts}`);
});

test("the renamed thread carries renamed-thr after its rename", async () => {
  const { view, rec } = await recording();
  const { pid, tid } = rec.result.rename;
  const rename = eventsOf(view, "taskRename").find((e) => e.value.pid === tid);
  assert.ok(rename, `no task_rename for ${tid}`);
  assert.equal(rename.value.oldcomm, "rename_thread");
  assert.equal(rename.value.newcomm, "renamed-thr");
  const ins = view.switches.filter((s) => s.nextPid === tid);
  const after = ins.filter((s) => s.ts > rename.ts);
  assert.ok(after.length >= 5, `switched in ${after.length} times after the rename`);
  assert.deepEqual(new Set(after.map((s) => s.nextComm)), new Set(["renamed-thr"]));
  assert.deepEqual(
    new Set(ins.filter((s) => s.ts < rename.ts).map((s) => s.nextComm)),
    new Set(["rename_thread"]),
  );
  const thread = view.threads.find((t) => t.tid === tid && t.name === "renamed-thr");
  assert.ok(thread, `no ProcessTree thread ${tid} named renamed-thr`);
  assert.equal(thread.tgid, pid);
  assert.ok(thread.ts !== undefined && thread.ts >= rename.ts, `delta at ${thread.ts}`);
});

test("every prev_state is a single ftrace state bit", async () => {
  const { view } = await recording();
  assertValidSwitchStates(view);
  // Both the sleeping and the preempted (0x100) encodings occur in any busy second.
  const states = new Set(view.switches.map((s) => s.prevState));
  assert.ok(states.has(1) && states.has(0x100), `prev_states seen: ${[...states]}`);
});

test("IRQ and softirq entries and exits pair up on every CPU", async () => {
  const { view } = await recording();
  const interrupts = Deno.readTextFileSync("/proc/interrupts").split("\n");
  const irqs = eventsOf(view, "irqHandlerEntry");
  assert.ok(irqs.length > 0, "no irq_handler_entry despite synced disk writes");
  for (const e of irqs) {
    const line = interrupts.find((l) => l.trimStart().startsWith(`${e.value.irq}:`));
    assert.ok(line?.includes(e.value.name), `irq ${e.value.irq} "${e.value.name}" vs ${line}`);
  }
  assert.ok(eventsOf(view, "softirqEntry").length > 0, "no softirq_entry");
  assertInterruptsPair(view);
});

test("nothing was dropped", async () => {
  const { view } = await recording();
  const lost = [...view.bundlesByCpu.values()].flat().filter((b) => b.lostEvents);
  assert.deepEqual(lost.map((b) => [b.cpu, b.packetIndex]), [], "bundles with lost_events");
  assertStatsAround(view);
  for (const stats of view.ftraceStats) {
    assert.deepEqual(stats.cpuStats.map((c) => c.droppedEvents), stats.cpuStats.map(() => 0n));
  }
});

test("the first ProcessTree is a full scan", async () => {
  const { view } = await recording();
  const first = view.processTrees[0];
  assert.ok(first, "no ProcessTree");
  assert.ok(first.packetIndex < view.packets.findIndex((p) => p.data.case === "ftraceEvents"));
  const pids = new Set(first.tree.processes.map((p) => p.pid));
  assert.ok(pids.has(1), "init is missing");
  assert.ok(pids.has(Deno.pid), "the test process is missing");
  assert.ok(first.tree.processes.length >= 10, `${first.tree.processes.length} processes`);
  const self = first.tree.processes.find((p) => p.pid === Deno.pid)!;
  const cmdline = Deno.readTextFileSync("/proc/self/cmdline").split("\0").slice(0, -1);
  assert.deepEqual(self.cmdline, cmdline);
});

test("--compress halves the file and keeps the content", async () => {
  const plain = await recording();
  const packed = await recording(["--compress"]);
  assert.equal(plain.view.compressedWrappers, 0);
  assert.ok(packed.view.compressedWrappers > 0, "no compressed_packets");
  // Same content, uncompressed: what the file would be without --compress.
  const inflated =
    toBinary(TraceSchema, create(TraceSchema, { packet: packed.view.packets })).length;
  assert.ok(packed.size * 2 <= inflated, `compressed ${packed.size} B, inflated ${inflated} B`);
  // Versus the plain recording per record, since background activity differs between the two.
  const perRecord = (r: Recorded) =>
    r.size / (r.view.switches.length + r.view.wakings.length + r.view.events.length);
  assert.ok(
    perRecord(packed) * 2 <= perRecord(plain),
    `compressed ${packed.size} B (${perRecord(packed).toFixed(2)} B/record), ` +
      `plain ${plain.size} B (${perRecord(plain).toFixed(2)} B/record)`,
  );
  const kinds = (v: TraceView) => [...new Set(v.packets.map((p) => p.data.case))].sort();
  const events = (v: TraceView) => [...new Set(v.events.map((e) => e.event.case))].sort();
  assert.deepEqual(kinds(packed.view), kinds(plain.view));
  assert.deepEqual(events(packed.view), events(plain.view));
  const tid = packed.rec.result.pingpong.ping_tid;
  const ins = count(packed.view.switches, (s) => s.nextPid === tid);
  assert.ok(ins >= ROUND_TRIPS, `ping switched in ${ins} times in the compressed trace`);
});

test("SIGINT in the middle of a workload still yields a complete trace", async () => {
  const bins = await binaries();
  const dir = await Deno.makeTempDir({ prefix: "systing-test-" });
  tempDirs.push(dir);
  const path = `${dir}/trace.pb`;
  const rec = await Recorder.start(["-o", path]);
  // Runs for minutes unless killed: the recorder is stopped while it is busy.
  const workload = new Deno.Command(bins.pingpong, { args: ["100000000"], stdout: "null" }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const exit = await rec.stop("SIGINT");
    assert.equal(exit.code, 0, exit.stderr);
  } finally {
    workload.kill("SIGKILL");
    await workload.status;
    await rec.close();
  }
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["trace.pb"]);
  await assertTraceChecks(path);
  const view = await readTrace(path);
  assert.equal(view.ftraceStats.at(-1)?.phase, FtraceStats_Phase.END_OF_TRACE);
  const ping = count(view.switches, (s) => s.nextComm === "ping");
  assert.ok(ping >= 100, `ping switched in ${ping} times before SIGINT`);
});

test("-d 1 ends the recording by itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "systing-test-" });
  tempDirs.push(dir);
  const path = `${dir}/trace.pb`;
  const rec = await Recorder.start(["-d", "1", "-o", path]);
  const started = Date.now();
  try {
    const exit = await rec.wait(15_000);
    const elapsed = Date.now() - started;
    assert.equal(exit.code, 0, exit.stderr);
    assert.ok(elapsed >= 900 && elapsed < 10_000, `exited ${elapsed} ms after recording began`);
  } finally {
    await rec.close();
  }
  await assertTraceChecks(path);
  const view = await readTrace(path);
  assert.equal(view.ftraceStats.at(-1)?.phase, FtraceStats_Phase.END_OF_TRACE);
  assert.ok(view.switches.length > 0, "no sched_switch in a second of recording");
});

test("a stalled consumer turns into counted drops, in the summary and the trace", async () => {
  const bins = await binaries();
  const dir = await Deno.makeTempDir({ prefix: "systing-test-" });
  tempDirs.push(dir);
  const path = `${dir}/trace.pb`;
  // The smallest ring, and the recorder frozen while a busy load fills it.
  const rec = await Recorder.start(["-o", path, "--ringbuf-size-mib", "1"]);
  const workload = new Deno.Command(bins.pingpong, { args: ["100000000"], stdout: "null" }).spawn();
  let exit;
  try {
    await new Promise((r) => setTimeout(r, 200));
    Deno.kill(rec.pid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 1500));
    Deno.kill(rec.pid, "SIGCONT");
    await new Promise((r) => setTimeout(r, 300));
    exit = await rec.stop("SIGTERM");
  } finally {
    workload.kill("SIGKILL");
    await workload.status;
    await rec.close();
  }
  assert.equal(exit.code, 0, exit.stderr);
  const m = /, (\d+) events, (\d+) dropped/.exec(exit.stderr);
  assert.ok(m, `no summary line:\n${exit.stderr}`);
  const dropped = Number(m[2]);
  assert.ok(
    dropped > 1000,
    `only ${dropped} dropped with a 1 MiB ring stalled 1.5 s:\n${exit.stderr}`,
  );
  assert.match(exit.stderr, /dropped: sched_switch \d+/);

  // Lost data leaves gaps, never broken pairs or time going back.
  await assertTraceChecks(path);
  const view = await readTrace(path);
  const end = view.ftraceStats.at(-1)!;
  assert.equal(end.phase, FtraceStats_Phase.END_OF_TRACE);
  const inStats = end.cpuStats.reduce((n, c) => n + Number(c.droppedEvents), 0);
  assert.equal(inStats, dropped, "FtraceStats dropped_events vs the summary");
  const lost = [...view.bundlesByCpu.values()].flat().filter((b) => b.lostEvents);
  assert.ok(lost.length > 0, "no bundle marked lost_events after the gap");
  // The per-kind counter tracks end at the same total.
  const lastValue = new Map<bigint, bigint>();
  for (const p of view.packets) {
    if (p.data.case !== "trackEvent") continue;
    const v = p.data.value.counterValueField;
    if (v.case === "counterValue") lastValue.set(p.data.value.trackUuid, v.value);
  }
  const fromTracks = [...lastValue.values()].reduce((n, v) => n + Number(v), 0);
  assert.equal(fromTracks, dropped, "dropped-event counter tracks vs the summary");
});

test("--ringbuf-size-mib sizes every CPU's ring in the kernel", async () => {
  const dir = await Deno.makeTempDir({ prefix: "systing-test-" });
  tempDirs.push(dir);
  const rec = await Recorder.start(["-o", `${dir}/trace.pb`, "--ringbuf-size-mib", "2"]);
  // The recorder's own BPF maps, from its fds (a map of a recorder that just
  // exited can linger in `bpftool map show` while the kernel frees it).
  const maps: { type: number; maxEntries: number }[] = [];
  try {
    for (const fd of Deno.readDirSync(`/proc/${rec.pid}/fdinfo`)) {
      let info: string;
      try {
        info = Deno.readTextFileSync(`/proc/${rec.pid}/fdinfo/${fd.name}`);
      } catch {
        continue; // closed meanwhile
      }
      const type = /^map_type:\s+(\d+)$/m.exec(info);
      const max = /^max_entries:\s+(\d+)$/m.exec(info);
      if (type && max) maps.push({ type: Number(type[1]), maxEntries: Number(max[1]) });
    }
  } finally {
    const exit = await rec.stop("SIGINT");
    assert.equal(exit.code, 0, exit.stderr);
  }
  await assertTraceChecks(`${dir}/trace.pb`);
  const BPF_MAP_TYPE_RINGBUF = 27;
  const rings = maps.filter((m) => m.type === BPF_MAP_TYPE_RINGBUF);
  assert.equal(rings.length, navigator.hardwareConcurrency, show(maps));
  for (const r of rings) assert.equal(r.maxEntries, 2 * 1024 * 1024, show(r));
});
