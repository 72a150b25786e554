// SPDX-License-Identifier: GPL-2.0
/*
 * probes: the events users name (--trace-event, --trace-event-config): uprobes, uretprobes and
 * USDT probes in any process that maps the binary, tracepoints, and kernel functions through
 * fentry/fexit (this kernel has no kprobes). One program per kind, attached once per event with
 * the event's number as its cookie (fentry/fexit: one program per function, from a fixed set of
 * slots whose event numbers userspace writes into probe_slots). What each event records is in
 * probe_specs, by event number: arguments, a stack (stack_emit.bpf.h), and the ranges it starts
 * or ends.
 */
#include <bpf/usdt.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* resized to the number of events */
	__type(key, __u32);
	__type(value, struct probe_spec);
} probe_specs SEC(".maps");

/* The event number of each fentry (0..SLOTS-1) and fexit (SLOTS..2*SLOTS-1) slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * SYSTING_PROBE_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} probe_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSTING_PROBE_RANGES);
	__type(key, __u32);
	__type(value, struct probe_range);
} probe_ranges SEC(".maps");

/* The open starts of every range, by scope; what is left at the stop is closed by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct range_key);
	__type(value, struct range_open);
} open_ranges SEC(".maps");

/*
 * An empty entry for a new scope, never written: on the stack it would not fit beside the
 * stack walk a probe program may call (512 bytes for both). Shared by programs that may
 * interleave on a CPU, it holds no tgid: the program that inserted the entry sets it there.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct range_open);
} range_fresh SEC(".maps");

/* Per range: ends seen without a start, and starts that found no room (too deep, map full). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * SYSTING_PROBE_RANGES);
	__type(key, __u32);
	__type(value, __u64);
} range_misses SEC(".maps");

static __always_inline void range_miss(__u32 range, __u32 which)
{
	__u32 key = range * 2 + which;
	__u64 *n = bpf_map_lookup_elem(&range_misses, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

enum probe_source {
	FROM_UPROBE,
	FROM_USDT,
	FROM_TRACEPOINT,
	FROM_FENTRY,
	FROM_FEXIT,
};

/* Argument N (0-based) of the probed function or probe; 0 when it cannot be read. */
static __always_inline __u64 probe_arg(void *ctx, enum probe_source from, __u32 n)
{
	struct pt_regs *regs = ctx;
	__u64 v = 0;
	long l = 0;

	switch (from) {
	case FROM_UPROBE: {
		/*
		 * Loaded before choosing: clang would otherwise fold the cases into one load at a
		 * computed offset, and the verifier allows only constant offsets into the context.
		 */
		__u64 a0 = regs->di, a1 = regs->si, a2 = regs->dx, a3 = regs->cx, a4 = regs->r8,
		      a5 = regs->r9;

		barrier_var(a0);
		barrier_var(a1);
		barrier_var(a2);
		barrier_var(a3);
		barrier_var(a4);
		barrier_var(a5);
		switch (n) {
		case 0: return a0;
		case 1: return a1;
		case 2: return a2;
		case 3: return a3;
		case 4: return a4;
		case 5: return a5;
		}
		return 0;
	}
	case FROM_USDT:
		if (bpf_usdt_arg(ctx, n, &l) < 0)
			return 0;
		return l;
	case FROM_FENTRY:
	case FROM_FEXIT:
		if (bpf_get_func_arg(ctx, n, &v) < 0)
			return 0;
		return v;
	default:
		return 0;
	}
}

static __always_inline __u64 probe_ret(void *ctx, enum probe_source from)
{
	__u64 v = 0;

	if (from == FROM_UPROBE)
		return ((struct pt_regs *)ctx)->ax;
	if (from == FROM_FEXIT && bpf_get_func_ret(ctx, &v) == 0)
		return v;
	return 0;
}

static __always_inline void probe_args(void *ctx, enum probe_source from, struct probe_spec *sp,
				       struct rec_probe *r, __u8 *data)
{
	int n = SYSTING_PROBE_ARGS;

