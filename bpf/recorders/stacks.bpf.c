// SPDX-License-Identifier: GPL-2.0
/*
 * Stacks, for three recorders: cpu-stacks (on_cpu_sample on a per-CPU clock
 * event, current_task_part to know who is switching in), sleep-stacks and
 * interruptible-stacks (sleep_switch_part: the stack of a task going to sleep in
 * D or S, and a sleep-end record when it runs again). The parts run in
 * dispatch.bpf.c's programs. src/recorders/stacks.ts
 * says which programs and maps each one needs.
 */

/* perf_counters.bpf.c: this CPU's counters into a record (cfg.counter_count of them). */
static __noinline int read_counters(__u64 ts, __u32 reason);

/* Per-CPU budget for sleep stacks with a stack copy (a token bucket). */
struct copy_budget {
	__u64 last_ts;
	__u64 tokens_ns; /* tokens × 1e9 / rate, to stay in integers */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct copy_budget);
} copy_budget SEC(".maps");

#define COPY_BURST 16

/* The task the last sched_switch on this CPU switched to (pid + 1, tgid), and if it is traced. */
struct current_task {
	__u32 pid_plus_one;
	__u32 tgid;
	__u32 traced;
	__u32 __pad0;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct current_task);
} current_task SEC(".maps");

/*
 * When each task's recorded sleep began and when it was woken: its stack weighs the time
 * blocked, not the wait to run that follows the wake-up.
 */
struct sleep_mark {
	__u64 out_ts;
	__u64 woke_ts;
	__u64 stack_ns; /* rec_sleep_end.stack_ns */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sleep_mark);
} sleeping SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sleep_sampling);
} sleep_sampling SEC(".maps");

#define SAMPLING_WINDOW_NS 100000000ULL
#define SAMPLING_MAX_SHIFT 20

/* Sleeps to pass over before the next one taken, at odds 1 in 2^SHIFT: 2^SHIFT − 1 on average. */
static __always_inline __u32 draw_skip(__u32 shift)
{
	if (!shift)
		return 0;
	return bpf_get_prandom_u32() % ((2u << (shift & 31)) - 1);
}

/*
 * Whether this interruptible sleep gets a stack (struct sleep_sampling), and at what odds
 * (*shift). The odds halve each time a tenth of a second's budget is spent, and double
 * again after a tenth that used under half of it. At odds of 1 in 2^shift the sleeps between
 * two taken are counted down from a random draw made when one is taken (uniform, averaging
 * 2^shift − 1): the same rate as a draw per sleep, without a helper call on every switch of a
 * storm, and random enough that a pattern (two tasks handing a pipe back and forth) is not
 * sampled on one side only.
 */
static __always_inline bool sleep_sampled(__u64 ts, __u8 *shift)
{
	__u32 zero = 0, allowed = cfg.sleep_stacks_per_sec / 10;
	struct sleep_sampling *w;

	*shift = 0;
	if (!cfg.sleep_stacks_per_sec)
		return true;
	w = bpf_map_lookup_elem(&sleep_sampling, &zero);
	if (!w)
		return true;
	if (!allowed)
		allowed = 1;
	if (ts - w->window_start >= SAMPLING_WINDOW_NS) {
		if (w->taken < allowed / 2 && w->shift) {
			w->shift--;
			w->skip = draw_skip(w->shift); /* at the new odds */
		}
		w->window_start = ts;
		w->taken = 0;
	}
	if (w->taken >= allowed && w->shift < SAMPLING_MAX_SHIFT) {
		w->shift++;
		w->taken = 0;
		w->skip = draw_skip(w->shift);
	}
	if (w->skip) {
		w->skip--;
		return false;
	}
	w->skip = draw_skip(w->shift);
	*shift = w->shift;
	w->taken++;
	return true;
}

/* Whether this sleep stack may carry a stack copy (token bucket per CPU). */
static __always_inline bool sleep_copy_allowed(__u64 ts)
{
	__u32 zero = 0;
	struct copy_budget *b = bpf_map_lookup_elem(&copy_budget, &zero);
	__u64 per, cap;

	if (!b || !cfg.sleep_copies_per_sec)
		return false;
	per = 1000000000ULL / cfg.sleep_copies_per_sec;
	cap = per * COPY_BURST;
	b->tokens_ns += ts - b->last_ts;
	if (b->tokens_ns > cap)
		b->tokens_ns = cap;
	b->last_ts = ts;
	if (b->tokens_ns < per)
		return false;
	b->tokens_ns -= per;
	return true;
}

/* cpu-stacks: who is switching in, for samples that land mid-switch. */
static __always_inline void current_task_part(__u32 v, struct task_struct *next)
{
	__u32 zero = 0;
	struct current_task *cur = bpf_map_lookup_elem(&current_task, &zero);

	if (cur) {
		cur->pid_plus_one = next->pid + 1;
		cur->tgid = next->tgid;
		cur->traced = (v & VERDICT_NEXT) != 0;
	}
}

