// SPDX-License-Identifier: GPL-2.0
/*
 * syscalls: every system call of every traced task but the tracer's, as one record
 * at its exit carrying both ends. Calls that never return (exit, exit_group)
 * are recorded at entry, and those still in the kernel when recording stops
 * are listed by the syscalls_unfinished iterator.
 */

/* Where a task's current system call began; ts 0: none known. */
struct syscall_entry {
	__u64 ts;
	__u32 nr;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_entry);
} syscall_entry SEC(".maps");

/* __USER32_CS: the task entered through the ia32 gate, so nr is an ia32 number. */
#define USER32_CS 0x23

/* x86-64 and ia32 numbers of the calls that end the thread inside the kernel. */
static __always_inline bool no_return(__u32 nr, bool compat)
{
	return compat ? nr == 1 || nr == 252 : nr == 60 || nr == 231;
}

static __always_inline void emit_syscall(__u64 ts, __u64 enter_ts, __u32 nr, __u32 flags,
					 __s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct rec_syscall *r;
	void *rb;

	r = reserve(&rb, REC_SYSCALL, sizeof(*r), ts);
	if (!r)
		return;
	r->pid = (__u32)id;
	r->tgid = id >> 32;
	r->nr = nr;
	r->flags = flags;
	r->enter_ts = enter_ts;
	r->ret = ret;
	submit(rb, r, sizeof(*r));
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct syscall_entry *e;
	__u32 flags = 0;

	if (!state.recording || current_is_tracer() || !traced(bpf_get_current_task_btf()))
		return 0;
	if (regs->cs == USER32_CS)
		flags |= SYSCALL_COMPAT;
	if (no_return(id, flags & SYSCALL_COMPAT)) {
		emit_syscall(ts, ts, id, flags | SYSCALL_NO_RETURN, 0);
		return 0;
	}
	e = bpf_task_storage_get(&syscall_entry, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e) {
		count_drop(REC_SYSCALL);
		return 0;
	}
	e->ts = ts;
	e->nr = id;
	e->flags = flags;
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct syscall_entry *e;

	/* Once recording stops, calls still open stay open for syscalls_unfinished. */
	if (!state.recording)
		return 0;
	e = bpf_task_storage_get(&syscall_entry, bpf_get_current_task_btf(), 0, 0);
	/* No entry: the call began before recording did, and has no known start. */
	if (!e || !e->ts)
		return 0;
	emit_syscall(ts, e->ts, e->nr, e->flags, ret);
	e->ts = 0;
	return 0;
}

/*
 * Run once after recording stopped: every task still inside a system call, as
 * a record without an end time (hdr.ts 0; the trace ends the slice there).
 */
SEC("iter/task")
int syscalls_unfinished(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct syscall_entry *e;
	struct rec_syscall r = {};

	if (!task)
		return 0;
	e = bpf_task_storage_get(&syscall_entry, task, 0, 0);
	if (!e || !e->ts)
		return 0;
	r.hdr.kind = REC_SYSCALL;
	r.hdr.size = sizeof(r);
	r.pid = task->pid;
	r.tgid = task->tgid;
	r.nr = e->nr;
	r.flags = e->flags | SYSCALL_UNFINISHED;
	r.enter_ts = e->ts;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
