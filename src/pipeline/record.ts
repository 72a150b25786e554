/**
 * One recording from start to finished file: load and attach the BPF object,
 * drain its rings on worker threads, keep the process table current, write
 * every packet as it comes, and finish a complete trace on stop.
 */
import { bpfObjectBytes } from "../gen/systing_bpf.ts";
import { BpfObject } from "../ffi/bpf_object.ts";
import { ClockId, clockNs } from "../ffi/clock.ts";
import { LibbpfLog } from "../ffi/libbpf_log.ts";
import { LibbpfError } from "../ffi/libbpf_error.ts";
import { systemPageSize } from "../ffi/library.ts";
import { onlineCpus } from "./cpu_list.ts";
import { Drainer } from "./drainer.ts";
import type { DrainStats } from "./drain_protocol.ts";
import { checkBtf, checkPrivileges, ensureTracefs } from "./preflight.ts";
import { scanProcesses } from "../processes/proc_scan.ts";
import { ProcessTable } from "../processes/process_table.ts";
import {
  Layout,
  type ProcessEvent,
  RECORD_KIND_COUNT,
  RECORD_KIND_NAMES,
  RecordKind,
} from "../records/records.ts";
import { TraceFile, TraceFileError } from "./trace_file.ts";
import {
  clockSnapshotPacket,
  dropCounterTracks,
  dropCounterValues,
  ftraceStatsPacket,
  processTreePacket,
  systemInfoPacket,
} from "../perfetto/trace_packets.ts";
import { VERSION } from "../version.ts";
import { AddressSpaces } from "../stacks/address_spaces.ts";
import { openSamplingEvents, type PerfEventSet } from "../ffi/perf_event.ts";
import { PerfSideband, type SidebandRecord } from "../ffi/perf_sideband.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { Kallsyms } from "../symbolize/kallsyms.ts";
import { readMaps } from "../stacks/proc_maps.ts";
import { StackProfiler, type StackStats } from "../stacks/stack_profiler.ts";
import { Symbolizer } from "../symbolize/symbolizer.ts";
import { ConfigStackBit } from "../records/records.ts";
import { BuiltinClock } from "../gen/perfetto_trace_pb.ts";

export interface RecordOptions {
  /** Seconds; 0 records until stop() (SIGINT/SIGTERM). */
  durationSec: number;
  output: string;
  ringbufSizeMib: number;
  verbosity: number;
  compress: boolean;
  /** Where progress and the summary go. */
  log: (line: string) => void;
  /** Redraws a one-line status (only when stderr is a terminal). */
  status?: (line: string) => void;
  /** CPU stack samples at this rate (Hz); 0 turns them off. */
  sampleFreq: number;
  /** Use the CPU clock even where a hardware PMU exists. */
  softwareEvent: boolean;
  /** Stacks of tasks switched out uninterruptible (D) / interruptible (S). */
  sleepStacksD: boolean;
  sleepStacksS: boolean;
  /** How user stacks are taken: a frame-pointer walk, a stack copy unwound with CFI, or both. */
  userStacks: "auto" | "fp" | "dwarf";
  /** User stack bytes copied per stack (dwarf/auto). */
  userStackBytes: number;
}

/** How long an exited process's mappings are kept for samples still in flight. */
const EXITED_MAPPINGS_KEPT_NS = 5e9;

/** Sleep stacks with a stack copy, per CPU per second; the others walk frame pointers. */
const SLEEP_COPIES_PER_SEC = 1000;

export interface RecordResult {
  durationNs: number;
  eventsByKind: Record<string, number>;
  dropsByKind: Record<string, number>;
  dropsByCpu: number[];
  fileBytes: number;
  rawBytes: number;
  attachMs: number;
  finishMs: number;
  drain: DrainStats;
  stacks?: StackStats & {
    labelled: number;
    named: number;
    unreadable: string[];
    /** Unreadable files beyond those listed. */
    moreUnreadable: number;
    /** Mappings forgotten to bound memory (AddressSpaces compaction). */
    mappingsDropped: number;
    /** Mapping/exec/fork records perf could not deliver: their samples may be labelled. */
    sidebandLost: number;
    /** Main-thread time spent turning stack records into packets (unwinding included). */
    processingMs: number;
  };
  sampling?: string;
  /** Batches userspace failed to process (a bug, not a drop): how many, and the first error. */
  contained: { count: number; first?: string };
}

