/**
 * The TypeScript mirror of bpf/systing.h: record kinds, sizes and field
 * offsets. test/records_layout_test.ts compiles the header and checks every
 * number here against it, so the two cannot drift apart silently.
 */

export const RecordKind = {
  SchedSwitch: 1,
  SchedWaking: 2,
  SchedWakeupNew: 3,
  SchedProcessFork: 4,
  SchedProcessExec: 5,
  SchedProcessExit: 6,
  TaskRename: 7,
  IrqHandlerEntry: 8,
  IrqHandlerExit: 9,
  SoftirqEntry: 10,
  SoftirqExit: 11,
  Stack: 12,
  SleepEnd: 13,
  Syscall: 14,
  Counters: 15,
  CpuFrequency: 16,
  SchedRunning: 17,
  TaskNewtask: 18,
  SchedPrev: 19,
  Probe: 20,
  Range: 21,
  Marker: 22,
  PyCode: 23,
  /** Records a CPU staged and wrote in one go (bpf/common.bpf.h); record_decoder.ts opens it. */
  Batch: 24,
} as const;
export type RecordKind = typeof RecordKind[keyof typeof RecordKind];

/** One past the highest kind: the length of the BPF drop-counter array. */
export const RECORD_KIND_COUNT = 25;

/** Human names, indexed by kind, for summaries and the trace's drop counters. */
export const RECORD_KIND_NAMES: readonly string[] = [
  "",
  "sched_switch",
  "sched_waking",
  "sched_wakeup_new",
  "sched_process_fork",
  "sched_process_exec",
  "sched_process_exit",
  "task_rename",
  "irq_handler_entry",
  "irq_handler_exit",
  "softirq_entry",
  "softirq_exit",
  "stack",
  "sleep_end",
  "syscall",
  "counters",
  "cpu_frequency",
  "sched_running",
  "task_newtask",
  "sched_prev",
  "probe",
  "range",
  "marker",
  "py_code",
  "batch",
];

export const COMM_LEN = 16;
export const IRQ_NAME_LEN = 32;
export const PATH_LEN = 256;
export const ARGS_LEN = 512;
export const MAX_FRAMES = 127;
export const MAX_STACK_COPY = 61440;
/** Stack scratch slots per CPU: switch, sample, probe (stack_emit.bpf.h). */
export const STACK_SLOTS = 3;
export const MAX_COUNTERS = 8;
export const MAX_FILTER_CGROUPS = 8;
export const PROBE_ARGS = 4;
export const PROBE_STRING_LEN = 64;
export const PROBE_DATA_LEN = 256;
/** fentry and fexit programs each (kprobe:, kretprobe: events). */
export const PROBE_SLOTS = 8;
export const MARKER_LEN = 128;
export const PY_FRAMES = 64;
export const PY_NAME_LEN = 128;
export const PY_FILE_LEN = 256;
export const PY_LINES_LEN = 2048;
export const PY_THREADS = 64;
export const PY_INTERPRETERS = 4;
/** A py_offsets field this version does not have. */
export const PY_OFF_NONE = 0xffff;
/** enum py_status */
export const PyStatus = { None: 0, Ok: 1, NoThread: 2, ReadFailed: 3, Truncated: 4 } as const;
/** enum py_frame_flags */
export const PyFrameFlag = { Entry: 1 } as const;
/** faccessat2's mode for a marker: MARKER_MAGIC | MarkerKind. */
export const MARKER_MAGIC = 0x53590000;
/** enum marker_kind */
export const MarkerKind = { Instant: 1, Begin: 2, End: 3 } as const;
export const PROBE_RANGES = 64;
export const RANGE_DEPTH = 8;
/** enum range_flags */
export const RangeFlag = { Stop: 1 } as const;
/** enum probe_scope */
export const ProbeScope = { thread: 0, process: 1, cpu: 2 } as const;
/** enum probe_arg_type */
export const ProbeArg = { None: 0, Long: 1, String: 2, Retval: 3 } as const;
/** A filtered trace's pid for the untraced tasks of CPU c: UNTRACED_PID + c. */
export const UNTRACED_PID = 0x40000000;

