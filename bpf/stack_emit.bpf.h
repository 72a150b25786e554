/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Writing one stack record (struct rec_stack): the kernel stack, the user stack as a
 * frame-pointer walk and the top of the user stack copied for unwinding. Shared by the stack
 * recorders (bpf/recorders/stacks.bpf.c) and the probes recorder (an event's "stack": true).
 */

/* Scratch slots per CPU: the sampler may interrupt a switch or a probe, and a probe a switch. */
enum stack_slot {
	SLOT_SWITCH = 0,
	SLOT_SAMPLE = 1,
	SLOT_PROBE = 2,
	STACK_SLOTS = SYSTING_STACK_SLOTS,
};

/*
 * Where variable-length stack records are assembled before bpf_ringbuf_output.
 * Too big for a per-CPU array (32 KiB limit): a plain array with STACK_SLOTS slots
 * per CPU, one per kind of program that can interrupt another. Userspace sizes it to the CPU
 * count.
 */
struct stack_scratch {
	struct rec_stack r;
	__u64 frames[2 * SYSTING_MAX_FRAMES];
	/* Room for the Python frames right after the frames, wherever those end. */
	struct py_frame py[SYSTING_PY_FRAMES];
	__u8 copy[SYSTING_MAX_STACK_COPY];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STACK_SLOTS);
	__type(key, __u32);
	__type(value, struct stack_scratch);
} stack_scratch SEC(".maps");

/*
 * Where each thread's stack ends for unwinding (just above its outermost frame), as userspace
 * learnt it from a complete walk: copying past it is copying what no walk reads. Userspace
 * removes an entry a walk shows to be wrong. The first copy that uses an entry stamps it with
 * its thread's start time, so that a later thread with the same id does not use it.
 */