const SEQUENCE_ID_WORKERS = 2;
/** One sequence per stack stream (on-CPU, D sleep, S sleep). */
const SEQUENCE_IDS_STACKS: [number, number, number] = [100, 101, 102];

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

export async function record(opts: RecordOptions, onStop: StopHook): Promise<RecordResult> {
  const t0 = performance.now();
  checkPrivileges();
  checkBtf();
  try {
    const how = ensureTracefs();
    if (opts.verbosity > 0) opts.log(`tracefs: ${how}`);
  } catch (e) {
    // Nothing recorded by default needs tracefs (BTF tracepoints do not).
    if (opts.verbosity > 0) opts.log(`warning: ${(e as Error).message}`);
  }
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
  const write = (bytes: Uint8Array) => {
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
  let sideband: PerfSideband | undefined;
  let sampling: PerfEventSet | undefined;
  let symbolizer: Symbolizer | undefined;
  try {
    libbpfLog = new LibbpfLog(opts.verbosity);
    const cpus = onlineCpus();
    const ringBytes = opts.ringbufSizeMib * 1024 * 1024;
    const base = clockNs(ClockId.BOOTTIME);
    obj = BpfObject.open(bpfObjectBytes, "systing");
    const cfg = new DataView(new ArrayBuffer(Layout.systing_config.size));
    cfg.setUint32(Layout.systing_config.tracer_tgid, Deno.pid, true);
    // One forced wake-up per eighth of a ring; the 10 ms poll covers the rest.
    cfg.setUint32(Layout.systing_config.wakeup_bytes, ringBytes / 8, true);
    cfg.setUint32(
      Layout.systing_config.stack_bits,
      (opts.sleepStacksD ? ConfigStackBit.SleepD : 0) |
        (opts.sleepStacksS ? ConfigStackBit.SleepS : 0) |
        (opts.userStacks !== "dwarf" ? ConfigStackBit.UserFp : 0) |
        (opts.userStacks !== "fp" ? ConfigStackBit.UserCopy : 0),
      true,
    );
    cfg.setUint32(Layout.systing_config.stack_copy_bytes, opts.userStackBytes, true);
    cfg.setUint32(Layout.systing_config.sleep_copies_per_sec, SLEEP_COPIES_PER_SEC, true);
    // Two scratch slots per CPU: the sampler may interrupt another program.
    obj.setMaxEntries("stack_scratch", 2 * obj.possibleCpus);
    obj.setReadOnlyData(new Uint8Array(cfg.buffer));
    const rings = obj.createRings("rings", cpus, ringBytes);
    try {
      obj.load();
    } catch (e) {
      if (e instanceof LibbpfError) {
        const detail = libbpfLog.recent(6).join(" | ");
        throw new LibbpfError(e.operation, e.errno, `${e.message}${detail ? `: ${detail}` : ""}`);
      }
      throw e;
    }
    const dropsFd = obj.mapFd("drops");

    // Stacks: sampling events, the mmap side-band and the symbolizer.
    const wantStacks = opts.sampleFreq > 0 || opts.sleepStacksD || opts.sleepStacksS;
    let profiler: StackProfiler | undefined;
    if (opts.sampleFreq > 0) {
      sampling = openSamplingEvents(cpus, opts.sampleFreq, { forceSoftware: opts.softwareEvent });
      if (opts.verbosity > 0) {
        opts.log(
          `cpu samples: ${sampling.source} at ${opts.sampleFreq} Hz` +
            (sampling.fallback ? ` (${sampling.fallback})` : ""),
        );
      }
    }
    const spaces = new AddressSpaces();
    if (wantStacks) {
      // 1 MiB per CPU: an exec storm between two drains must not overflow it.
      sideband = PerfSideband.open(cpus, 256);
      // Loaded on the first kernel frame: reading 100k+ symbols should not delay attaching.
      symbolizer = new Symbolizer(() => {
        const kallsyms = Kallsyms.load();
        if (kallsyms.restricted) {
          opts.log(
            "warning: /proc/kallsyms hides kernel addresses (kptr_restrict); kernel frames are labelled, not named",
          );
        }
        return kallsyms;
      }, spaces);
      profiler = new StackProfiler({
        base: new TimestampBase(base),
        symbolizer,
        spaces,
        sequenceIds: SEQUENCE_IDS_STACKS,
        cpuSampleWeight: 1e9 / Math.max(1, opts.sampleFreq),
        cpuCounterName: sampling?.source ?? "cpu-clock",
      });
    }
    const baseNum = Number(base);
    let stackMs = 0;
    const applySideband = () => {
      if (!sideband) return;
      // Each CPU's ring is in time order, the rings together are not.
      const records: SidebandRecord[] = [];
      sideband.drain((r) => records.push(r));
      records.sort((a, b) => a.time - b.time);
      for (const r of records) {
        switch (r.type) {
          case "mmap2":
            spaces.map(r.pid, {
              start: r.addr,
              end: r.addr + r.len,
              pgoff: r.pgoff,
              path: r.filename,
              // The same spelling as /proc/PID/maps, so both name one file alike.
              dev: `${hex2(r.maj)}:${hex2(r.min)}`,
              inode: r.ino,
              executable: (r.prot & 4) !== 0,
              since: r.time - baseNum,
            });
            break;
          case "comm":
            if (r.exec) spaces.exec(r.pid, r.time - baseNum);
            break;
          case "fork":
            spaces.fork(r.ppid, r.pid, r.time - baseNum);
            break;
          case "exit":
            if (r.pid === r.tid) spaces.exit(r.pid, r.time - baseNum);
            break;
        }
      }
    };

    let table: ProcessTable | undefined = undefined;
    const early: ProcessEvent[] = [];
    const applyEvents = (events: ProcessEvent[]) => {
      if (!table) {
        early.push(...events);
        return;
      }
      // Workers batch per CPU; the table needs them in time order.
      events.sort((a, b) => a.ts - b.ts);
      for (const ev of events) {
        contain("process events", () => {
          const delta = table!.apply(ev);
          if (delta) write(processTreePacket(delta, base + BigInt(Math.trunc(ev.ts))));
        });
      }
    };

    drainer = await Drainer.start(rings, {
      base,
      sequenceId: SEQUENCE_ID_WORKERS,
      pollMs: 10,
      flushMs: 100,
      maxBundleEvents: 32768,
      holdbackNs: 5_000_000,
      maxPendingBytes: 64 * 1024 * 1024,
    }, {
      packets(bytes, stacks, events) {
        write(bytes);
        if (events.length) applyEvents(events);
        if (stacks.length && profiler) {
          // Every mapping a sample can use was recorded before the sample was
          // drained, so the side-band is complete for this batch.
          const t = performance.now();
          contain("stack side-band", applySideband);
          contain("stacks", () => {
            const out = profiler!.consume(stacks);
            if (out) write(out);
          });
          stackMs += performance.now() - t;
        }
      },
      failed: fail,
    });
    const attached = obj.attachAll(["on_cpu_sample"]);
    if (sampling) {
      for (const { fd } of [...sampling.events]) {
        obj.attachPerfEvent("on_cpu_sample", fd);
        sampling.release(fd); // the link owns it now
      }
      attached.push(`on_cpu_sample ×${cpus.length}`);
    }
    setRecording(obj, true);
    const attachNs = clockNs(ClockId.BOOTTIME);
    const attachMs = performance.now() - t0;
    if (opts.verbosity > 0) {
      opts.log(`attached ${attached.length} programs: ${attached.join(", ")}`);
    }

    // Header packets: clocks first (it also starts the main sequence).
    write(clockSnapshotPacket(readClocks()));
    write(systemInfoPacket(describeSystem(cpus.length), attachNs));
    write(ftraceStatsPacket("start", cpus.map((cpu) => ({ cpu, events: 0 })), attachNs));
    for (const p of dropCounterTracks(RECORD_KIND_NAMES)) write(p);
    for (const p of dropCounterValues(RECORD_KIND_NAMES, [], attachNs)) write(p);
    // Scanned after attaching so that no process can fall between scan and events.
    const snapshot = scanProcesses();
    table = new ProcessTable(snapshot, base);
    if (wantStacks) seedMappings(spaces, snapshot.map((p) => p.pid));
    write(processTreePacket(table.initialTree(), clockNs(ClockId.BOOTTIME)));
    applyEvents(early.splice(0));

    opts.log(
      `systing: recording ${cpus.length} CPUs to ${opts.output}` +
        (opts.durationSec > 0 ? ` for ${opts.durationSec}s` : "") + " (Ctrl-C to stop)",
    );

    // Wait for the duration, a signal, or a failure on the packet path.
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
        contain("stack side-band", applySideband); // keep its rings from filling between batches
        // Samples are resolved well within this of being taken; older exits can go.
        spaces.prune(Number(clockNs(ClockId.BOOTTIME) - base) - EXITED_MAPPINGS_KEPT_NS);
        if (!opts.status) return;
        const s = drainer!.stats();
        const events = sum(s.counts);
        const elapsed = (performance.now() - started) / 1000;
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
    if (profiler) {
      contain("stack side-band", applySideband);
      contain("stacks", () => {
        const out = profiler!.finish(Number(endNs - base));
        if (out) write(out);
      });
    }
    write(ftraceStatsPacket(
      "end",
      cpus.map((cpu) => ({ cpu, events: drops.byCpu[cpu] ?? 0 })),
      endNs,
    ));
    // Stacks userspace could not process are lost as surely as those BPF could not reserve.
    if (profiler) drops.byKind[RecordKind.Stack] += profiler.stats.failed;
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
      eventsByKind,
      dropsByKind,
      dropsByCpu: drops.byCpu,
      fileBytes: file.bytesWritten,
      rawBytes: file.rawBytes,
      attachMs,
      finishMs,
      drain,
      stacks: profiler && symbolizer
        ? {
          ...profiler.stats,
          named: symbolizer.named,
          labelled: symbolizer.labelled,
          unreadable: [...symbolizer.failures.keys()],
          moreUnreadable: symbolizer.moreFailures,
          mappingsDropped: spaces.mappingsDropped,
          sidebandLost: sideband?.lost ?? 0,
          processingMs: stackMs,
        }
        : undefined,
      sampling: sampling
        ? `${sampling.source}${sampling.fallback ? ` (${sampling.fallback})` : ""}`
        : undefined,
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
    sideband?.close();
    sampling?.close();
    symbolizer?.close();
    libbpfLog?.close();
  }
}

/** Executable mappings kept per process from the /proc scan; real ones have at most hundreds. */
const MAX_SEEDED_PER_PROCESS = 16384;

/** Executable mappings of the processes alive at start; later ones come from the side-band. */
function seedMappings(spaces: AddressSpaces, pids: number[]): void {
  for (const pid of pids) {
    let entries;
    try {
      entries = readMaps(pid).entries;
    } catch {
      continue; // exited, a kernel thread's empty maps, or malformed: its samples are labelled
    }
    spaces.seed(
      pid,
      entries.filter((m) => m.perms.includes("x")).slice(0, MAX_SEEDED_PER_PROCESS).map((m) => ({
        start: m.start,
        end: m.end,
        pgoff: m.offset,
        path: m.path,
        dev: m.dev,
        inode: m.inode,
        executable: true,
      })),
    );
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
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
