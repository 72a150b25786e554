/**
 * The process table of a recording, fed by the drain workers' process events
 * (which may arrive before the /proc scan it starts from) and written into
 * the trace as it changes.
 */
import { ClockId, clockNs } from "../ffi/clock.ts";
import { processTreePacket } from "../perfetto/trace_packets.ts";
import type { ProcessSnapshot } from "../processes/proc_scan.ts";
import { ProcessTable } from "../processes/process_table.ts";
import type { PacketSink } from "../recorders/recorder.ts";
import type { ProcessEvent } from "../records/records.ts";

export class ProcessTracker {
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

  start(snapshot: ProcessSnapshot[]): void {
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
