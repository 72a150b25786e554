/**
 * `systing check TRACE [--max N] [--json]`: says what a trace holds and whether it keeps every
 * promise of our output (see trace_check.ts for the rules). Exit 0 when it does, 1 with the
 * violations when not (a cut-off file is rule `framing`), 2 when the arguments are wrong or the
 * file cannot be read at all.
 */
import { formatBytes } from "../cli/byte_size.ts";
import {
  type CheckResult,
  checkTrace,
  DEFAULT_MAX_VIOLATIONS,
  RULES,
  type TraceSummary,
  type Violation,
} from "./trace_check.ts";
import { InspectUsageError, parseTraceArguments, wholeNumber } from "./trace_arguments.ts";
import { TraceReadError } from "./trace_stream.ts";

const USAGE = "usage: systing check TRACE [--max N] [--json]";

interface CheckArgs {
  path: string;
  max: number;
  json: boolean;
}

function parse(args: string[]): CheckArgs | "help" {
  const parsed = parseTraceArguments(args, {
    max: { type: "string" },
    json: { type: "boolean" },
  });
  if (parsed === "help") return parsed;
  const { path, values } = parsed;
  const max = values.max === undefined
    ? DEFAULT_MAX_VIOLATIONS
    : wholeNumber("--max", values.max, "a whole number of violations to list");
  return { path, max, json: values.json ?? false };
}

export async function checkCommand(args: string[]): Promise<number> {
  let opts: CheckArgs | "help";
  try {
    opts = parse(args);
  } catch (e) {
    if (!(e instanceof InspectUsageError)) throw e;
    console.error(`systing check: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts === "help") {
    console.log(
      `${USAGE}\n\nchecks that TRACE keeps what systing's traces promise:\n${
        Object.entries(RULES).map(([id, what]) => `  ${id.padEnd(18)} ${what}`).join("\n")
      }\n\nexit status: 0 ok, 1 violations (or a cut-off file), 2 bad arguments or unreadable file`,
    );
    return 0;
  }
  let result: CheckResult;
  try {
    result = await checkTrace(opts.path, opts.max);
  } catch (e) {
    if (!(e instanceof TraceReadError)) throw e;
    console.error(`systing check: ${e.message}`);
    return 2;
  }
  console.log(opts.json ? toJson(opts.path, result) : report(opts.path, result));
  return result.violations.length === 0 && Object.keys(result.counts).length === 0 ? 0 : 1;
}

function seconds(ns: bigint): string {
  return `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, "0")}`;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** What the trace holds, in three lines. */
function holds(s: TraceSummary): string[] {
  const span = s.firstTs !== undefined && s.lastTs !== undefined
    ? `${(Number(s.lastTs - s.firstTs) / 1e9).toFixed(3)} s of data (boot time ${
      seconds(s.firstTs)
    } to ${seconds(s.lastTs)})`
    : "no timestamped data";
  return [
    `${plural(s.packets, "packet")}` +
    (s.compressedWrappers ? ` (${plural(s.compressedWrappers, "compressed wrapper")})` : ""),
    `${plural(s.cpus.length, "CPU")} with ftrace data, ${span}`,
    `${plural(s.schedSwitches, "sched switch")}`.replace("switchs", "switches") +
    `, ${plural(s.schedWakings, "waking")}, ${plural(s.ftraceEvents, "other ftrace event")}, ` +
    `${plural(s.stackSamples, "stack sample")}, ${plural(s.trackEvents, "track event")} on ` +
    `${plural(s.trackDescriptors, "track descriptor")}`,
  ];
}

function position(v: Violation): string {
  return `packet ${v.packet} at offset ${v.offset}` +
    (v.inner >= 0 ? ` (compressed packet ${v.inner})` : "");
}

function report(path: string, r: CheckResult): string {
  const s = r.summary;
  const out: string[] = [];
  if (r.cutOff) {
    out.push(`${path} is not a complete trace: ${r.cutOff}`);
    out.push(
      `its complete part, ${formatBytes(s.wholeBytes)} of ${formatBytes(s.totalBytes)}, holds:`,
      ...holds(s).map((l) => `  ${l}`),
      `Perfetto will load these ${plural(s.packets, "complete packet")} and silently drop the ` +
        "rest; re-record for a whole trace.",
    );
  } else {
    out.push(`${path}: ${formatBytes(s.totalBytes)}`, ...holds(s).map((l) => `  ${l}`));
  }
  const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
  if (total === 0) {
    out.push("ok");
    return out.join("\n");
  }
  out.push(`${plural(total, "violation")}:`);
  const width = Math.max(...r.violations.map((v) => v.rule.length), 0);
  for (const v of r.violations) out.push(`  ${v.rule.padEnd(width)}  ${position(v)}: ${v.message}`);
  const shown = new Map<string, number>();
  for (const v of r.violations) shown.set(v.rule, (shown.get(v.rule) ?? 0) + 1);
  for (const [rule, n] of Object.entries(r.counts)) {
    const more = n - (shown.get(rule) ?? 0);
    if (more > 0) out.push(`  ... and ${more} more ${rule}`);
  }
  return out.join("\n");
}

function toJson(path: string, r: CheckResult): string {
  const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
  return JSON.stringify(
    {
      path,
      ok: total === 0,
      cutOff: r.cutOff ?? null,
      summary: r.summary,
      counts: r.counts,
      violations: r.violations,
    },
    // Boot-time ns exceed 2^53 on long-running hosts: kept exact as strings.
    (_k, v) => typeof v === "bigint" ? v.toString() : v,
    2,
  );
}
