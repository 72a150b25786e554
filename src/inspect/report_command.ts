/**
 * `systing report TRACE [--json] [--pid PID]... [--comm NAME]... [--top N]`: a terminal summary
 * of a trace (trace_report.ts computes it, report_text.ts lays it out). Exit 0 with the report,
 * 1 when the file cannot be read as a trace, 2 when the arguments are wrong.
 */
import { reportText } from "./report_text.ts";
import { InspectUsageError, parseTraceArguments, wholeNumber } from "./trace_arguments.ts";
import { reportTrace, TraceReportError } from "./trace_report.ts";
import { TraceReadError } from "./trace_stream.ts";
import { WireError } from "./wire_reader.ts";

const USAGE = "usage: systing report TRACE [--json] [--pid PID]... [--comm NAME]... [--top N]";

const HELP = `${USAGE}

summarizes TRACE (plain, --compress'd or gzip'd) in 100 columns: time span, CPUs, events by kind
and drops; top processes and threads by CPU time with each thread's time running, runnable,
sleeping (S) and blocked (D); scheduling latency percentiles; top IRQs and softirqs; top on-CPU
and blocked stacks; track-event slices and instants by name. The file is streamed: a trace larger
than memory can be read.

  --json        the same report as JSON (durations in ns)
  --pid PID     only threads of this thread or process id (repeatable)
  --comm NAME   only threads with this thread or process name (repeatable)
  --top N       rows per table (default 10)`;

interface ReportArgs {
  path: string;
  json: boolean;
  pids: number[];
  comms: string[];
  top: number;
}

function parse(args: string[]): ReportArgs | "help" {
  const parsed = parseTraceArguments(args, {
    json: { type: "boolean" },
    pid: { type: "string", multiple: true },
    comm: { type: "string", multiple: true },
    top: { type: "string" },
  });
  if (parsed === "help") return parsed;
  const { path, values } = parsed;
  const pids = (values.pid ?? []).map((p) => wholeNumber("--pid", p, "a process or thread id"));
  const comms = values.comm ?? [];
  for (const c of comms) {
    if (c === "") throw new InspectUsageError("--comm takes a thread or process name, not ''");
  }
  const top = values.top === undefined ? 10 : wholeNumber("--top", values.top, "a row count");
  if (top < 1) throw new InspectUsageError("--top takes a row count of at least 1, not 0");
  return { path, json: values.json ?? false, pids, comms, top };
}

export async function reportCommand(args: string[]): Promise<number> {
  let opts: ReportArgs | "help";
  try {
    opts = parse(args);
  } catch (e) {
    if (!(e instanceof InspectUsageError)) throw e;
    console.error(`systing report: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts === "help") {
    console.log(HELP);
    return 0;
  }
  let report;
  try {
    report = await reportTrace(opts.path, { pids: opts.pids, comms: opts.comms, top: opts.top });
  } catch (e) {
    if (e instanceof TraceReadError || e instanceof TraceReportError || e instanceof WireError) {
      console.error(
        `systing report: ${opts.path}: ${e.message}; is it a trace systing (or Perfetto) wrote?`,
      );
      return 1;
    }
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
      console.error(`systing report: cannot read ${opts.path}: ${(e as Error).message}`);
      return 1;
    }
    throw e;
  }
  if (report.trace.packets === 0) {
    console.error(
      `systing report: ${opts.path} holds no trace packets` +
        (report.trace.problem ? ` (${report.trace.problem})` : "") +
        "; give a trace systing wrote",
    );
    return 1;
  }
  const text = opts.json ? JSON.stringify(report, null, 2) + "\n" : reportText(report);
  await writeAll(new TextEncoder().encode(text));
  return 0;
}

/** Writes all of BYTES to stdout; a closed pipe (report | head) is not an error. */
async function writeAll(bytes: Uint8Array): Promise<void> {
  try {
    for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}
