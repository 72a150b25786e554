/**
 * What a recorder is: one unit of what systing can record (scheduling,
 * interrupts, stacks, system calls, …) with everything it needs — its BPF
 * programs and maps, its .rodata knobs, the record kinds it emits, how a drain
 * worker decodes them and what its session writes into the trace. The
 * pipeline (src/pipeline/record.ts) runs the same stages over every recorder
 * that is on and knows none of them by name; registry.ts lists them.
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
import type { CommInterner } from "../perfetto/comm_interner.ts";
import type { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import type { TrackEventWriter } from "../perfetto/track_event_writer.ts";
import type { ProcessSnapshot } from "../processes/proc_scan.ts";
import type { DecoderTable, RecordMemory } from "../records/record_decoder.ts";
import { Layout, type RecordKind } from "../records/records.ts";
import type { CounterSpec } from "./counter_catalog.ts";
import type { ProbeOptions } from "./probes.ts";

export interface Recorder {
  /** What users type: `--add-recorder NAME`. */
  readonly name: string;
  /** One line for --list-recorders. */
  readonly description: string;
  readonly defaultOn: boolean;
  readonly bpf: {
    /** Attached by the pipeline (tracepoints, tp_btf) when recording starts. */
    readonly programs: readonly string[];
    /** Loaded with the object but attached by the session (perf events, iterators). */
    readonly ownPrograms?: readonly string[];
    /** Maps created only when a recorder that lists them is on. */
    readonly maps: readonly string[];
  };
  /** The record kinds its programs write. */
  readonly kinds: readonly RecordKind[];
  /** Why this machine cannot run it; undefined when it can. */
  unsupported(machine: Machine): string | undefined;
  /**
   * In a drain worker: the functions that turn its records into trace data,
   * given what its session's workerConfig() returned.
   */
  decoders?(scope: DecoderScope, config: unknown): DecoderTable;
  /** On the main thread, before anything is loaded: a session for one recording. */
  start(ctx: RecorderContext): RecorderSession;
}

/** What a recorder may ask of this machine before it is chosen. */
export interface Machine {
  /** Whether the kernel has this tracepoint (from its BTF). */
  hasTracepoint(name: string): boolean;
  /** Whether this path exists (sysfs, procfs). */
  exists(path: string): boolean;
}

/** The knobs of the recorders, from the command line. */
export interface RecorderOptions {
  /** CPU stack samples per second on every CPU. */
  sampleFreq: number;
  /** Sample with the CPU clock even where a hardware PMU exists. */
  softwareEvent: boolean;
  /** How user stacks are taken: a frame-pointer walk, a stack copy unwound with CFI, or both. */
  userStacks: "auto" | "fp" | "dwarf";
  /** User stack bytes copied per stack (dwarf/auto). */
  userStackBytes: number;
  /** Interruptible-sleep stacks per CPU per second before sleeps are sampled (0: all). */
  sleepStacksPerSec: number;
  /** Python frames in the stacks of Python processes (bpf/python.bpf.h, src/python/). */
  pythonStacks: boolean;
  /** The counters of the perf-counters recorder, already resolved. */
  perfCounters: CounterSpec[];
  /** How often the perf-counters recorder reads every counter (Hz). */
  counterFreq: number;
  /** The probes recorder's events (resolved) and the processes user probes are limited to. */
  probes: ProbeOptions;
}

export interface RecorderContext {
  readonly options: RecorderOptions;
  /** Online CPUs (one ring each) and how many the kernel could ever have. */
  readonly cpus: readonly number[];
  readonly possibleCpus: number;
  /** CLOCK_BOOTTIME ns that the workers' relative timestamps count from. */
  readonly base: bigint;
  readonly verbosity: number;
  log(line: string): void;
  /** Ends the recording as if its duration were up (a stop trigger); WHY goes in the summary. */
  requestStop(why: string): void;
  /** A packet sequence of its own (trusted_packet_sequence_id) for main-thread track events. */
  sequence(): number;
  /**
   * One session shared by the recorders that ask for KEY (the first one's
   * `create` makes it); the pipeline runs it like theirs, once.
   */
  shared<T extends RecorderSession>(key: string, create: () => T): T;
}

