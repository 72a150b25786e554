/**
 * One recording from start to finished file, the same stages over whichever
 * recorders are on: checks → open → configure → load → attach → drain →
 * finish. It knows no recorder by name: what each one loads, decodes and
 * writes is its own (src/recorders/). What every recording has is here: the
 * rings and their drop counters, the process table, the trace's header
 * packets, and a file that is complete or removed.
 */
import { bpfObjectBytes } from "../gen/systing_bpf.ts";
import { BpfObject, type RingHandle } from "../ffi/bpf_object.ts";
import { ClockId, clockNs } from "../ffi/clock.ts";
import { LibbpfError } from "../ffi/libbpf_error.ts";
import { LibbpfLog } from "../ffi/libbpf_log.ts";
import { releaseFreeMemory, systemPageSize } from "../ffi/library.ts";
import { BuiltinClock } from "../gen/perfetto_trace_pb.ts";
import { onlineCpus } from "../machine/cpu_list.ts";
import { KernelFeatures } from "../machine/kernel_features.ts";
import { checkBtf, checkPrivileges, ensureTracefs } from "../machine/preflight.ts";
import type { TaskFilter } from "../filter/task_filter.ts";
import {
  clockSnapshotPacket,
  dropCounterTracks,
  dropCounterValues,
  ftraceStatsPacket,
  systemInfoPacket,
} from "../perfetto/trace_packets.ts";
import { type ProcessSnapshot, scanProcesses } from "../processes/proc_scan.ts";
import { PROCESS_PROGRAMS } from "../processes/process_records.ts";
import { ConfigWriter, type Recorder, type RecorderOptions } from "../recorders/recorder.ts";
import { RECORDERS } from "../recorders/registry.ts";
import { Layout, RECORD_KIND_COUNT, RECORD_KIND_NAMES } from "../records/records.ts";
import { VERSION } from "../version.ts";
import { selectBpf } from "./bpf_selection.ts";
import type { DrainStats } from "./drain_protocol.ts";
import { Drainer } from "./drainer.ts";
import { PacketPath } from "./packet_path.ts";
import { ProcessTracker } from "./process_tracker.ts";
import { forwardingTable, type Sessions, splitForwarded, startSessions } from "./sessions.ts";
import { TraceFile, TraceFileError } from "./trace_file.ts";

export interface RecordOptions {
  /** Seconds; 0 records until stop() (SIGINT/SIGTERM). */
  durationSec: number;
  output: string;
  ringbufSizeMib: number;
  verbosity: number;
  compress: boolean;
  /** The recorders to run (unsupported ones are left out with a warning). */
  recorders: readonly Recorder[];
  /** Their knobs. */
  recorderOptions: RecorderOptions;
  /** Where progress and the summary go. */
  log: (line: string) => void;
  /** Redraws a one-line status (only when stderr is a terminal). */
  status?: (line: string) => void;
  /**
   * Runs once every program is attached and the trace's header is written (not after a stop).
   * With a filter for `-- CMD`, a process it starts is traced from its fork.
   */
  attached?: () => void;
  /** The tasks to trace; the whole machine without one. */
  filter?: TaskFilter;
}

export interface RecordResult {
  durationNs: number;
  /** The recorders that ran. */
  recorders: string[];
  eventsByKind: Record<string, number>;
  dropsByKind: Record<string, number>;
  dropsByCpu: number[];
  fileBytes: number;
  rawBytes: number;
  attachMs: number;
  finishMs: number;
  drain: DrainStats;
  /** What the filter traced, and the switches between untraced tasks it left out. */
  filter?: { traced: string; skippedSwitches: number };
  /** The recorders' own summary lines, and more of them for -v. */
  summary: string[];
  details: string[];
  /** Batches userspace failed to process (a bug, not a drop): how many, and the first error. */
  contained: { count: number; first?: string };
}

/** What a signal handler may do to a recording in progress. */
export interface RecordingControl {
  /** Ends the recording early; the trace is finished as after the duration. */
  stop(): void;
  /**
   * Gives up at once: removes the unfinished trace file. Returns false when there was nothing to
   * remove (already complete, or kept under its temporary name).
   */
  discard(): boolean;
}

