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

/* This CPU's switches, as the sched_switch program keeps them (struct cpu_switch in systing.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_switch);
} switch_clock SEC(".maps");

static __always_inline struct cpu_switch *this_cpu_switch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&switch_clock, &zero);
}

#endif /* SYSTING_COMMON_BPF_H */
