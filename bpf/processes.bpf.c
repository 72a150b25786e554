// SPDX-License-Identifier: GPL-2.0
/*
 * Process lifecycle: fork, exec, exit and rename, always recorded (not a
 * recorder): the trace names every thread and process with them, and the
 * recorders attribute their events through them.
 */

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_sched_process_fork *r;
	void *rb;

	/* The tracer's own threads stay out; a process it starts (`-- CMD`) is traced from birth. */
	if (is_tracer(child))
		return 0;
	py_forked(parent->tgid, child->tgid);
	r = reserve(&rb, REC_SCHED_PROCESS_FORK, sizeof(*r), ts);
	if (!r)
		return 0;
	r->parent_pid = BPF_CORE_READ(parent, pid);
	r->parent_tgid = BPF_CORE_READ(parent, tgid);
	r->child_pid = BPF_CORE_READ(child, pid);
	r->child_tgid = BPF_CORE_READ(child, tgid);
	bpf_probe_read_kernel(r->parent_comm, sizeof(r->parent_comm), &parent->comm);
	bpf_probe_read_kernel(r->child_comm, sizeof(r->child_comm), &child->comm);
	submit(rb, r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_sched_process_exec *r;
	unsigned long start, end;
	__u64 len;
	void *rb;

	if (is_tracer(p))
		return 0;
	py_execed(p, ts);
	r = reserve(&rb, REC_SCHED_PROCESS_EXEC, sizeof(*r), ts);
	if (!r)
		return 0;
	r->pid = BPF_CORE_READ(p, pid);
	r->tgid = BPF_CORE_READ(p, tgid);
	r->old_pid = old_pid;
	bpf_probe_read_kernel(r->comm, sizeof(r->comm), &p->comm);
	if (bpf_probe_read_kernel_str(r->filename, sizeof(r->filename), BPF_CORE_READ(bprm, filename)) < 0)
		r->filename[0] = 0;
	/* The new image's argv is already in place on its stack. */
	start = BPF_CORE_READ(p, mm, arg_start);
	end = BPF_CORE_READ(p, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > SYSTING_ARGS_LEN)
		len = SYSTING_ARGS_LEN;
	if (len && bpf_probe_read_user(r->args, len, (void *)start) < 0)
		len = 0;
	r->args_len = len;
	submit(rb, r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_sched_process_exit, struct task_struct *p, bool group_dead)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_sched_process_exit *r;
	void *rb;

	if (is_tracer(p))
		return 0;
	if (group_dead)
		py_exited(p->tgid);
	r = reserve(&rb, REC_SCHED_PROCESS_EXIT, sizeof(*r), ts);
	if (!r)
		return 0;
	r->pid = BPF_CORE_READ(p, pid);
	r->tgid = BPF_CORE_READ(p, tgid);
	r->prio = BPF_CORE_READ(p, prio);
	r->__pad0 = 0;
	bpf_probe_read_kernel(r->comm, sizeof(r->comm), &p->comm);
	submit(rb, r, sizeof(*r));
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(on_task_rename, struct task_struct *task, const char *comm)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_task_rename *r;
	void *rb;

	if (is_tracer(task))
		return 0;
	r = reserve(&rb, REC_TASK_RENAME, sizeof(*r), ts);
	if (!r)
		return 0;
	r->pid = BPF_CORE_READ(task, pid);
	r->tgid = BPF_CORE_READ(task, tgid);
	bpf_probe_read_kernel(r->oldcomm, sizeof(r->oldcomm), &task->comm);
	__builtin_memset(r->newcomm, 0, sizeof(r->newcomm));
	bpf_probe_read_kernel_str(r->newcomm, sizeof(r->newcomm), comm);
	submit(rb, r, sizeof(*r));
	return 0;
}