/**
 * Called once recording starts; returns a function that uninstalls the hook. It stays installed
 * until record() has finished the file, so a second signal while finishing can still discard it.
 */
export type StopHook = (control: RecordingControl) => () => void;

const SEQUENCE_ID_BUNDLES = 2;
/** Worker i writes its track events (syscalls, counters) on this + i. */
const SEQUENCE_ID_TRACKS = 1000;

/** Everything one recording holds; each stage below adds its part. */
interface Recording {
  opts: RecordOptions;
  recorders: Recorder[];
  out: PacketPath;
  cpus: number[];
  /** CLOCK_BOOTTIME ns the workers' relative timestamps count from. */
  base: bigint;
  log: LibbpfLog;
  obj: BpfObject;
  sessions: Sessions;
  processes: ProcessTracker;
  drainer?: Drainer;
  /** Ends the wait for the duration; until the wait begins a request is only remembered. */
  stop: () => void;
  stopRequested: boolean;
}

export async function record(opts: RecordOptions, onStop: StopHook): Promise<RecordResult> {
  const t0 = performance.now();
  const recorders = preflight(opts);
  const out = new PacketPath(TraceFile.create(opts.output, { compress: opts.compress }));
  let rec: Recording | undefined;
  // A stop before the recording exists is remembered: it then ends as soon as it has started.
  let stopEarly = false;
  const removeStopHook = onStop({
    stop: () => rec ? rec.stop() : stopEarly = true,
    discard: () => out.file.discard(),
  });
  try {
    rec = open(opts, recorders, out);
    rec.stopRequested = stopEarly;
    out.onFailure = () => rec!.stop();
    const rings = configureAndLoad(rec);
    await startDrain(rec, rings);
    const attachNs = attach(rec);
    const attachMs = performance.now() - t0;
    writeHeader(rec, attachNs);
    if (!rec.stopRequested && opts.attached) {
      const adopt = opts.filter?.command ?? false;
      if (adopt) setRecording(rec.obj, true, attachNs, true);
      try {
        opts.attached();
      } finally {
        if (adopt) setRecording(rec.obj, true, attachNs, false);
      }
    }
    await waitForStop(rec);
    return await finish(rec, attachNs, attachMs);
  } catch (e) {
    const removed = out.file.discard();
    if (removed && e instanceof TraceFileError) {
      throw new TraceFileError(
        `${e.message}; the unfinished trace was removed (free space, or choose another path ` +
          "with -o)",
      );
    }
    throw e;
  } finally {
    removeStopHook();
    if (rec?.drainer) await rec.drainer.stop().catch(() => {});
    rec?.obj.close();
    for (const s of rec?.sessions.all ?? []) s.close?.();
    rec?.log.close();
  }
}

/** Checks: root, BTF, tracefs; the recorders this machine can run (the others, one warning). */
function preflight(opts: RecordOptions): Recorder[] {
  checkPrivileges();
  checkBtf();
  try {
    const how = ensureTracefs();
    if (opts.verbosity > 0) opts.log(`tracefs: ${how}`);
  } catch (e) {
    // Nothing recorded needs tracefs (BTF tracepoints do not).
    if (opts.verbosity > 0) opts.log(`warning: ${(e as Error).message}`);
  }
  const features = new KernelFeatures();
  try {
    return opts.recorders.filter((r) => {
      const why = r.unsupported(features);
      if (why) opts.log(`warning: ${r.name}: ${why}; recording without it`);
      return !why;
    });
  } finally {
    features.close();
  }
}

