/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Record layouts shared by the BPF programs and the TypeScript decoders.
 *
 * This header is the single source of truth: src/records/records.ts mirrors
 * it and test/records_layout_test.ts compiles this file to check every size
 * and offset. Rules: fixed-width types only, explicit padding, every record
 * starts with struct rec_hdr, and enum rec_kind is only ever appended to.
 */
#ifndef SYSTING_H
#define SYSTING_H

#ifndef __VMLINUX_H__
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int32_t __s32;
typedef int64_t __s64;
#endif

#define SYSTING_COMM_LEN 16
#define SYSTING_IRQ_NAME_LEN 32
#define SYSTING_PATH_LEN 256
#define SYSTING_ARGS_LEN 512
#define SYSTING_MAX_CPUS 1024
/* The kernel's default perf_event_max_stack. */
#define SYSTING_MAX_FRAMES 127
/* Most user stack bytes a record can carry (rec_hdr.size is 16 bits). */
#define SYSTING_MAX_STACK_COPY 61440
/* Stack scratch slots per CPU (enum stack_slot in stack_emit.bpf.h). */
#define SYSTING_STACK_SLOTS 3
/* Most perf counters read per CPU. */
#define SYSTING_MAX_COUNTERS 8
/* Arguments a probe event records, and the bytes of strings or tracepoint record it may carry. */
#define SYSTING_PROBE_ARGS 4
#define SYSTING_PROBE_STRING_LEN 64
#define SYSTING_PROBE_DATA_LEN 256
/* fentry and fexit programs each, for kprobe:/kretprobe: events (one function each). */
#define SYSTING_PROBE_SLOTS 8
/* Bytes of a userspace marker's "Track:Event" text. */
#define SYSTING_MARKER_LEN 128
/* faccessat2(2)'s mode for a marker: this in the high 16 bits, enum marker_kind in the low. */
#define SYSTING_MARKER_MAGIC 1398341632
/* Most -c/--cgroup filters. */
#define SYSTING_MAX_FILTER_CGROUPS 8
/* The pid a filtered trace gives the untraced tasks of CPU c: SYSTING_UNTRACED_PID + c. */
#define SYSTING_UNTRACED_PID 1073741824
/* Python frames a stack carries, leaf first; the bytes of a code object's names and lines. */
#define SYSTING_PY_FRAMES 64
#define SYSTING_PY_NAME_LEN 128
#define SYSTING_PY_FILE_LEN 256
#define SYSTING_PY_LINES_LEN 2048
/* Threads of one interpreter looked through for the current one's state, and interpreters. */
#define SYSTING_PY_THREADS 64
#define SYSTING_PY_INTERPRETERS 4

/* Append only: the numbers are the wire format between BPF and userspace. */
enum rec_kind {
	REC_SCHED_SWITCH = 1,
	REC_SCHED_WAKING = 2,
	REC_SCHED_WAKEUP_NEW = 3,
	REC_SCHED_PROCESS_FORK = 4,
	REC_SCHED_PROCESS_EXEC = 5,
	REC_SCHED_PROCESS_EXIT = 6,
	REC_TASK_RENAME = 7,
	REC_IRQ_HANDLER_ENTRY = 8,
	REC_IRQ_HANDLER_EXIT = 9,
	REC_SOFTIRQ_ENTRY = 10,
	REC_SOFTIRQ_EXIT = 11,
	REC_STACK = 12,
	REC_SLEEP_END = 13,
	REC_SYSCALL = 14,
	REC_COUNTERS = 15,
	REC_CPU_FREQUENCY = 16,
	REC_SCHED_RUNNING = 17,
	REC_TASK_NEWTASK = 18,
	REC_SCHED_PREV = 19,
	REC_PROBE = 20,
	REC_RANGE = 21,
	REC_MARKER = 22,
	REC_PY_CODE = 23,
	/*
	 * Records a CPU staged before writing them to its ring in one go (bpf/common.bpf.h): the
	 * header, then whole records, each 8-aligned, as they would have been written one by one.
	 */
	REC_BATCH = 24,
	REC_KIND_COUNT, /* keep last: sizes the drop counters */
};

