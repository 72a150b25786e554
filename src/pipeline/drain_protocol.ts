/** Messages between the recorder and its drain workers. */
import type { RingHandle } from "../ffi/bpf_object.ts";
import type { ProcessEvent } from "../records/records.ts";
import type { ForwardedBatch } from "./forward_ring.ts";

/** Int32 slots of the shared control array. */
export const STOP = 0;
/** KiB posted by workers and not yet written by the main thread (notified when it falls). */
export const PENDING_KIB = 1;
export const CONTROL_SLOTS = 2;

export interface DrainSettings {
  /** Timestamps in records are made relative to this boot-time value (ns). */
  base: bigint;
  /** The sequence of the ftrace bundles (one for every worker: they need no state). */
  sequenceId: number;
  /** Worker i writes its track events on sequence trackSequenceBase + i. */
  trackSequenceBase: number;
  /** The recorders that are on, by name, and what their sessions gave their decoders. */
  recorders: string[];
  recorderConfigs: Record<string, unknown>;
  /**
   * How often bundles are written. A worker sleeps until BPF wakes it (a ring an eighth full)
   * or the next flush is due, never polling: on these machines every wake-up of a thread costs
   * tens of µs of CPU.
   */
  flushMs: number;
  /** A bundle is written early when a CPU has this many events pending. */
  maxBundleEvents: number;
  /** Events younger than this stay for the next bundle (records can arrive out of order). */
  holdbackNs: number;
  /** Unwritten output above which workers stop draining. */
  maxPendingBytes: number;
}

export type ToWorker =
  & {
    type: "start";
    rings: RingHandle[];
    control: SharedArrayBuffer;
    /** Where this worker forwards raw records (src/pipeline/forward_ring.ts). */
    forwardRing: SharedArrayBuffer;
    index: number;
    /** An eventfd (src/ffi/wake_fd.ts) that ends the worker's wait when STOP is set. */
    wakeFd: number;
  }
  & DrainSettings;

export interface DrainStats {
  /** Decoded events per record kind. */
  counts: number[];
  /** Events BPF could not reserve, per CPU, as reported in record headers. */
  lostByCpu: number[];
  malformed: number;
  reordered: number;
  /** CPU time of the worker thread (draining, decoding, encoding, waiting excluded). */
  cpuNs: number;
  /** What was read from the rings: records, and their bytes with the ring's headers and padding. */
  ringRecords: number;
  ringBytes: number;
  stalls: number;
  comms: number;
  /** Records decoded but not fully usable, by what went wrong (DecoderScope.problem). */
  problems: Record<string, number>;
}

export type FromWorker =
  | { type: "ready" }
  | {
    type: "packets";
    /** Encoded, framed trace packets. */
    bytes: Uint8Array;
    /** Raw records for the sessions on the main thread (8-aligned, headers included). */
    forwarded: ForwardedBatch;
    processEvents: ProcessEvent[];
  }
  | { type: "progress"; stats: DrainStats }
  | { type: "done"; stats: DrainStats }
  | { type: "error"; message: string };