/** Open: the BPF object and the recorders' sessions. */
function open(opts: RecordOptions, recorders: Recorder[], out: PacketPath): Recording {
  const log = new LibbpfLog(opts.verbosity);
  const base = clockNs(ClockId.BOOTTIME);
  const cpus = onlineCpus();
  let obj: BpfObject;
  try {
    obj = BpfObject.open(bpfObjectBytes, "systing");
  } catch (e) {
    log.close();
    throw e;
  }
  const rec: Recording = {
    opts,
    recorders,
    out,
    cpus,
    base,
    log,
    obj,
    sessions: { all: [], own: [] },
    processes: new ProcessTracker(base, out.write, out.contain),
    stopRequested: false,
    stop: () => rec.stopRequested = true,
  };
  let triggered = false;
  rec.sessions = startSessions(recorders, {
    options: opts.recorderOptions,
    cpus,
    possibleCpus: obj.possibleCpus,
    base,
    verbosity: opts.verbosity,
    log: opts.log,
    requestStop: (why) => {
      if (triggered) return;
      triggered = true;
      opts.log(`systing: stopping: ${why}`);
      rec.stop();
    },
  });
  return rec;
}

/** Configure and load: only the recorders' programs and maps, with their knobs in .rodata. */
function configureAndLoad(rec: Recording): RingHandle[] {
  const { obj, opts } = rec;
  selectBpf(obj, rec.recorders, RECORDERS, opts.filter?.programs);
  const ringBytes = opts.ringbufSizeMib * 1024 * 1024;
  const config = new ConfigWriter();
  config.set("tracer_tgid", Deno.pid);
  // One forced wake-up per eighth of a ring; the workers' flush deadline covers the rest.
  config.set("wakeup_bytes", ringBytes / 8);
  opts.filter?.configure(config);
  for (const s of rec.sessions.all) s.configure?.({ obj, config });
  obj.setReadOnlyData(config.bytes);
  const rings = obj.createRings("rings", rec.cpus, ringBytes);
  try {
    obj.load();
    releaseFreeMemory();
  } catch (e) {
    if (e instanceof LibbpfError) {
      const detail = rec.log.recent(6).join(" | ");
      for (const s of rec.sessions.all) {
        const why = s.explainLoadFailure?.(detail);
        if (why) throw new LibbpfError(e.operation, e.errno, why);
      }
      throw new LibbpfError(e.operation, e.errno, `${e.message}${detail ? `: ${detail}` : ""}`);
    }
    throw e;
  }
  return rings;
}

/** Drain: workers decode with the recorders' decoders; what they forward goes to the sessions. */
async function startDrain(rec: Recording, rings: RingHandle[]): Promise<void> {
  const { out, processes } = rec;
  const byKind = forwardingTable(rec.sessions.all);
  rec.drainer = await Drainer.start(rings, {
    base: rec.base,
    sequenceId: SEQUENCE_ID_BUNDLES,
    trackSequenceBase: SEQUENCE_ID_TRACKS,
    recorders: rec.recorders.map((r) => r.name),
    recorderConfigs: Object.fromEntries(
      rec.recorders.map((r, i) => [r.name, rec.sessions.own[i].workerConfig?.()]),
    ),
    flushMs: 250,
    maxBundleEvents: 32768,
    holdbackNs: 5_000_000,
    maxPendingBytes: 64 * 1024 * 1024,
  }, {
    packets(bytes, forwarded, events) {
      out.write(bytes);
      if (events.length) processes.apply(events);
      if (forwarded.length) {
        for (const [session, batch] of splitForwarded(forwarded, byKind)) {
          out.contain("forwarded records", () => session.records!(batch, out.write));
        }
      }
    },
    failed: out.fail,
  });
}

/**
 * Attach: the filter's program and marks first (from then on the kernel marks what a traced task
 * creates), then the core's and the recorders' tracepoints, then what the sessions attach
 * themselves.
 */