/*
 * lost: reservations that failed on this CPU since the previous record that
 * made it into this CPU's ring; lets userspace mark the exact gap.
 */
struct rec_hdr {
	__u16 kind;
	__u16 size;
	__u32 lost;
	__u64 ts; /* CLOCK_BOOTTIME, ns */
};

enum switch_flags {
	/*
	 * A filtered trace: neither task is traced. The CPU runs untraced tasks from here until
	 * the next switch record, whose switches are not recorded; next_* name only the first.
	 */
	SWITCH_UNTRACED = 1,
};

struct rec_sched_switch {
	struct rec_hdr hdr;
	__u32 prev_pid;
	__u32 next_pid;
	__s64 prev_state; /* ftrace format, see systing.bpf.c */
	__s32 next_prio;
	__u32 flags; /* enum switch_flags */
	char next_comm[SYSTING_COMM_LEN];
};

/*
 * The task a CPU was running when recording began (hdr.ts: that instant), told
 * once per CPU: a switch names only its next task, so it would otherwise stay
 * invisible until its first switch out.
 */
struct rec_sched_running {
	struct rec_hdr hdr;
	__u32 pid;
	__s32 prio;
	char comm[SYSTING_COMM_LEN];
};

/*
 * REC_SCHED_PREV, same layout: the task a switch record is about to switch out, when this CPU's
 * previous switch record named another as next — after an untraced stretch it became traced while
 * running (moved into a traced cgroup), or a switch record was lost. hdr.ts is when it was
 * switched in (or the trace's start), so that the compact form, which implies each switch's prev
 * from the one before, gives its time to the right task.
 */

/* Used for both sched_waking and sched_wakeup_new. */
struct rec_sched_waking {
	struct rec_hdr hdr;
	__u32 pid;
	__s32 target_cpu;
	__s32 prio;
	__u32 common_flags;
	char comm[SYSTING_COMM_LEN];
};

struct rec_sched_process_fork {
	struct rec_hdr hdr;
	__u32 parent_pid;
	__u32 parent_tgid;
	__u32 child_pid;
	__u32 child_tgid;
	char parent_comm[SYSTING_COMM_LEN];
	char child_comm[SYSTING_COMM_LEN];
};

/*
 * args holds argv as NUL-separated strings (cut at args_len); filename is
 * the path the kernel executed.
 */
struct rec_sched_process_exec {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 old_pid;
	__u32 args_len;
	char comm[SYSTING_COMM_LEN];
	char filename[SYSTING_PATH_LEN];
	char args[SYSTING_ARGS_LEN];
};

struct rec_sched_process_exit {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__s32 prio;
	__u32 __pad0;
	char comm[SYSTING_COMM_LEN];
};

/* A task was created (fork or clone), by the current task: where a thread's life begins. */
struct rec_task_newtask {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 parent_pid;
	__u32 __pad0;
	__u64 clone_flags;
	char comm[SYSTING_COMM_LEN];
};

struct rec_task_rename {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	char oldcomm[SYSTING_COMM_LEN];
	char newcomm[SYSTING_COMM_LEN];
};

/* Used for both irq_handler_entry (ret unused) and irq_handler_exit. */
struct rec_irq {
	struct rec_hdr hdr;
	__s32 irq;
	__s32 ret;
	char name[SYSTING_IRQ_NAME_LEN];
};

/* Used for both softirq_entry and softirq_exit. */
struct rec_softirq {
	struct rec_hdr hdr;
	__u32 vec;
	__u32 __pad0;
};

/* Why a stack was taken. */
enum stack_source {
	STACK_CPU = 1,     /* a CPU-clock (or cycles) sample */
	STACK_SLEEP_D = 2, /* switched out uninterruptible */
	STACK_SLEEP_S = 3, /* switched out interruptible */
	STACK_PROBE = 4,   /* a probe event with "stack": true fired (rec_stack.probe_event) */
};

enum stack_flags {
	STACK_FLAG_USER_MODE = 1, /* the sample interrupted user code */
	/*
	 * The sample fired between sched_switch and the switch itself: it is
	 * attributed to the incoming task (the one the trace shows running) and
	 * carries only the kernel's switch path.
	 */
	STACK_FLAG_SWITCHING = 2,
};

