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
 * Wake the consumer only on the record that crosses the threshold (edge
 * triggered): a wake-up per event costs the traced workload an IPI each, and
 * level triggering would do that for every record above the threshold.
 */
static __always_inline __u64 wake_flag(void *rb, __u32 size)
{
	__u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);

	if (avail >= cfg.wakeup_bytes && avail < (__u64)cfg.wakeup_bytes + size + 8)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void submit(void *rb, void *rec, __u32 size)
{
	bpf_ringbuf_submit(rec, wake_flag(rb, size));
}

/*
 * The scheduler's switches and wake-ups (most of a trace) are staged per CPU and written
 * to the ring as one REC_BATCH record when the stage is full: a ring reservation and commit
 * cost about as much as the rest of a sched_switch program, and this pays them once per ~70
 * records. Every other record written through reserve() writes the stage out first, so each
 * CPU's ring still holds its records in the order they were made (userspace relies on it: a
 * switch tells which task the CPU's next events belong to). Stacks, sleep ends and Python code
 * records go to the main thread's profilers, not into the CPU's event stream, and do not.
 * Userspace writes every stage out when the recording ends (flush_staged).
 *
 * Only programs that run with interrupts off stage (sched_switch, sched_waking, wakeup_new,
 * and flush_staged from an IPI), but an NMI, or an interrupt in a wake-up of the current task,
 * can still land mid-stage: busy sends such a nested record straight to the ring.
 */
#define STAGE_BYTES 4096
#define STAGE_SLACK 64 /* the largest staged record fits past the last offset checked */

struct cpu_stage {
	__u32 len;  /* bytes staged after hdr */
	__u32 busy; /* being written or written out: nested records go straight to the ring */
	__u32 count[32]; /* staged records by kind (< 32), for the drop counters */
	struct rec_hdr hdr; /* REC_BATCH, followed by the records */
	__u8 data[STAGE_BYTES + STAGE_SLACK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_stage);
} stage SEC(".maps");

static __always_inline struct cpu_stage *this_cpu_stage(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&stage, &zero);
}

/* cpu_switch lives in switch_clock (below); a lost batch resets what it says was told. */
static __always_inline void stage_lost_switches(void);

static __always_inline __u32 stage_drops(struct cpu_stage *st, const __u32 kind)
{
	__u32 n = st->count[kind], key = kind; /* read first: the key's slot is opaque after */
	__u64 *d = bpf_map_lookup_elem(&drops, &key);

	if (d)
		*d += n;
	return n;
}

/* Writes ST out as one record (ST not busy). A batch the ring cannot take is counted by kind. */
static __noinline int stage_flush(struct cpu_stage *st)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0, len;
	__u64 *pending, lost = 0;
	void *rb;

	if (!st)
		return 0;
	len = st->len;
	if (!len)
		return 0;
	if (len > STAGE_BYTES)
		len = STAGE_BYTES;
	st->busy = 1;
	st->hdr.kind = REC_BATCH;
	st->hdr.size = sizeof(st->hdr) + len;
	pending = bpf_map_lookup_elem(&unreported, &zero);
	if (pending && *pending)
		lost = __sync_lock_test_and_set(pending, 0);
	st->hdr.lost = lost;
	rb = bpf_map_lookup_elem(&rings, &cpu);
	if (!rb || bpf_ringbuf_output(rb, &st->hdr, sizeof(st->hdr) + len,
				      wake_flag(rb, sizeof(st->hdr) + len)) < 0) {
		__u32 n = 0;

		/* The kinds staged (sched.bpf.c): constant keys, one lookup each. */
		n += stage_drops(st, REC_SCHED_SWITCH);
		n += stage_drops(st, REC_SCHED_WAKING);
		n += stage_drops(st, REC_SCHED_WAKEUP_NEW);
		if (pending)
			__sync_fetch_and_add(pending, n + lost);
		stage_lost_switches();
	}
	st->len = 0;
	__builtin_memset(st->count, 0, sizeof(st->count));
	st->busy = 0;
	return 0;
}

/*
 * Where a record of SIZE (a multiple of 8, at most STAGE_SLACK) goes: the stage, or the ring
 * when the stage is busy. Then fill it and call commit().
 */
struct staged {
	struct cpu_stage *st; /* NULL: reserved in the ring (rb) */
	void *rb;
};

/*
 * Reserve a record in this CPU's ring and fill its header. Returns the ring
 * through *rb so that submit() can decide about the wake-up. UNORDERED: the record is not
 * part of the CPU's event stream (see above), so staged records need not go first.
 */
static __always_inline void *reserve_ring(void **rb, __u16 kind, __u16 size, __u64 ts,
					  bool unordered)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 zero = 0;
	struct rec_hdr *h;
	__u64 *pending;

	if (!state.recording)
		return NULL;
	if (!unordered) {
		struct cpu_stage *st = this_cpu_stage();

		if (st && st->len && !st->busy)
			stage_flush(st);
	}
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

static __always_inline void *reserve(void **rb, __u16 kind, __u16 size, __u64 ts)
{
	return reserve_ring(rb, kind, size, ts, false);
}

static __always_inline void *reserve_staged(struct staged *s, __u16 kind, __u16 size, __u64 ts)
{
	struct cpu_stage *st;
	struct rec_hdr *h;
	__u32 off;

	if (!state.recording)
		return NULL;
	st = this_cpu_stage();
	if (!st || st->busy) {
		s->st = NULL;
		return reserve_ring(&s->rb, kind, size, ts, true);
	}
	if (st->len + size > STAGE_BYTES)
		stage_flush(st);
	off = st->len & (STAGE_BYTES - 1);
	st->busy = 1;
	s->st = st;
	h = (struct rec_hdr *)&st->data[off];
	h->kind = kind;
	h->size = size;
	h->ts = ts;
	h->lost = 0;
	return h;
}

static __always_inline void commit(struct staged *s, void *rec, __u16 kind, __u32 size)
{
	struct cpu_stage *st = s->st;

	if (!st) {
		submit(s->rb, rec, size);
		return;
	}
	st->len += size;
	st->count[kind & 31]++;
	st->busy = 0;
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

/*
 * A task's name into a record, as two direct 8-byte loads rather than a helper call: the
 * hottest programs copy one per event. (A rename racing the copy can tear it, as it can
 * ftrace's own copy; task_rename records the new name.)
 */
static __always_inline void copy_comm(char *dst, struct task_struct *t)
{
	const __u64 *src = (const __u64 *)&t->comm[0];

	((__u64 *)dst)[0] = src[0];
	((__u64 *)dst)[1] = src[1];
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

/* A lost batch may have held the switch that told which task runs here: tell it again. */
static __always_inline void stage_lost_switches(void)
{
	struct cpu_switch *c = this_cpu_switch();

	if (c) {
		c->untraced = 0;
		c->told = 0;
	}
}

/* Userspace runs it on each CPU (BPF_PROG_TEST_RUN) once recording has stopped. */
SEC("raw_tp")
int flush_staged(void *ctx)
{
	struct cpu_stage *st = this_cpu_stage();

	if (st && !st->busy)
		stage_flush(st);
	return 0;
}

#endif /* SYSTING_COMMON_BPF_H */
