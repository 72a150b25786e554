/**
 * Per-program run time from the kernel's BPF statistics (kernel.bpf_stats_enabled): what each
 * program costs the CPU it runs on, per run. The statistics cost a clock read of their own per
 * run, so they are on only while a benchmark asks for them, and the setting found is put back.
 */
const SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

interface ProgInfo {
  id: number;
  name?: string;
  run_time_ns?: number;
  run_cnt?: number;
}

/** Every loaded program, by id (bpftool, which the build installs). */
export async function programs(): Promise<Map<number, ProgInfo>> {
  const out = await new Deno.Command("bpftool", { args: ["prog", "show", "--json"] }).output();
  if (!out.success) throw new Error(`bpftool prog show: ${new TextDecoder().decode(out.stderr)}`);
  const list = JSON.parse(new TextDecoder().decode(out.stdout)) as ProgInfo[];
  return new Map(list.map((p) => [p.id, p]));
}

export interface ProgramCost {
  name: string;
  runs: number;
  nsPerRun: number;
}

/** What the programs in AFTER that are not in EXISTING ran between BEFORE and AFTER. */
export function costs(
  existing: Map<number, ProgInfo>,
  before: Map<number, ProgInfo>,
  after: Map<number, ProgInfo>,
): ProgramCost[] {
  const out: ProgramCost[] = [];
  for (const [id, p] of after) {
    if (existing.has(id)) continue;
    const b = before.get(id);
    const runs = (p.run_cnt ?? 0) - (b?.run_cnt ?? 0);
    const ns = (p.run_time_ns ?? 0) - (b?.run_time_ns ?? 0);
    if (runs > 0) out.push({ name: p.name ?? `#${id}`, runs, nsPerRun: ns / runs });
  }
  return out.sort((a, b) => b.runs - a.runs);
}

/** Runs F with the statistics on, then restores the setting found. */
export async function withBpfStats<T>(f: () => Promise<T>): Promise<T> {
  const was = Deno.readTextFileSync(SYSCTL).trim();
  Deno.writeTextFileSync(SYSCTL, "1");
  try {
    return await f();
  } finally {
    Deno.writeTextFileSync(SYSCTL, was);
  }
}
