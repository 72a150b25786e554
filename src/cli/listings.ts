/** --list-recorders and --list-perf-counters: what systing can record, and whether it can here. */
import type { KernelFeatures } from "../machine/kernel_features.ts";
import type { CounterSpec } from "../recorders/counter_catalog.ts";
import type { Recorder } from "../recorders/recorder.ts";

export function recorderList(recorders: readonly Recorder[], features: KernelFeatures): string {
  const width = Math.max(...recorders.map((r) => r.name.length)) + 2;
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [`${pad("RECORDER", width)}${pad("DEFAULT", 9)}${pad("HERE", 6)}DESCRIPTION`];
  for (const r of recorders) {
    const why = r.unsupported(features);
    lines.push(
      `${pad(r.name, width)}${pad(r.defaultOn ? "on" : "off", 9)}${pad(why ? "no" : "yes", 6)}` +
        r.description,
    );
    if (why) lines.push(`${" ".repeat(width + 15)}not on this machine: ${why}`);
  }
  return lines.join("\n");
}

export function counterList(
  counters: readonly CounterSpec[],
  problem: (c: CounterSpec) => string | undefined,
): string {
  const names = counters.map((c) =>
    c.aliases.filter((a) => !a.endsWith("/")).length
      ? `${c.name} (${c.aliases.filter((a) => !a.endsWith("/")).join(", ")})`
      : c.name
  );
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const lines = [`${"COUNTER".padEnd(width)}${"KIND".padEnd(10)}HERE`];
  counters.forEach((c, i) => {
    const why = problem(c);
    lines.push(`${names[i].padEnd(width)}${c.kind.padEnd(10)}${why ? `no: ${why}` : "yes"}`);
  });
  return lines.join("\n");
}
