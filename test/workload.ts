/**
 * Test harness around the recorder: compiles the C workloads in test/c/, runs
 * `main.ts` as a subprocess, waits until it is really recording, and stops it
 * the way a user would (SIGINT), so the integration tests see the same trace
 * an interactive run produces.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkTrace } from "../src/inspect/trace_check.ts";
import { readTrace } from "./trace_reader.ts";

export const REPO = fileURLToPath(new URL("../", import.meta.url));
const C_DIR = `${REPO}test/c/`;
const MAIN = `${REPO}main.ts`;

/** Generous: the first run type-checks and loads BPF; a hang should still fail fast. */
const READY_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 30_000;
const READY_LINE = "systing: recording";

let binDir: Promise<string> | undefined;
const compiled = new Map<string, Promise<string>>();

/** Compiles test/c/NAME.c once per test process; returns the binary's path. */
export function compileC(name: string): Promise<string> {
  return compile(`${name}.c`);
}

export interface CompileOptions {
  /** The binary's name (default: the source's name without its extension). */
  output?: string;
  /** Default: g++ for .cpp sources, gcc otherwise. */
  compiler?: "gcc" | "g++";
  /** Added after the defaults (-O1 -g -pthread -Wall -Werror), so they win. */
  flags?: string[];
}

/**
 * Compiles test/c/SOURCE (e.g. "spin.c", "work.cpp") once per test process
 * and output name; returns the binary's path.
 */
export function compile(source: string, opts: CompileOptions = {}): Promise<string> {
  const output = opts.output ?? source.replace(/\.[^.]+$/, "");
  let bin = compiled.get(output);
  if (!bin) {
    bin = build(source, output, opts);
    compiled.set(output, bin);
  }
  return bin;
}