/* sleep-stacks, interruptible-stacks: the end of next's recorded sleep, the start of prev's. */
static __always_inline void sleep_switch_part(void *ctx, __u64 ts, __u32 v, bool preempt,
					      struct task_struct *prev, struct task_struct *next,
					      unsigned int prev_state)
{
	struct rec_sleep_end *end;
	struct sleep_mark *mark;
	__u8 source = 0, shift = 0;
	bool user;
	void *rb;

	/*
	 * Neither task traced: next has no sleep of its own recorded (it was untraced when it
	 * slept, or its end is told at its next recorded sleep), and prev's is not wanted.
	 */
	if (!(v & (VERDICT_PREV | VERDICT_NEXT)))
		return;
	mark = bpf_task_storage_get(&sleeping, next, 0, 0);
	if (mark) {
		if (mark->out_ts) {
			end = reserve_ring(&rb, REC_SLEEP_END, sizeof(*end), ts, true);
			if (end) {
				end->pid = next->pid;
				end->stack_ns = mark->stack_ns;
				end->out_ts = mark->out_ts;
				/* Woken while still going to sleep: blocked for no time. */
				end->woke_ts = mark->woke_ts && mark->woke_ts < mark->out_ts ?
						       mark->out_ts :
						       mark->woke_ts;
				submit(rb, end, sizeof(*end));
			}
		}
		/* Running again: the next wake-up is for its next sleep. */
		mark->out_ts = 0;
		mark->woke_ts = 0;
		mark->stack_ns = 0;
	}
	/* prev is still current here: its stacks are the ones being walked. */
	if (preempt || prev_state == TASK_IDLE || is_quiet(prev) || !(v & VERDICT_PREV))
		return;
	if ((prev_state & TASK_UNINTERRUPTIBLE) && (cfg.stack_bits & CFG_SLEEP_STACKS_D))
		source = STACK_SLEEP_D;
	else if ((prev_state & TASK_INTERRUPTIBLE) && (cfg.stack_bits & CFG_SLEEP_STACKS_S))
		source = STACK_SLEEP_S;
	if (!source)
		return;
	/* A sleep not sampled costs no more: no mark, no stack, no end record. */
	if (source == STACK_SLEEP_S && !sleep_sampled(ts, &shift))
		return;
	/*
	 * Marked before the stack is taken (which takes microseconds); the wake-up, from another
	 * CPU, may have come already (woke_ts is kept: the task has not run since).
	 */
	mark = bpf_task_storage_get(&sleeping, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!mark)
		return;
	if (mark->out_ts) {
		/*
		 * Its last sleep's end went unseen: it came back to a CPU without a sched_switch
		 * this kernel traced. End that sleep now, by its wake-up if one came before this
		 * switch (a later one is this sleep's, racing its switch out), else as never blocked.
		 */
		end = reserve_ring(&rb, REC_SLEEP_END, sizeof(*end), ts, true);
		if (end) {
			end->pid = prev->pid;
			end->stack_ns = mark->stack_ns;
			end->out_ts = mark->out_ts;
			end->woke_ts = mark->woke_ts >= mark->out_ts && mark->woke_ts < ts ?
					       mark->woke_ts :
					       mark->out_ts;
			submit(rb, end, sizeof(*end));
		}
		if (mark->woke_ts < ts)
			mark->woke_ts = 0;
	}
	mark->out_ts = ts;
	mark->stack_ns = 0;
	user = prev->mm != NULL;
	if (!emit_stack(ctx, ts, prev->pid, prev->tgid, source, 0, user,
			user && sleep_copy_allowed(ts), SLOT_SWITCH, 0, shift)) {
		mark->out_ts = 0;
		return;
	}
	/*
	 * Only for sampled sleeps: there a storm of short ones, mostly handed back and forth
	 * (pipes, futexes), wakes later by as long as the walk took, and the odds would multiply
	 * that. A sleep that always gets a stack is weighed as the kernel counts it, walk included.
	 */
	if (shift)
		mark->stack_ns = bpf_ktime_get_boot_ns() - ts;
}

/* Whether P is asleep: off its runqueue, or on it only until its lag is spent (6.12+). */
static __always_inline bool asleep(struct task_struct *p)
{
	if (!p->on_rq)
		return true;
	return bpf_core_field_exists(p->se.sched_delayed) && p->se.sched_delayed;
}

/*
 * A task's wake-up, whether or not its sleep is marked yet: it may race the switch out on
 * another CPU, before sleep_switch_part has marked the sleep (the switch is stamped first). A
 * task still running was never asleep: that wake-up ends no sleep (and must not end its next).
 */
static __always_inline void sleep_waking_part(struct task_struct *p, __u64 ts)
{
	struct sleep_mark *mark;

	if (!state.recording || !asleep(p) || is_quiet(p))
		return;
	/*
	 * Off its CPU, the switch out is done: a sleep with a stack has its mark, one without
	 * (sampled out, or not a sleep stack) needs none. Still on it, the mark may be on its way.
	 */
	mark = bpf_task_storage_get(&sleeping, p, 0, p->on_cpu ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (mark)
		mark->woke_ts = ts;
}

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 pid = task->pid, tgid = task->tgid, zero = 0;
	struct current_task *cur;
	__u8 flags = 0;
	bool user;

	if (!state.recording)
		return 0;
	if (cfg.counter_count)
		read_counters(ts, COUNTERS_AT_SAMPLE);
	if (pid == 0 || is_tracer(task))
		return 0;
	/* A full-width load: the verifier rejects narrow reads of this ctx. */
	user = (*(volatile __u64 *)&ctx->regs.cs & 3) == 3;
	if (user)
		flags |= STACK_FLAG_USER_MODE;
	cur = bpf_map_lookup_elem(&current_task, &zero);
	if (cur && cur->pid_plus_one && cur->pid_plus_one != pid + 1) {
		/* Mid-switch (possible only from an NMI): see STACK_FLAG_SWITCHING. */
		if (cur->pid_plus_one == 1 || !cur->traced)
			return 0; /* switching to idle, or to an untraced task */
		emit_stack(ctx, ts, cur->pid_plus_one - 1, cur->tgid, STACK_CPU,
			   flags | STACK_FLAG_SWITCHING, false, false, SLOT_SAMPLE, 0, 0);
		return 0;
	}
	if (!traced(task))
		return 0;
	emit_stack(ctx, ts, pid, tgid, STACK_CPU, flags, task->mm != NULL, true, SLOT_SAMPLE, 0, 0);
	return 0;
}
