/**
 * Ring-buffer-like memory for decoder tests: records laid out at 8-aligned
 * offsets with their headers, as BPF writes them, with garbage in every byte
 * a record does not set.
 */
import { Layout as L, RecordKind } from "../src/records/records.ts";
import type { RecordMemory } from "../src/records/record_decoder.ts";

const encoder = new TextEncoder();

/** Ring-like memory that records are laid into at 8-aligned offsets, as BPF does. */
export class Ring implements RecordMemory {
  readonly buffer = new ArrayBuffer(1 << 16);
  readonly bytes = new Uint8Array(this.buffer);
  readonly u32 = new Uint32Array(this.buffer);
  readonly i32 = new Int32Array(this.buffer);
  readonly dv = new DataView(this.buffer);
  #pos = 0;

  /**
   * Appends a record with the given header; returns its offset and the length
   * BPF would have reserved (size rounded up to 8, unless overridden).
   */
  add(
    kind: number,
    size: number,
    ts: bigint,
    fill: (o: number) => void = () => {},
    opts: { lost?: number; len?: number } = {},
  ): { off: number; len: number } {
    const off = this.#pos;
    const len = opts.len ?? ((size + 7) & ~7);
    // Garbage in the whole reservation first, so unwritten fields are not zero by luck.
    this.bytes.fill(0xa5, off, off + Math.max(len, size) + 8);
    this.bytes.fill(0, off, off + Math.max(size, 16));
    this.dv.setUint16(off + L.rec_hdr.kind, kind, true);
    this.dv.setUint16(off + L.rec_hdr.size_, size, true);
    this.dv.setUint32(off + L.rec_hdr.lost, opts.lost ?? 0, true);
    this.dv.setBigUint64(off + L.rec_hdr.ts, ts, true);
    fill(off);
    this.#pos = (off + Math.max(len, size) + 8 + 7) & ~7;
    return { off, len };
  }

  u32At(off: number, v: number): void {
    this.dv.setUint32(off, v, true);
  }
  i32At(off: number, v: number): void {
    this.dv.setInt32(off, v, true);
  }
  str(off: number, s: string | Uint8Array): void {
    this.bytes.set(typeof s === "string" ? encoder.encode(s) : s, off);
  }

  switchRec(
    ts: bigint,
    r: { prevPid: number; nextPid: number; prevState: bigint; prio: number; comm: string },
    opts: { lost?: number } = {},
  ) {
    const R = L.rec_sched_switch;
    return this.add(RecordKind.SchedSwitch, R.size, ts, (o) => {
      this.u32At(o + R.prev_pid, r.prevPid);
      this.u32At(o + R.next_pid, r.nextPid);
      this.dv.setBigInt64(o + R.prev_state, r.prevState, true);
      this.i32At(o + R.next_prio, r.prio);
      this.str(o + R.next_comm, r.comm);
    }, opts);
  }

  wakingRec(
    kind: number,
    ts: bigint,
    r: { pid: number; targetCpu: number; prio: number; comm: string },
  ) {
    const R = L.rec_sched_waking;
    return this.add(kind, R.size, ts, (o) => {
      this.u32At(o + R.pid, r.pid);
      this.i32At(o + R.target_cpu, r.targetCpu);
      this.i32At(o + R.prio, r.prio);
      this.u32At(o + R.common_flags, 0x8);
      this.str(o + R.comm, r.comm);
    });
  }
}
