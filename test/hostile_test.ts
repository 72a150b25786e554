// A root tool that hostile processes cannot hang, crash or turn against the machine: real
// recordings (root, real BPF) while an unprivileged attacker (test/c/hostile.c, running as
// nobody) maps and executes crafted files (test/crafted_elf.ts). The attacks on the output file
// and the signals are in output_signals_test.ts. Each check names the attack it defeats.
import assert from "node:assert/strict";
import { demanglingBomb, expressionBomb, plant, registerBomb } from "./crafted_elf.ts";
import { readTrace, type StackSampleView, type TraceView } from "./trace_reader.ts";
import { assertTraceChecks, compile, Recorder, runJson, type RunResult } from "./workload.ts";

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `hostile: ${name}`, fn });
}

/** A world-writable directory, as /tmp is, removed when the test process ends. */
const dirs: string[] = [];
globalThis.addEventListener("unload", () => {
  if (Deno.env.get("SYSTING_KEEP_TRACES")) return;
  for (const d of dirs) Deno.removeSync(d, { recursive: true });
});
function sharedDir(): string {
  const dir = Deno.makeTempDirSync({ prefix: "systing-hostile-" });
  Deno.chmodSync(dir, 0o1777);
  dirs.push(dir);
  return dir;
}

function peakRssKib(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : 0;
}

function samplesOf(view: TraceView, pid: number): StackSampleView[] {
  return view.stackSamples.filter((s) => s.pid === pid && s.source === "on_cpu");
}

function leaf(s: StackSampleView): string {
  return s.frames[s.frames.length - 1]?.name ?? "";
}

interface Attack {
  file: string;
  /** What the sampled frames in the file must be called. */
  expect: (name: string) => boolean;
  depth?: number;
  /** Must be reported unreadable in the summary. */
  unreadable?: boolean;
}

interface Symbolization {
  view: TraceView;
  exit: RunResult;
  pids: Map<string, number>;
  fifoPid: number;
  peakKib: number;
  attacks: Attack[];
}

let symbolization: Promise<Symbolization> | undefined;

/**
 * One recording while every file attack runs at once: lying symbol tables, sparse files that
 * claim 256 MiB tables, an unwind-table memory bomb, 800-operation unwind expressions, a
 * demangling bomb, and a file swapped for a FIFO after it ran.
 */
function symbolizationRecording(): Promise<Symbolization> {
  return symbolization ??= (async () => {
    const hostile = await compile("hostile.c");
    const dir = sharedDir();
    const label = (name: string) => (n: string) => n.startsWith(`${name}+0x`);
    const bomb = demanglingBomb();
    const attacks: Attack[] = [
      { file: plant(dir, "entsize16.so", { symtabEntsize: 16 }), expect: label("entsize16.so") },
      { file: plant(dir, "badlink.so", { symtabLink: 1 }), expect: label("badlink.so") },
      {
        file: plant(dir, "huge-strtab.so", { strtabClaim: 2 ** 40 }, true),
        expect: label("huge-strtab.so"),
      },
      ...[0, 1, 2].map((i) => ({
        file: plant(dir, `sparse-strtab${i}.so`, { strtabClaim: 256 << 20 }),
        expect: (n: string) => n === "hostile_code",
      })),
      ...[0, 1, 2].map((i) => ({
        file: plant(dir, `sparse-eh${i}.so`, {
          fdeInstructions: new Uint8Array(0),
          ehFrameClaim: 256 << 20,
        }),
        expect: (n: string) => n === "hostile_code",
      })),
      {
        file: plant(dir, "register-bomb.so", { fdeInstructions: registerBomb(1500) }),
        expect: (n: string) => n === "hostile_code",
      },
      {
        file: plant(dir, "expression-bomb.so", { fdeInstructions: expressionBomb(800) }),
        expect: (n: string) => n === "hostile_code",
        depth: 100,
      },
      {
        file: plant(dir, "demangle-bomb.so", {
          strtab: new TextEncoder().encode(`\0${bomb}\0`),
        }),
        expect: (n: string) => n === bomb,
      },
    ];
    for (const a of attacks.slice(0, 3)) a.unreadable = true;
    const fifoFile = plant(dir, "swapped.so");
    const trace = `${dir}/symbolization.pb`;
    const rec = await Recorder.start(["-o", trace]);
    let peakKib = 0;
    try {
      // 800 ms in the file: on a loaded machine the process's own start took over a tenth of 400.
      const runs = attacks.map((a) =>
        runJson<{ pid: number }>(hostile, ["exec", a.file, "800", String(a.depth ?? 4)])
      );
      const fifo = runJson<{ pid: number }>(hostile, ["fifo", fifoFile, "30", "6"]);
      const results = await Promise.all(runs);
      const fifoPid = (await fifo).pid;
      // Let the last samples be symbolized before measuring and stopping.
      await new Promise((r) => setTimeout(r, 500));
      try {
        peakKib = peakRssKib(rec.pid);
      } catch {
        const died = await rec.wait();
        assert.fail(`the recorder died (exit ${died.code}) during the attacks:\n${died.stderr}`);
      }
      const exit = await rec.stop("SIGINT");
      assert.equal(exit.code, 0, `recorder exit code; stderr:\n${exit.stderr}`);
      await assertTraceChecks(trace);
      const pids = new Map(attacks.map((a, i) => [a.file, results[i].pid]));
      return { view: await readTrace(trace), exit, pids, fifoPid, peakKib, attacks };
    } finally {
      await rec.close();
    }
  })();
}