function attach(rec: Recording): bigint {
  const { obj, opts } = rec;
  const attached: string[] = [];
  for (const p of opts.filter?.programs ?? []) {
    obj.attach(p);
    attached.push(p);
  }
  for (const warning of opts.filter?.mark(obj) ?? []) opts.log(`warning: ${warning}`);
  for (const p of [...PROCESS_PROGRAMS, ...rec.recorders.flatMap((r) => r.bpf.programs)]) {
    if (attached.includes(p)) continue;
    obj.attach(p);
    attached.push(p);
  }
  for (const s of rec.sessions.all) attached.push(...s.attach?.(obj) ?? []);
  // The trace's start: every event is at or after it.
  const since = clockNs(ClockId.BOOTTIME);
  setRecording(obj, true, since);
  if (opts.verbosity > 0) {
    opts.log(
      `recorders: ${rec.recorders.map((r) => r.name).join(", ") || "none"}; ` +
        `attached ${attached.length} programs: ${attached.join(", ")}`,
    );
    for (const line of opts.filter?.details() ?? []) opts.log(line);
  }
  return since;
}

/** The packets every trace starts with, then the sessions' first ones. */
function writeHeader(rec: Recording, attachNs: bigint): void {
  const { write, contain } = rec.out;
  // Clocks first (it also starts the main sequence).
  write(clockSnapshotPacket(readClocks()));
  write(systemInfoPacket(describeSystem(rec.cpus.length), attachNs));
  write(ftraceStatsPacket("start", rec.cpus.map((cpu) => ({ cpu, events: 0 })), attachNs));
  for (const p of dropCounterTracks(RECORD_KIND_NAMES)) write(p);
  for (const p of dropCounterValues(RECORD_KIND_NAMES, [], attachNs)) write(p);
  // Scanned after attaching so that no process can fall between scan and events; when a session
  // first asks, so that those acting on the live kernel (sched) go first.
  let snapshot: ProcessSnapshot[] | undefined;
  const processes = () => snapshot ??= scanProcesses();
  for (const s of rec.sessions.all) {
    contain("starting", () => s.started?.(write, { ts: attachNs, obj: rec.obj, processes }));
  }
  rec.processes.start(processes());
  const o = rec.opts;
  o.log(
    `systing: recording ${rec.cpus.length} CPUs to ${o.output}` +
      (o.durationSec > 0 ? ` for ${o.durationSec}s` : "") + " (Ctrl-C to stop)",
  );
}

/** Waits for the duration, a signal, or a failure on the packet path; ticks the sessions. */
async function waitForStop(rec: Recording): Promise<void> {
  const { opts, obj, out } = rec;
  const dropsFd = obj.mapFd("drops");
  const started = performance.now();
  await new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearInterval(tick);
      resolve();
    };
    const timer = opts.durationSec > 0 ? setTimeout(finish, opts.durationSec * 1000) : undefined;
    const tick = setInterval(() => {
      for (const s of rec.sessions.all) out.contain("tick", () => s.tick?.(out.write));
      if (!opts.status) return;
      const events = sum(rec.drainer!.stats().counts);
      const elapsed = (performance.now() - started) / 1000;
      const drops = sum(readDrops(obj, dropsFd).byCpu);
      opts.status(
        `${elapsed.toFixed(1)}s  ${fmtCount(events / Math.max(elapsed, 0.001))} events/s  ` +
          `${fmtCount(events)} events  ${drops} dropped`,
      );
    }, opts.status ? 1000 : 200);
    rec.stop = finish;
    if (rec.stopRequested || out.failure) finish();
  });
}

