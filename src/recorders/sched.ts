/**
 * sched: context switches and wake-ups on every CPU, in Perfetto's compact
 * form, plus the process lifecycle (fork, exec, exit, rename) as ftrace
 * events, which the trace processor turns into thread states and lifetimes.
 * Switches and wakings are the bulk of a trace: they are copied field by field
 * from ring memory into the bundle's columns, with no allocation.
 */
import type { DecoderScope, Recorder } from "./recorder.ts";
import type { DecoderTable } from "../records/record_decoder.ts";
import {
  COMM_LEN,
  cString,
  Layout as L,
  Part,
  PATH_LEN,
  RecordKind,
  SwitchFlag,
  UNTRACED_PID,
} from "../records/records.ts";

/** The stand-in a filtered trace shows running on a CPU while only untraced tasks run there. */
export const UNTRACED_COMM = "untraced";

/** FtraceEvent oneof field numbers and their messages' fields (Perfetto protos). */
const Ev = {
  // prev_comm=1 prev_pid=2 prev_prio=3 prev_state=4 next_comm=5 next_pid=6 next_prio=7
  schedSwitch: 4,
  schedWakeupNew: 114, // comm=1 pid=2 prio=3 success=4 target_cpu=5
  schedProcessFork: 239, // parent_comm=1 parent_pid=2 child_comm=3 child_pid=4
  schedProcessExec: 237, // filename=1 pid=2 old_pid=3
  schedProcessExit: 238, // comm=1 pid=2 tgid=3 prio=4
  taskRename: 236, // pid=1 oldcomm=2 newcomm=3
  taskNewtask: 235, // pid=1 comm=2 clone_flags=3
  schedProcessFree: 240, // comm=1 pid=2 prio=3
} as const;