/*
 * Variable length: hdr.size = sizeof(struct rec_stack) + 8 * (kernel_frames
 * + user_frames) + copy_bytes. The frames follow the struct: the kernel ips
 * (leaf first), then the user ips (leaf first, a frame-pointer walk), then
 * copy_bytes of user stack memory from user_sp up, for unwinding with the
 * binaries' own unwind tables (user_ip/sp/bp are the task's user registers).
 * With a copy that reaches the thread's known stack top there is no
 * frame-pointer walk (user_frames 0): the copy holds all it would read.
 */
struct rec_stack {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 cpu;
	__u8 source;
	__u8 flags;
	__u16 kernel_frames;
	__u16 user_frames;
	__u16 probe_event; /* STACK_PROBE: the event's number, else 0 */
	__u32 copy_bytes;
	__u16 py_frames; /* struct py_frame entries after the stack copy */
	__u8 py_status;  /* enum py_status */
	/* A sleep stack taken with odds 1 in 2^weight_shift (struct sleep_sampling): it stands
	 * for that many sleeps, its weight is multiplied by as much. 0 for every other stack. */
	__u8 weight_shift;
	__u64 user_ip;
	__u64 user_sp;
	__u64 user_bp;
	/* __u64 frames[kernel_frames + user_frames], then the stack copy, follow. */
};

/* What became of a stack's Python walk (rec_stack.py_status). */
enum py_status {
	PY_NONE = 0,       /* not a Python process we know, or Python stacks are off */
	PY_OK = 1,         /* py_frames frames, to the outermost */
	PY_NO_THREAD = 2,  /* no thread state for this thread (not a Python thread, or not yet) */
	PY_READ_FAILED = 3, /* a read of the interpreter's memory failed: the frames up to it */
	PY_TRUNCATED = 4,  /* deeper than SYSTING_PY_FRAMES: the innermost ones */
};

enum py_frame_flags {
	/* The outermost frame of one run of the interpreter's C loop (_PyEval_EvalFrameDefault). */
	PY_FRAME_ENTRY = 1,
};

/*
 * One Python frame: its code object, checked against reuse by a fingerprint of the object's
 * name, file and first line, and its name's length and first characters (another code object
 * at a reused address differs in one of them), and where in the bytecode it is (bytes from the
 * code object's start).
 */
struct py_frame {
	__u64 code;
	__u64 fingerprint;
	__u32 instr; /* instruction pointer - code */
	__u32 flags; /* enum py_frame_flags */
};

/*
 * Where one CPython version keeps what a stack walk reads (src/python/, from the version's
 * headers at build time, or its _Py_DebugOffsets at run time). PY_OFF_NONE: not in this version.
 */
#define PY_OFF_NONE 0xffff
struct py_offsets {
	__u16 runtime_interpreters; /* _PyRuntimeState.interpreters.head */
	__u16 interp_next;
	__u16 interp_threads;       /* PyInterpreterState.threads.head */
	__u16 tstate_next;
	__u16 tstate_native_tid;    /* PyThreadState.native_thread_id */
	__u16 tstate_cframe;        /* 3.11, 3.12: PyThreadState.cframe, else NONE */
	__u16 current_frame;        /* _PyCFrame.current_frame, or PyThreadState.current_frame */
	__u16 frame_code;           /* f_code, f_executable */
	__u16 frame_previous;
	__u16 frame_instr;          /* prev_instr, instr_ptr */
	__u16 frame_owner;
	__u16 frame_is_entry;       /* 3.11, else NONE */
	__u16 code_firstlineno;
	__u16 code_filename;
	__u16 code_qualname;
	__u16 code_linetable;
	__u16 code_bytecode;        /* co_code_adaptive */
	__u16 unicode_state;
	__u16 unicode_length;
	__u16 unicode_ascii_data;   /* sizeof(PyASCIIObject) */
	__u16 unicode_compact_data; /* sizeof(PyCompactUnicodeObject) */
	__u16 bytes_size;           /* ob_size */
	__u16 bytes_data;           /* ob_sval */
	__u8 owner_cstack;          /* FRAME_OWNED_BY_CSTACK (3.12+), 0xff in 3.11 */
	__u8 __pad0;
};

