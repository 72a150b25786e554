// SPDX-License-Identifier: GPL-2.0
/*
 * Scheduler and interrupt recorder. Every record goes to the ring of the CPU
 * it happened on, so userspace gets one time-ordered-ish stream per CPU and
 * no CPU can starve another's ring.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "systing.h"

char LICENSE[] SEC("license") = "GPL";

/* The only thing in .rodata: userspace overwrites it before load. */
const volatile struct systing_config cfg = {};

/*
 * The only thing in .bss: set once every program is attached and cleared
 * before any is detached, so that the trace never holds the half of an
 * entry/exit pair that a partly attached set of programs would see.
 */
volatile __u32 recording;

struct ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16); /* resized by userspace before load */
};

/* Indexed by CPU; userspace creates one ring per online CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* resized to the possible CPU count */
	__type(key, __u32);
	__array(values, struct ring);
} rings SEC(".maps");

/* Failed reservations per kind, per CPU; userspace reads them live. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REC_KIND_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Failed reservations not yet reported in a record header, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unreported SEC(".maps");

#define TASK_REPORT 0x7f
#define TASK_IDLE 0x402
#define TASK_REPORT_IDLE 0x80
#define TASK_REPORT_MAX 0x100

static __always_inline void count_drop(__u32 kind)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &kind);
	if (n)
		*n += 1;
	n = bpf_map_lookup_elem(&unreported, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/*
 * Reserve a record in this CPU's ring and fill its header. Returns the ring
 * through *rb so that submit() can decide about the wake-up.
 */
static __always_inline void *reserve(void **rb, __u16 kind, __u16 size, __u64 ts)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 zero = 0;
	struct rec_hdr *h;
	__u64 *pending;

	if (!recording)
		return NULL;
	*rb = bpf_map_lookup_elem(&rings, &cpu);
	if (!*rb) {
		count_drop(kind);
		return NULL;
	}
	h = bpf_ringbuf_reserve(*rb, size, 0);
	if (!h) {
		count_drop(kind);
		return NULL;
	}
	h->kind = kind;
	h->size = size;
	h->ts = ts;
	h->lost = 0;
	pending = bpf_map_lookup_elem(&unreported, &zero);
	if (pending && *pending)
		h->lost = (__u32)__sync_lock_test_and_set(pending, 0);
	return h;
}

/*
 * Wake the consumer only on the record that crosses the threshold (edge
 * triggered): a wake-up per event costs the traced workload an IPI each, and
 * level triggering would do that for every record above the threshold.
 */
static __always_inline void submit(void *rb, void *rec, __u32 size)
{
	__u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (avail >= cfg.wakeup_bytes && avail < (__u64)cfg.wakeup_bytes + size + 8)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline bool is_tracer(struct task_struct *t)
{
	return cfg.tracer_tgid && BPF_CORE_READ(t, tgid) == cfg.tracer_tgid;
}

static __always_inline bool is_quiet(struct task_struct *t)
{
	return BPF_CORE_READ(t, pid) == 0 || is_tracer(t);
}

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
	state = (prev_state | BPF_CORE_READ(prev, exit_state)) & TASK_REPORT;
	for (int i = 6; i >= 0; i--) {
		if (state & (1u << i)) {
			bit = 1 << i;
			break;
		}
	}
	return bit;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_sched_switch *r;
	void *rb;

	/*
	 * Dropping tracer<->idle switches keeps the implied prev chain intact:
	 * the CPU's visible task is the same before and after the gap.
	 */
	if (is_quiet(prev) && is_quiet(next) && (is_tracer(prev) || is_tracer(next)))
		return 0;
	r = reserve(&rb, REC_SCHED_SWITCH, sizeof(*r), ts);
	if (!r)
		return 0;
	r->prev_pid = BPF_CORE_READ(prev, pid);
	r->next_pid = BPF_CORE_READ(next, pid);
	r->prev_state = ftrace_prev_state(preempt, prev_state, prev);
	r->next_prio = BPF_CORE_READ(next, prio);
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
	r->pid = BPF_CORE_READ(p, pid);
	r->target_cpu = BPF_CORE_READ(p, thread_info.cpu); /* task_cpu(p), as ftrace reports it */
	r->prio = BPF_CORE_READ(p, prio);
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

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 ts = bpf_ktime_get_boot_ns();
	struct rec_sched_process_fork *r;
	void *rb;

	if (is_tracer(parent))
		return 0;
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