/** Stops every program at once, drains what is left, writes the last packets and the counts. */
async function finish(rec: Recording, attachNs: bigint, attachMs: number): Promise<RecordResult> {
  const { obj, out, cpus, opts } = rec;
  const stopT = performance.now();
  setRecording(obj, false, 0n);
  // Taken after recording stopped: no event in the trace is later than this.
  const endNs = clockNs(ClockId.BOOTTIME);
  // Detached, the rings no longer grow but by what each CPU still has staged: written out
  // here, the workers then drain them to the end.
  obj.detachAll();
  for (const cpu of cpus) obj.runOnCpu("flush_staged", cpu);
  const drain = await rec.drainer!.stop();
  rec.drainer = undefined;
  const drops = readDrops(obj, obj.mapFd("drops"));
  const skippedSwitches = Number(
    obj.readPerCpuField("switch_clock", 0, Layout.cpu_switch.size, Layout.cpu_switch.skipped)
      .reduce((a, b) => a + b, 0n),
  );
  for (const s of rec.sessions.all) {
    out.contain("finishing", () => s.finish?.(endNs, out.write, obj));
  }
  out.write(ftraceStatsPacket(
    "end",
    cpus.map((cpu) => ({ cpu, events: drops.byCpu[cpu] ?? 0 })),
    endNs,
  ));
  for (const s of rec.sessions.all) {
    for (const [kind, n] of Object.entries(s.lost?.() ?? {})) drops.byKind[Number(kind)] += n;
  }
  for (const p of dropCounterValues(RECORD_KIND_NAMES, drops.byKind, endNs)) out.write(p);
  if (out.failure) throw out.failure;
  out.file.finish();

  const eventsByKind: Record<string, number> = {};
  const dropsByKind: Record<string, number> = {};
  for (let k = 1; k < RECORD_KIND_COUNT; k++) {
    eventsByKind[RECORD_KIND_NAMES[k]] = drain.counts[k] ?? 0;
    dropsByKind[RECORD_KIND_NAMES[k]] = drops.byKind[k] ?? 0;
  }
  return {
    durationNs: Number(endNs - attachNs),
    recorders: rec.recorders.map((r) => r.name),
    eventsByKind,
    dropsByKind,
    dropsByCpu: drops.byCpu,
    fileBytes: out.file.bytesWritten,
    rawBytes: out.file.rawBytes,
    attachMs,
    finishMs: performance.now() - stopT,
    drain,
    ...opts.filter ? { filter: { traced: opts.filter.describe(), skippedSwitches } } : {},
    summary: rec.sessions.all.flatMap((s) => s.summary?.() ?? []),
    details: rec.sessions.all.flatMap((s) => s.details?.() ?? []),
    contained: { count: out.contained, first: out.containedFirst },
  };
}

/** struct systing_state in .bss: on or off, since when, and whether the tracer's forks are traced. */
function setRecording(obj: BpfObject, on: boolean, since: bigint, adopt = false): void {
  const L = Layout.systing_state;
  const bytes = new Uint8Array(L.size);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(L.recording, on ? 1 : 0, true);
  dv.setUint32(L.adopt, adopt ? 1 : 0, true);
  dv.setBigUint64(L.since, since, true);
  obj.writeSection(".bss", bytes);
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function fmtCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return `${Math.round(n)}`;
}

function readDrops(obj: BpfObject, fd: number): { byKind: number[]; byCpu: number[] } {
  const byKind: number[] = new Array(RECORD_KIND_COUNT).fill(0);
  const byCpu: number[] = new Array(obj.possibleCpus).fill(0);
  for (let k = 1; k < RECORD_KIND_COUNT; k++) {
    const perCpu = obj.readPerCpuU64("drops", k, fd);
    perCpu.forEach((v, cpu) => {
      byKind[k] += Number(v);
      byCpu[cpu] += Number(v);
    });
  }
  return { byKind, byCpu };
}

/** Read back to back, so that the importer can relate them to BOOTTIME. */
function readClocks(): { clockId: number; ns: bigint }[] {
  return [
    { clockId: BuiltinClock.BOOTTIME, ns: clockNs(ClockId.BOOTTIME) },
    { clockId: BuiltinClock.MONOTONIC, ns: clockNs(ClockId.MONOTONIC) },
    { clockId: BuiltinClock.REALTIME, ns: clockNs(ClockId.REALTIME) },
    { clockId: BuiltinClock.MONOTONIC_RAW, ns: clockNs(ClockId.MONOTONIC_RAW) },
  ];
}

function describeSystem(numCpus: number) {
  let version = "";
  try {
    version = Deno.readTextFileSync("/proc/sys/kernel/version").trim();
  } catch { /* optional */ }
  return {
    sysname: "Linux",
    release: Deno.osRelease(),
    version,
    machine: Deno.build.arch,
    hostname: Deno.hostname(),
    numCpus,
    pageSize: systemPageSize(),
    toolVersion: VERSION,
  };
}
