/**
 * One recording from start to finished file, the same stages over whichever
 * recorders are on: checks → open → configure → load → attach → drain →
 * finish. It knows no recorder by name: what each one loads, decodes and
 * writes is its own (src/recorders/). What every recording has is here: the
 * rings and their drop counters, the process table, the trace's header
 * packets, and a file that is complete or removed.
 */
import { bpfObjectBytes } from "../gen/systing_bpf.ts";
import { BpfObject } from "../ffi/bpf_object.ts";
import { ClockId, clockNs } from "../ffi/clock.ts";
import { LibbpfError } from "../ffi/libbpf_error.ts";
import { LibbpfLog } from "../ffi/libbpf_log.ts";
import { systemPageSize } from "../ffi/library.ts";
import { onlineCpus } from "../machine/cpu_list.ts";
import { checkBtf, checkPrivileges, ensureTracefs } from "../machine/preflight.ts";
import { KernelFeatures } from "../machine/kernel_features.ts";
import { BuiltinClock } from "../gen/perfetto_trace_pb.ts";
import {
  clockSnapshotPacket,
  dropCounterTracks,
  dropCounterValues,
  ftraceStatsPacket,
  processTreePacket,
  systemInfoPacket,
} from "../perfetto/trace_packets.ts";
import { scanProcesses } from "../processes/proc_scan.ts";
import { PROCESS_PROGRAMS } from "../processes/process_records.ts";
import { selectBpf } from "./bpf_selection.ts";
import { RECORDERS } from "../recorders/registry.ts";
import { ProcessTable } from "../processes/process_table.ts";
import {
  ConfigWriter,
  type PacketSink,
  type Recorder,
  type RecorderContext,
  type RecorderOptions,
  type RecorderSession,
} from "../recorders/recorder.ts";
import {
  Layout,
  type ProcessEvent,
  RECORD_KIND_COUNT,
  RECORD_KIND_NAMES,
  type RecordKind,
} from "../records/records.ts";
import { VERSION } from "../version.ts";
import type { DrainStats } from "./drain_protocol.ts";
import { Drainer } from "./drainer.ts";
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
  /** The recorders' own summary lines, and more of them for -v. */
  summary: string[];
  details: string[];
  /** Batches userspace failed to process (a bug, not a drop): how many, and the first error. */
  contained: { count: number; first?: string };
}

const SEQUENCE_ID_BUNDLES = 2;
/** Worker i writes its track events (syscalls, counters) on this + i. */
const SEQUENCE_ID_TRACKS = 1000;
/** Sessions' own sequences (RecorderContext.sequence) count up from here. */
const SEQUENCE_ID_SESSIONS = 200;

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

/** The recorders of OPTS this machine can run; the others are reported once and left out. */
export function usableRecorders(
  recorders: readonly Recorder[],
  features: KernelFeatures,
  log: (line: string) => void,
): Recorder[] {
  return recorders.filter((r) => {
    const why = r.unsupported(features);
    if (why) log(`warning: ${r.name}: ${why}; recording without it`);
    return !why;
  });
}

/**
 * The sessions of the recorders, in registry order, each shared one after
 * the first recorder that asked for it.
 */
function startSessions(
  recorders: readonly Recorder[],
  ctx: Omit<RecorderContext, "shared" | "sequence">,
): { all: RecorderSession[]; own: RecorderSession[] } {
  const sessions: RecorderSession[] = [];
  const own: RecorderSession[] = [];
  let nextSequence = SEQUENCE_ID_SESSIONS;
  const shared = new Map<string, RecorderSession>();
  const context: RecorderContext = {
    ...ctx,
    sequence: () => nextSequence++,
    shared<T extends RecorderSession>(key: string, create: () => T): T {
      let s = shared.get(key);
      if (!s) {
        s = create();
        shared.set(key, s);
        sessions.push(s);
      }
      return s as T;
    },
  };
  for (const r of recorders) {
    const s = r.start(context);
    own.push(s);
    sessions.push(s);
  }
  return { all: sessions, own };
}

