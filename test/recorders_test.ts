// Recorders chosen by name, recorded for real (root): each one on alone puts its own data in the
// trace and nothing else; all of them together put in all of it; --no-sched/--no-irq/-n take
// exactly their part away. Then the syscalls and perf-counters recorders against what their
// workloads know: an exact count of getppid calls with their return value, and context switches
// counted by perf against the switches in the same trace.
import assert from "node:assert/strict";
import { KernelFeatures } from "../src/machine/kernel_features.ts";
import { RECORDERS } from "../src/recorders/registry.ts";
import { RecordingCache } from "./recording_cache.ts";
import type { TraceView } from "./trace_reader.ts";
import { compile, compileC, runJson, runRecorder } from "./workload.ts";

const FP = ["-O0", "-fno-omit-frame-pointer"];
const GETPPID_CALLS = 20_000;

interface SyscallLoop {
  pid: number;
  tid: number;
  ppid: number;
  calls: number;
}

interface Workloads {
  loop: SyscallLoop;
  pingpong: { pid: number; round_trips: number };
}

async function binaries() {
  const [loop, pingpong, spin, sleep] = await Promise.all([
    compileC("syscall_loop"),
    compileC("pingpong"),
    compile("spin_stack.c", { flags: FP }),
    compile("sleep_states.c", { flags: FP }),
  ]);
  return { loop, pingpong, spin, sleep };
}

/** Synced writes: virtio-blk completions are hard IRQs this test can count on. */
async function diskIo(): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "systing-io-" });
  try {
    const file = await Deno.open(`${dir}/io.bin`, { write: true, create: true });
    try {
      for (let i = 0; i < 3; i++) {
        await file.write(new Uint8Array(128 * 1024).fill(i + 1));
        await file.sync();
      }
    } finally {
      file.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Something for every recorder to see: switches, IRQs, CPU time, D and S sleeps, syscalls. */
async function everything(): Promise<Workloads> {
  const bins = await binaries();
  const [loop, pingpong] = await Promise.all([
    runJson<SyscallLoop>(bins.loop, [String(GETPPID_CALLS)]),
    runJson<{ pid: number; round_trips: number }>(bins.pingpong, ["--lockstep", "2000"]),
    runJson(bins.spin, ["300"]),
    runJson(bins.sleep, ["300"]),
    diskIo(),
    // A userspace marker (the markers recorder), in the shell form the README gives.
    new Deno.Command("perl", {
      args: ["-e", '$t = "recorders-test:mark"; syscall(439, -1, $t, 0x53590001, 0)'],
    }).output(),
  ]);
  return { loop, pingpong };
}

const recordings = new RecordingCache(binaries);
/**
 * System calls of the whole machine can be millions a second on a busy one (any CPU-bound
 * `yes` makes them): only the workloads' own slices are decoded, the rest are counted.
 */
const recording = (extra: string[], workload = everything) =>
  recordings.get(extra, workload, (result) => ({
    keepPackets: false,
    keepSlicesOf: (t) => t.thread === undefined || t.thread.pid === result.loop.pid,
  }));

/** Names of the recorders whose data VIEW holds. */
function contents(view: TraceView): string[] {
  const found = new Set<string>();
  const schedEvents = new Set([
    "schedWakeupNew",
    "schedProcessFork",
    "schedProcessExec",
    "schedProcessExit",
    "taskRename",
  ]);
  const irqEvents = new Set(["irqHandlerEntry", "irqHandlerExit", "softirqEntry", "softirqExit"]);
  if (view.switches.length || view.wakings.length) found.add("sched");
  for (const e of view.events) {
    if (schedEvents.has(e.event.case!)) found.add("sched");
    if (irqEvents.has(e.event.case!)) found.add("irq");
  }
  const bySource: Record<string, string> = {
    "on_cpu": "cpu-stacks",
    "sleep.uninterruptible": "sleep-stacks",
    "sleep.interruptible": "interruptible-stacks",
  };
  for (const s of view.stackSamples) found.add(bySource[s.source] ?? `stacks from ${s.source}`);
  const trackName = (uuid: bigint | undefined) =>
    uuid === undefined ? undefined : view.tracks.get(uuid)?.name;
  for (const [track, n] of view.sliceCounts) {
    if (n === 0) continue;
    const name = trackName(track) ?? "";
    found.add(
      name === "syscalls"
        ? "syscalls"
        : /^(usdt|uprobe|uretprobe|tracepoint|kprobe|kretprobe):/.test(name)
        ? "probes"
        : name === "recorders-test"
        ? "markers"
        : `slices on ${name}`,
    );
  }
  for (const c of view.counterValues) {
    const parent = trackName(view.tracks.get(c.track)?.parent);
    if (parent === "systing dropped events") continue; // every trace has them
    found.add(parent === "CPU frequency" ? "cpu-frequency" : "perf-counters");
  }
  return [...found].sort();
}

const features = new KernelFeatures();
const supported = RECORDERS.filter((r) => !r.unsupported(features)).map((r) => r.name);
features.close();

/** What a recorder needs besides its name to run. */
const EXTRA: Record<string, string[]> = {
  "perf-counters": ["--perf-counter", "cs"],
  // The workload's getppid loop fires it.
  probes: ["--trace-event", "tracepoint:syscalls:sys_enter_getppid"],
};

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `recorders: ${name}`, fn });
}

