/**
 * syscalls: every system call of every thread but systing's own, as a slice
 * named by the call (getppid, not 110) on a "syscalls" track of its thread,
 * with the return value (and the errno's name when it failed) as arguments.
 * exit and exit_group, which never return, are instants; calls still in the
 * kernel when recording stops are slices that did not end.
 *
 * BPF writes one 48-byte record per call at its exit; the drain workers
 * turn it into a begin/end pair of track events on their own sequences.
 */
import type { BpfObject } from "../ffi/bpf_object.ts";
import { ERRNO_NAMES, SYSCALL_NAMES_32, SYSCALL_NAMES_64 } from "../gen/syscall_names.ts";
import { TimestampBase } from "../perfetto/ftrace_bundle_builder.ts";
import { TrackEventType, TrackEventWriter } from "../perfetto/track_event_writer.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import { Layout as L, RecordKind, SyscallFlag } from "../records/records.ts";
import type { DecoderScope, PacketSink, Recorder, RecorderContext } from "./recorder.ts";

/**
 * Numbers at or above this are no system call (the kernel answers ENOSYS); any user can make
 * such calls, so they share one name rather than grow the name table without bound.
 */
const MAX_SYSCALL_NR = 1024;
export const INVALID_SYSCALL = "syscall_invalid";

/** The name of call NR, as this machine's headers spell it. */
export function syscallName(nr: number, compat: boolean): string {
  const name = (compat ? SYSCALL_NAMES_32 : SYSCALL_NAMES_64)[nr];
  if (name !== undefined) return name;
  if (nr >= MAX_SYSCALL_NR) return INVALID_SYSCALL; // -1 too: a call seccomp or ptrace skipped
  // Newer than the headers systing was built with.
  return `syscall_${nr}${compat ? "_ia32" : ""}`;
}

/**
 * Tracks are keyed by process and thread (tids are at most 2^22, PID_MAX_LIMIT)
 * under a tag of their own, so a reused tid in another process gets a new track.
 */
const TRACK_TAG = 0x1a5 * 2 ** 44;
export function syscallTrack(tgid: number, tid: number): number {
  return TRACK_TAG + (tgid % 2 ** 22) * 2 ** 22 + (tid % 2 ** 22);
}

export const SYSCALL_TRACK_NAME = "syscalls";

/** Threads whose track descriptor a worker remembers writing; past this it writes them again. */
const MAX_DESCRIBED = 1 << 16;

function decoders(scope: DecoderScope): DecoderTable {
  const t = scope.tracks;
  const base = scope.base;
  const retIid = t.annotationIid("ret");
  const errnoIid = t.annotationIid("errno");
  const nrIid = t.annotationIid("nr");
  // Name iids by call: x86-64 numbers, then ia32 ones.
  const nameIids = new Map<number, number>();
  const described = new Map<number, number>();
  return {
    [RecordKind.Syscall]: (mem, off, size) => {
      if (size !== L.rec_syscall.size) return false;
      const { u32, i32 } = mem;
      const w = off >> 2;
      const tid = u32[w + 4], tgid = u32[w + 5], nr = u32[w + 6], flags = u32[w + 7];
      const enter = base.relative(u32[w + 8], u32[w + 9]);
      const exit = base.relative(u32[w + 2], u32[w + 3]);
      const ret = i32[w + 11] * 4294967296 + u32[w + 10];
      const track = syscallTrack(tgid, tid);
      if (described.get(tid) !== tgid) {
        if (described.size >= MAX_DESCRIBED) described.clear();
        described.set(tid, tgid);
        t.threadTrack(track, tgid, tid, SYSCALL_TRACK_NAME);
      }
      const compat = (flags & SyscallFlag.Compat) !== 0;
      const invalid = nr >= MAX_SYSCALL_NR;
      // At most 2 × MAX_SYSCALL_NR keys: invalid numbers all map to one.
      const key = invalid ? MAX_SYSCALL_NR : compat ? -1 - nr : nr;
      let name = nameIids.get(key);
      if (name === undefined) {
        name = t.nameIid(syscallName(nr, compat));
        nameIids.set(key, name);
      }
      if (flags & SyscallFlag.NoReturn) {
        t.begin(enter, TrackEventType.Instant, track, name);
        t.end();
        return true;
      }
      t.begin(enter, TrackEventType.SliceBegin, track, name);
      if (invalid) t.intArg(nrIid, nr | 0);
      t.intArg(retIid, ret);
      if (ret < 0 && ret >= -4095) {
        const errno = ERRNO_NAMES[-ret];
        if (errno !== undefined) t.stringArg(errnoIid, errno);
      }
      t.end();
      t.sliceEnd(exit, track);
      return true;
    },
  };
}

/** Bytes the in-flight iterator may return: 48 per thread still inside a call, 1M threads. */
const MAX_UNFINISHED_BYTES = 48 << 20;

class SyscallSession {
  #ctx: RecorderContext;
  #unfinished = 0;

  constructor(ctx: RecorderContext) {
    this.#ctx = ctx;
  }

  /** Calls still in the kernel now: slices that begin and never end. */
  finish(_end: bigint, out: PacketSink, obj: BpfObject): void {
    const bytes = obj.runIterator("syscalls_unfinished", MAX_UNFINISHED_BYTES);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const base = this.#ctx.base;
    const w = new TrackEventWriter(this.#ctx.sequence(), new TimestampBase(base));
    const R = L.rec_syscall;
    for (let off = 0; off + R.size <= bytes.length; off += R.size) {
      const tid = dv.getUint32(off + R.pid, true);
      const tgid = dv.getUint32(off + R.tgid, true);
      const nr = dv.getUint32(off + R.nr, true);
      const compat = (dv.getUint32(off + R.flags, true) & SyscallFlag.Compat) !== 0;
      const enter = dv.getBigUint64(off + R.enter_ts, true);
      if (enter < base) continue; // not from this recording: cannot be, but is not ours to show
      const track = syscallTrack(tgid, tid);
      w.threadTrack(track, tgid, tid, SYSCALL_TRACK_NAME);
      const name = w.nameIid(syscallName(nr, compat));
      w.begin(Number(enter - base), TrackEventType.SliceBegin, track, name);
      w.end();
      this.#unfinished++;
    }
    out(w.take());
  }

  summary(): string[] {
    return this.#unfinished
      ? [`syscalls: ${this.#unfinished} still in the kernel when recording stopped (did not end)`]
      : [];
  }
}

export const syscalls: Recorder = {
  name: "syscalls",
  description: "every system call as a slice on its thread, with its return value",
  defaultOn: false,
  bpf: {
    programs: ["on_sys_enter", "on_sys_exit"],
    ownPrograms: ["syscalls_unfinished"],
    maps: ["syscall_entry"],
  },
  kinds: [RecordKind.Syscall],
  unsupported: (m) =>
    m.hasTracepoint("sys_enter") && m.hasTracepoint("sys_exit")
      ? undefined
      : "this kernel has no raw sys_enter/sys_exit tracepoints (CONFIG_FTRACE_SYSCALLS)",
  decoders,
  start: (ctx) => new SyscallSession(ctx),
};