export async function record(opts: RecordOptions, onStop: StopHook): Promise<RecordResult> {
  const t0 = performance.now();
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
  const recorders = usableRecorders(opts.recorders, features, opts.log);
  features.close();
  const file = TraceFile.create(opts.output, { compress: opts.compress });
  // The first error on the packet path (a full disk, say): recording stops and it is reported.
  let failure: Error | undefined;
  // Until the wait below begins, a stop request is only remembered: the trace then ends as soon
  // as it has started, still complete.
  let stopRequested = false;
  let stopNow = () => {
    stopRequested = true;
  };
  const removeStopHook = onStop({ stop: () => stopNow(), discard: () => file.discard() });
  const fail = (e: unknown) => {
    failure ??= e instanceof Error ? e : new Error(String(e));
    stopNow();
  };
  const write: PacketSink = (bytes) => {
    if (failure) return;
    try {
      file.write(bytes);
    } catch (e) {
      fail(e);
    }
  };
  /** Errors that cost records but not the recording (a bug on one record's path). */
  let contained = 0;
  let containedFirst: string | undefined;
  const contain = (what: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      contained++;
      containedFirst ??= `${what}: ${(e as Error).message}`;
    }
  };
  let libbpfLog: LibbpfLog | undefined;
  let obj: BpfObject | undefined;
  let drainer: Drainer | undefined;
  let sessions: RecorderSession[] = [];
  try {
    libbpfLog = new LibbpfLog(opts.verbosity);
    const cpus = onlineCpus();
    const ringBytes = opts.ringbufSizeMib * 1024 * 1024;
    const base = clockNs(ClockId.BOOTTIME);

    // Open and configure: the core, then every recorder.
    obj = BpfObject.open(bpfObjectBytes, "systing");
    const started = startSessions(recorders, {
      options: opts.recorderOptions,
      cpus,
      possibleCpus: obj.possibleCpus,
      base,
      verbosity: opts.verbosity,
      log: opts.log,
    });
    sessions = started.all;
    selectBpf(obj, recorders, RECORDERS);
    const config = new ConfigWriter();
    config.set("tracer_tgid", Deno.pid);
    // One forced wake-up per eighth of a ring; the 10 ms poll covers the rest.
    config.set("wakeup_bytes", ringBytes / 8);
    for (const s of sessions) s.configure?.({ obj, config });
    obj.setReadOnlyData(config.bytes);
    const rings = obj.createRings("rings", cpus, ringBytes);
    load(obj, libbpfLog);
    const dropsFd = obj.mapFd("drops");

    // Drain: the workers decode with the recorders' decoders.
    const processes = new ProcessTracker(base, write, contain);
    const byKind = forwardingTable(sessions);
    drainer = await Drainer.start(rings, {
      base,
      sequenceId: SEQUENCE_ID_BUNDLES,
      trackSequenceBase: SEQUENCE_ID_TRACKS,
      recorders: recorders.map((r) => r.name),
      recorderConfigs: Object.fromEntries(
        recorders.map((r, i) => [r.name, started.own[i].workerConfig?.()]),
      ),
      pollMs: 10,
      flushMs: 100,
      maxBundleEvents: 32768,
      holdbackNs: 5_000_000,
      maxPendingBytes: 64 * 1024 * 1024,
    }, {
      packets(bytes, forwarded, events) {
        write(bytes);
        if (events.length) processes.apply(events);
        if (forwarded.length) {
          for (const [session, batch] of splitForwarded(forwarded, byKind)) {
            contain(`forwarded records`, () => session.records!(batch, write));
          }
        }
      },
      failed: fail,
    });

    // Attach: the core and the recorders' tracepoints, then what sessions attach themselves.
    const attached: string[] = [];
    for (const p of PROCESS_PROGRAMS) {
      obj.attach(p);
      attached.push(p);
    }
    for (const r of recorders) {
      for (const p of r.bpf.programs) {
        if (attached.includes(p)) continue;
        obj.attach(p);
        attached.push(p);
      }
    }
    for (const s of sessions) attached.push(...s.attach?.(obj) ?? []);
    setRecording(obj, true);
    const attachNs = clockNs(ClockId.BOOTTIME);
    const attachMs = performance.now() - t0;
    if (opts.verbosity > 0) {
      opts.log(
        `recorders: ${recorders.map((r) => r.name).join(", ") || "none"}; ` +
          `attached ${attached.length} programs: ${attached.join(", ")}`,
      );
    }

    // Header packets: clocks first (it also starts the main sequence).
    write(clockSnapshotPacket(readClocks()));
    write(systemInfoPacket(describeSystem(cpus.length), attachNs));
    write(ftraceStatsPacket("start", cpus.map((cpu) => ({ cpu, events: 0 })), attachNs));
    for (const p of dropCounterTracks(RECORD_KIND_NAMES)) write(p);
    for (const p of dropCounterValues(RECORD_KIND_NAMES, [], attachNs)) write(p);
    // Scanned after attaching so that no process can fall between scan and events.
    const snapshot = scanProcesses();
    processes.start(snapshot);
    for (const s of sessions) {
      contain("starting", () => s.started?.(write, { ts: attachNs, processes: snapshot }));
    }

    opts.log(
      `systing: recording ${cpus.length} CPUs to ${opts.output}` +
        (opts.durationSec > 0 ? ` for ${opts.durationSec}s` : "") + " (Ctrl-C to stop)",
    );

    // Wait for the duration, a signal, or a failure on the packet path.
    const waitStart = performance.now();
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
        for (const s of sessions) contain("tick", () => s.tick?.(write));
        if (!opts.status) return;
        const st = drainer!.stats();
        const events = sum(st.counts);
        const elapsed = (performance.now() - waitStart) / 1000;
        const drops = sum(readDrops(obj!, dropsFd).byCpu);
        opts.status(
          `${elapsed.toFixed(1)}s  ${fmtCount(events / Math.max(elapsed, 0.001))} events/s  ` +
            `${fmtCount(events)} events  ${drops} dropped`,
        );
      }, opts.status ? 1000 : 200);
      stopNow = finish;
      if (stopRequested || failure) finish();
    });
    const stopT = performance.now();

    // Stop recording in every program at once, then detach: the workers then
    // drain rings that no longer grow.
    setRecording(obj, false);
    // Taken after recording stopped: no event in the trace is later than this.
    const endNs = clockNs(ClockId.BOOTTIME);
    obj.detachAll();
    const drain = await drainer.stop();
    drainer = undefined;
    const drops = readDrops(obj, dropsFd);
    for (const s of sessions) contain("finishing", () => s.finish?.(endNs, write, obj!));
    write(ftraceStatsPacket(
      "end",
      cpus.map((cpu) => ({ cpu, events: drops.byCpu[cpu] ?? 0 })),
      endNs,
    ));
    for (const s of sessions) {
      for (const [kind, n] of Object.entries(s.lost?.() ?? {})) drops.byKind[Number(kind)] += n;
    }
    for (const p of dropCounterValues(RECORD_KIND_NAMES, drops.byKind, endNs)) write(p);
    if (failure) throw failure;
    file.finish();
    const finishMs = performance.now() - stopT;

    const eventsByKind: Record<string, number> = {};
    const dropsByKind: Record<string, number> = {};
    for (let k = 1; k < RECORD_KIND_COUNT; k++) {
      eventsByKind[RECORD_KIND_NAMES[k]] = drain.counts[k] ?? 0;
      dropsByKind[RECORD_KIND_NAMES[k]] = drops.byKind[k] ?? 0;
    }
    return {
      durationNs: Number(endNs - attachNs),
      recorders: recorders.map((r) => r.name),
      eventsByKind,
      dropsByKind,
      dropsByCpu: drops.byCpu,
      fileBytes: file.bytesWritten,
      rawBytes: file.rawBytes,
      attachMs,
      finishMs,
      drain,
      summary: sessions.flatMap((s) => s.summary?.() ?? []),
      details: sessions.flatMap((s) => s.details?.() ?? []),
      contained: { count: contained, first: containedFirst },
    };
  } catch (e) {
    const removed = file.discard();
    const err = e as Error;
    if (removed && err instanceof TraceFileError) {
      throw new TraceFileError(
        `${err.message}; the unfinished trace was removed (free space, or choose another path ` +
          "with -o)",
      );
    }
    throw e;
  } finally {
    removeStopHook();
    if (drainer) await drainer.stop().catch(() => {});
    obj?.close();
    for (const s of sessions) s.close?.();
    libbpfLog?.close();
  }
}