for (const name of supported) {
  test(`--only-recorder ${name} records ${name}'s data and nothing else`, async () => {
    const { view, rec } = await recording(["--only-recorder", name, ...EXTRA[name] ?? []]);
    assert.deepEqual(contents(view), [name], rec.exit.stderr);
    // Process names are in every trace, whatever is recorded.
    assert.ok(view.threads.some((t) => t.tid === rec.result.loop.tid));
  });
}

const ALL = supported.flatMap((n) => ["--add-recorder", n, ...EXTRA[n] ?? []]);

test("every recorder this machine has, together, records all of their data", async () => {
  const { view } = await recording(ALL);
  assert.deepEqual(contents(view), [...supported].sort());
});

const TAKEN_AWAY: [string[], string[]][] = [
  [["--no-sched"], ["sched"]],
  [["--no-irq"], ["irq"]],
  [["-n"], ["cpu-stacks", "sleep-stacks", "interruptible-stacks"]],
];
for (const [flags, off] of TAKEN_AWAY) {
  test(`${flags.join(" ")} takes exactly ${off.join(", ")} away`, async () => {
    const defaults = RECORDERS.filter((r) => r.defaultOn).map((r) => r.name);
    const { view } = await recording(flags);
    assert.deepEqual(contents(view), defaults.filter((n) => !off.includes(n)).sort());
  });
}

test("syscalls: exactly the getppid calls the workload made, with their return value", async () => {
  const { view, rec } = await recording(["--only-recorder", "syscalls"]);
  const loop = rec.result.loop;
  const onThread = (tid: number) => {
    const tracks = [...view.tracks.values()].filter((t) =>
      t.name === "syscalls" && t.thread?.tid === tid && t.thread.pid === loop.pid
    );
    assert.equal(tracks.length, 1, `syscalls tracks of ${tid}`);
    return view.slices.filter((s) => s.track === tracks[0].uuid);
  };
  const calls = onThread(loop.tid);
  const getppid = calls.filter((s) => s.name === "getppid");
  // Exactly, unless the machine made more calls than the rings could hold: then the summary
  // counts what was dropped, and no more than that may be missing.
  const dropped = Number(/dropped: .*\bsyscall (\d+)/.exec(rec.exit.stderr)?.[1] ?? 0);
  if (dropped === 0) assert.equal(getppid.length, GETPPID_CALLS);
  assert.ok(getppid.length <= GETPPID_CALLS && getppid.length >= GETPPID_CALLS - dropped);
  assert.ok(getppid.every((s) => s.args.ret === BigInt(loop.ppid)), "getppid returned the ppid");
  assert.ok(getppid.every((s) => s.end !== undefined && s.end >= s.begin));
  // The failing close(-1) that ends the loop, with its errno's name.
  const close = calls.filter((s) => s.name === "close");
  assert.deepEqual(close.map((s) => s.args), [{ ret: -9n, errno: "EBADF" }]);
  // Slices on a thread never overlap: each call ends before the next begins.
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i].begin >= calls[i - 1].end!);
  // The process ended in exit_group, which never returns: an instant on its main thread.
  const main = [...view.tracks.values()].find((t) =>
    t.name === "syscalls" && t.thread?.tid === loop.pid
  );
  assert.ok(main, "the main thread's syscalls track");
  assert.deepEqual(
    view.instants.filter((i) => i.track === main.uuid).map((i) => i.name),
    ["exit_group"],
  );
});

test("syscalls: none of the tracer's own calls are recorded", async () => {
  const { view, rec } = await recording(["--only-recorder", "syscalls"]);
  // The tracer was there, busy with system calls of its own (draining, writing).
  assert.ok(view.threads.some((t) => t.tgid === rec.pid), "the tracer's threads");
  const own = [...view.tracks.values()].filter((t) => t.thread?.pid === rec.pid);
  assert.deepEqual(own, []);
  // Other processes' calls are there.
  assert.ok(
    [...view.sliceCounts].some(([t, n]) =>
      n > 0 && view.tracks.get(t)?.thread?.pid !== rec.result.loop.pid
    ),
  );
});