function decoders(scope: DecoderScope): DecoderTable {
  const { comms, current } = scope;
  const untraced = comms.internString(UNTRACED_COMM);
  return {
    [RecordKind.SchedSwitch]: (mem, off, size, ts, b) => {
      if (size !== L.rec_sched_switch.size) return false;
      const w = off >> 2, i32 = mem.i32;
      if (mem.u32[w + 9] & SwitchFlag.Untraced) {
        // The first of a run of switches between untraced tasks (the rest were not recorded):
        // prev's time ends here, and the CPU runs the stand-in until the next switch record.
        current[b.cpu] = UNTRACED_PID + b.cpu;
        b.addSwitch(ts, i32[w + 6], UNTRACED_PID + b.cpu, 120, untraced);
        return true;
      }
      const next = mem.u32[w + 5];
      current[b.cpu] = next;
      b.addSwitch(
        ts,
        i32[w + 6], // prev_state: the low word of an s64 no larger than 0x100
        next,
        i32[w + 8],
        comms.intern(i32, mem.bytes, off + L.rec_sched_switch.next_comm),
      );
      return true;
    },
    // The task running when recording began: a switch to it from the idle task at that instant,
    // in full (the compact form cannot name a previous task, so Perfetto's importer would skip
    // it): the CPU's row then begins at the trace's start.
    [RecordKind.SchedRunning]: (mem, off, size, ts, b) => {
      if (size !== L.rec_sched_running.size) return false;
      const w = off >> 2;
      const pid = mem.u32[w + 4];
      current[b.cpu] = pid;
      // Idle too: the importer then knows the CPU's first real switch comes from idle.
      const e = b.beginEvent(ts, 0, Ev.schedSwitch);
      e.fieldString(1, `swapper/${b.cpu}`);
      e.fieldVarint(2, 0);
      e.fieldInt(3, 120);
      e.fieldInt(4, 0);
      e.fieldString(5, cString(mem.bytes, off + L.rec_sched_running.comm, COMM_LEN));
      e.fieldVarint(6, pid);
      e.fieldInt(7, mem.i32[w + 5]);
      b.endEvent();
      return true;
    },
    // The task the next switch switches out, running since ts, though the CPU's last record
    // named another: the compact form implies each switch's prev from the one before.
    [RecordKind.SchedPrev]: (mem, off, size, ts, b) => {
      if (size !== L.rec_sched_running.size) return false;
      const w = off >> 2;
      current[b.cpu] = mem.u32[w + 4];
      b.addSwitch(
        ts,
        0,
        mem.u32[w + 4],
        mem.i32[w + 5],
        comms.intern(mem.i32, mem.bytes, off + L.rec_sched_running.comm),
      );
      return true;
    },
    [RecordKind.SchedWaking]: (mem, off, size, ts, b) => {
      if (size !== L.rec_sched_waking.size) return false;
      const w = off >> 2, i32 = mem.i32;
      b.addWaking(
        ts,
        mem.u32[w + 4],
        i32[w + 5],
        i32[w + 6],
        comms.intern(i32, mem.bytes, off + L.rec_sched_waking.comm),
        i32[w + 7],
      );
      return true;
    },
    [RecordKind.SchedWakeupNew]: (mem, off, size, ts, b) => {
      if (size !== L.rec_sched_waking.size) return false;
      const w = off >> 2;
      const e = b.beginEvent(ts, current[b.cpu], Ev.schedWakeupNew, mem.u32[w + 7]);
      e.fieldString(1, cString(mem.bytes, off + L.rec_sched_waking.comm, COMM_LEN));
      e.fieldVarint(2, mem.u32[w + 4]);
      e.fieldInt(3, mem.i32[w + 6]);
      e.fieldVarint(4, 1);
      e.fieldInt(5, mem.i32[w + 5]);
      b.endEvent();
      return true;
    },
    [RecordKind.SchedProcessFork]: (mem, off, size, ts, b) => {
      const R = L.rec_sched_process_fork;
      if (size !== R.size) return false;
      const w = off >> 2;
      const e = b.beginEvent(ts, mem.u32[w + 4], Ev.schedProcessFork);
      e.fieldString(1, cString(mem.bytes, off + R.parent_comm, COMM_LEN));
      e.fieldVarint(2, mem.u32[w + 4]);
      e.fieldString(3, cString(mem.bytes, off + R.child_comm, COMM_LEN));
      e.fieldVarint(4, mem.u32[w + 6]);
      b.endEvent();
      return true;
    },
    [RecordKind.SchedProcessExec]: (mem, off, size, ts, b) => {
      const R = L.rec_sched_process_exec;
      if (size !== R.size) return false;
      const w = off >> 2;
      const pid = mem.u32[w + 4];
      const e = b.beginEvent(ts, pid, Ev.schedProcessExec);
      e.fieldString(1, cString(mem.bytes, off + R.filename, PATH_LEN));
      e.fieldVarint(2, pid);
      e.fieldVarint(3, mem.u32[w + 6]);
      b.endEvent();
      return true;
    },
    [RecordKind.SchedProcessExit]: (mem, off, size, ts, b) => {
      const R = L.rec_sched_process_exit;
      if (size !== R.size) return false;
      const w = off >> 2;
      const comm = cString(mem.bytes, off + R.comm, COMM_LEN);
      let e = b.beginEvent(ts, mem.u32[w + 4], Ev.schedProcessExit);
      e.fieldString(1, comm);
      e.fieldVarint(2, mem.u32[w + 4]);
      e.fieldVarint(3, mem.u32[w + 5]);
      e.fieldInt(4, mem.i32[w + 6]);
      b.endEvent();
      // The importer ends a thread at sched_process_free, which the kernel emits an RCU grace
      // period after the pid may already be another process's: the thread ends at its exit.
      e = b.beginEvent(ts, mem.u32[w + 4], Ev.schedProcessFree);
      e.fieldString(1, comm);
      e.fieldVarint(2, mem.u32[w + 4]);
      e.fieldInt(3, mem.i32[w + 6]);
      b.endEvent();
      return true;
    },
    [RecordKind.TaskNewtask]: (mem, off, size, ts, b) => {
      const R = L.rec_task_newtask;
      if (size !== R.size) return false;
      const w = off >> 2;
      // The event's pid is the creating thread's: the importer ties the new one to it.
      const e = b.beginEvent(ts, mem.u32[w + 6], Ev.taskNewtask);
      e.fieldVarint(1, mem.u32[w + 4]);
      e.fieldString(2, cString(mem.bytes, off + R.comm, COMM_LEN));
      e.fieldVarint(3, mem.u32[w + 9] * 4294967296 + mem.u32[w + 8]);
      b.endEvent();
      return true;
    },
    [RecordKind.TaskRename]: (mem, off, size, ts, b) => {
      const R = L.rec_task_rename;
      if (size !== R.size) return false;
      const w = off >> 2;
      const e = b.beginEvent(ts, mem.u32[w + 4], Ev.taskRename);
      e.fieldVarint(1, mem.u32[w + 4]);
      e.fieldString(2, cString(mem.bytes, off + R.oldcomm, COMM_LEN));
      e.fieldString(3, cString(mem.bytes, off + R.newcomm, COMM_LEN));
      b.endEvent();
      return true;
    },
  };
}

export const sched: Recorder = {
  name: "sched",
  description: "context switches and wake-ups on every CPU, thread states, process lifetimes",
  defaultOn: true,
  bpf: {
    programs: [
      "on_sched_switch",
      "on_sched_waking",
      "on_sched_wakeup_new",
      // Which wake-ups come from interrupts (irq_context_flags). Exits attach first: an entry
      // seen without its exit would mark the CPU as in an interrupt for good. The handlers'
      // programs are shared with irq (bpf/dispatch.bpf.c).
      "on_irq_handler_exit",
      "ctx_timer_exit",
      "ctx_work_exit",
      "on_softirq_exit",
      "on_irq_handler_entry",
      "ctx_timer_enter",
      "ctx_work_enter",
      "on_softirq_entry",
      // Where threads begin and end, for the importer.
      "on_task_newtask",
    ],
    ownPrograms: ["sched_running_now"],
    maps: ["start_told", "irq_context"],
  },
  kinds: [
    RecordKind.SchedSwitch,
    RecordKind.SchedWaking,
    RecordKind.SchedWakeupNew,
    RecordKind.SchedRunning,
    RecordKind.SchedPrev,
    RecordKind.TaskNewtask,
  ],
  unsupported: (m) =>
    m.hasTracepoint("sched_switch") ? undefined : "this kernel has no sched_switch tracepoint",
  decoders,
  start: (ctx) => ({
    configure: ({ config }) => config.or("parts", Part.Sched),
    // What ran on each CPU as recording began, for CPUs that have not switched since.
    started: (_out, at) => {
      for (const cpu of ctx.cpus) at.obj.runOnCpu("sched_running_now", cpu);
    },
  }),
};
