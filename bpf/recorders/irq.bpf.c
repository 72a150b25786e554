// SPDX-License-Identifier: GPL-2.0
/* irq: hard and soft interrupt handlers, entry and exit (called from dispatch.bpf.c). */

/*
 * A filtered recording keeps the interrupts that interrupt a traced task, decided at entry; the
 * exit follows its entry's decision (a stack of bits per CPU, as handlers nest).
 */
struct irq_kept {
	__u64 bits[2]; /* [hard, soft]: bit d, whether the entry at depth d was kept */
	__u32 depth[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct irq_kept);
} irq_kept SEC(".maps");

static __always_inline bool irq_keep(int soft, bool entry)
{
	__u32 zero = 0, d;
	struct irq_kept *k;
	bool keep;

	if (!filtering())
		return true;
	k = bpf_map_lookup_elem(&irq_kept, &zero);
	if (!k)
		return traced(bpf_get_current_task_btf());
	d = k->depth[soft & 1];
	if (entry) {
		keep = traced(bpf_get_current_task_btf());
		if (d < 64) {
			if (keep)
				k->bits[soft & 1] |= 1ULL << d;
			else
				k->bits[soft & 1] &= ~(1ULL << d);
		}
		k->depth[soft & 1] = d + 1;
		return keep;
	}
	/* An exit whose entry came before recording began: decided now. */
	if (d == 0)
		return traced(bpf_get_current_task_btf());
	k->depth[soft & 1] = --d;
	return d < 64 ? (k->bits[soft & 1] >> d) & 1 : traced(bpf_get_current_task_btf());
}

static __always_inline int record_irq(__u16 kind, int irq, struct irqaction *action, int ret)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_irq *r;
	void *rb;

	if (!irq_keep(0, kind == REC_IRQ_HANDLER_ENTRY))
		return 0;
	r = reserve(&rb, kind, sizeof(*r), ts);
	if (!r)
		return 0;
	r->irq = irq;
	r->ret = ret;
	r->name[0] = 0;
	if (kind == REC_IRQ_HANDLER_ENTRY &&
	    bpf_probe_read_kernel_str(r->name, sizeof(r->name), BPF_CORE_READ(action, name)) < 0)
		r->name[0] = 0;
	submit(rb, r, sizeof(*r));
	return 0;
}


static __always_inline int record_softirq(__u16 kind, unsigned int vec)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_softirq *r;
	void *rb;

	if (!irq_keep(1, kind == REC_SOFTIRQ_ENTRY))
		return 0;
	r = reserve(&rb, kind, sizeof(*r), ts);
	if (!r)
		return 0;
	r->vec = vec;
	r->__pad0 = 0;
	submit(rb, r, sizeof(*r));
	return 0;
}
