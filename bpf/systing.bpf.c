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

/*
 * Where variable-length stack records are assembled before bpf_ringbuf_output.
 * Too big for a per-CPU array (32 KiB limit): a plain array with two slots per
 * CPU, one for the sampler (which may interrupt other programs from an NMI)
 * and one for everything else. Userspace sizes it to the CPU count.
 */
struct stack_scratch {
	struct rec_stack r;
	__u64 frames[2 * SYSTING_MAX_FRAMES];
	__u8 copy[SYSTING_MAX_STACK_COPY];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct stack_scratch);
} stack_scratch SEC(".maps");

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

/* The task the last sched_switch on this CPU switched to (pid + 1, tgid). */
struct current_task {
	__u32 pid_plus_one;
	__u32 tgid;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct current_task);
} current_task SEC(".maps");

/* When each task's recorded sleep began, to weigh its stack by the time blocked. */
struct sleep_mark {
	__u64 out_ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sleep_mark);
} sleeping SEC(".maps");

#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2
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

/*
 * Stack records vary in length, so they are assembled in per-CPU scratch
 * memory and copied with bpf_ringbuf_output (reserve needs a constant size).
 */
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

/*
 * Copies up to `want` bytes of the current task's user stack from sp, page
 * by page: bpf_probe_read_user is all-or-nothing, and the top of the stack
 * is often closer than `want`.
 */
static __always_inline __u32 copy_user_stack(__u8 *dst, __u64 sp, __u64 want)
{
	__u64 copied = 0, addr, chunk;

	if (want > SYSTING_MAX_STACK_COPY)
		want = SYSTING_MAX_STACK_COPY;
	for (int i = 0; i < SYSTING_MAX_STACK_COPY / 4096 + 1; i++) {
		if (copied >= want || copied > SYSTING_MAX_STACK_COPY - 4096)
			break;
		addr = sp + copied;
		chunk = 4096 - (addr & 4095);
		if (chunk > want - copied)
			chunk = want - copied;
		if (chunk > 4096)
			break;
		if (bpf_probe_read_user(dst + copied, chunk, (void *)addr) < 0)
			break;
		copied += chunk;
	}
	return copied;
}

/*
 * Stack records vary in length, so they are assembled in scratch memory and
 * copied with bpf_ringbuf_output (reserve needs a constant size).
 */
