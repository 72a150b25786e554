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

/* Per CPU: whether the task running when recording began has been told (see running_since). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} start_told SEC(".maps");

/* A rec_sched_running (or REC_SCHED_PREV) naming T; C learns that it is the CPU's running task. */
static __always_inline void tell_running(struct cpu_switch *c, __u16 kind, struct task_struct *t,
					 __u64 ts)
{
	struct rec_sched_running *r;
	void *rb;

	/*
	 * Straight to the ring, not staged: hdr.ts is back in time (the trace's start, or when the
	 * task was switched in), and a record of this CPU stamped after it may already be there.
	 * Arriving now, it still falls within the consumer's holdback; held in a stage, it could
	 * come after those were written. reserve() writes the stage out first, so the order holds.
	 */
	r = reserve(&rb, kind, sizeof(*r), ts);
	if (!r)
		return;
	r->pid = t->pid;
	r->prio = t->prio;
	copy_comm(r->comm, t);
	submit(rb, r, sizeof(*r));
	if (c)
		c->told = t->pid + 1;
}

/*
 * Tells, once per CPU, which task was running there when recording began (rec_sched_running):
 * the prev of the CPU's first switch, or, for a CPU that has not switched yet when
 * sched_running_now visits it, the task it finds there. A switch and that visit cannot
 * interleave on one CPU (both run with interrupts off), so exactly one of them tells, and it is
 * right: no switch happened on that CPU between the start and then.
 */
static __always_inline void running_since(struct cpu_switch *c, struct task_struct *t)
{
	__u32 zero = 0, *told = bpf_map_lookup_elem(&start_told, &zero);

	if (!told || *told || !state.recording)
		return;
	*told = 1;
	tell_running(c, REC_SCHED_RUNNING, t, state.since);
}

/*
 * When PREV, switching out at TS, was switched in, for a switch this CPU's records did not show:
 * as long ago as it has run in this slice (the fair class keeps that count; others, and idle,
 * count as just now), but not before the CPU's last switch seen or the trace's start.
 */
static __always_inline __u64 switched_in(struct cpu_switch *c, __u64 ts, struct task_struct *prev)
{
	__u64 ran = prev->pid ? prev->se.sum_exec_runtime - prev->se.prev_sum_exec_runtime : 0;
	__u64 at = ran < ts ? ts - ran : 0;

	if (at < c->since)
		at = c->since;
	return at > state.since ? at : state.since;
}

/*
 * Every switch is kept unless a filter leaves both of its tasks out, the tracer's own too:
 * compact_sched implies each switch's prev from the one before, so a gap would hand the
 * previous task's time to the next. (Its wake-ups are batched, so this is a few hundred events
 * a second, not a feedback loop.) A filtered recording keeps the switches where either task is
 * traced; of a run of untraced-to-untraced switches it keeps the first, flagged, which the
 * trace shows as the CPU switching to a stand-in "untraced" task until the next record.
 */
static __always_inline void sched_switch_part(struct cpu_switch *c, __u64 ts, __u32 v, bool preempt,
					      struct task_struct *prev, struct task_struct *next,
					      unsigned int prev_state)
{
	__u32 flags = 0;
	struct rec_sched_switch *r;
	struct staged s;

	running_since(c, prev);
	/*
	 * The last record named another task: prev became traced while running here, a record
	 * was lost, or the kernel switched without the tracepoint (this happens: to and from idle
	 * most often). Tell the trace prev has run since it was switched in. (After an untraced
	 * stretch only a traced prev is told: the stand-in covers the rest.)
	 */
	if (c->told != prev->pid + 1 && (!c->untraced || (v & VERDICT_PREV)))
		tell_running(c, REC_SCHED_PREV, prev, switched_in(c, ts, prev));
	/* Neither traced: the first switch of an untraced stretch (dispatch.bpf.c skips the rest). */
	if (!(v & (VERDICT_PREV | VERDICT_NEXT)))
		flags = SWITCH_UNTRACED;
	r = reserve_staged(&s, REC_SCHED_SWITCH, sizeof(*r), ts);
	if (!r) {
		/* The trace no longer knows what runs here: the next record tells prev first. */
		c->untraced = 0;
		c->told = 0;
		return;
	}
	r->prev_pid = prev->pid;
	r->next_pid = next->pid;
	r->prev_state = ftrace_prev_state(preempt, prev_state, prev);
	r->next_prio = next->prio;
	r->flags = flags;
	copy_comm(r->next_comm, next);
	commit(&s, r, REC_SCHED_SWITCH, sizeof(*r));
	c->untraced = flags != 0;
	c->told = flags ? 0 : next->pid + 1;
}