	if (from == FROM_USDT) {
		n = bpf_usdt_arg_cnt(ctx);
		if (n < 0)
			n = 0;
	}
	r->nargs = 0;
	for (int i = 0; i < SYSTING_PROBE_ARGS; i++) {
		__u64 v = 0;

		if (i >= n) {
			r->args[i] = 0;
			continue;
		}
		if (sp->arg_type[i] != PROBE_ARG_NONE)
			r->nargs = i + 1;
		switch (sp->arg_type[i]) {
		case PROBE_ARG_LONG:
			v = probe_arg(ctx, from, sp->arg_index[i]);
			break;
		case PROBE_ARG_RETVAL:
			v = probe_ret(ctx, from);
			break;
		case PROBE_ARG_STRING:
			v = probe_arg(ctx, from, sp->arg_index[i]);
			if (!data)
				break;
			/* Ring memory is not cleared: a failed read leaves an empty string. */
			if ((sp->kernel ? bpf_probe_read_kernel_str(data + i * SYSTING_PROBE_STRING_LEN,
								    SYSTING_PROBE_STRING_LEN,
								    (void *)v) :
					  bpf_probe_read_user_str(data + i * SYSTING_PROBE_STRING_LEN,
								  SYSTING_PROBE_STRING_LEN,
								  (void *)v)) < 0)
				data[i * SYSTING_PROBE_STRING_LEN] = 0;
			break;
		}
		r->args[i] = v;
	}
}

/* The event's numeric arguments, for the ranges it starts or ends (strings: their address). */
static __always_inline void probe_values(void *ctx, enum probe_source from, struct probe_spec *sp,
					 __u64 *v)
{
	for (int i = 0; i < SYSTING_PROBE_ARGS; i++) {
		switch (sp->arg_type[i]) {
		case PROBE_ARG_LONG:
		case PROBE_ARG_STRING:
			v[i] = probe_arg(ctx, from, sp->arg_index[i]);
			break;
		case PROBE_ARG_RETVAL:
			v[i] = probe_ret(ctx, from);
			break;
		default:
			v[i] = 0;
		}
	}
}

struct rec_probe_data {
	struct rec_probe r;
	__u8 data[SYSTING_PROBE_DATA_LEN];
};

static __always_inline __u64 range_scope(struct probe_spec *sp, struct task_struct *task)
{
	if (sp->scope == PROBE_SCOPE_PROCESS)
		return task->tgid;
	if (sp->scope == PROBE_SCOPE_CPU)
		return bpf_get_smp_processor_id();
	return task->pid;
}

/* SP's event ends its range: the range's innermost open start pairs with it. */
static __always_inline void range_close(struct probe_spec *sp, struct task_struct *task, __u64 ts,
				       __u64 *args)
{
	struct range_key key = { .range = sp->range_end - 1, .scope = range_scope(sp, task) };
	struct range_open *open = bpf_map_lookup_elem(&open_ranges, &key);
	struct probe_range *pr;
	struct rec_range *r;
	__u32 d;
	void *rb;

	if (!open || !open->depth) {
		range_miss(key.range, 0);
		return;
	}
	d = --open->depth;
	r = reserve(&rb, REC_RANGE, sizeof(*r), ts);
	if (!r)
		return;
	r->pid = task->pid;
	r->tgid = task->tgid;
	r->range = key.range;
	r->cpu = bpf_get_smp_processor_id();
	r->start_ts = open->start_ts[d & (SYSTING_RANGE_DEPTH - 1)];
	r->depth = d;
	r->flags = 0;
	for (int i = 0; i < SYSTING_PROBE_ARGS; i++) {
		r->start_args[i] = open->start_args[d & (SYSTING_RANGE_DEPTH - 1)][i];
		r->end_args[i] = args[i];
	}
	pr = bpf_map_lookup_elem(&probe_ranges, &key.range);
	if (pr && pr->stop_ns && ts - r->start_ts > pr->stop_ns)
		r->flags |= RANGE_STOP;
	submit(rb, r, sizeof(*r));
}

/* SP's event starts its range: one more open start in its scope. */
static __always_inline void range_open(struct probe_spec *sp, struct task_struct *task, __u64 ts,
				      __u64 *args)
{
	struct range_key key = { .range = sp->range_start - 1, .scope = range_scope(sp, task) };
	struct range_open *open = bpf_map_lookup_elem(&open_ranges, &key), *empty;
	__u32 zero = 0;
	bool made;

	if (!open) {
		empty = bpf_map_lookup_elem(&range_fresh, &zero);
		if (!empty)
			return;
		made = bpf_map_update_elem(&open_ranges, &key, empty, BPF_NOEXIST) == 0;
		open = bpf_map_lookup_elem(&open_ranges, &key);
		if (!open) {
			range_miss(key.range, 1);
			return;
		}
		if (made)
			open->tgid = task->tgid;
	}
	if (open->depth >= SYSTING_RANGE_DEPTH) {
		range_miss(key.range, 1);
		return;
	}
	open->start_ts[open->depth & (SYSTING_RANGE_DEPTH - 1)] = ts;
	for (int i = 0; i < SYSTING_PROBE_ARGS; i++)
		open->start_args[open->depth & (SYSTING_RANGE_DEPTH - 1)][i] = args[i];
	open->depth++;
}

