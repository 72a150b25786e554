/**
 * systing: records what this machine is doing into a Perfetto trace.
 * This file only parses arguments, wires the recorder, prints errors and
 * picks exit codes.
 */
import { parseArgs } from "node:util";
import { guardInspectorSignal } from "./src/cli/inspector_guard.ts";
import { record, type RecordingControl, type RecordResult } from "./src/pipeline/record.ts";
import { VERSION } from "./src/version.ts";

class UsageError extends Error {
  override name = "UsageError";
}

const HELP = `systing ${VERSION} — record scheduling, interrupts and stacks into a Perfetto trace

Usage: systing [options]

Options:
  -d, --duration SECS        record for SECS seconds; 0 (default) records until Ctrl-C
  -o, --output PATH          trace file to write (default: trace.pb)
      --ringbuf-size-mib N   ring buffer per CPU in MiB, a power of two (default: 16)
      --compress             compress packets (zlib, read by Perfetto's UI and tools)
      --sample-freq HZ       CPU stack samples per second on every CPU (default: 1000)
  -s, --sw-event             sample with the CPU clock even where a hardware PMU exists
  -n, --no-stack-traces      record no stacks at all
      --no-cpu-stack-traces  no CPU samples
      --no-sleep-stack-traces
                             no stacks of tasks going to sleep (D or S)
      --no-interruptible-stack-traces
                             no stacks of tasks going to interruptible sleep (S)
      --user-stacks MODE     auto (default): copy the top of each user stack and unwind it
                             with the binaries' unwind tables, falling back to frame
                             pointers; fp: frame pointers only; dwarf: unwind tables only
      --user-stack-bytes N   user stack bytes copied per stack (default: 16384, max: 61440)
  -v, --verbose              more detail; repeat (-vv) for libbpf's debug log
  -h, --help                 show this help
  -V, --version              show the version

Examples:
  sudo systing --duration 10                  # 10 s of the whole machine into trace.pb
  sudo systing -o /tmp/boot.pb                # until Ctrl-C
  sudo systing -d 30 --ringbuf-size-mib 64    # bigger buffers for very busy hosts
  sudo systing -d 10 -n                       # scheduling and interrupts only, no stacks

Open the trace at https://ui.perfetto.dev (Open trace file).`;

interface Options {
  durationSec: number;
  output: string;
  ringbufSizeMib: number;
  verbosity: number;
  compress: boolean;
  sampleFreq: number;
  softwareEvent: boolean;
  sleepStacksD: boolean;
  sleepStacksS: boolean;
  userStacks: "auto" | "fp" | "dwarf";
  userStackBytes: number;
}

const VALUE_OPTIONS: Record<string, string> = {
  "-d": "--duration",
  "--duration": "--duration",
  "-o": "--output",
  "--output": "--output",
  "--ringbuf-size-mib": "--ringbuf-size-mib",
  "--sample-freq": "--sample-freq",
  "--user-stack-bytes": "--user-stack-bytes",
};

/** `-d -1` is a value error, not a missing argument: join such values so validation names them. */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const long = VALUE_OPTIONS[args[i]];
    if (long && /^-\d/.test(args[i + 1] ?? "")) out.push(`${long}=${args[++i]}`);
    else out.push(args[i]);
  }
  return out;
}