struct stack_top {
	__u64 top;
	__u64 started; /* task->start_time of the thread that used it first (0: not yet) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct stack_top);
} stack_tops SEC(".maps");

/* How many bytes of the stack above sp the copy needs, at most WANT. */
static __always_inline __u64 stack_copy_want(struct task_struct *task, __u64 sp, __u64 want)
{
	__u32 tid = task->pid;
	struct stack_top *t = bpf_map_lookup_elem(&stack_tops, &tid);
	__u64 started = task->start_time;

	if (!t)
		return want;
	if (!t->started)
		t->started = started;
	else if (t->started != started) {
		bpf_map_delete_elem(&stack_tops, &tid); /* another thread's, with the same id */
		return want;
	}
	if (t->top > sp && t->top - sp < want)
		return (t->top - sp + 7) & ~7ULL;
	return want;
}

struct stack_copy {
	__u8 *dst;
	__u64 sp;
	__u64 want;
	__u64 copied;
};

/* One page (or the part of one up to `want`) of a stack copy; 1 stops the loop. */
static long copy_step(__u64 i, struct stack_copy *c)
{
	__u64 addr = c->sp + c->copied, chunk = 4096 - (addr & 4095), off = c->copied;

	if (off >= c->want || off > SYSTING_MAX_STACK_COPY - 4096)
		return 1;
	if (chunk > c->want - off)
		chunk = c->want - off;
	if (chunk > 4096)
		return 1;
	if (bpf_probe_read_user(c->dst + off, chunk, (void *)addr) < 0)
		return 1;
	c->copied = off + chunk;
	return 0;
}

/*
 * Copies up to `want` bytes of the current task's user stack from sp, page by page:
 * bpf_probe_read_user is all-or-nothing, and the top of the stack is often closer than `want`.
 * A loop callback, verified once whatever `want` is (it comes from a map).
 */
static __always_inline __u32 copy_user_stack(__u8 *dst, __u64 sp, __u64 want)
{
	struct stack_copy c = { .dst = dst, .sp = sp, .want = want };

	if (c.want > SYSTING_MAX_STACK_COPY)
		c.want = SYSTING_MAX_STACK_COPY;
	bpf_loop(SYSTING_MAX_STACK_COPY / 4096 + 1, (void *)copy_step, &c, 0);
	return c.copied;
}

/*
 * Stack records vary in length, so they are assembled in scratch memory and
 * copied with bpf_ringbuf_output (reserve needs a constant size). In a uprobe the
 * context's registers are the user's, so the kernel part comes out empty by itself.
 */
static __always_inline bool emit_stack(void *ctx, __u64 ts, __u32 pid, __u32 tgid, __u8 source,
				       __u8 flags, bool user, bool copy, enum stack_slot slot,
				       __u16 probe_event, __u8 weight_shift)
{
	__u32 zero = 0, cpu = bpf_get_smp_processor_id(), key = cpu * STACK_SLOTS + slot;
	struct task_struct *task = bpf_get_current_task_btf();
	struct stack_scratch *s;
	__u64 *pending, lost = 0, size, wake, want = 0;
	long kb, ub = 0;
	__u32 cb = 0, nf = 0, pb = 0;
	__u64 at;
	__u8 py_status = PY_NONE;
	void *rb;

	if (!state.recording)
		return false;
	s = bpf_map_lookup_elem(&stack_scratch, &key);
	rb = bpf_map_lookup_elem(&rings, &cpu);
	if (!s || !rb) {
		count_drop(REC_STACK);
		return false;
	}
	/* Written first: kept live across the calls below, they would spill onto a stack that a
	 * probe program's frame and py_walk's share, 512 bytes in all. */
	s->r.hdr.ts = ts;
	s->r.pid = pid;
	s->r.tgid = tgid;
	s->r.cpu = cpu;
	s->r.source = source;
	s->r.flags = flags;
	s->r.probe_event = probe_event;
	s->r.weight_shift = weight_shift;
	kb = bpf_get_stack(ctx, s->frames, SYSTING_MAX_FRAMES * 8, 0);
	if (kb < 0)
		kb = 0;
	if (kb > SYSTING_MAX_FRAMES * 8)
		kb = SYSTING_MAX_FRAMES * 8;
	kb &= ~7L;
	s->r.user_ip = 0;
	s->r.user_sp = 0;
	s->r.user_bp = 0;
	if (user) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

		s->r.user_ip = regs->ip;
		s->r.user_sp = regs->sp;
		s->r.user_bp = regs->bp;
		if (copy && (cfg.stack_bits & CFG_USER_COPY))
			want = stack_copy_want(task, s->r.user_sp, cfg.stack_copy_bytes);
	}
	/*
	 * A copy that reaches the thread's known stack top holds every frame the frame-pointer
	 * walk would read, and userspace's unwinder follows frame pointers in it through code
	 * without unwind tables: the walk here would add nothing.
	 */
	if (user && (cfg.stack_bits & CFG_USER_FP) && !(want && want < cfg.stack_copy_bytes)) {
		ub = bpf_get_stack(ctx, (void *)s->frames + kb, SYSTING_MAX_FRAMES * 8,
				   BPF_F_USER_STACK);
		if (ub < 0)
			ub = 0;
		if (ub > SYSTING_MAX_FRAMES * 8)
			ub = SYSTING_MAX_FRAMES * 8;
		ub &= ~7L;
	}
	if (user) {
		/* The Python frames go right after the native ones, the stack copy after them. */
		nf = py_walk((struct py_frames *)((__u8 *)s->frames + kb + ub), slot, &py_status);
		if (nf > SYSTING_PY_FRAMES)
			nf = SYSTING_PY_FRAMES;
		pb = nf * sizeof(struct py_frame);
		/* Bounded again where the verifier can see it: the copy fits after any frames. */
		at = kb + ub + pb;
		if (at > sizeof(s->frames) + sizeof(s->py))
			at = sizeof(s->frames) + sizeof(s->py);
		barrier_var(at);
		if (want)
			cb = copy_user_stack((__u8 *)s->frames + at, s->r.user_sp, want);
	}
	size = sizeof(struct rec_stack) + kb + ub + pb + cb;
	s->r.hdr.kind = REC_STACK;
	s->r.hdr.size = size;
	s->r.kernel_frames = (__u64)kb >> 3;
	s->r.user_frames = (__u64)ub >> 3;
	s->r.copy_bytes = cb;
	s->r.py_frames = nf;
	s->r.py_status = py_status;
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

