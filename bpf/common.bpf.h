/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every recorder's BPF programs share: the configuration, the recording
 * switch, the per-CPU rings with their drop counters, and the helpers that
 * reserve and submit a record. Included once, by systing.bpf.c, before the
 * recorders (bpf/recorders/ *.bpf.c).
 */
#ifndef SYSTING_COMMON_BPF_H
#define SYSTING_COMMON_BPF_H

/* The only thing in .rodata: userspace overwrites it before load. */
const volatile struct systing_config cfg = {};

/*
 * The only thing in .bss: recording is set once every program is attached and
 * cleared before any is detached, so that the trace never holds the half of an
 * entry/exit pair that a partly attached set of programs would see.
 */
volatile struct systing_state state;

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

#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2
#define TASK_IDLE 0x402

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

	if (!state.recording)
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
 * Tasks reach the programs as BTF pointers (tp_btf arguments,
 * bpf_get_current_task_btf): their fields are read by direct, CO-RE relocated
 * loads, several times cheaper than a bpf_probe_read_kernel() each, which
 * matters on sched_switch.
 */
static __always_inline bool is_tracer(struct task_struct *t)
{
	return cfg.tracer_tgid && t->tgid == cfg.tracer_tgid;
}

static __always_inline bool current_is_tracer(void)
{
	return cfg.tracer_tgid && (bpf_get_current_pid_tgid() >> 32) == cfg.tracer_tgid;
}

static __always_inline bool is_quiet(struct task_struct *t)
{
	return t->pid == 0 || is_tracer(t);
}

/* The latest context switch on this CPU (struct cpu_switch in systing.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_switch);
} switch_clock SEC(".maps");

/*
 * Several recorders attach their own program to sched_switch; the trace must
 * still show one instant per switch (a sleep stack is stamped with its switch
 * out, its end with the switch back in). Consecutive switches on a CPU never
 * share both tasks (the next one's prev is this one's next), so the pair
 * tells whether another program already began this switch.
 */
static __always_inline struct cpu_switch *switch_begin(struct task_struct *prev,
						       struct task_struct *next, __u64 *ts)
{
	__u32 zero = 0;
	struct cpu_switch *c = bpf_map_lookup_elem(&switch_clock, &zero);

	if (!c) {
		*ts = bpf_ktime_get_boot_ns();
		return NULL;
	}
	if (c->prev != (__u64)prev || c->next != (__u64)next || !c->ts) {
		c->since = c->ts;
		c->prev = (__u64)prev;
		c->next = (__u64)next;
		c->ts = bpf_ktime_get_boot_ns();
		c->verdict = 0;
	}
	*ts = c->ts;
	return c;
}

/* One waking's timestamp, shared by every program on it (see waking_ts). */
struct waking_clock {
	__u64 task;
	__u64 switches;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct waking_clock);
} waking_clock SEC(".maps");

/*
 * As switch_ts, for sched_waking: sched's record of a wake-up and the end of a sleep stack's
 * weight are one instant. Two wakings of one task on this CPU with no other between are told
 * apart by its context switch count: it must have slept again in between.
 */
static __always_inline __u64 waking_ts(struct task_struct *p)
{
	__u32 zero = 0;
	struct waking_clock *c = bpf_map_lookup_elem(&waking_clock, &zero);
	__u64 switches = p->nvcsw + p->nivcsw, ts;

	if (!c)
		return bpf_ktime_get_boot_ns();
	if (c->task == (__u64)p && c->switches == switches && c->ts)
		return c->ts;
	ts = bpf_ktime_get_boot_ns();
	c->task = (__u64)p;
	c->switches = switches;
	c->ts = ts;
	return ts;
}

#endif /* SYSTING_COMMON_BPF_H */