function load(obj: BpfObject, log: LibbpfLog): void {
  try {
    obj.load();
  } catch (e) {
    if (e instanceof LibbpfError) {
      const detail = log.recent(6).join(" | ");
      throw new LibbpfError(e.operation, e.errno, `${e.message}${detail ? `: ${detail}` : ""}`);
    }
    throw e;
  }
}

/** Which session takes each forwarded kind. */
function forwardingTable(sessions: readonly RecorderSession[]): Map<number, RecorderSession> {
  const byKind = new Map<number, RecorderSession>();
  for (const s of sessions) for (const k of s.forwarded ?? []) byKind.set(k, s);
  return byKind;
}

/** A batch of forwarded records, split by the session that takes them (usually one, whole). */
export function splitForwarded(
  batch: Uint8Array,
  byKind: ReadonlyMap<number, RecorderSession>,
): [RecorderSession, Uint8Array][] {
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const parts = new Map<RecorderSession, [number, number][]>();
  for (let off = 0; off + Layout.rec_hdr.size <= batch.length;) {
    const size = dv.getUint16(off + 2, true);
    if (size < Layout.rec_hdr.size) break;
    const session = byKind.get(dv.getUint16(off, true) as RecordKind);
    const next = off + ((size + 7) & ~7);
    if (session) {
      let runs = parts.get(session);
      if (!runs) parts.set(session, runs = []);
      const last = runs[runs.length - 1];
      if (last && last[1] === off) last[1] = next;
      else runs.push([off, next]);
    }
    off = next;
  }
  return [...parts].map(([session, runs]) => {
    if (runs.length === 1) return [session, batch.subarray(runs[0][0], runs[0][1])];
    const out = new Uint8Array(runs.reduce((n, [a, b]) => n + b - a, 0));
    let at = 0;
    for (const [a, b] of runs) {
      out.set(batch.subarray(a, b), at);
      at += b - a;
    }
    return [session, out];
  });
}