/* A Python process (map py_procs, by tgid), as userspace found it. */
struct py_proc {
	__u64 runtime; /* the address of _PyRuntime in the process */
	__u64 since;   /* when its image was seen mapped: an exec after it makes this stale */
	__u32 version; /* major << 8 | minor */
	__u32 __pad0;
	struct py_offsets off;
};

/*
 * An interpreter executable (map py_exes, by the file's device and inode): a process exec'ing
 * it is a Python process from its first instruction. proc.runtime is _PyRuntime's link-time
 * address; the process's is that plus mm->start_code - text_vaddr (its load bias).
 */
struct py_exe_key {
	__u64 dev; /* the kernel's dev_t: major << 20 | minor */
	__u64 ino;
};

struct py_exe {
	struct py_proc proc;
	__u64 text_vaddr; /* the lowest address of its executable segments */
};

/*
 * A code object seen for the first time in process tgid (or again, after the BPF side forgot
 * it): its names and location table, so that frames name it even once the process is gone.
 * Strings are the unicode object's raw bytes (state says their kind); data holds the qualified
 * name, the file name, then the location table.
 */
struct rec_py_code {
	struct rec_hdr hdr;
	__u32 tgid;
	__u32 firstlineno;
	__u64 code;
	__u64 fingerprint;
	__u16 name_len;
	__u16 file_len;
	__u16 lines_len;
	__u8 name_state; /* PyASCIIObject.state's low byte */
	__u8 file_state;
	__u32 lines_total; /* the table's whole length (lines_len may be less) */
	__u16 bytecode;    /* offsetof(PyCodeObject, co_code_adaptive): instr - bytecode is the offset */
	__u16 __pad0;
	__u8 data[SYSTING_PY_NAME_LEN + SYSTING_PY_FILE_LEN + SYSTING_PY_LINES_LEN];
};

/*
 * A task whose sleep stack was recorded ran again: the sleep lasted from
 * out_ts (the stack record's timestamp) to woke_ts, its sched_waking (0 when
 * none was seen); hdr.ts, the switch back in, ends the wait to run after it.
 */
struct rec_sleep_end {
	struct rec_hdr hdr;
	__u32 pid;
	/* How long taking the stack held the switch out up: part of neither the sleep nor the
	 * run, so not of the weight (it delays the wake-up a ping-pong partner sends back). */
	__u32 stack_ns;
	__u64 out_ts;
	__u64 woke_ts;
};

/* How a probe event's argument i is read (struct probe_spec). */
enum probe_arg_type {
	PROBE_ARG_NONE = 0,
	PROBE_ARG_LONG = 1,   /* the argument's 64 bits */
	PROBE_ARG_STRING = 2, /* a NUL-terminated string it points to, into data[i] */
	PROBE_ARG_RETVAL = 3, /* the return value (return probes) */
};

/* Where a probe event's ranges pair their start and end (struct probe_spec.scope). */
enum probe_scope {
	PROBE_SCOPE_THREAD = 0,
	PROBE_SCOPE_PROCESS = 1,
	PROBE_SCOPE_CPU = 2,
};

/* What the probe programs record for one event, by event number (map probe_specs). */
struct probe_spec {
	__u8 arg_type[SYSTING_PROBE_ARGS];  /* enum probe_arg_type */
	__u8 arg_index[SYSTING_PROBE_ARGS]; /* which argument of the function or probe */
	__u32 data_len; /* tracepoints: bytes of the raw record to copy (<= SYSTING_PROBE_DATA_LEN) */
	__u32 kernel;   /* strings are in kernel memory (kprobe:, kretprobe:) */
	__u16 range_start; /* 1 + the range it starts (0: none) */
	__u16 range_end;   /* 1 + the range it ends (0: none) */
	__u8 scope;        /* enum probe_scope */
	__u8 instant;      /* write a rec_probe when it fires (else it only starts or ends ranges) */
	__u8 stack;        /* also write its stack (a rec_stack, source STACK_PROBE) */
	__u8 __pad0;
};

