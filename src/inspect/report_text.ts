/**
 * A Report as text for a terminal: every line fits in 100 columns (names and stacks are cut to
 * fit, stacks from their root side so that the leaf stays readable). Durations are scaled to
 * ns/us/ms/s with three significant digits; counts carry thousands separators.
 */
import { formatBytes } from "../cli/byte_size.ts";
import { UNTRACED_PID } from "../records/records.ts";
import type { IrqRow, Latency, Report, StackSection } from "./trace_report.ts";

/** A pid or tid, "-" for a filtered trace's stand-ins (they are no task's). */
const id = (n: number) => n >= UNTRACED_PID && n < UNTRACED_PID + 4096 ? "-" : String(n);

export const WIDTH = 100;

export function fmtNs(ns: number): string {
  const a = Math.abs(ns);
  const three = (v: number, unit: string) =>
    `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`;
  if (a < 1e3) return `${Math.round(ns)}ns`;
  if (a < 1e6) return three(ns / 1e3, "us");
  if (a < 1e9) return three(ns / 1e6, "ms");
  return three(ns / 1e9, "s");
}

export function fmtCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** S cut to N columns (an ellipsis marks the cut). */
function cut(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, Math.max(0, n - 1)) + "…";
}

/** S cut to N columns from its start: the end (a stack's leaf) is what matters. */
function cutStart(s: string, n: number): string {
  return s.length <= n ? s : "…" + s.slice(s.length - (n - 1));
}

/** Columns: [text, width]; a negative width aligns left. */
function row(cols: [string, number][]): string {
  return cols.map(([t, w]) => (w < 0 ? t.padEnd(-w) : t.padStart(w))).join(" ").trimEnd();
}

function latencyCols(l: Latency | undefined): [string, number][] {
  if (!l) return [["-", 9], ["", 8], ["", 8], ["", 8], ["", 8]];
  return [
    [fmtCount(l.count), 9],
    [fmtNs(l.p50Ns), 8],
    [fmtNs(l.p90Ns), 8],
    [fmtNs(l.p99Ns), 8],
    [fmtNs(l.maxNs), 8],
  ];
}

