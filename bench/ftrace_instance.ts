/**
 * The kernel's own event recording as a baseline: a tracefs instance with some events enabled,
 * a buffer per CPU and no reader at all. What a workload loses under it is the floor every
 * ftrace-based tool (trace-cmd, Perfetto's traced_probes, tracebox) stands on; their readers
 * only add to it.
 */
const TRACEFS = "/sys/kernel/tracing";

/** Mounts tracefs if nothing is mounted there; returns whether it did (to unmount after). */
async function ensureTracefs(): Promise<boolean> {
  try {
    Deno.statSync(`${TRACEFS}/instances`);
    return false;
  } catch { /* not mounted */ }
  const out = await new Deno.Command("mount", { args: ["-t", "tracefs", "nodev", TRACEFS] })
    .output();
  if (!out.success) {
    throw new Error(`mount -t tracefs ${TRACEFS} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return true;
}

export interface FtraceRun {
  measured: number;
  /** Events the buffers hold or overwrote, and what the kernel could not record at all. */
  entries: number;
  overrun: number;
  dropped: number;
}

/**
 * Runs WORKLOAD with EVENTS ("sched/sched_switch", …) recorded into a new instance with
 * BUFFER_KIB per CPU, then removes the instance (and tracefs, if this mounted it).
 */
export async function withFtraceInstance(
  events: string[],
  bufferKiB: number,
  workload: () => Promise<number>,
): Promise<FtraceRun> {
  const mounted = await ensureTracefs();
  const dir = `${TRACEFS}/instances/systing-bench-${Deno.pid}`;
  Deno.mkdirSync(dir);
  try {
    Deno.writeTextFileSync(`${dir}/buffer_size_kb`, String(bufferKiB));
    for (const e of events) Deno.writeTextFileSync(`${dir}/events/${e}/enable`, "1");
    Deno.writeTextFileSync(`${dir}/tracing_on`, "1");
    const measured = await workload();
    Deno.writeTextFileSync(`${dir}/tracing_on`, "0");
    const run: FtraceRun = { measured, entries: 0, overrun: 0, dropped: 0 };
    for (const cpu of Deno.readDirSync(`${dir}/per_cpu`)) {
      const stats = Deno.readTextFileSync(`${dir}/per_cpu/${cpu.name}/stats`);
      const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, "m").exec(stats)?.[1]);
      run.entries += field("entries");
      run.overrun += field("overrun");
      run.dropped += field("dropped events");
    }
    for (const e of events) Deno.writeTextFileSync(`${dir}/events/${e}/enable`, "0");
    return run;
  } finally {
    Deno.removeSync(dir);
    if (mounted) await new Deno.Command("umount", { args: [TRACEFS] }).output();
  }
}
