/**
 * What the benchmarks share: the pipe benchmark (both ends on CPU 0), starting a tracer and
 * running a workload under it, and the process figures read from /proc.
 */
export const REPO = new URL("../", import.meta.url).pathname;
export const DENO = Deno.execPath();

/**
 * How to start the systing of checkout REPO: its one-file build (dist/systing, with the V8
 * settings a user gets from the launcher) when it is there and newer than every source, else
 * `deno run` on its main.ts. `label` says which, for the report.
 */
export function systingCommand(repo = REPO): { cmd: string; args: string[]; label: string } {
  // Decided once per checkout: a source edited while a benchmark runs must not switch it over.
  const known = chosen.get(repo);
  if (known) return known;
  const run = chooseSystingCommand(repo);
  chosen.set(repo, run);
  return run;
}

const chosen = new Map<string, { cmd: string; args: string[]; label: string }>();

function chooseSystingCommand(repo: string): { cmd: string; args: string[]; label: string } {
  const dist = `${repo}dist/systing`;
  const mtime = (p: string) => Deno.statSync(p).mtime?.getTime() ?? 0;
  try {
    const built = mtime(dist);
    const sources = [`${repo}main.ts`, `${repo}src/dist/launcher.c`];
    const walk = (dir: string) => {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isDirectory) walk(`${dir}/${e.name}`);
        else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
          sources.push(`${dir}/${e.name}`);
        }
      }
    };
    walk(`${repo}src`);
    if (sources.every((p) => mtime(p) <= built)) {
      return { cmd: dist, args: [], label: `${dist} (the one file)` };
    }
  } catch { /* no dist/systing: run the sources */ }
  return { cmd: DENO, args: ["run", "-A", `${repo}main.ts`], label: `deno run ${repo}main.ts` };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Both ends of the pipe on CPU 0: the switch rate is then set by the CPU, not
 * by cross-CPU wake-up latency (which in a VM swings between runs by 10×), and
 * the tracer's own threads run on the other CPUs.
 */
export async function pipeBench(loops: number): Promise<number> {
  const out = await new Deno.Command("taskset", {
    args: ["-c", "0", "perf", "bench", "sched", "pipe", "-l", String(loops)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const m = /(\d+)\s+ops\/sec/.exec(text);
  if (!m) throw new Error(`perf bench output not understood: ${text}`);
  return Number(m[1]);
}

export function procCpuNs(pid: number): number {
  // utime + stime of every thread, in clock ticks (USER_HZ = 100).
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 1e7;
}

export function rssKiB(pid: number, field = "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(
    Deno.readTextFileSync(`/proc/${pid}/status`),
  );
  return m ? Number(m[1]) : 0;
}

export interface Traced {
  /** What the workload function returned (ops/s, ns per call, …). */
  measured: number;
  attachMs: number;
  finishMs: number;
  cpuNs: number;
  peakRssKiB: number;
  stderr: string;
  output: string;
}

/** Starts a tracer, waits for READY on stderr, runs the workload, stops it with SIGINT. */
export async function traced(
  cmd: string,
  args: string[],
  ready: RegExp,
  output: string,
  during: (pid: number) => Promise<number>,
): Promise<Traced> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  while (!ready.test(stderr)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${cmd} exited before it was ready:\n${stderr}`);
    stderr += value;
  }
  const attachMs = performance.now() - t0;
  const cpu0 = procCpuNs(child.pid);
  const measured = await during(child.pid);
  const cpuNs = procCpuNs(child.pid) - cpu0;
  const peakRssKiB = rssKiB(child.pid);
  const stopT = performance.now();
  child.kill("SIGINT");
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      stderr += value;
    }
  })();
  await child.status;
  await rest;
  await child.stdout.cancel();
  return {
    measured,
    attachMs,
    finishMs: performance.now() - stopT,
    cpuNs,
    peakRssKiB,
    stderr,
    output,
  };
}

/** perf bench forks its partner; killing perf alone leaves it behind. */
export function killTree(pid: number): void {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) Deno.kill(Number(e.name), "SIGKILL");
    } catch { /* gone */ }
  }
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/** Where cgroup2 is mounted (all of it, or its hybrid "unified" part), if anywhere. */
function cgroup2Root(): string | undefined {
  for (const line of Deno.readTextFileSync("/proc/self/mounts").split("\n")) {
    const f = line.split(" ");
    if (f[2] === "cgroup2") return f[1];
  }
  return undefined;
}

let meters = 0;

/**
 * The CPU time of a process and of every thread it ever had, from a cgroup2 group of its own
 * (cpu.stat counts what the scheduler counted). Summing the live threads' schedstat misses the
 * threads that have exited, and Deno's blocking-I/O threads come and go during a recording.
 * Without cgroup2 it falls back to that sum.
 */
export class CpuMeter {
  #dir?: string;
  #pid: number;

  constructor(pid: number) {
    this.#pid = pid;
    const root = cgroup2Root();
    if (!root) return;
    const dir = `${root}/systing-bench-${Deno.pid}-${meters++}`;
    try {
      Deno.mkdirSync(dir);
      Deno.writeTextFileSync(`${dir}/cgroup.procs`, String(pid));
      this.#dir = dir;
    } catch {
      try {
        Deno.removeSync(dir);
      } catch { /* never made */ }
    }
  }

  /** CPU seconds so far. */
  seconds(): number {
    if (!this.#dir) return liveThreadsCpuSec(this.#pid);
    const m = /^usage_usec (\d+)$/m.exec(Deno.readTextFileSync(`${this.#dir}/cpu.stat`));
    return Number(m?.[1] ?? 0) / 1e6;
  }

  /** Removes the group; call it once the process has exited. */
  close(): void {
    if (!this.#dir) return;
    try {
      Deno.removeSync(this.#dir);
    } catch { /* still has a process: it goes when the machine reboots */ }
    this.#dir = undefined;
  }
}

/** The scheduler's CPU count of every live thread of PID (schedstat), in seconds. */
function liveThreadsCpuSec(pid: number): number {
  let ns = 0;
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
    } catch { /* the thread has just exited */ }
  }
  return ns / 1e9;
}

/**
 * Stops the benchmark when another tracer (a systing, perf record, bpftrace or tracebox left
 * running) is already attached: its programs would run in every row, the untraced one included,
 * and the figures would look plausible while measuring both.
 */
export function refuseIfTraced(): void {
  const found: string[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    let args: string[];
    try {
      args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a);
    } catch {
      continue; // gone, or a kernel thread
    }
    // dist/systing's launcher runs the runtime as argv[0] "systing".
    const name = (args[0] ?? "").split("/").pop() ?? "";
    const tracer = name === "systing" || name === "bpftrace" || name === "tracebox" ||
      (name === "perf" && args[1] === "record");
    if (tracer) found.push(`pid ${pid}: ${args.join(" ").slice(0, 80)}`);
  }
  if (found.length > 0) {
    console.error(
      `bench: another tracer is running (${found.join("; ")}); stop it first: its programs ` +
        `would run under every row, the untraced one included`,
    );
    Deno.exit(1);
  }
}
