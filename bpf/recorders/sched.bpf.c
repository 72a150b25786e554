// SPDX-License-Identifier: GPL-2.0
/*
 * sched: every context switch and wake-up, into the ring of the CPU it
 * happened on (decoded into compact_sched by src/recorders/sched.ts).
 */

#define TASK_REPORT 0x7f
#define TASK_REPORT_IDLE 0x80
#define TASK_REPORT_MAX 0x100

/* The state ftrace prints for prev_state (__trace_sched_switch_state). */
static __always_inline __s64 ftrace_prev_state(bool preempt, unsigned int prev_state,
					       struct task_struct *prev)
{
	__u32 state;
	__s64 bit = 0;

	if (preempt)
		return TASK_REPORT_MAX;
	if (prev_state == TASK_IDLE)
		return TASK_REPORT_IDLE;
	state = (prev_state | prev->exit_state) & TASK_REPORT;
	for (int i = 6; i >= 0; i--) {
		if (state & (1u << i)) {
			bit = 1 << i;
			break;
		}
	}
	return bit;
}

/*
 * Every switch is kept, the tracer's own too: compact_sched implies each
 * switch's prev from the one before, so any gap would hand the previous task's
 * time to the next. (Its wake-ups are batched, so this is a few hundred events
 * a second, not a feedback loop.)
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 ts = switch_ts(prev, next);
	struct rec_sched_switch *r;
	void *rb;

	r = reserve(&rb, REC_SCHED_SWITCH, sizeof(*r), ts);
	if (!r)
		return 0;
	r->prev_pid = prev->pid;
	r->next_pid = next->pid;
	r->prev_state = ftrace_prev_state(preempt, prev_state, prev);
	r->next_prio = next->prio;
	r->__pad0 = 0;
	bpf_probe_read_kernel(r->next_comm, sizeof(r->next_comm), &next->comm);
	submit(rb, r, sizeof(*r));
	return 0;
}

static __always_inline int record_waking(__u16 kind, struct task_struct *p)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_sched_waking *r;
	void *rb;

	if (is_tracer(p))
		return 0;
	r = reserve(&rb, kind, sizeof(*r), ts);
	if (!r)
		return 0;
	r->pid = p->pid;
	r->target_cpu = p->thread_info.cpu; /* task_cpu(p), as ftrace reports it */
	r->prio = p->prio;
	r->common_flags = 0;
	bpf_probe_read_kernel(r->comm, sizeof(r->comm), &p->comm);
	submit(rb, r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(on_sched_waking, struct task_struct *p)
{
	return record_waking(REC_SCHED_WAKING, p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_sched_wakeup_new, struct task_struct *p)
{
	return record_waking(REC_SCHED_WAKEUP_NEW, p);
}