async function build(source: string, output: string, opts: CompileOptions): Promise<string> {
  if (!binDir) {
    binDir = Deno.makeTempDir({ prefix: "systing-test-bin-" });
    const dir = await binDir;
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  }
  const out = `${await binDir}/${output}`;
  const compiler = opts.compiler ?? (source.endsWith(".cpp") ? "g++" : "gcc");
  const cc = await new Deno.Command(compiler, {
    args: [
      "-O1",
      "-g",
      "-pthread",
      "-Wall",
      "-Werror",
      ...opts.flags ?? [],
      "-o",
      out,
      `${C_DIR}${source}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!cc.success) {
    throw new Error(`${compiler} ${source} failed:\n${new TextDecoder().decode(cc.stderr)}`);
  }
  return out;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; throws if it fails, since a workload must not. */
export async function run(bin: string, args: string[] = []): Promise<RunResult> {
  const out = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped" }).output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (!out.success) {
    throw new Error(`${bin} ${args.join(" ")} exited ${out.code}:\n${res.stderr}`);
  }
  return res;
}

/** A fresh temp dir for FN, removed after it. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A workload that waits for a line on stdin before it runs, so that a tracer can attach first,
 * and prints one line of JSON when done.
 */
export class GatedWorkload<T> {
  #child: Deno.ChildProcess;

  constructor(bin: string, args: string[]) {
    this.#child = new Deno.Command(bin, { args, stdin: "piped", stdout: "piped" }).spawn();
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Lets it run; resolves to what it printed. */
  async go(): Promise<T> {
    const w = this.#child.stdin.getWriter();
    await w.write(new TextEncoder().encode("go\n"));
    await w.close();
    const out = await this.#child.output();
    if (!out.success) throw new Error(`gated workload ${this.pid} exited ${out.code}`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  }

  /** Kills it if still running; for `finally` blocks. */
  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#child.status;
  }
}

/** Runs a workload that prints one line of JSON and returns it parsed. */
export async function runJson<T>(bin: string, args: string[] = []): Promise<T> {
  const { stdout } = await run(bin, args);
  try {
    return JSON.parse(stdout) as T;
  } catch {
    throw new Error(`${bin}: stdout is not JSON: ${JSON.stringify(stdout)}`);
  }
}

/** Runs main.ts with ARGS to completion (for invocations that end by themselves). */
export async function runRecorder(args: string[], timeoutMs = EXIT_TIMEOUT_MS): Promise<RunResult> {
  const child = spawnRecorder(args);
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killQuietly(child);
  }, timeoutMs);
  try {
    const status = await child.status;
    const res = { code: status.code, stdout: await stdout, stderr: await stderr };
    if (timedOut) {
      throw new Error(
        `main.ts ${args.join(" ")} did not exit within ${timeoutMs} ms:\n${res.stderr}`,
      );
    }
    return res;
  } finally {
    clearTimeout(timer);
    killQuietly(child);
  }
}

function spawnRecorder(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

export class Recorder {
  #child: Deno.ChildProcess;
  #stderr = "";
  #stderrDone: Promise<void>;
  #stdout: Promise<string>;
  #exited = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    // Drained continuously: a full pipe would block the recorder mid-trace.
    this.#stderrDone = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) this.#stderr += dec.decode(chunk, { stream: true });
    })();
    this.#stdout = collect(child.stdout);
    child.status.then(() => this.#exited = true);
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Everything the recorder has written to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Starts main.ts and resolves once it reports that every program is attached. */
  static async start(args: string[]): Promise<Recorder> {
    const rec = new Recorder(spawnRecorder(args));
    try {
      await rec.#waitReady();
    } catch (e) {
      rec.kill();
      await rec.#child.status;
      await rec.#stderrDone;
      throw new Error(`${(e as Error).message}\nrecorder stderr:\n${rec.#stderr}`);
    }
    return rec;
  }

  async #waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!this.#stderr.split("\n").some((l) => l.startsWith(READY_LINE))) {
      if (this.#exited) {
        const { code } = await this.#child.status;
        throw new Error(`recorder exited with ${code} before printing "${READY_LINE}"`);
      }
      if (Date.now() > deadline) {
        throw new Error(`recorder did not print "${READY_LINE}" within ${READY_TIMEOUT_MS} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends SIGNAL and waits for the exit; SIGKILLs and throws if it takes too long. */
  async stop(signal: Deno.Signal = "SIGINT"): Promise<RunResult> {
    if (!this.#exited) this.#child.kill(signal);
    return await this.wait();
  }

  /** Waits for the recorder to end by itself (e.g. after -d). */
  async wait(timeoutMs = EXIT_TIMEOUT_MS): Promise<RunResult> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.kill();
    }, timeoutMs);
    try {
      const status = await this.#child.status;
      await this.#stderrDone;
      if (timedOut) {
        throw new Error(`recorder did not exit within ${timeoutMs} ms\nstderr:\n${this.#stderr}`);
      }
      return { code: status.code, stdout: await this.#stdout, stderr: this.#stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL if still running; for `finally` blocks. */
  kill(): void {
    if (!this.#exited) killQuietly(this.#child);
  }

  /** Kills it if still running and waits until it is gone; for `finally` blocks. */
  async close(): Promise<void> {
    this.kill();
    await this.#child.status;
    await this.#stderrDone.catch(() => {});
  }
}

export interface Recording<T> {
  /** The trace file; inside dir. */
  tracePath: string;
  /** A fresh temp dir owned by the caller (remove it with Deno.remove(dir, {recursive})). */
  dir: string;
  /** What the workload function returned. */
  result: T;
  /** The recorder's exit. */
  exit: RunResult;
  /** The recorder's pid (systing's own). */
  pid: number;
}

/**
 * Runs `systing check`'s validator on a finished trace: whatever a test looks at, every trace
 * it records must also keep the promises every trace makes. Fails listing the violations.
 */
/**
 * Records into TRACE with ARGS while RUN lets its workloads go (once recording), then stops:
 * the trace checked and read, what RUN returned and the recorder's stderr.
 */
export async function recordWhile<T>(trace: string, args: string[], run: () => Promise<T>) {
  const rec = await Recorder.start(["-o", trace, ...args]);
  try {
    const results = await run();
    const exit = await rec.stop();
    assert.equal(exit.code, 0, exit.stderr);
    await assertTraceChecks(trace);
    return { view: await readTrace(trace), results, stderr: exit.stderr };
  } finally {
    await rec.close();
  }
}

export async function assertTraceChecks(path: string): Promise<void> {
  const r = await checkTrace(path);
  const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
  assert.equal(
    total,
    0,
    `systing check ${path}: ${total} violations ${JSON.stringify(r.counts)}\n` +
      r.violations.map((v) => `  ${v.rule} packet ${v.packet} @${v.offset}: ${v.message}`)
        .join("\n"),
  );
}

/**
 * Records while WORKLOAD runs: starts the recorder with EXTRA args writing to a
 * new temp dir, runs the workload, then stops the recorder with SIGINT. A trace
 * recorded with exit code 0 is checked (assertTraceChecks) before it is returned.
 */
export async function record<T>(
  workload: () => Promise<T>,
  extra: string[] = [],
): Promise<Recording<T>> {
  const dir = await Deno.makeTempDir({ prefix: "systing-test-" });
  const tracePath = `${dir}/trace.pb`;
  let rec: Recorder | undefined;
  try {
    rec = await Recorder.start(["-o", tracePath, ...extra]);
    const result = await workload();
    const exit = await rec.stop("SIGINT");
    if (exit.code === 0) await assertTraceChecks(tracePath);
    return { tracePath, dir, result, exit, pid: rec.pid };
  } catch (e) {
    // Kept on request, so that a trace failing the check can be looked at.
    if (!Deno.env.get("SYSTING_KEEP_TRACES")) await Deno.remove(dir, { recursive: true });
    throw e;
  } finally {
    await rec?.close();
  }
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const dec = new TextDecoder();
  for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  return text;
}

function killQuietly(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
}