function parseOptions(args: string[]): Options | "help" | "version" {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args),
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: "string", short: "d", default: "0" },
        output: { type: "string", short: "o", default: "trace.pb" },
        "ringbuf-size-mib": { type: "string", default: "16" },
        compress: { type: "boolean", default: false },
        "sample-freq": { type: "string", default: "1000" },
        "sw-event": { type: "boolean", short: "s", default: false },
        "no-stack-traces": { type: "boolean", short: "n", default: false },
        "no-cpu-stack-traces": { type: "boolean", default: false },
        "no-sleep-stack-traces": { type: "boolean", default: false },
        "no-interruptible-stack-traces": { type: "boolean", default: false },
        "user-stacks": { type: "string", default: "auto" },
        "user-stack-bytes": { type: "string", default: "16384" },
        verbose: { type: "boolean", short: "v", multiple: true },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (e) {
    // node:util's first sentence names the option; the rest is hint text.
    const first = (e as Error).message.split(/\.(?:\s|$)/)[0];
    throw new UsageError(`${first}; see --help`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (v.version) return "version";
  const duration = Number(v.duration);
  if (!/^\s*\d+(\.\d+)?\s*$/.test(v.duration) || !Number.isFinite(duration)) {
    throw new UsageError(
      `invalid --duration ${
        JSON.stringify(v.duration)
      }: give seconds as a number ≥ 0 (0 = until Ctrl-C)`,
    );
  }
  const mib = Number(v["ringbuf-size-mib"]);
  if (!Number.isInteger(mib) || mib < 1 || mib > 1024 || (mib & (mib - 1)) !== 0) {
    throw new UsageError(
      `invalid --ringbuf-size-mib ${JSON.stringify(v["ringbuf-size-mib"])}: ` +
        "give a power of two between 1 and 1024",
    );
  }
  if (v.output === "") throw new UsageError("invalid --output: give a file path");
  const hz = Number(v["sample-freq"]);
  if (!/^\d+$/.test(v["sample-freq"]) || hz < 1 || hz > 100000) {
    throw new UsageError(
      `invalid --sample-freq ${
        JSON.stringify(v["sample-freq"])
      }: give samples per second, 1 to 100000`,
    );
  }
  const mode = v["user-stacks"];
  if (mode !== "auto" && mode !== "fp" && mode !== "dwarf") {
    throw new UsageError(`invalid --user-stacks ${JSON.stringify(mode)}: give auto, fp or dwarf`);
  }
  const copy = Number(v["user-stack-bytes"]);
  if (!/^\d+$/.test(v["user-stack-bytes"]) || copy < 512 || copy > 61440 || copy % 8 !== 0) {
    throw new UsageError(
      `invalid --user-stack-bytes ${JSON.stringify(v["user-stack-bytes"])}: ` +
        "give a multiple of 8 from 512 to 61440",
    );
  }
  const noStacks = v["no-stack-traces"];
  const noSleep = noStacks || v["no-sleep-stack-traces"];
  return {
    durationSec: duration,
    output: v.output,
    ringbufSizeMib: mib,
    verbosity: v.verbose?.length ?? 0,
    compress: v.compress,
    sampleFreq: noStacks || v["no-cpu-stack-traces"] ? 0 : hz,
    softwareEvent: v["sw-event"],
    sleepStacksD: !noSleep,
    sleepStacksS: !noSleep && !v["no-interruptible-stack-traces"],
    userStacks: mode,
    userStackBytes: copy,
  };
}

function fmtBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function summary(r: RecordResult, output: string): string {
  const events = Object.values(r.eventsByKind).reduce((a, b) => a + b, 0);
  const dropped = Object.values(r.dropsByKind).reduce((a, b) => a + b, 0);
  const kinds = Object.entries(r.eventsByKind).filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`).join(", ");
  const lines = [
    `systing: wrote ${output} (${fmtBytes(r.fileBytes)}): ${(r.durationNs / 1e9).toFixed(2)} s, ` +
    `${events} events, ${dropped} dropped`,
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
  if (r.stacks) {
    const s = r.stacks;
    const frames = s.named + s.labelled;
    lines.push(
      `  stacks: ${s.cpuSamples} CPU samples${r.sampling ? ` (${r.sampling})` : ""}, ` +
        `${s.sleepSamples} sleep stacks, ${s.distinctStacks} distinct; ` +
        `${frames ? ((100 * s.named) / frames).toFixed(1) : "0"}% of their frames named, ` +
        `${s.truncated} user stacks cut short` +
        (s.sidebandLost ? `, ${s.sidebandLost} mapping records lost` : ""),
    );
    const u = s.unwound;
    const unwound = u.complete + u.truncated + u["no-unwind-info"] + u["bad-frame"] + u.budget;
    if (unwound + s.framePointer > 0) {
      lines.push(
        `  user stacks: ${unwound} unwound from a stack copy (${u.complete} to the outermost ` +
          `frame, ${u.truncated} past the copy, ${u["no-unwind-info"] + u["bad-frame"]} ` +
          `cut at code without unwind info` +
          (u.budget ? `, ${u.budget} cut at the work budget` : "") +
          `), ${s.reused} reused their task's last walk, ${s.framePointer} by frame pointers`,
      );
    }
    if (s.failed) {
      lines.push(
        `  warning: ${s.failed} stacks could not be processed (first: ${s.firstFailure}); ` +
          "please report this",
      );
    }
    const unreadable = s.unreadable.length + s.moreUnreadable;
    if (unreadable) {
      const shown = s.unreadable.slice(0, 10);
      lines.push(
        `  unreadable files (frames labelled module+offset): ${shown.join(", ")}` +
          (unreadable > shown.length ? ` and ${unreadable - shown.length} more` : ""),
      );
    }
    if (s.mappingsDropped) {
      lines.push(
        `  ${s.mappingsDropped} replaced code mappings forgotten (processes that map code ` +
          "again and again); samples in them may be labelled",
      );
    }
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