/** What a session gets before the object is loaded. */
export interface BpfSetup {
  readonly obj: BpfObject;
  readonly config: ConfigWriter;
}

/** Appends framed packets to the trace (the main thread's sequence). */
export type PacketSink = (packet: Uint8Array) => void;

export interface StartInfo {
  /** When the programs were attached and recording began (CLOCK_BOOTTIME ns). */
  ts: bigint;
  /** The loaded object, recording: for programs a session runs itself. */
  obj: BpfObject;
  /** The processes alive then (scanned from /proc when first asked). */
  processes(): readonly ProcessSnapshot[];
}

/**
 * One recorder's part of one recording, on the main thread. Every stage is
 * optional; the pipeline calls them in this order.
 */
export interface RecorderSession {
  /** Before load: sizes maps and writes its knobs into the config. */
  configure?(bpf: BpfSetup): void;
  /**
   * The BPF object failed to load with libbpf's last lines DETAIL: what the user should read
   * instead, when the failure is about its programs.
   */
  explainLoadFailure?(detail: string): string | undefined;
  /** Structured-clonable settings its decoders need in the drain workers. */
  workerConfig?(): unknown;
  /** After load, before recording begins: attaches what the pipeline cannot; says what. */
  attach?(obj: BpfObject): string[];
  /**
   * Recording has begun: its first packets (track descriptors, initial values). Sessions run in
   * registry order, so those acting on the live kernel come before the /proc scan.
   */
  started?(out: PacketSink, at: StartInfo): void;
  /** The kinds its decoders forward() to the main thread, and their batches. */
  readonly forwarded?: readonly RecordKind[];
  /** BATCH's memory is reused once this returns: what a session keeps, it copies. */
  records?(batch: Uint8Array, out: PacketSink): void;
  /** About every 200 ms while recording. */
  tick?(out: PacketSink): void;
  /** Programs detached, rings drained: its last packets. */
  finish?(end: bigint, out: PacketSink, obj: BpfObject): void;
  /** Records that reached userspace but could not become trace data (lost as surely). */
  lost?(): Partial<Record<RecordKind, number>>;
  /** Lines for the summary printed after recording (indented by the caller). */
  summary?(): string[];
  /** More lines with -v. */
  details?(): string[];
  close?(): void;
}

/** What a drain worker offers the decoders. */
export interface DecoderScope {
  readonly base: TimestampBase;
  readonly comms: CommInterner;
  /** The task each CPU last switched to, kept by the sched recorder (0 without it). */
  readonly current: Int32Array;
  /** Track events, on this worker's own sequence. */
  readonly tracks: TrackEventWriter;
  /** Hands a record as it is to the main thread, for its session's records(). */
  forward(mem: RecordMemory, off: number, size: number): void;
  /** Counts a record that decoded but could not be used fully; the summary shows it. */
  problem(what: string): void;
}

type ConfigField = Exclude<keyof typeof Layout.systing_config, "size">;

/** The .rodata config struct (struct systing_config), field by field. */
export class ConfigWriter {
  readonly bytes = new Uint8Array(Layout.systing_config.size);
  /** For the fields that are not u32s (the filter's cgroups). */
  readonly view = new DataView(this.bytes.buffer);
  #dv = this.view;

  set(field: ConfigField, value: number): void {
    this.#dv.setUint32(Layout.systing_config[field], value, true);
  }

  get(field: ConfigField): number {
    return this.#dv.getUint32(Layout.systing_config[field], true);
  }

  /** Sets bits in a bit-set field, leaving the others as other recorders set them. */
  or(field: ConfigField, bits: number): void {
    this.set(field, (this.get(field) | bits) >>> 0);
  }
}
