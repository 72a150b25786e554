/**
 * Decodes BPF records (layouts in records.ts / bpf/systing.h) straight from
 * ring-buffer memory into a CPU's bundle builder. Scheduler records, the
 * bulk of the traffic, are copied field by field into typed columns with no
 * allocation; the rare process-lifecycle records are also handed out as
 * ProcessEvents for the process table.
 */
import type { CommInterner } from "../perfetto/comm_interner.ts";
import { type FtraceBundleBuilder, TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import {
  ARGS_LEN,
  COMM_LEN,
  cString,
  IRQ_NAME_LEN,
  Layout,
  PATH_LEN,
  type ProcessEvent,
  RECORD_KIND_COUNT,
  RecordKind,
  splitArgs,
} from "./records.ts";
import type { ProtoWriter } from "../perfetto/proto_writer.ts";

/** FtraceEvent oneof field numbers and their messages' fields (Perfetto protos). */
const Ev = {
  schedWakeupNew: 114, // comm=1 pid=2 prio=3 success=4 target_cpu=5
  schedProcessFork: 239, // parent_comm=1 parent_pid=2 child_comm=3 child_pid=4
  schedProcessExec: 237, // filename=1 pid=2 old_pid=3
  schedProcessExit: 238, // comm=1 pid=2 tgid=3 prio=4
  taskRename: 236, // pid=1 oldcomm=2 newcomm=3
  irqHandlerEntry: 36, // irq=1 name=2 handler=3
  irqHandlerExit: 37, // irq=1 ret=2
  softirqEntry: 24, // vec=1
  softirqExit: 25, // vec=1
} as const;

const L = Layout;

/** A record's fixed-width view: byte, u32 and i32 arrays over the same memory. */
export interface RecordMemory {
  bytes: Uint8Array;
  u32: Uint32Array;
  i32: Int32Array;
}

export class RecordDecoder {
  #comms: CommInterner;
  #base: TimestampBase;
  /** Events decoded per kind (index = RecordKind). */
  readonly counts = new Float64Array(RECORD_KIND_COUNT);
  /** Records whose size or kind did not match the header (a build mismatch). */
  malformed = 0;
  /** Reservations BPF reported as failed via the record headers, per CPU. */
  readonly lostByCpu: Float64Array;
  /** The task each CPU last switched to: the common pid of later events. */
  readonly #current: Int32Array;
  readonly processEvents: ProcessEvent[] = [];
  /**
   * Stack and sleep-end records, copied verbatim (header included) for the
   * main thread, which symbolizes them against the process mappings.
   */
  readonly stacks = new ByteQueue();

  constructor(comms: CommInterner, base: bigint, cpus: number) {
    this.#comms = comms;
    this.#base = new TimestampBase(base);
    this.lostByCpu = new Float64Array(cpus);
    this.#current = new Int32Array(cpus);
  }

  /**
   * Decodes the record whose header starts at byte `off` (8-aligned) of
   * `mem`, `len` bytes long.
   */
  decode(mem: RecordMemory, off: number, len: number, b: FtraceBundleBuilder): void {
    const u32 = mem.u32, i32 = mem.i32;
    const w = off >> 2;
    const head = u32[w];
    const kind = head & 0xffff;
    const size = head >>> 16;
    if (size > len) {
      // A record claiming more than BPF reserved means the layouts disagree.
      this.malformed++;
      return;
    }
    const lost = u32[w + 1];
    if (lost !== 0) {
      this.lostByCpu[b.cpu] += lost;
      b.markLost();
    }
    const ts = this.#base.relative(u32[w + 2], u32[w + 3]);
    switch (kind) {
      case RecordKind.SchedSwitch: {
        if (size !== L.rec_sched_switch.size) break;
        const next = u32[w + 5];
        this.#current[b.cpu] = next;
        b.addSwitch(
          ts,
          i32[w + 6], // prev_state: the low word of an s64 no larger than 0x100
          next,
          i32[w + 8],
          this.#comms.intern(i32, mem.bytes, off + L.rec_sched_switch.next_comm),
        );
        this.counts[kind]++;
        return;
      }
      case RecordKind.SchedWaking: {
        if (size !== L.rec_sched_waking.size) break;
        b.addWaking(
          ts,
          u32[w + 4],
          i32[w + 5],
          i32[w + 6],
          this.#comms.intern(i32, mem.bytes, off + L.rec_sched_waking.comm),
        );
        this.counts[kind]++;
        return;
      }
      case RecordKind.Stack:
      case RecordKind.SleepEnd: {
        const min = kind === RecordKind.Stack ? L.rec_stack.size : L.rec_sleep_end.size;
        if (size < min || (size - min) % 8 !== 0) break;
        this.stacks.push(mem.bytes, off, size);
        this.counts[kind]++;
        return;
      }
      default:
        if (kind < RECORD_KIND_COUNT && this.#decodeRare(kind, size, mem, off, ts, b)) {
          this.counts[kind]++;
          return;
        }
    }
    this.malformed++;
  }

  #decodeRare(
    kind: number,
    size: number,
    mem: RecordMemory,
    off: number,
    ts: number,
    b: FtraceBundleBuilder,
  ): boolean {
    const { bytes, u32, i32 } = mem;
    const w = off >> 2;
    const cur = this.#current[b.cpu];
    let e: ProtoWriter;
    switch (kind) {
      case RecordKind.SchedWakeupNew: {
        if (size !== L.rec_sched_waking.size) return false;
        e = b.beginEvent(ts, cur, Ev.schedWakeupNew);
        e.fieldString(1, cString(bytes, off + L.rec_sched_waking.comm, COMM_LEN));
        e.fieldVarint(2, u32[w + 4]);
        e.fieldInt(3, i32[w + 6]);
        e.fieldVarint(4, 1);
        e.fieldInt(5, i32[w + 5]);
        break;
      }
      case RecordKind.SchedProcessFork: {
        const R = L.rec_sched_process_fork;
        if (size !== R.size) return false;
        const childComm = cString(bytes, off + R.child_comm, COMM_LEN);
        e = b.beginEvent(ts, u32[w + 4], Ev.schedProcessFork);
        e.fieldString(1, cString(bytes, off + R.parent_comm, COMM_LEN));
        e.fieldVarint(2, u32[w + 4]);
        e.fieldString(3, childComm);
        e.fieldVarint(4, u32[w + 6]);
        this.processEvents.push({
          kind: "fork",
          ts,
          parentPid: u32[w + 4],
          parentTgid: u32[w + 5],
          childPid: u32[w + 6],
          childTgid: u32[w + 7],
          childComm,
        });
        break;
      }
      case RecordKind.SchedProcessExec: {
        const R = L.rec_sched_process_exec;
        if (size !== R.size) return false;
        const pid = u32[w + 4];
        const filename = cString(bytes, off + R.filename, PATH_LEN);
        e = b.beginEvent(ts, pid, Ev.schedProcessExec);
        e.fieldString(1, filename);
        e.fieldVarint(2, pid);
        e.fieldVarint(3, u32[w + 6]);
        this.processEvents.push({
          kind: "exec",
          ts,
          pid,
          tgid: u32[w + 5],
          oldPid: u32[w + 6],
          comm: cString(bytes, off + R.comm, COMM_LEN),
          filename,
          argv: splitArgs(bytes, off + R.args, Math.min(u32[w + 7], ARGS_LEN)),
        });
        break;
      }
      case RecordKind.SchedProcessExit: {
        const R = L.rec_sched_process_exit;
        if (size !== R.size) return false;
        const comm = cString(bytes, off + R.comm, COMM_LEN);
        e = b.beginEvent(ts, u32[w + 4], Ev.schedProcessExit);
        e.fieldString(1, comm);
        e.fieldVarint(2, u32[w + 4]);
        e.fieldVarint(3, u32[w + 5]);
        e.fieldInt(4, i32[w + 6]);
        this.processEvents.push({ kind: "exit", ts, pid: u32[w + 4], tgid: u32[w + 5], comm });
        break;
      }
      case RecordKind.TaskRename: {
        const R = L.rec_task_rename;
        if (size !== R.size) return false;
        const oldComm = cString(bytes, off + R.oldcomm, COMM_LEN);
        const newComm = cString(bytes, off + R.newcomm, COMM_LEN);
        e = b.beginEvent(ts, u32[w + 4], Ev.taskRename);
        e.fieldVarint(1, u32[w + 4]);
        e.fieldString(2, oldComm);
        e.fieldString(3, newComm);
        this.processEvents.push({
          kind: "rename",
          ts,
          pid: u32[w + 4],
          tgid: u32[w + 5],
          oldComm,
          newComm,
        });
        break;
      }
      case RecordKind.IrqHandlerEntry: {
        if (size !== L.rec_irq.size) return false;
        e = b.beginEvent(ts, cur, Ev.irqHandlerEntry);
        e.fieldInt(1, i32[w + 4]);
        e.fieldString(2, cString(bytes, off + L.rec_irq.name, IRQ_NAME_LEN));
        break;
      }
      case RecordKind.IrqHandlerExit: {
        if (size !== L.rec_irq.size) return false;
        e = b.beginEvent(ts, cur, Ev.irqHandlerExit);
        e.fieldInt(1, i32[w + 4]);
        e.fieldInt(2, i32[w + 5]);
        break;
      }
      case RecordKind.SoftirqEntry:
      case RecordKind.SoftirqExit: {
        if (size !== L.rec_softirq.size) return false;
        e = b.beginEvent(
          ts,
          cur,
          kind === RecordKind.SoftirqEntry ? Ev.softirqEntry : Ev.softirqExit,
        );
        e.fieldVarint(1, u32[w + 4]);
        break;
      }
      default:
        return false;
    }
    b.endEvent();
    return true;
  }
}

/** A growable byte buffer of whole records, 8-aligned, handed out and reset by take(). */
export class ByteQueue {
  #buf = new Uint8Array(1 << 16);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  push(src: Uint8Array, off: number, size: number): void {
    const padded = (size + 7) & ~7;
    if (this.#len + padded > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + padded));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#buf.set(src.subarray(off, off + size), this.#len);
    this.#len += padded;
  }

  take(): Uint8Array<ArrayBuffer> {
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    return out;
  }
}