/**
 * A closed terminal (HUP), Ctrl-C (INT), Ctrl-\\ (QUIT) and kill (TERM) all end the recording with
 * a complete trace. A second one while finishing means "now": the unfinished file is removed.
 */
const STOP_SIGNALS: Deno.Signal[] = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"];

function stopOnSignals(control: RecordingControl): () => void {
  let signals = 0;
  const handler = () => {
    if (++signals === 1) {
      control.stop();
      return;
    }
    const removed = control.discard();
    console.error(
      removed
        ? "\nsysting: stopped by a second signal; the unfinished trace was removed"
        : "\nsysting: stopped by a second signal",
    );
    Deno.exit(130);
  };
  for (const s of STOP_SIGNALS) Deno.addSignalListener(s, handler);
  return () => {
    for (const s of STOP_SIGNALS) Deno.removeSignalListener(s, handler);
  };
}

async function main(args: string[]): Promise<number> {
  let opts: Options;
  try {
    const o = parseOptions(args);
    if (o === "help") {
      console.log(HELP);
      return 0;
    }
    if (o === "version") {
      console.log(`systing ${VERSION}`);
      return 0;
    }
    opts = o;
  } catch (e) {
    console.error(`systing: ${(e as Error).message}`);
    return 2;
  }

  // Before anything else: as root, an open inspector is a root shell for any local user.
  guardInspectorSignal();
  const tty = Deno.stderr.isTerminal();
  let statusShown = false;
  const encoder = new TextEncoder();
  const clearStatus = () => {
    if (statusShown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    statusShown = false;
  };
  try {
    const result = await record({
      ...opts,
      log: (line) => {
        clearStatus();
        console.error(line);
      },
      status: tty
        ? (line) => {
          Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${line}`));
          statusShown = true;
        }
        : undefined,
    }, stopOnSignals);
    clearStatus();
    console.error(summary(result, opts.output));
    if (opts.verbosity > 0) {
      const d = result.drain;
      const events = Object.values(result.eventsByKind).reduce((a, b) => a + b, 0);
      console.error(
        `  attach ${result.attachMs.toFixed(0)} ms, finish ${result.finishMs.toFixed(0)} ms, ` +
          `drain worker CPU ${(d.cpuNs / Math.max(events, 1)).toFixed(0)} ns/event, ` +
          `${d.reordered} reordered, ${d.malformed} malformed, ${d.stalls} stalls`,
      );
      const st = result.stacks;
      if (st && st.cpuSamples + st.sleepSamples > 0) {
        const n = st.cpuSamples + st.sleepSamples;
        console.error(
          `  stacks: ${(st.recordBytes / n).toFixed(0)} B/stack from BPF, unwinding ` +
            `${(st.unwindNs / 1e6).toFixed(1)} ms CPU in all (${
              (st.unwindNs / n / 1e3).toFixed(1)
            } µs/stack), all stack processing ${((st.processingMs * 1e3) / n).toFixed(1)} µs/stack`,
        );
      }
    }
    return 0;
  } catch (e) {
    clearStatus();
    const err = e as Error;
    console.error(`systing: ${err.message.split("\n")[0]}`);
    if (opts.verbosity > 1 && err.stack) console.error(err.stack);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
