/**
 * Where every packet of a recording goes, and what may go wrong on the way:
 * the trace file, the first failure writing it (a full disk: the recording
 * stops and reports it), and errors contained to the records they cost (a
 * bug on one record's path must not end the recording).
 */
import type { PacketSink } from "../recorders/recorder.ts";
import type { TraceFile } from "./trace_file.ts";

export class PacketPath {
  readonly file: TraceFile;
  /** The first error on the packet path; after it nothing more is written. */
  failure: Error | undefined;
  /** Errors contained: how many, and the first. */
  contained = 0;
  containedFirst: string | undefined;
  /** Called once on the first failure (the recording stops). */
  onFailure: () => void = () => {};

  constructor(file: TraceFile) {
    this.file = file;
  }

  readonly write: PacketSink = (bytes) => {
    if (this.failure) return;
    try {
      this.file.write(bytes);
    } catch (e) {
      this.fail(e);
    }
  };

  readonly fail = (e: unknown): void => {
    if (this.failure) return;
    this.failure = e instanceof Error ? e : new Error(String(e));
    this.onFailure();
  };

  /** Runs F; an error costs what F was doing, is counted, and the recording goes on. */
  readonly contain = (what: string, f: () => void): void => {
    try {
      f();
    } catch (e) {
      this.contained++;
      this.containedFirst ??= `${what}: ${(e as Error).message}`;
    }
  };
}