/* Most ranges one recording pairs, and how deeply one range nests in one scope. */
#define SYSTING_PROBE_RANGES 64
#define SYSTING_RANGE_DEPTH 8

/* A range's knobs, by range number (map probe_ranges). */
struct probe_range {
	__u64 stop_ns; /* a range longer than this stops the recording (0: never) */
};

/* One scope's open starts of one range (map open_ranges), innermost last. */
struct range_key {
	__u32 range;
	__u32 __pad0;
	__u64 scope; /* tid, tgid or cpu */
};

struct range_open {
	__u64 start_ts[SYSTING_RANGE_DEPTH];
	__u64 start_args[SYSTING_RANGE_DEPTH][SYSTING_PROBE_ARGS]; /* the start event's, per level */
	__u32 depth;
	__u32 tgid; /* of the task that opened the outermost */
};

enum range_flags {
	RANGE_STOP = 1, /* longer than its stop_ns: the recording should stop */
};

/* A range closed by its end event (hdr.ts), in thread pid, opened at start_ts. */
struct rec_range {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 range;
	__u32 cpu;
	__u64 start_ts;
	__u32 depth; /* 0: outermost */
	__u32 flags; /* enum range_flags */
	__u64 start_args[SYSTING_PROBE_ARGS]; /* the start event's arguments (numbers only) */
	__u64 end_args[SYSTING_PROBE_ARGS];   /* the end event's */
};

/*
 * An event of --trace-event / --trace-event-config fired in thread pid. data_len bytes of data
 * follow when the event has string arguments (SYSTING_PROBE_STRING_LEN each, at the
 * argument's index) or is a tracepoint (its raw record, decoded by its format).
 */
struct rec_probe {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 event;
	__u16 data_len;
	__u16 nargs; /* args[0..nargs) were read (a USDT probe has as many as its note says) */
	__u64 args[SYSTING_PROBE_ARGS];
};

/* What a userspace marker marks (the low 16 bits of its faccessat2 mode). */
enum marker_kind {
	MARKER_INSTANT = 1,
	MARKER_BEGIN = 2,
	MARKER_END = 3,
};

/* A userspace marker: thread pid called faccessat2(-1, "Track:Event", MAGIC | kind, 0). */
struct rec_marker {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 kind; /* enum marker_kind */
	__u32 __pad0;
	char text[SYSTING_MARKER_LEN];
};

enum syscall_flags {
	SYSCALL_COMPAT = 1,     /* a 32-bit task: nr is an ia32 number */
	SYSCALL_NO_RETURN = 2,  /* exit or exit_group: recorded at entry, ts == enter_ts */
	SYSCALL_UNFINISHED = 4, /* still in the kernel when recording stopped; ts and ret unset */
};

/* One system call, recorded at its exit (hdr.ts); ret is the raw return value. */
struct rec_syscall {
	struct rec_hdr hdr;
	__u32 pid;
	__u32 tgid;
	__u32 nr;
	__u32 flags; /* enum syscall_flags */
	__u64 enter_ts;
	__s64 ret;
};

enum counters_reason {
	COUNTERS_AT_TICK = 1,   /* the fixed interval */
	COUNTERS_AT_SAMPLE = 2, /* a CPU stack sample */
};

/* What bpf_perf_event_read_value() returns: enabled > running means multiplexed. */
struct counter_value {
	__u64 value;
	__u64 enabled;
	__u64 running;
};

/* Every configured counter of one CPU, read on that CPU. */
struct rec_counters {
	struct rec_hdr hdr;
	__u32 cpu;
	__u16 count;  /* values[0..count) are set */
	__u16 reason; /* enum counters_reason */
	__u32 failed; /* bit i: counter i could not be read */
	__u32 __pad0;
	struct counter_value values[SYSTING_MAX_COUNTERS];
};

/* power:cpu_frequency: cpu now runs at khz. */
struct rec_cpu_frequency {
	struct rec_hdr hdr;
	__u32 cpu;
	__u32 khz;
};

