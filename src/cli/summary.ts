/** The lines printed after a recording: what was written, what was lost, what each recorder saw. */
import type { RecordResult } from "../pipeline/record.ts";
import { formatBytes } from "./byte_size.ts";

export function summary(r: RecordResult, output: string): string {
  const events = Object.values(r.eventsByKind).reduce((a, b) => a + b, 0);
  const dropped = Object.values(r.dropsByKind).reduce((a, b) => a + b, 0);
  const kinds = Object.entries(r.eventsByKind).filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`).join(", ");
  const lines = [
    `systing: wrote ${output} (${formatBytes(r.fileBytes)}): ${
      (r.durationNs / 1e9).toFixed(2)
    } s, ` +
    `${events} events, ${dropped} dropped`,
    `  recorders: ${r.recorders.join(", ") || "none"}`,
    ...r.filter
      ? [
        `  filter: traced ${r.filter.traced}; ${r.filter.skippedSwitches} switches between ` +
        "untraced tasks not recorded",
      ]
      : [],
    `  events: ${kinds || "none"}`,
  ];
  if (dropped > 0) {
    const byKind = Object.entries(r.dropsByKind).filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`).join(", ");
    const byCpu = r.dropsByCpu.map((n, c) => n > 0 ? `cpu${c} ${n}` : "").filter(Boolean)
      .join(", ");
    lines.push(`  dropped: ${byKind} (${byCpu}); a larger --ringbuf-size-mib keeps more`);
  } else {
    lines.push("  dropped: none");
  }
  for (const line of r.summary) lines.push(`  ${line}`);
  for (const [what, n] of Object.entries(r.drain.problems)) {
    lines.push(`  warning: ${n} ${what}`);
  }
  if (r.contained.count > 0) {
    lines.push(
      `  warning: ${r.contained.count} batches of records could not be processed ` +
        `(first: ${r.contained.first}); please report this`,
    );
  }
  lines.push(`  open it at https://ui.perfetto.dev (Open trace file)`);
  return lines.join("\n");
}

/** What -v adds: where the time went. */
export function details(r: RecordResult): string {
  const d = r.drain;
  const events = Object.values(r.eventsByKind).reduce((a, b) => a + b, 0);
  return [
    `  attach ${r.attachMs.toFixed(0)} ms, finish ${r.finishMs.toFixed(0)} ms, ` +
    `drain worker CPU ${(d.cpuNs / Math.max(events, 1)).toFixed(0)} ns/event, ` +
    `rings ${(d.ringBytes / Math.max(events, 1)).toFixed(1)} B/event ` +
    `(${d.ringRecords} ring records), ${d.reordered} reordered, ${d.malformed} malformed, ${d.stalls} stalls`,
    ...r.details.map((l) => `  ${l}`),
  ].join("\n");
}