/** The process table, kept current by the workers' process events and written as it changes. */
class ProcessTracker {
  #table: ProcessTable | undefined;
  #early: ProcessEvent[] = [];
  #base: bigint;
  #write: PacketSink;
  #contain: (what: string, f: () => void) => void;

  constructor(base: bigint, write: PacketSink, contain: (what: string, f: () => void) => void) {
    this.#base = base;
    this.#write = write;
    this.#contain = contain;
  }

  start(snapshot: ReturnType<typeof scanProcesses>): void {
    this.#table = new ProcessTable(snapshot, this.#base);
    this.#write(processTreePacket(this.#table.initialTree(), clockNs(ClockId.BOOTTIME)));
    this.apply(this.#early.splice(0));
  }

  apply(events: ProcessEvent[]): void {
    const table = this.#table;
    if (!table) {
      this.#early.push(...events);
      return;
    }
    // Workers batch per CPU; the table needs them in time order.
    events.sort((a, b) => a.ts - b.ts);
    for (const ev of events) {
      this.#contain("process events", () => {
        const delta = table.apply(ev);
        if (delta) this.#write(processTreePacket(delta, this.#base + BigInt(Math.trunc(ev.ts))));
      });
    }
  }
}

function setRecording(obj: BpfObject, on: boolean): void {
  obj.writeSection(".bss", new Uint8Array(new Uint32Array([on ? 1 : 0]).buffer));
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