export function reportText(r: Report): string {
  const out: string[] = [];
  const line = (s = "") => out.push(s.length > WIDTH ? cut(s, WIDTH) : s);
  const section = (title: string) => {
    line();
    line(title);
  };
  const t = r.trace;

  line(`systing report: ${cutStart(t.path, WIDTH - 16)}`);
  const size = t.traceBytes !== t.fileBytes
    ? `${formatBytes(t.fileBytes)} (${formatBytes(t.traceBytes)} unzipped)`
    : formatBytes(t.fileBytes);
  line(
    `  span     ${fmtNs(t.durationNs)} (boot time ${(t.startNs / 1e9).toFixed(6)} s to ${
      (t.endNs / 1e9).toFixed(6)
    } s), ${t.cpus.length} CPUs`,
  );
  line(
    `  file     ${size}, ${fmtCount(t.packets)} packets` +
      (t.compressedWrappers ? `, ${fmtCount(t.compressedWrappers)} compressed wrappers` : ""),
  );
  if (t.problem) line(`  warning  ${t.problem}; the report covers what is there`);
  if (r.focus) {
    const what = [
      ...r.focus.pids.map((p) => `pid ${p}`),
      ...r.focus.comms.map((c) => `comm ${c}`),
    ].join(", ");
    line(`  focus    ${cut(what, 60)}: threads, processes, latency, stacks and track events`);
    line(`           (events, drops, CPUs and interrupts are the whole trace's)`);
  }
  line(`  pctiles  ${r.percentiles}`);

  section("EVENTS");
  const evs = r.events;
  const half = Math.ceil(evs.length / 2);
  for (let i = 0; i < half; i++) {
    const a = evs[i], b = evs[i + half];
    const left = row([[cut(a.kind, 34), -34], [fmtCount(a.count), 13]]);
    line(
      b
        ? `  ${left.padEnd(48)}  ${row([[cut(b.kind, 34), -34], [fmtCount(b.count), 13]])}`
        : `  ${left}`,
    );
  }

  section("DROPS");
  const d = r.drops;
  if (d.total === 0 && d.lostBundles === 0) line("  none");
  else {
    line(`  ${fmtCount(d.total)} events dropped by the recorder`);
    if (d.byCpu.some((c) => c.events > 0)) {
      line(
        `  by CPU   ${
          d.byCpu.filter((c) => c.events > 0).map((c) => `cpu${c.cpu} ${fmtCount(c.events)}`).join(
            ", ",
          )
        }`,
      );
    }
    if (d.byKind.length) {
      line(`  by kind  ${d.byKind.map((k) => `${k.kind} ${fmtCount(k.events)}`).join(", ")}`);
    }
    if (d.lostBundles) line(`  ${fmtCount(d.lostBundles)} bundles follow lost data`);
  }
  if (d.late) {
    line(`  ${fmtCount(d.late)} scheduler events reached the file too late to be put in order`);
  }

  section("CPUS");
  line(row([["cpu", 5], ["busy", 9], ["busy%", 7], ["idle", 9], ["switches", 12]]));
  for (const c of r.cpus) {
    const known = c.busyNs + c.idleNs;
    line(row([
      [String(c.cpu), 5],
      [fmtNs(c.busyNs), 9],
      [known ? pct(c.busyNs / known) : "-", 7],
      [fmtNs(c.idleNs), 9],
      [fmtCount(c.switches), 12],
    ]));
  }

  section("TOP PROCESSES BY CPU TIME");
  // Of the CPU time there was: the span times the CPUs.
  const capacity = t.durationNs * Math.max(1, t.cpus.length);
  line(row([["pid", 8], ["name", -32], ["cpu time", 9], ["of CPUs", 8], ["threads", 8]]));
  for (const p of r.processes) {
    line(row([
      [id(p.pid), 8],
      [cut(p.name, 32), -32],
      [fmtNs(p.runningNs), 9],
      [capacity ? pct(p.runningNs / capacity) : "-", 8],
      [fmtCount(p.threads), 8],
    ]));
  }

  section("TOP THREADS BY CPU TIME (time in each state)");
  line(
    row([
      ["tid", 8],
      ["pid", 8],
      ["name", -16],
      ["running", 9],
      ["runnable", 9],
      ["S sleep", 9],
      ["D blocked", 9],
      ["other", 8],
      ["switches", 10],
    ]),
  );
  for (const th of r.threads) {
    line(row([
      [id(th.tid), 8],
      [id(th.pid), 8],
      [cut(th.name, 16), -16],
      [fmtNs(th.runningNs), 9],
      [fmtNs(th.runnableNs), 9],
      [fmtNs(th.sleepingNs), 9],
      [fmtNs(th.blockedNs), 9],
      [fmtNs(th.otherNs), 8],
      [fmtCount(th.switches), 10],
    ]));
  }

  section("SCHEDULING LATENCY (wake-up or preemption to running)");
  const latHead = (first: [string, number][]) =>
    row([...first, ["waits", 9], ["p50", 8], ["p90", 8], ["p99", 8], ["max", 8]]);
  line(latHead([["", 8], ["", -16]]));
  line(row([["all", 8], [r.focus ? "(in focus)" : "", -16], ...latencyCols(r.latency.all)]));
  for (const l of r.latency.threads) {
    line(row([[String(l.tid), 8], [cut(l.name, 16), -16], ...latencyCols(l.latency)]));
  }

  const irqTable = (title: string, rows: IrqRow[]) => {
    if (rows.length === 0) return;
    section(title);
    line(row([["number", 8], ["name", -24], ["count", 12], ["total", 9], ["mean", 9], ["max", 9]]));
    for (const q of rows) {
      line(row([
        [String(q.number), 8],
        [cut(q.name, 24), -24],
        [fmtCount(q.count), 12],
        [fmtNs(q.totalNs), 9],
        [fmtNs(q.count ? q.totalNs / q.count : 0), 9],
        [fmtNs(q.maxNs), 9],
      ]));
    }
  };
  irqTable("TOP IRQS BY TIME", r.irqs);
  irqTable("TOP SOFTIRQS BY TIME", r.softirqs);

  const stacks = (title: string, s: StackSection | undefined, blocked: boolean) => {
    if (!s) return;
    section(
      `${title} (${fmtCount(s.count)} ${blocked ? "sleeps" : "samples"}` +
        (blocked ? `, ${fmtNs(s.ns ?? 0)}` : "") + `, ${fmtCount(s.distinct)} distinct; folded)`,
    );
    // Two lines each: the numbers and the thread, then the frames (leaf end kept when cut).
    for (const st of s.top) {
      const semi = st.stack.indexOf(";");
      const comm = semi < 0 ? st.stack : st.stack.slice(0, semi);
      const frames = semi < 0 ? "" : st.stack.slice(semi + 1);
      line(
        blocked
          ? row([[pct(st.share), 7], [fmtNs(st.ns ?? 0), 9], [fmtCount(st.count), 9], [comm, -30]])
          : row([[pct(st.share), 7], [fmtCount(st.count), 9], [comm, -30]]),
      );
      line(`        ${cutStart(frames || "[no frames]", WIDTH - 8)}`);
    }
  };
  stacks("TOP ON-CPU STACKS", r.stacks.onCpu, false);
  stacks("TOP BLOCKED STACKS, UNINTERRUPTIBLE (D)", r.stacks.blockedD, true);
  stacks("TOP BLOCKED STACKS, INTERRUPTIBLE (S)", r.stacks.blockedS, true);

  if (r.slices.length) {
    section("TOP SLICES BY TIME (track events: ranges)");
    line(row([
      ["track", -14],
      ["name", -24],
      ["count", 11],
      ["total", 9],
      ["p50", 8],
      ["p99", 8],
      ["max", 8],
      ["open", 6],
    ]));
    for (const s of r.slices) {
      line(row([
        [cut(s.track, 14), -14],
        [cut(s.name, 24), -24],
        [fmtCount(s.count), 11],
        [fmtNs(s.totalNs), 9],
        [fmtNs(s.p50Ns), 8],
        [fmtNs(s.p99Ns), 8],
        [fmtNs(s.maxNs), 8],
        [s.unfinished ? fmtCount(s.unfinished) : "", 6],
      ]));
    }
  }
  if (r.instants.length) {
    section("TOP INSTANTS BY COUNT (track events: probes)");
    line(row([["track", -24], ["name", -40], ["count", 12]]));
    for (const i of r.instants) {
      line(row([[cut(i.track, 24), -24], [cut(i.name, 40), -40], [fmtCount(i.count), 12]]));
    }
  }
  return out.join("\n") + "\n";
}