/** Why a stack was taken (enum stack_source). */
export const StackSource = { Cpu: 1, SleepD: 2, SleepS: 3, Probe: 4 } as const;
/** enum stack_flags */
export const StackFlag = { UserMode: 1, Switching: 2 } as const;
/** enum syscall_flags */
export const SyscallFlag = { Compat: 1, NoReturn: 2, Unfinished: 4 } as const;
/** enum counters_reason */
export const CountersReason = { Tick: 1, Sample: 2 } as const;
/** enum switch_flags */
export const SwitchFlag = { Untraced: 1 } as const;
/** enum config_parts */
export const Part = { Sched: 1, CurrentTask: 2, Sleep: 4, Irq: 8 } as const;
/** enum config_filter_bits */
export const FilterBit = { Tasks: 1, Cgroups: 2 } as const;
/** enum config_stack_bits */
export const ConfigStackBit = { SleepD: 1, SleepS: 2, UserFp: 4, UserCopy: 8, Python: 16 } as const;

/** Byte offsets within each record; names follow the C fields. */
export const Layout = {
  rec_hdr: { size: 16, kind: 0, size_: 2, lost: 4, ts: 8 },
  rec_sched_switch: {
    size: 56,
    prev_pid: 16,
    next_pid: 20,
    prev_state: 24,
    next_prio: 32,
    flags: 36,
    next_comm: 40,
  },
  rec_sched_running: { size: 40, pid: 16, prio: 20, comm: 24 },
  rec_sched_waking: { size: 48, pid: 16, target_cpu: 20, prio: 24, common_flags: 28, comm: 32 },
  rec_sched_process_fork: {
    size: 64,
    parent_pid: 16,
    parent_tgid: 20,
    child_pid: 24,
    child_tgid: 28,
    parent_comm: 32,
    child_comm: 48,
  },
  rec_sched_process_exec: {
    size: 816,
    pid: 16,
    tgid: 20,
    old_pid: 24,
    args_len: 28,
    comm: 32,
    filename: 48,
    args: 304,
  },
  rec_sched_process_exit: { size: 48, pid: 16, tgid: 20, prio: 24, comm: 32 },
  rec_task_newtask: {
    size: 56,
    pid: 16,
    tgid: 20,
    parent_pid: 24,
    clone_flags: 32,
    comm: 40,
  },
  rec_task_rename: { size: 56, pid: 16, tgid: 20, oldcomm: 24, newcomm: 40 },
  rec_irq: { size: 56, irq: 16, ret: 20, name: 24 },
  rec_softirq: { size: 24, vec: 16 },
  rec_stack: {
    size: 72,
    pid: 16,
    tgid: 20,
    cpu: 24,
    source: 28,
    flags: 29,
    kernel_frames: 30,
    user_frames: 32,
    probe_event: 34,
    copy_bytes: 36,
    py_frames: 40,
    py_status: 42,
    weight_shift: 43,
    user_ip: 48,
    user_sp: 56,
    user_bp: 64,
  },
  rec_sleep_end: { size: 40, pid: 16, stack_ns: 20, out_ts: 24, woke_ts: 32 },
  rec_syscall: { size: 48, pid: 16, tgid: 20, nr: 24, flags: 28, enter_ts: 32, ret: 40 },
  counter_value: { size: 24, value: 0, enabled: 8, running: 16 },
  rec_counters: { size: 224, cpu: 16, count: 20, reason: 22, failed: 24, values: 32 },
  rec_cpu_frequency: { size: 24, cpu: 16, khz: 20 },
  systing_state: { size: 16, recording: 0, adopt: 4, since: 8 },
  filter_cgroup: { size: 16, ssid: 0, level: 4, id: 8 },
  probe_spec: {
    size: 24,
    arg_type: 0,
    arg_index: 4,
    data_len: 8,
    kernel: 12,
    range_start: 16,
    range_end: 18,
    scope: 20,
    instant: 21,
    stack: 22,
  },
  probe_range: { size: 8, stop_ns: 0 },
  range_key: { size: 16, range: 0, scope: 8 },
  range_open: { size: 328, start_ts: 0, start_args: 64, depth: 320, tgid: 324 },
  rec_marker: { size: 160, pid: 16, tgid: 20, kind: 24, text: 32 },
  py_frame: { size: 24, code: 0, fingerprint: 8, instr: 16, flags: 20 },
  py_offsets: {
    size: 48,
    runtime_interpreters: 0,
    interp_next: 2,
    interp_threads: 4,
    tstate_next: 6,
    tstate_native_tid: 8,
    tstate_cframe: 10,
    current_frame: 12,
    frame_code: 14,
    frame_previous: 16,
    frame_instr: 18,
    frame_owner: 20,
    frame_is_entry: 22,
    code_firstlineno: 24,
    code_filename: 26,
    code_qualname: 28,
    code_linetable: 30,
    code_bytecode: 32,
    unicode_state: 34,
    unicode_length: 36,
    unicode_ascii_data: 38,
    unicode_compact_data: 40,
    bytes_size: 42,
    bytes_data: 44,
    owner_cstack: 46,
  },
  py_proc: { size: 72, runtime: 0, since: 8, version: 16, off: 24 },
  py_exe_key: { size: 16, dev: 0, ino: 8 },
  py_exe: { size: 80, proc: 0, text_vaddr: 72 },
  rec_py_code: {
    size: 56 + 128 + 256 + 2048,
    tgid: 16,
    firstlineno: 20,
    code: 24,
    fingerprint: 32,
    name_len: 40,
    file_len: 42,
    lines_len: 44,
    name_state: 46,
    file_state: 47,
    lines_total: 48,
    bytecode: 52,
    data: 56,
  },
  rec_range: {
    size: 112,
    pid: 16,
    tgid: 20,
    range: 24,
    cpu: 28,
    start_ts: 32,
    depth: 40,
    flags: 44,
    start_args: 48,
    end_args: 80,
  },
  rec_probe: { size: 64, pid: 16, tgid: 20, event: 24, data_len: 28, nargs: 30, args: 32 },
  cpu_switch: { size: 32, ts: 0, since: 8, untraced: 16, told: 20, skipped: 24 },
  sleep_sampling: { size: 24, window_start: 0, taken: 8, shift: 12, skip: 16 },
  systing_config: {
    size: 176,
    tracer_tgid: 0,
    wakeup_bytes: 4,
    stack_bits: 8,
    stack_copy_bytes: 12,
    sleep_copies_per_sec: 16,
    counter_count: 20,
    counter_stride: 24,
    filter_bits: 28,
    cgroup_count: 32,
    parts: 36,
    sleep_stacks_per_sec: 40,
    cgroups: 48,
  },
} as const;