static __always_inline bool emit_stack(void *ctx, __u64 ts, __u32 pid, __u32 tgid, __u8 source,
				       __u8 flags, bool user, bool copy, __u32 slot)
{
	__u32 zero = 0, cpu = bpf_get_smp_processor_id(), key = cpu * 2 + slot;
	struct task_struct *task = bpf_get_current_task_btf();
	struct stack_scratch *s;
	__u64 *pending, lost = 0, size, wake;
	long kb, ub = 0;
	__u32 cb = 0;
	void *rb;

	if (!recording)
		return false;
	s = bpf_map_lookup_elem(&stack_scratch, &key);
	rb = bpf_map_lookup_elem(&rings, &cpu);
	if (!s || !rb) {
		count_drop(REC_STACK);
		return false;
	}
	kb = bpf_get_stack(ctx, s->frames, SYSTING_MAX_FRAMES * 8, 0);
	if (kb < 0)
		kb = 0;
	if (kb > SYSTING_MAX_FRAMES * 8)
		kb = SYSTING_MAX_FRAMES * 8;
	kb &= ~7L;
	s->r.user_ip = 0;
	s->r.user_sp = 0;
	s->r.user_bp = 0;
	if (user && (cfg.stack_bits & CFG_USER_FP)) {
		ub = bpf_get_stack(ctx, (void *)s->frames + kb, SYSTING_MAX_FRAMES * 8,
				   BPF_F_USER_STACK);
		if (ub < 0)
			ub = 0;
		if (ub > SYSTING_MAX_FRAMES * 8)
			ub = SYSTING_MAX_FRAMES * 8;
		ub &= ~7L;
	}
	if (user) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

		s->r.user_ip = BPF_CORE_READ(regs, ip);
		s->r.user_sp = BPF_CORE_READ(regs, sp);
		s->r.user_bp = BPF_CORE_READ(regs, bp);
		if (copy && (cfg.stack_bits & CFG_USER_COPY))
			cb = copy_user_stack((__u8 *)s->frames + kb + ub, s->r.user_sp,
					     cfg.stack_copy_bytes);
	}
	size = sizeof(struct rec_stack) + kb + ub + cb;
	s->r.hdr.kind = REC_STACK;
	s->r.hdr.size = size;
	s->r.hdr.ts = ts;
	s->r.pid = pid;
	s->r.tgid = tgid;
	s->r.cpu = cpu;
	s->r.source = source;
	s->r.flags = flags;
	s->r.kernel_frames = (__u64)kb >> 3;
	s->r.user_frames = (__u64)ub >> 3;
	s->r.__pad0 = 0;
	s->r.copy_bytes = cb;
	s->r.__pad1 = 0;
	pending = bpf_map_lookup_elem(&unreported, &zero);
	if (pending && *pending)
		lost = __sync_lock_test_and_set(pending, 0);
	s->r.hdr.lost = lost;
	wake = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) + size + 8 >= cfg.wakeup_bytes &&
			       bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) < cfg.wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
	if (size > sizeof(*s))
		size = sizeof(*s);
	if (bpf_ringbuf_output(rb, s, size, wake) < 0) {
		count_drop(REC_STACK);
		/* The gap this record was to report is still unreported. */
		if (pending && lost)
			__sync_fetch_and_add(pending, lost);
		return false;
	}
	return true;
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
	struct rec_sleep_end *end;
	struct current_task *cur;
	struct sleep_mark *mark;
	__u8 source = 0;
	__u32 zero = 0;
	bool user;
	void *rb;

	/*
	 * Every switch is kept, the tracer's own too: compact_sched implies each
	 * switch's prev from the one before, so any gap would hand the previous
	 * task's time to the next. (Its wake-ups are batched, so this is a few
	 * hundred events a second, not a feedback loop.)
	 */
	cur = bpf_map_lookup_elem(&current_task, &zero);
	if (cur) {
		cur->pid_plus_one = BPF_CORE_READ(next, pid) + 1;
		cur->tgid = BPF_CORE_READ(next, tgid);
	}
	if (cfg.stack_bits) {
		mark = bpf_task_storage_get(&sleeping, next, 0, 0);
		if (mark && mark->out_ts) {
			end = reserve(&rb, REC_SLEEP_END, sizeof(*end), ts);
			if (end) {
				end->pid = BPF_CORE_READ(next, pid);
				end->__pad0 = 0;
				end->out_ts = mark->out_ts;
				submit(rb, end, sizeof(*end));
			}
			mark->out_ts = 0;
		}
	}
	r = reserve(&rb, REC_SCHED_SWITCH, sizeof(*r), ts);
	if (!r)
		goto stacks;
	r->prev_pid = BPF_CORE_READ(prev, pid);
	r->next_pid = BPF_CORE_READ(next, pid);
	r->prev_state = ftrace_prev_state(preempt, prev_state, prev);
	r->next_prio = BPF_CORE_READ(next, prio);
	r->__pad0 = 0;
	bpf_probe_read_kernel(r->next_comm, sizeof(r->next_comm), &next->comm);
	submit(rb, r, sizeof(*r));
stacks:
	/* prev is still current here: its stacks are the ones being walked. */
	if (preempt || prev_state == TASK_IDLE || is_quiet(prev))
		return 0;
	if ((prev_state & TASK_UNINTERRUPTIBLE) && (cfg.stack_bits & CFG_SLEEP_STACKS_D))
		source = STACK_SLEEP_D;
	else if ((prev_state & TASK_INTERRUPTIBLE) && (cfg.stack_bits & CFG_SLEEP_STACKS_S))
		source = STACK_SLEEP_S;
	user = BPF_CORE_READ(prev, mm) != NULL;
	if (source && emit_stack(ctx, ts, BPF_CORE_READ(prev, pid), BPF_CORE_READ(prev, tgid), source,
				 0, user, user && sleep_copy_allowed(ts), 0)) {
		mark = bpf_task_storage_get(&sleeping, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (mark)
			mark->out_ts = ts;
	}
	return 0;
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

	if (!recording || pid == 0 || is_tracer(task))
		return 0;
	/* A full-width load: the verifier rejects narrow reads of this ctx. */
	user = (*(volatile __u64 *)&ctx->regs.cs & 3) == 3;
	if (user)
		flags |= STACK_FLAG_USER_MODE;
	cur = bpf_map_lookup_elem(&current_task, &zero);
	if (cur && cur->pid_plus_one && cur->pid_plus_one != pid + 1) {
		/* Mid-switch (possible only from an NMI): see STACK_FLAG_SWITCHING. */
		if (cur->pid_plus_one == 1)
			return 0; /* switching to idle */
		emit_stack(ctx, ts, cur->pid_plus_one - 1, cur->tgid, STACK_CPU,
			   flags | STACK_FLAG_SWITCHING, false, false, 1);
		return 0;
	}
	emit_stack(ctx, ts, pid, tgid, STACK_CPU, flags, task->mm != NULL, true, 1);
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