/* A function of its own: inlined, the stack's locals and the event's would not fit one frame. */
static __noinline int probe_stack(void *ctx, __u64 ts, struct task_struct *task, bool user_mode,
				  __u32 event)
{
	if (!ctx || !task)
		return 0;
	return emit_stack(ctx, ts, task->pid, task->tgid, STACK_PROBE,
			  user_mode ? STACK_FLAG_USER_MODE : 0, task->mm != NULL, true, SLOT_PROBE,
			  event, 0);
}

static __always_inline int probe_hit(void *ctx, enum probe_source from, __u32 event)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 ts = bpf_ktime_get_boot_ns();
	struct probe_spec *sp;
	struct rec_probe *r;
	__u8 *data = NULL;
	void *rb;

	if (is_tracer(task) || !traced(task))
		return 0;
	sp = bpf_map_lookup_elem(&probe_specs, &event);
	if (!sp)
		return 0;
	if (!state.recording)
		return 0;
	if (sp->stack)
		probe_stack(ctx, ts, task, from == FROM_UPROBE || from == FROM_USDT, event);
	if (sp->range_end || sp->range_start) {
		__u64 args[SYSTING_PROBE_ARGS];

		probe_values(ctx, from, sp, args);
		/* An end first: an event that ends one range and starts another (a loop's step). */
		if (sp->range_end)
			range_close(sp, task, ts, args);
		if (sp->range_start)
			range_open(sp, task, ts, args);
	}
	if (!sp->instant)
		return 0;
	if (sp->data_len) {
		struct rec_probe_data *d;

		d = reserve(&rb, REC_PROBE, sizeof(*d), ts);
		if (!d)
			return 0;
		r = &d->r;
		data = d->data;
		r->data_len = SYSTING_PROBE_DATA_LEN;
	} else {
		r = reserve(&rb, REC_PROBE, sizeof(*r), ts);
		if (!r)
			return 0;
		r->data_len = 0;
	}
	r->pid = task->pid;
	r->tgid = task->tgid;
	r->event = event;
	if (from == FROM_TRACEPOINT) {
		for (int i = 0; i < SYSTING_PROBE_ARGS; i++)
			r->args[i] = 0;
		r->nargs = 0;
		if (data)
			bpf_probe_read_kernel(data, sp->data_len & (SYSTING_PROBE_DATA_LEN - 1) ?:
						    SYSTING_PROBE_DATA_LEN, ctx);
	} else {
		probe_args(ctx, from, sp, r, data);
	}
	submit(rb, r, data ? sizeof(struct rec_probe_data) : sizeof(*r));
	return 0;
}

SEC("uprobe")
int probe_uprobe(struct pt_regs *ctx)
{
	return probe_hit(ctx, FROM_UPROBE, bpf_get_attach_cookie(ctx));
}

SEC("usdt")
int probe_usdt(struct pt_regs *ctx)
{
	return probe_hit(ctx, FROM_USDT, bpf_usdt_cookie(ctx));
}

SEC("tracepoint")
int probe_tracepoint(void *ctx)
{
	return probe_hit(ctx, FROM_TRACEPOINT, bpf_get_attach_cookie(ctx));
}

static __always_inline int probe_slot(void *ctx, enum probe_source from, __u32 slot)
{
	__u32 *event = bpf_map_lookup_elem(&probe_slots, &slot);

	return event ? probe_hit(ctx, from, *event) : 0;
}

#define PROBE_SLOT(n)                                                                      \
	SEC("fentry")                                                                      \
	int probe_fentry##n(void *ctx) { return probe_slot(ctx, FROM_FENTRY, n); }         \
	SEC("fexit")                                                                       \
	int probe_fexit##n(void *ctx) { return probe_slot(ctx, FROM_FEXIT, SYSTING_PROBE_SLOTS + n); }

PROBE_SLOT(0)
PROBE_SLOT(1)
PROBE_SLOT(2)
PROBE_SLOT(3)
PROBE_SLOT(4)
PROBE_SLOT(5)
PROBE_SLOT(6)
PROBE_SLOT(7)