/**
 * Process lifecycle events, decoded off the hot path and handed to the
 * process table so that names and command lines follow the trace.
 */
export type ProcessEvent =
  | {
    kind: "fork";
    ts: number;
    parentPid: number;
    parentTgid: number;
    childPid: number;
    childTgid: number;
    childComm: string;
  }
  | {
    kind: "exec";
    ts: number;
    pid: number;
    tgid: number;
    oldPid: number;
    comm: string;
    filename: string;
    argv: string[];
  }
  | { kind: "exit"; ts: number; pid: number; tgid: number; comm: string }
  | { kind: "rename"; ts: number; pid: number; tgid: number; oldComm: string; newComm: string };

const decoder = new TextDecoder("utf-8", { fatal: false });

/** A fixed-size C string field: up to the first NUL, lossy UTF-8. */
export function cString(bytes: Uint8Array, offset: number, maxLen: number): string {
  let end = offset;
  const limit = Math.min(offset + maxLen, bytes.length);
  while (end < limit && bytes[end] !== 0) end++;
  return decoder.decode(bytes.subarray(offset, end));
}

/** argv as the kernel lays it out: NUL-separated, possibly cut mid-string. */
export function splitArgs(bytes: Uint8Array, offset: number, len: number): string[] {
  const out: string[] = [];
  let start = offset;
  const end = offset + len;
  for (let i = offset; i < end; i++) {
    if (bytes[i] === 0) {
      out.push(decoder.decode(bytes.subarray(start, i)));
      start = i + 1;
    }
  }
  if (start < end) out.push(decoder.decode(bytes.subarray(start, end)));
  return out;
}