/*
 * Whether this CPU is inside a hard or soft interrupt, kept by entry/exit pairs: ftrace takes it
 * from the preempt count, but that per-CPU variable has no address a BPF program can be given
 * without CONFIG_KALLSYMS_ALL. Hard interrupts that wake tasks: device handlers, the local
 * timer (hrtimers: every sleep that times out), irq_work. A pair cut by the start of the
 * recording would leave an exit without its entry: depths never go below 0.
 */
struct irq_context {
	__u32 hard;
	__u32 soft;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct irq_context);
} irq_context SEC(".maps");

static __always_inline int context_step(bool soft, int by)
{
	__u32 zero = 0;
	struct irq_context *c = bpf_map_lookup_elem(&irq_context, &zero);
	__u32 *depth;

	if (!c)
		return 0;
	depth = soft ? &c->soft : &c->hard;
	if (by > 0 || *depth > 0)
		*depth += by;
	return 0;
}

/* Hard and soft interrupt handlers: dispatch.bpf.c calls context_step, with the irq recorder's. */
SEC("tp_btf/local_timer_entry")
int BPF_PROG(ctx_timer_enter) { return context_step(false, 1); }
SEC("tp_btf/local_timer_exit")
int BPF_PROG(ctx_timer_exit) { return context_step(false, -1); }
SEC("tp_btf/irq_work_entry")
int BPF_PROG(ctx_work_enter) { return context_step(false, 1); }
SEC("tp_btf/irq_work_exit")
int BPF_PROG(ctx_work_exit) { return context_step(false, -1); }

#define TRACE_FLAG_HARDIRQ 0x08
#define TRACE_FLAG_SOFTIRQ 0x10

/* ftrace's common_flags for this context: a wake-up from an interrupt is the interrupt's. */
static __always_inline __u32 irq_context_flags(void)
{
	__u32 zero = 0;
	struct irq_context *c = bpf_map_lookup_elem(&irq_context, &zero);

	if (!c)
		return 0;
	return (c->hard ? TRACE_FLAG_HARDIRQ : 0) | (c->soft ? TRACE_FLAG_SOFTIRQ : 0);
}

/* A wake-up (sched_waking from dispatch.bpf.c, or sched_wakeup_new), once the filter let it in. */
static __always_inline int record_waking(__u16 kind, struct task_struct *p, __u64 ts)
{
	struct rec_sched_waking *r;
	struct staged s;

	if (is_tracer(p))
		return 0;
	r = reserve_staged(&s, kind, sizeof(*r), ts);
	if (!r)
		return 0;
	r->pid = p->pid;
	r->target_cpu = p->thread_info.cpu; /* task_cpu(p), as ftrace reports it */
	r->prio = p->prio;
	r->common_flags = irq_context_flags();
	copy_comm(r->comm, p);
	commit(&s, r, kind, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_sched_wakeup_new, struct task_struct *p)
{
	if (!traced(p) && !traced(bpf_get_current_task_btf()))
		return 0;
	return record_waking(REC_SCHED_WAKEUP_NEW, p, bpf_ktime_get_boot_ns());
}

/* Run on every CPU once recording has begun (BPF_PROG_TEST_RUN there, from an IPI). */
SEC("raw_tp")
int sched_running_now(void *ctx)
{
	running_since(this_cpu_switch(), bpf_get_current_task_btf());
	return 0;
}

/*
 * Where each thread's life begins, for the importer (its end is its sched_process_exit, see
 * src/recorders/sched.ts): a reused pid is then another thread, and another process.
 */
static __always_inline void sched_newtask_part(struct task_struct *task, u64 clone_flags)
{
	struct task_struct *parent = bpf_get_current_task_btf();
	struct rec_task_newtask *r;
	void *rb;

	if (is_tracer(task))
		return;
	r = reserve(&rb, REC_TASK_NEWTASK, sizeof(*r), bpf_ktime_get_boot_ns());
	if (!r)
		return;
	r->pid = task->pid;
	r->tgid = task->tgid;
	r->parent_pid = parent->pid;
	r->__pad0 = 0;
	r->clone_flags = clone_flags;
	bpf_probe_read_kernel(r->comm, sizeof(r->comm), &task->comm);
	submit(rb, r, sizeof(*r));
}