enum config_stack_bits {
	CFG_SLEEP_STACKS_D = 1,
	CFG_SLEEP_STACKS_S = 2,
	CFG_USER_FP = 4,   /* walk user frame pointers */
	CFG_USER_COPY = 8, /* copy the top of the user stack */
	CFG_PYTHON = 16,   /* walk the Python frames of known Python processes */
};

/* The only thing in .bss, written by userspace while the programs are attached. */
struct systing_state {
	__u32 recording; /* 1 from the moment every program is attached until it stops */
	__u32 adopt;     /* 1 while the tracer starts `-- CMD`: its new processes are traced */
	__u64 since;     /* when recording became 1 (CLOCK_BOOTTIME ns): the trace's start */
};

/*
 * A CPU's switches as the sched_switch program (bpf/dispatch.bpf.c) keeps them, and what the
 * sched recorder knows of the CPU between its switch records. Userspace reads skipped, per CPU,
 * for the summary.
 */
struct cpu_switch {
	__u64 ts;       /* the latest switch stamped (0: none yet) */
	__u64 since;    /* the one before: when the task switched out at ts had been switched in */
	__u32 untraced; /* sched: an untraced stretch began and its switches are skipped */
	__u32 told;     /* sched: 1 + the pid the CPU's last record names as running; 0: unknown */
	__u64 skipped;  /* sched: switches not recorded, inside untraced stretches */
};

/*
 * The recorders' parts of the programs in dispatch.bpf.c, one per tracepoint that several
 * recorders use: a tracepoint with one program calls it directly, with more through an
 * indirect call each.
 */
enum config_parts {
	PART_SCHED = 1,        /* sched: switches, wake-ups, new tasks, interrupt context */
	PART_CURRENT_TASK = 2, /* cpu-stacks: the task switching in */
	PART_SLEEP = 4,        /* sleep-stacks, interruptible-stacks */
	PART_IRQ = 8,          /* irq: handler and softirq entry and exit */
};

enum config_filter_bits {
	FILTER_TASKS = 1,   /* tasks marked in traced_tasks (-p, -- CMD) and their descendants */
	FILTER_CGROUPS = 2, /* tasks in one of cfg.cgroups or below */
};

/*
 * A cgroup whose tasks, and its descendants' tasks, are traced: on the default hierarchy
 * (ssid -1) or on the v1 hierarchy of subsystem ssid; level is its depth, id its kernfs id.
 */
struct filter_cgroup {
	__s32 ssid;
	__u32 level;
	__u64 id;
};

/* Tunables, written into .rodata by userspace before the object is loaded. */
struct systing_config {
	__u32 tracer_tgid;  /* excluded from its own trace */
	__u32 wakeup_bytes; /* pending bytes that force a consumer wake-up */
	__u32 stack_bits;   /* enum config_stack_bits */
	__u32 stack_copy_bytes; /* per stack, a multiple of 8, <= SYSTING_MAX_STACK_COPY */
	/* Sleep stacks with a user stack copy, per CPU per second (the rest walk frame pointers). */
	__u32 sleep_copies_per_sec;
	__u32 counter_count;  /* perf counters per CPU, <= SYSTING_MAX_COUNTERS (0: none) */
	__u32 counter_stride; /* counter i of CPU c is at counters[i * counter_stride + c] */
	__u32 filter_bits;    /* enum config_filter_bits; 0: every task is traced */
	__u32 cgroup_count;   /* cgroups[0..cgroup_count) are set */
	__u32 parts;          /* enum config_parts: what dispatch.bpf.c's programs run */
	/* S-sleep stacks taken per CPU per second before sleeps are sampled (0: every one). */
	__u32 sleep_stacks_per_sec;
	__u32 __pad0;
	struct filter_cgroup cgroups[SYSTING_MAX_FILTER_CGROUPS];
};

/*
 * Per CPU: how interruptible sleeps are sampled for stacks (bpf/recorders/stacks.bpf.c). A
 * storm of short sleeps (a pipe ping-pong switches 100k+ times a second) would otherwise cost
 * a stack walk each; past cfg.sleep_stacks_per_sec a sleep gets its stack with odds 1 in
 * 2^shift (a random count of sleeps passed over between two taken), and that stack weighs for
 * 2^shift sleeps: the weights still add up to the time blocked, in expectation, per stack.
 * Uninterruptible sleeps always get one.
 */
