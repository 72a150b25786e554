// SPDX-License-Identifier: GPL-2.0
/* irq: hard and soft interrupt handlers, entry and exit. */

static __always_inline int record_irq(__u16 kind, int irq, struct irqaction *action, int ret)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_irq *r;
	void *rb;

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

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(on_irq_handler_entry, int irq, struct irqaction *action)
{
	return record_irq(REC_IRQ_HANDLER_ENTRY, irq, action, 0);
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(on_irq_handler_exit, int irq, struct irqaction *action, int ret)
{
	return record_irq(REC_IRQ_HANDLER_EXIT, irq, action, ret);
}

static __always_inline int record_softirq(__u16 kind, unsigned int vec)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_softirq *r;
	void *rb;

	r = reserve(&rb, kind, sizeof(*r), ts);
	if (!r)
		return 0;
	r->vec = vec;
	r->__pad0 = 0;
	submit(rb, r, sizeof(*r));
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(on_softirq_entry, unsigned int vec)
{
	return record_softirq(REC_SOFTIRQ_ENTRY, vec);
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(on_softirq_exit, unsigned int vec)
{
	return record_softirq(REC_SOFTIRQ_EXIT, vec);
}