test("crafted files: every attacker's samples are named or labelled, none lost", async () => {
  const { view, pids, attacks } = await symbolizationRecording();
  for (const a of attacks) {
    const samples = samplesOf(view, pids.get(a.file)!);
    assert.ok(samples.length >= 100, `${a.file}: ${samples.length} samples`);
    const inFile = samples.filter((s) => s.frames.some((f) => a.expect(f.name)));
    assert.ok(
      inFile.length >= samples.length * 0.9,
      `${a.file}: ${inFile.length} of ${samples.length} samples name the file as expected; ` +
        `e.g. ${leaf(samples[0])}`,
    );
  }
});

test("crafted symbol tables are reported unreadable, the recording goes on", async () => {
  const { exit, attacks } = await symbolizationRecording();
  const line = exit.stderr.split("\n").find((l) => l.includes("unreadable files")) ?? "";
  for (const a of attacks.filter((a) => a.unreadable)) {
    assert.ok(line.includes(a.file), `${a.file} missing from: ${line}`);
  }
  assert.ok(!exit.stderr.includes("    at "), `a stack trace on stderr:\n${exit.stderr}`);
});

test("sparse files and unwind bombs do not multiply the recorder's memory", async () => {
  const { peakKib } = await symbolizationRecording();
  // Six sparse files once took it from 174 MB to 3.3 GB, and the register bomb to 0.9 GB per
  // lookup; the rings alone are 2 × 16 MiB mapped twice.
  assert.ok(peakKib > 0 && peakKib < 768 * 1024, `peak RSS ${peakKib} KiB`);
});

test("800-operation unwind rules: the stacks are cut at the work budget", async () => {
  const { view, pids, attacks, exit } = await symbolizationRecording();
  const a = attacks.find((x) => x.file.endsWith("expression-bomb.so"))!;
  const samples = samplesOf(view, pids.get(a.file)!);
  // 100 frames deep in the file; the budget allows about seven of these frames.
  const depths = samples.map((s) => s.frames.filter((f) => f.name === "hostile_code").length);
  assert.ok(Math.max(...depths) < 20, `deepest walk ${Math.max(...depths)} frames`);
  assert.ok(
    samples.filter((s) => s.frames[0]?.name === "[truncated stack]").length >= samples.length / 2,
    "walks cut by the budget end in [truncated stack]",
  );
  assert.match(exit.stderr, /cut at the work budget/);
});

test("a mapped file swapped for a FIFO does not hang the recorder", async () => {
  // Reaching this point means the recording stopped on SIGINT; the FIFO's samples are there,
  // labelled, since the file they ran in was gone by the time they were symbolized.
  const { view, fifoPid } = await symbolizationRecording();
  const samples = samplesOf(view, fifoPid);
  assert.ok(samples.length > 20, `${samples.length} samples of the FIFO attacker`);
});

test("a process with 5.8 MB of arguments and 100 forks costs the trace 4 KiB a command line", async () => {
  const hostile = await compile("hostile.c");
  const dir = sharedDir();
  const holder = new Deno.Command(hostile, {
    args: ["bigargs", "5800", "100"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = holder.stdout.getReader();
    const first = await reader.read();
    reader.releaseLock();
    const { pid } = JSON.parse(new TextDecoder().decode(first.value));
    const argBytes = Deno.statSync(`/proc/${pid}/cmdline`).size ||
      Deno.readFileSync(`/proc/${pid}/cmdline`).length;
    assert.ok(argBytes > 5_000_000, `${argBytes} bytes of arguments`);
    const trace = `${dir}/bigargs.pb`;
    const rec = await Recorder.start(["-n", "-o", trace]);
    const exit = await rec.stop("SIGINT");
    assert.equal(exit.code, 0, exit.stderr);
    await assertTraceChecks(trace);
    const size = Deno.statSync(trace).size;
    assert.ok(size < 16 << 20, `trace of ${size} bytes`);
    const view = await readTrace(trace);
    const theirs = view.processes.filter((p) => p.cmdline[0] === "hostile");
    assert.ok(theirs.length >= 100, `${theirs.length} of the attacker's processes in the trace`);
    for (const p of theirs) {
      const bytes = p.cmdline.reduce((n, a) => n + a.length + 1, 0);
      assert.ok(bytes <= 4096 + 8, `pid ${p.pid}: ${bytes} bytes of cmdline`);
      assert.ok(p.cmdline[p.cmdline.length - 1].endsWith("…"), "a cut command line is marked");
    }
  } finally {
    holder.kill("SIGTERM");
    await holder.status;
    await holder.stdout.cancel().catch(() => {});
    await holder.stderr.cancel().catch(() => {});
  }
});