struct sleep_sampling {
	__u64 window_start; /* the current tenth of a second began */
	__u32 taken;        /* stacks taken in it, at the current odds */
	__u32 shift;        /* odds 1 in 2^shift */
	__u32 skip;         /* sleeps to pass over before the next one taken */
	__u32 __pad0;
};

_Static_assert(sizeof(struct rec_hdr) == 16, "rec_hdr");
_Static_assert(sizeof(struct rec_sched_switch) == 56, "rec_sched_switch");
_Static_assert(sizeof(struct rec_sched_waking) == 48, "rec_sched_waking");
_Static_assert(sizeof(struct rec_sched_running) == 40, "rec_sched_running");
_Static_assert(sizeof(struct rec_sched_process_fork) == 64, "rec_sched_process_fork");
_Static_assert(sizeof(struct rec_sched_process_exec) == 816, "rec_sched_process_exec");
_Static_assert(sizeof(struct rec_sched_process_exit) == 48, "rec_sched_process_exit");
_Static_assert(sizeof(struct rec_task_rename) == 56, "rec_task_rename");
_Static_assert(sizeof(struct rec_task_newtask) == 56, "rec_task_newtask");
_Static_assert(sizeof(struct rec_irq) == 56, "rec_irq");
_Static_assert(sizeof(struct rec_softirq) == 24, "rec_softirq");
_Static_assert(sizeof(struct rec_stack) == 72, "rec_stack");
_Static_assert(sizeof(struct rec_sleep_end) == 40, "rec_sleep_end");
_Static_assert(sizeof(struct rec_syscall) == 48, "rec_syscall");
_Static_assert(sizeof(struct rec_probe) == 64, "rec_probe");
_Static_assert(sizeof(struct probe_spec) == 24, "probe_spec");
_Static_assert(sizeof(struct rec_range) == 112, "rec_range");
_Static_assert(sizeof(struct rec_marker) == 160, "rec_marker");
_Static_assert(sizeof(struct py_frame) == 24, "py_frame");
_Static_assert(sizeof(struct py_offsets) == 48, "py_offsets");
_Static_assert(sizeof(struct py_proc) == 72, "py_proc");
_Static_assert(sizeof(struct py_exe) == 80, "py_exe");
_Static_assert(sizeof(struct py_exe_key) == 16, "py_exe_key");
_Static_assert(sizeof(struct rec_py_code) == 56 + SYSTING_PY_NAME_LEN + SYSTING_PY_FILE_LEN +
					     SYSTING_PY_LINES_LEN, "rec_py_code");
_Static_assert(SYSTING_MARKER_MAGIC == 0x53590000, "marker magic: 'SY' << 16");
_Static_assert(sizeof(struct range_open) == 328, "range_open");
_Static_assert(SYSTING_PROBE_ARGS * SYSTING_PROBE_STRING_LEN == SYSTING_PROBE_DATA_LEN, "data");
_Static_assert(sizeof(struct counter_value) == 24, "counter_value");
_Static_assert(sizeof(struct rec_counters) == 32 + 24 * SYSTING_MAX_COUNTERS, "rec_counters");
_Static_assert(sizeof(struct rec_cpu_frequency) == 24, "rec_cpu_frequency");
_Static_assert(sizeof(struct filter_cgroup) == 16, "filter_cgroup");
_Static_assert(sizeof(struct cpu_switch) == 32, "cpu_switch");
_Static_assert(sizeof(struct sleep_sampling) == 24, "sleep_sampling");
_Static_assert(sizeof(struct systing_config) == 48 + 16 * SYSTING_MAX_FILTER_CGROUPS,
	       "systing_config");
_Static_assert(sizeof(struct systing_state) == 16, "systing_state");
_Static_assert(__builtin_offsetof(struct rec_sched_switch, next_comm) == 40, "switch comm");
_Static_assert(__builtin_offsetof(struct rec_sched_process_exec, args) == 304, "exec args");

#endif /* SYSTING_H */
