/**
 * A drain worker's decoding, put together from the recorders that are on: one
 * decoder per record kind (the process table's, then the recorder's, when
 * both take a kind), and the scope they share — the CPUs' current tasks, the
 * worker's track-event sequence, what goes to the main thread.
 */
import { CommInterner } from "../perfetto/comm_interner.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { TrackEventWriter } from "../perfetto/track_event_writer.ts";
import { processDecoders } from "../processes/process_records.ts";
import type { DecoderScope, Recorder } from "../recorders/recorder.ts";
import {
  type Decode,
  type DecoderTable,
  RecordDecoder,
  type RecordMemory,
} from "../records/record_decoder.ts";
import type { ProcessEvent, RecordKind } from "../records/records.ts";
import { forwardRing, ForwardWriter } from "./forward_ring.ts";

export class Decoding implements DecoderScope {
  readonly base: TimestampBase;
  readonly comms = new CommInterner();
  readonly current: Int32Array;
  readonly tracks: TrackEventWriter;
  readonly processEvents: ProcessEvent[] = [];
  /** Records for the sessions on the main thread, whole (8-aligned, headers included). */
  readonly forwarded: ForwardWriter;
  readonly problems = new Map<string, number>();
  readonly decoder: RecordDecoder;

  constructor(
    recorders: readonly Recorder[],
    configs: Readonly<Record<string, unknown>>,
    base: bigint,
    cpus: number,
    trackSequenceId: number,
    ring: SharedArrayBuffer = forwardRing(),
  ) {
    this.forwarded = new ForwardWriter(ring);
    this.base = new TimestampBase(base);
    this.current = new Int32Array(cpus);
    this.tracks = new TrackEventWriter(trackSequenceId, this.base);
    const table: DecoderTable = processDecoders(this.processEvents);
    for (const r of recorders) {
      const own = r.decoders?.(this, configs[r.name]) ?? {};
      for (const [k, decode] of Object.entries(own) as [string, Decode][]) {
        const kind = Number(k) as RecordKind;
        const before = table[kind];
        // Recorders that share a decoder (the stack ones) add it once.
        if (before === decode) continue;
        table[kind] = before
          ? (mem, off, size, ts, b) =>
            before(mem, off, size, ts, b) && decode(mem, off, size, ts, b)
          : decode;
      }
    }
    this.decoder = new RecordDecoder(table, base, cpus);
  }

  forward(mem: RecordMemory, off: number, size: number): void {
    this.forwarded.push(mem.bytes, off, size);
  }

  problem(what: string): void {
    this.problems.set(what, (this.problems.get(what) ?? 0) + 1);
  }
}
