// Command-line behaviour of main.ts: bad invocations fail cleanly (one line,
// non-zero, nothing left on disk), --help and --version succeed.
import assert from "node:assert/strict";
import { assertTraceChecks, Recorder, runRecorder } from "./workload.ts";

/** Names in DIR, sorted; [] when DIR does not exist. */
function listDir(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/**
 * Runs main.ts with ARGS writing to OUTPUT and checks the failure contract.
 * MENTION is what the error line must name so that the user can find the mistake.
 */
async function expectCleanFailure(args: string[], output: string, mention: string) {
  const dir = output.slice(0, output.lastIndexOf("/"));
  const before = listDir(dir);
  // -d 1: should the recorder wrongly accept the invocation, it still ends
  // (not added where -d is under test: a last-one-wins parser would mask it).
  const duration = args.includes("-d") ? [] : ["-d", "1"];
  // A rejection must come before any BPF work, so seconds are plenty.
  const res = await runRecorder([...args, ...duration, "-o", output], 15_000);
  const lines = res.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.notEqual(res.code, 0, `exit code for ${args.join(" ")}; stderr: ${res.stderr}`);
  assert.equal(lines.length, 1, `stderr lines for ${args.join(" ")}: ${JSON.stringify(lines)}`);
  assert.ok(!res.stderr.includes("    at "), `stack trace on stderr: ${res.stderr}`);
  assert.ok(lines[0].includes(mention), `"${lines[0]}" should mention "${mention}"`);
  assert.deepEqual(listDir(dir), before, `files left beside ${output}`);
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "systing-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli: unknown flag", () =>
  withTempDir((dir) => expectCleanFailure(["--bogus-flag"], `${dir}/trace.pb`, "--bogus-flag")));

Deno.test("cli: -d abc", () =>
  withTempDir((dir) => expectCleanFailure(["-d", "abc"], `${dir}/trace.pb`, "abc")));

Deno.test("cli: -d -1", () =>
  withTempDir((dir) => expectCleanFailure(["-d", "-1"], `${dir}/trace.pb`, "-1")));

Deno.test("cli: --ringbuf-size-mib 3 is not a power of two", () =>
  withTempDir((dir) => expectCleanFailure(["--ringbuf-size-mib", "3"], `${dir}/trace.pb`, "3")));

Deno.test("cli: output in a nonexistent directory", () =>
  withTempDir(async (dir) => {
    const missing = `${dir}/missing`;
    await expectCleanFailure([], `${missing}/trace.pb`, missing);
    assert.deepEqual(listDir(dir), [], "the recorder must not create the directory");
  }));

Deno.test({
  name: "cli: output on a read-only file system",
  // Root writes through permission bits, so only a read-only mount really refuses it.
  ignore: Deno.uid() !== 0,
  fn: () =>
    withTempDir(async (dir) => {
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "ro,size=1m", "systing-test", dir],
        stderr: "piped",
      }).output();
      assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
      try {
        await expectCleanFailure([], `${dir}/trace.pb`, dir);
      } finally {
        await new Deno.Command("umount", { args: [dir] }).output();
      }
    }),
});

Deno.test("cli: --help exits 0 and documents --duration", async () => {
  const res = await runRecorder(["--help"]);
  assert.equal(res.code, 0, res.stderr);
  assert.ok(
    (res.stdout + res.stderr).includes("--duration"),
    `--help output lacks --duration:\n${res.stdout}${res.stderr}`,
  );
});

Deno.test("cli: --version exits 0 and prints a version", async () => {
  const res = await runRecorder(["--version"]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout + res.stderr, /\d+\.\d+/);
});

// -o must never replace a device, a stream or a FIFO with a regular file (as root that would
// turn /dev/null into a file holding the trace, system-wide).
for (const target of ["/dev/null", "/dev/stdout", "/dev/zero"]) {
  Deno.test(`cli: -o ${target} is refused and left alone`, async () => {
    const before = Deno.statSync(target);
    await expectCleanFailure([], target, target);
    const after = Deno.statSync(target);
    assert.equal(after.isCharDevice, before.isCharDevice);
    assert.equal(after.ino, before.ino);
  });
}

Deno.test("cli: -o a FIFO is refused and the FIFO stays a FIFO", () =>
  withTempDir(async (dir) => {
    const fifo = `${dir}/fifo`;
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    await expectCleanFailure([], fifo, "a FIFO");
    assert.ok(Deno.lstatSync(fifo).isFifo);
  }));

// Recorder and counter names: every bad one is one line naming it, exit ≠ 0, no file.
const BAD_CHOICES: [string[], string][] = [
  [["--add-recorder", "bogus"], '"bogus"'],
  [["--only-recorder", "schedd"], "sched, irq, cpu-stacks"],
  [["--only-recorder", "sched", "--no-sched"], "--no-sched contradicts"],
  [["--no-sched", "--no-irq", "-n"], "nothing to record"],
  [["-n", "--sample-freq", "99"], "--sample-freq applies to cpu-stacks"],
  [["--add-recorder", "perf-counters"], "--perf-counter"],
  [["--perf-counter", "contxt-switches"], "closest: context-switches"],
  [["--perf-counter", "no-such-*"], "matches no counter"],
  [["--perf-counter", "cs", "--perf-counter-freq", "0"], "--perf-counter-freq"],
  [["--perf-counter", "cs", "--only-recorder", "irq", "--no-irq"], "--no-irq contradicts"],
];
for (const [args, mention] of BAD_CHOICES) {
  Deno.test(`cli: ${args.join(" ")}`, () =>
    withTempDir((dir) => expectCleanFailure(args, `${dir}/trace.pb`, mention)));
}

Deno.test({
  name: "cli: --perf-counter cycles without a hardware PMU says so",
  // Machines of this kind have none; where one exists, cycles is simply counted.
  ignore: (() => {
    try {
      return Deno.statSync("/sys/bus/event_source/devices/cpu").isDirectory;
    } catch {
      return false;
    }
  })(),
  fn: () =>
    withTempDir((dir) =>
      expectCleanFailure(["--perf-counter", "cycles"], `${dir}/trace.pb`, "no hardware PMU")
    ),
});

Deno.test("cli: libbpf, libelf and zlib are the ones systing carries, not the host's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "systing-cli-" });
  const rec = await Recorder.start(["-n", "-o", `${dir}/t.pb`]);
  try {
    const mapped = new Set(
      Deno.readTextFileSync(`/proc/${rec.pid}/maps`).split("\n")
        .map((l) => l.split(/\s+/).slice(5).join(" "))
        .filter((p) => /lib(bpf|elf|z)\.so/.test(p)),
    );
    assert.deepEqual(
      [...mapped].sort(),
      [
        "/memfd:libbpf.so.1 (deleted)",
        "/memfd:libelf.so.1 (deleted)",
        "/memfd:libz.so.1 (deleted)",
      ],
    );
    assert.equal((await rec.stop()).code, 0);
    await assertTraceChecks(`${dir}/t.pb`);
  } finally {
    await rec.close();
    await Deno.remove(dir, { recursive: true });
  }
});
