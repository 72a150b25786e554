// SPDX-License-Identifier: GPL-2.0
/*
 * One program per tracepoint that several recorders (or the filter) use, calling the part of
 * each that is on (cfg.parts, constant for the verifier: a part that is off is dead code, maps
 * included). A tracepoint with a single program calls it directly; with two or more it calls
 * each through an indirect call, which on a hot path such as sched_switch costs more than the
 * programs' own work. The order of the parts is the order their records had as programs.
 */

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct cpu_switch *c = this_cpu_switch();
	__u32 v = switch_verdict(prev, next);
	__u64 ts;

	if (!c)
		return 0;
	if (cfg.parts & PART_CURRENT_TASK)
		current_task_part(v, next);
	/* Inside an untraced stretch (sched_switch_part): nothing to record, not even the time. */
	if (!v && c->untraced) {
		c->skipped++;
		return 0;
	}
	ts = bpf_ktime_get_boot_ns();
	c->since = c->ts;
	c->ts = ts;
	if (cfg.parts & PART_SCHED)
		sched_switch_part(c, ts, v, preempt, prev, next, prev_state);
	if (cfg.parts & PART_SLEEP)
		sleep_switch_part(ctx, ts, v, preempt, prev, next, prev_state);
	return 0;
}

/* One time for both: sched's record of a wake-up and the end of a sleep stack's weight. */
SEC("tp_btf/sched_waking")
int BPF_PROG(on_sched_waking, struct task_struct *p)
{
	bool mine = traced(p);
	__u64 ts;

	/* Wake-ups of traced tasks, and by them. */
	if (!mine && !((cfg.parts & PART_SCHED) && traced(bpf_get_current_task_btf())))
		return 0;
	ts = bpf_ktime_get_boot_ns();
	if (cfg.parts & PART_SCHED)
		record_waking(REC_SCHED_WAKING, p, ts);
	if ((cfg.parts & PART_SLEEP) && mine)
		sleep_waking_part(p, ts);
	return 0;
}

SEC("tp_btf/task_newtask")
int BPF_PROG(on_task_newtask, struct task_struct *task, u64 clone_flags)
{
	/* Marked before anything records it: it is traced from its first event. */
	if (cfg.filter_bits & FILTER_TASKS)
		filter_newtask_part(task, clone_flags);
	if (cfg.parts & PART_SCHED)
		sched_newtask_part(task, clone_flags);
	return 0;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(on_irq_handler_entry, int irq, struct irqaction *action)
{
	if (cfg.parts & PART_SCHED)
		context_step(false, 1);
	if (cfg.parts & PART_IRQ)
		record_irq(REC_IRQ_HANDLER_ENTRY, irq, action, 0);
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(on_irq_handler_exit, int irq, struct irqaction *action, int ret)
{
	if (cfg.parts & PART_SCHED)
		context_step(false, -1);
	if (cfg.parts & PART_IRQ)
		record_irq(REC_IRQ_HANDLER_EXIT, irq, action, ret);
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(on_softirq_entry, unsigned int vec)
{
	if (cfg.parts & PART_SCHED)
		context_step(true, 1);
	if (cfg.parts & PART_IRQ)
		record_softirq(REC_SOFTIRQ_ENTRY, vec);
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(on_softirq_exit, unsigned int vec)
{
	if (cfg.parts & PART_SCHED)
		context_step(true, -1);
	if (cfg.parts & PART_IRQ)
		record_softirq(REC_SOFTIRQ_EXIT, vec);
	return 0;
}