test("perf-counters: context switches counted by perf are the switches of the trace (±5%)", async () => {
  const { view, rec } = await recording(
    ["--only-recorder", "sched", "--perf-counter", "context-switches"],
    async () => {
      const bins = await binaries();
      const pingpong = await runJson<{ pid: number; round_trips: number }>(bins.pingpong, [
        "--lockstep",
        "20000",
      ]);
      return { loop: { pid: 0, tid: 0, ppid: 0, calls: 0 }, pingpong };
    },
  );
  const parent = [...view.tracks.values()].find((t) => t.name === "context-switches");
  assert.ok(parent, rec.exit.stderr);
  const perCpu = [...view.tracks.values()].filter((t) => t.parent === parent.uuid);
  assert.equal(perCpu.length, view.systemInfos[0].numCpus);
  let counted = 0, traced = 0;
  for (const t of perCpu) {
    const cpu = Number(/cpu(\d+)$/.exec(t.name)![1]);
    assert.equal(t.counter?.unit, 2, "UNIT_COUNT");
    const values = view.counterValues.filter((c) => c.track === t.uuid);
    assert.ok(values.length >= 3, `${values.length} values on ${t.name}`);
    const first = values[0], last = values[values.length - 1];
    const switches = (view.switchesByCpu.get(cpu) ?? [])
      .filter((s) => s.ts > first.ts && s.ts <= last.ts).length;
    counted += last.value - first.value;
    traced += switches;
    if (switches >= 1000) {
      assert.ok(
        Math.abs(last.value - first.value - switches) <= 0.05 * switches,
        `cpu${cpu}: perf counted ${last.value - first.value}, the trace has ${switches}`,
      );
    }
  }
  assert.ok(traced >= 2 * 20000, `${traced} switches traced`);
  assert.ok(Math.abs(counted - traced) <= 0.05 * traced, `counted ${counted}, traced ${traced}`);
  assert.match(rec.exit.stderr, /perf counters: context-switches \d+/);
});

test("cpu-frequency: on a machine without cpufreq, one warning and the recording goes on", async () => {
  const cpufreq = supported.includes("cpu-frequency");
  const { view, rec } = await recording(["--cpu-frequency", "-n"]);
  const warnings = rec.exit.stderr.split("\n").filter((l) => l.includes("cpu-frequency"));
  if (cpufreq) {
    assert.ok(contents(view).includes("cpu-frequency"));
    const tracks = [...view.tracks.values()].filter((t) => / frequency$/.test(t.name));
    assert.ok(tracks.every((t) => t.counter?.unitName === "Hz"));
    return;
  }
  assert.equal(warnings.length, 1, rec.exit.stderr);
  assert.match(warnings[0], /^warning: cpu-frequency: this machine has no cpufreq driver/);
  assert.deepEqual(contents(view), ["irq", "sched"]);
});

test("--list-recorders names every recorder, its default and whether it runs here", async () => {
  const res = await runRecorder(["--list-recorders"]);
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.split("\n");
  for (const r of RECORDERS) {
    const line = lines.find((l) => l.startsWith(`${r.name} `));
    assert.ok(line, `${r.name} in:\n${res.stdout}`);
    const [, on, here] = line.split(/\s+/);
    assert.equal(on, r.defaultOn ? "on" : "off");
    assert.equal(here, supported.includes(r.name) ? "yes" : "no");
    assert.ok(line.includes(r.description));
  }
  if (!supported.includes("cpu-frequency")) {
    assert.match(res.stdout, /not on this machine: this machine has no cpufreq driver/);
  }
});

test("--list-perf-counters lists the software counters and this machine's PMU events", async () => {
  const res = await runRecorder(["--list-perf-counters"]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^context-switches \(cs\)\s+software\s+yes$/m);
  assert.match(res.stdout, /^cycles \(cpu-cycles\)\s+hardware\s+/m);
  // Every event the kernel publishes in sysfs is listed under its PMU's name.
  const devices = "/sys/bus/event_source/devices";
  for (const pmu of Deno.readDirSync(devices)) {
    if (["tracepoint", "kprobe", "uprobe", "breakpoint", "software"].includes(pmu.name)) continue;
    let events: Deno.DirEntry[] = [];
    try {
      events = [...Deno.readDirSync(`${devices}/${pmu.name}/events`)];
    } catch { /* a PMU without named events */ }
    for (const e of events.filter((e) => !e.name.includes("."))) {
      assert.match(res.stdout, new RegExp(`^${pmu.name}/${e.name}\\s`, "m"));
    }
  }
});
