/**
 * Decodes the process lifecycle records (fork, exec, exit, rename) that every
 * recording has, into ProcessEvents for the process table. The sched
 * recorder also writes them as ftrace events; this part is always on.
 */
import type { DecoderTable, RecordMemory } from "../records/record_decoder.ts";
import {
  ARGS_LEN,
  COMM_LEN,
  cString,
  Layout as L,
  PATH_LEN,
  type ProcessEvent,
  RecordKind,
  splitArgs,
} from "../records/records.ts";

/** The BPF programs that feed it (bpf/processes.bpf.c), loaded in every recording. */
export const PROCESS_PROGRAMS = [
  "on_sched_process_fork",
  "on_sched_process_exec",
  "on_sched_process_exit",
  "on_task_rename",
] as const;

/** Decoders that append what they decode to `events`. */
export function processDecoders(events: ProcessEvent[]): DecoderTable {
  return {
    [RecordKind.SchedProcessFork]: (mem: RecordMemory, off: number, size: number, ts: number) => {
      const R = L.rec_sched_process_fork;
      if (size !== R.size) return false;
      const w = off >> 2;
      events.push({
        kind: "fork",
        ts,
        parentPid: mem.u32[w + 4],
        parentTgid: mem.u32[w + 5],
        childPid: mem.u32[w + 6],
        childTgid: mem.u32[w + 7],
        childComm: cString(mem.bytes, off + R.child_comm, COMM_LEN),
      });
      return true;
    },
    [RecordKind.SchedProcessExec]: (mem: RecordMemory, off: number, size: number, ts: number) => {
      const R = L.rec_sched_process_exec;
      if (size !== R.size) return false;
      const w = off >> 2;
      events.push({
        kind: "exec",
        ts,
        pid: mem.u32[w + 4],
        tgid: mem.u32[w + 5],
        oldPid: mem.u32[w + 6],
        comm: cString(mem.bytes, off + R.comm, COMM_LEN),
        filename: cString(mem.bytes, off + R.filename, PATH_LEN),
        argv: splitArgs(mem.bytes, off + R.args, Math.min(mem.u32[w + 7], ARGS_LEN)),
      });
      return true;
    },
    [RecordKind.SchedProcessExit]: (mem: RecordMemory, off: number, size: number, ts: number) => {
      const R = L.rec_sched_process_exit;
      if (size !== R.size) return false;
      const w = off >> 2;
      events.push({
        kind: "exit",
        ts,
        pid: mem.u32[w + 4],
        tgid: mem.u32[w + 5],
        comm: cString(mem.bytes, off + R.comm, COMM_LEN),
      });
      return true;
    },
    [RecordKind.TaskRename]: (mem: RecordMemory, off: number, size: number, ts: number) => {
      const R = L.rec_task_rename;
      if (size !== R.size) return false;
      const w = off >> 2;
      events.push({
        kind: "rename",
        ts,
        pid: mem.u32[w + 4],
        tgid: mem.u32[w + 5],
        oldComm: cString(mem.bytes, off + R.oldcomm, COMM_LEN),
        newComm: cString(mem.bytes, off + R.newcomm, COMM_LEN),
      });
      return true;
    },
  };
}
