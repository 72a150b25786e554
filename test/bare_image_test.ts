/**
 * The promise of dist/systing: copied alone into an image that has glibc and nothing else (no
 * libbpf, libelf, zlib, libgcc_s, clang, bpftool, not even a shell), it records. The image is a
 * directory holding only the libc6 package's libraries and the one file; a private mount
 * namespace lends it the kernel's /proc, /sys (BTF, tracefs) and /dev, and `chroot` runs it
 * there for 2 s while a workload runs outside. The trace must hold scheduler data and named stacks,
 * user frames of the outside workload included.
 *
 * `make test` builds dist/systing first (make rebuilds it only when a source changed).
 */
import assert from "node:assert/strict";
import { readTrace } from "./trace_reader.ts";
import { SUBCOMMANDS } from "../src/cli/subcommands.ts";
import { assertTraceChecks, compile, REPO, run } from "./workload.ts";

const DIST = `${REPO}dist/systing`;
const READY_LINE = "systing: recording";
const READY_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 60_000;
const FP = ["-O0", "-fno-omit-frame-pointer"];

/** Every shared object the libc6 package installs, by its real path. */
async function glibcLibraries(): Promise<string[]> {
  const { stdout } = await run("dpkg-query", ["-L", "libc6"]);
  const libs = new Set<string>();
  for (const path of stdout.split("\n")) {
    if (!/\/lib(64|\/x86_64-linux-gnu)\/[^/]*\.so[.0-9]*$/.test(path)) continue;
    try {
      if ((await Deno.stat(path)).isFile) libs.add(path);
    } catch { /* a dangling link in the package list */ }
  }
  return [...libs];
}

async function buildImage(root: string): Promise<void> {
  for (const dir of ["lib/x86_64-linux-gnu", "lib64", "proc", "sys", "dev", "out"]) {
    await Deno.mkdir(`${root}/${dir}`, { recursive: true });
  }
  for (const lib of await glibcLibraries()) {
    const name = lib.slice(lib.lastIndexOf("/") + 1);
    const dest = name.startsWith("ld-linux") ? "lib64" : "lib/x86_64-linux-gnu";
    await Deno.copyFile(lib, `${root}/${dest}/${name}`);
    if (name.startsWith("ld-linux")) {
      await Deno.copyFile(lib, `${root}/lib/x86_64-linux-gnu/${name}`);
    }
  }
  await Deno.copyFile(DIST, `${root}/systing`);
  await Deno.chmod(`${root}/systing`, 0o755);
}

Deno.test("dist/systing records from a bare image: only glibc, one file, no shell", async () => {
  try {
    await Deno.stat(DIST);
  } catch {
    assert.fail(`${DIST} is missing: run \`make dist\` (make test builds it)`);
  }
  const spin = await compile("spin_stack.c", { flags: FP, output: "bare_spin_stack" });
  const root = await Deno.makeTempDir({ prefix: "systing-bare-" });
  try {
    await buildImage(root);
    // What the image lacks, so that a pass means the file carried it.
    for (const absent of ["libbpf.so.1", "libelf.so.1", "libz.so.1", "libgcc_s.so.1"]) {
      await assert.rejects(Deno.stat(`${root}/lib/x86_64-linux-gnu/${absent}`));
    }
    await assert.rejects(Deno.stat(`${root}/bin/sh`));

    // Private mounts: nothing of this leaks into the host's namespace, and it all goes with it.
    const script = `set -e
      mount --bind /proc "$1/proc"
      mount --rbind /sys "$1/sys"
      mount --rbind /dev "$1/dev"
      exec chroot "$1" /systing -d 2 -o /out/trace.pb`;
    const child = new Deno.Command("unshare", {
      args: ["--mount", "--propagation", "private", "sh", "-c", script, "sh", root],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const stderrDone = (async () => {
      const dec = new TextDecoder();
      for await (const c of child.stderr) stderr += dec.decode(c, { stream: true });
    })();
    const stdoutDone = child.stdout.cancel();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const deadline = setTimeout(() => child.kill("SIGKILL"), READY_TIMEOUT_MS + EXIT_TIMEOUT_MS);
    try {
      while (!stderr.includes(READY_LINE)) {
        assert.ok(!exited, `the bare-image recording ended before recording:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      // The runtime the launcher started records with the recording's V8 flags.
      const cmdline = (await Deno.readTextFile(`/proc/${child.pid}/cmdline`)).split("\0");
      assert.ok(
        cmdline.some((a) => a.startsWith("--v8-flags=") && a.includes("--no-turbofan")),
        cmdline.join(" "),
      );
      // Well inside the 2 s, even on a machine whose CPUs are all busy.
      await run(spin, ["600"]);
      // Past Deno's half-second grace before it installs its inspector's SIGUSR1 handler: the
      // launcher blocked the signal, so it neither opens a debugger nor kills the recorder.
      if (!exited) Deno.kill(child.pid, "SIGUSR1");
      const s = await status;
      await stderrDone;
      await stdoutDone;
      assert.equal(s.code, 0, `exit ${s.code}; stderr:\n${stderr}`);
      assert.ok(!stderr.includes("Debugger listening"), stderr);
    } finally {
      clearTimeout(deadline);
      if (!exited) child.kill("SIGKILL");
      await status;
    }

    const trace = `${root}/out/trace.pb`;
    await assertTraceChecks(trace);
    const view = await readTrace(trace);
    assert.ok(view.switches.length > 100, `${view.switches.length} context switches`);
    const spinPid = view.processes.find((p) => p.cmdline.some((a) => a.endsWith("bare_spin_stack")))
      ?.pid;
    assert.ok(spinPid, "the workload outside the image is in the process tree");
    const samples = view.stackSamples.filter((s) => s.pid === spinPid);
    const named = samples.filter((s) => {
      const names = s.frames.map((f) => f.name);
      const leaf = names.lastIndexOf("leaf");
      return leaf > 0 && names[leaf - 1] === "middle" && names.includes("main");
    });
    assert.ok(
      samples.length >= 20 && named.length >= samples.length * 0.8,
      `${named.length} of ${samples.length} workload samples name main → middle → leaf`,
    );
    const kernelNamed = view.stackSamples.some((s) =>
      s.frames.some((f) => f.mappingPath.includes("kernel") && /^[a-z_]/.test(f.name))
    );
    assert.ok(kernelNamed, "kernel frames are named (kallsyms through the lent /proc)");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the launcher tells every subcommand from a recording", async () => {
  // It picks V8 flags for a recording unless the first argument names a subcommand.
  const launcher = await Deno.readTextFile(`${REPO}src/dist/launcher.c`);
  for (const { name } of SUBCOMMANDS) {
    assert.ok(launcher.includes(`strcmp(argv[1], "${name}") == 0`), `launcher.c: ${name}`);
  }
});
