/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Python frames for the stacks of known Python processes (src/python/ finds them, and where
 * their interpreter version keeps things). The walk finds the thread's state among its
 * interpreter's threads, then follows its frames, leaf first: each a code object, a fingerprint
 * against address reuse, and where in the bytecode it is. A code object not yet told to
 * userspace goes out once as a rec_py_code with its names and location table, so that its
 * frames stay named after the process is gone. Every read of the interpreter's memory may fail
 * (a page not present, a process changing under us): the walk then stops and says so.
 */

/* Python processes, by tgid (userspace adds them; fork copies, exec makes them stale). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct py_proc);
} py_procs SEC(".maps");

/* Interpreter executables userspace has seen: their execs are Python processes at once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 256);
	__type(key, struct py_exe_key);
	__type(value, struct py_exe);
} py_exes SEC(".maps");

/* When each process last exec'd: a py_proc seen before that describes the old image. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} py_execs SEC(".maps");

/* A thread's state, once found; 0 when it has none (looked for again after a while). */
struct py_thread {
	__u64 tstate;
	__u64 looked_ts;
	__u32 misses; /* searches in a row that found none */
	__u32 __pad0;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct py_thread);
} py_threads SEC(".maps");

struct py_code_key {
	__u32 tgid;
	__u32 __pad0;
	__u64 code;
};

/* The code objects userspace has been told about, with the fingerprint it was told. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct py_code_key);
	__type(value, __u64);
} py_known SEC(".maps");

/* rec_py_code assembly, one per stack scratch slot (a sample may interrupt a switch). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSTING_STACK_SLOTS);
	__type(key, __u32);
	__type(value, struct rec_py_code);
} py_code_scratch SEC(".maps");

/*
 * A thread without a state is looked for again after a while: it may become one. A new
 * thread's first samples come before its interpreter has told its state its id, so the wait
 * starts at 1 ms and doubles with each search that finds none, up to PY_RELOOK_NS: a Python
 * thread is named from its next sample on, and a thread that never runs Python costs a search
 * per 100 ms.
 */
#define PY_RELOOK_FIRST_NS 1000000ULL
#define PY_RELOOK_NS 100000000ULL
/*
 * An exec's tracepoint fires after the new image is mapped, so the exec that made the mapping
 * userspace saw comes a little after it: only a later one makes the entry stale.
 */
#define PY_EXEC_GRACE_NS 50000000ULL

static __always_inline __u64 py_read_ptr(__u64 addr)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr) < 0)
		return 0;
	return v;
}

/* Thread states one thread may have: one per interpreter it has run (sub-interpreters). */
#define PY_TSTATES 4

struct py_search {
	__u64 interp;
	__u64 tstate;
	__u32 tid;
	__u32 in_interp; /* threads looked at in this interpreter */
	__u32 interps;
	__u32 nfound;
	__u64 found[PY_TSTATES]; /* newest interpreter first: the innermost run first */
};

/* A bpf_loop context (on the stack, as it must be): pointers kept in a map would lose their type. */
struct py_search_ctx {
	struct py_search *w; /* in py_scratch */
	struct py_offsets *off;
};

/* One step of the search for TID's state: the next thread, or the next interpreter's first. */
static long py_search_step(__u64 i, struct py_search_ctx *ctx)
{
	struct py_search *w = ctx->w;
	struct py_offsets *off = ctx->off;
	__u32 tid = 0;

	if (!w->tstate || w->in_interp >= SYSTING_PY_THREADS) {
		if (w->interps >= SYSTING_PY_INTERPRETERS)
			return 1;
		if (w->interps > 0)
			w->interp = py_read_ptr(w->interp + off->interp_next);
		w->interps++;
		if (!w->interp)
			return 1;
		w->tstate = py_read_ptr(w->interp + off->interp_threads);
		w->in_interp = 0;
		return 0;
	}
	if (bpf_probe_read_user(&tid, sizeof(tid), (void *)(w->tstate + off->tstate_native_tid)) == 0 &&
	    tid == w->tid) {
		w->found[w->nfound & (PY_TSTATES - 1)] = w->tstate;
		if (++w->nfound >= PY_TSTATES)
			return 1;
		w->tstate = 0; /* at most one per interpreter: on to the next */
		return 0;
	}
	w->in_interp++;
	w->tstate = py_read_ptr(w->tstate + off->tstate_next);
	return 0;
}

/* The state of the current thread TID in process PROC, or 0, remembered per thread (for a
 * process with one interpreter, whose list starts at HEAD). */
static __always_inline __u64 py_thread_state(struct py_proc *proc, __u32 tid, __u64 ts, __u64 head,
					     struct py_search *w)
{
	struct py_thread *t = bpf_map_lookup_elem(&py_threads, &tid), fresh = {};
	struct py_search_ctx ctx = { .w = w, .off = &proc->off };
	__u32 seen = 0, k;

	if (t) {
		if (t->tstate &&
		    bpf_probe_read_user(&seen, sizeof(seen),
					(void *)(t->tstate + proc->off.tstate_native_tid)) == 0 &&
		    seen == tid)
			return t->tstate;
		k = t->misses > 8 ? 8 : t->misses;
		if (!t->tstate && ts - t->looked_ts < PY_RELOOK_NS &&
		    ts - t->looked_ts < (PY_RELOOK_FIRST_NS << k) >> 1)
			return 0;
		fresh.misses = t->misses;
	}
	w->interp = head;
	w->in_interp = 0;
	w->interps = 0;
	if (w->interp) {
		w->tstate = py_read_ptr(w->interp + proc->off.interp_threads);
		w->interps = 1;
		bpf_loop(SYSTING_PY_INTERPRETERS * (SYSTING_PY_THREADS + 1), (void *)py_search_step, &ctx,
			 0);
	}
	fresh.tstate = w->nfound ? w->found[0] : 0;
	fresh.looked_ts = ts;
	fresh.misses = fresh.tstate ? 0 : fresh.misses + 1;
	bpf_map_update_elem(&py_threads, &tid, &fresh, BPF_ANY);
	return fresh.tstate;
}

/*
 * The states of the current thread TID in process PROC into W->found (W->nfound of them). With
 * one interpreter, the one state is remembered per thread; with sub-interpreters, the thread
 * may have one in each (the newest interpreter's first: the innermost run), looked for every
 * time.
 */
static __always_inline void py_thread_states(struct py_proc *proc, __u32 tid, __u64 ts,
					     struct py_search *w)
{
	__u64 head = py_read_ptr(proc->runtime + proc->off.runtime_interpreters);
	struct py_search_ctx ctx = { .w = w, .off = &proc->off };

	w->tid = tid;
	w->nfound = 0;
	if (head && py_read_ptr(head + proc->off.interp_next)) {
		w->interp = head;
		w->tstate = py_read_ptr(head + proc->off.interp_threads);
		w->interps = 1;
		w->in_interp = 0;
		bpf_loop(SYSTING_PY_INTERPRETERS * (SYSTING_PY_THREADS + 1), (void *)py_search_step, &ctx,
			 0);
		return;
	}
	w->found[0] = py_thread_state(proc, tid, ts, head, w);
	w->nfound = w->found[0] ? 1 : 0;
}

/* The bytes of a unicode object's text (its raw form: userspace decodes by state) into DST. */
static __always_inline __u16 py_string(struct py_offsets *off, __u64 obj, __u8 *dst, __u32 cap,
				       __u8 *state)
{
	__u64 length = 0, n;
	__u8 st = 0, kind;

	*state = 0;
	if (!obj || bpf_probe_read_user(&st, 1, (void *)(obj + off->unicode_state)) < 0 ||
	    bpf_probe_read_user(&length, sizeof(length), (void *)(obj + off->unicode_length)) < 0)
		return 0;
	*state = st;
	if (!(st & 0x20)) /* not compact: its text is elsewhere, left unnamed */
		return 0;
	kind = st & 0x40 ? 1 : (st >> 2) & 7;
	if (kind != 1 && kind != 2 && kind != 4)
		return 0;
	n = length * kind;
	if (n > cap)
		n = cap;
	if (n > SYSTING_PY_FILE_LEN)
		return 0;
	if (bpf_probe_read_user(dst, n, (void *)(obj + (st & 0x40 ? off->unicode_ascii_data :
								  off->unicode_compact_data))) < 0)
		return 0;
	return n;
}

/* A code object as a frame found it. */
struct py_code_seen {
	__u64 code;
	__u64 fingerprint;
	__u64 qualname;
	__u64 filename;
	__u32 firstlineno;
	__u32 slot;
};

/* Tells userspace about C in process TGID; false if the record could not be sent. */
/* Global (verified once, not at every call): the C loop of a stack walk calls it per new code. */
__noinline int py_send_code(struct py_offsets *off, __u32 tgid, struct py_code_seen *c)
{
	__u32 cpu = bpf_get_smp_processor_id(), slot;
	__u64 table, size = 0, n;
	struct rec_py_code *r;
	void *rb;

	if (!c || !off)
		return 0;
	slot = c->slot;
	r = bpf_map_lookup_elem(&py_code_scratch, &slot);
	rb = bpf_map_lookup_elem(&rings, &cpu);
	if (!r || !rb)
		return 0;
	r->tgid = tgid;
	r->firstlineno = c->firstlineno;
	r->code = c->code;
	r->fingerprint = c->fingerprint;
	r->bytecode = off->code_bytecode;
	r->__pad0 = 0;
	r->name_len = py_string(off, c->qualname, r->data, SYSTING_PY_NAME_LEN, &r->name_state);
	r->file_len = py_string(off, c->filename, r->data + SYSTING_PY_NAME_LEN, SYSTING_PY_FILE_LEN,
				&r->file_state);
	table = py_read_ptr(c->code + off->code_linetable);
	if (table)
		bpf_probe_read_user(&size, sizeof(size), (void *)(table + off->bytes_size));
	n = size > SYSTING_PY_LINES_LEN ? SYSTING_PY_LINES_LEN : size;
	if (!table || bpf_probe_read_user(r->data + SYSTING_PY_NAME_LEN + SYSTING_PY_FILE_LEN, n,
					  (void *)(table + off->bytes_data)) < 0)
		n = 0;
	r->lines_len = n;
	r->lines_total = size > 0xffffffff ? 0xffffffff : size;
	r->hdr.kind = REC_PY_CODE;
	r->hdr.size = sizeof(*r);
	r->hdr.lost = 0;
	r->hdr.ts = bpf_ktime_get_boot_ns();
	if (bpf_ringbuf_output(rb, r, sizeof(*r), 0) < 0) {
		count_drop(REC_PY_CODE);
		return 0;
	}
	return 1;
}

/* Room for a stack's Python frames: what py_walk may write. */
struct py_frames {
	struct py_frame f[SYSTING_PY_FRAMES];
};

struct py_walk {
	__u64 frame;
	__u32 tgid;
	__u32 n;
	__u32 slot;
	__u8 status;
};

/*
 * What a walk works in, one per stack scratch slot (a sample may interrupt a switch's walk).
 * Not on the stack: a program's frame, the stack emitter's, the walk's, a frame step's and
 * py_send_code's must fit 512 bytes together where the kernel gives programs no stack of
 * their own per function (some kernels do, not every one). bpf_loop's callbacks reach it
 * through py_walk_ctx, on the stack with the pointers a map value cannot keep typed.
 */
struct py_scratch {
	struct py_search states;
	struct py_walk w;
	__u8 head[96];    /* the start of a frame */
	__u8 codebuf[96]; /* a code object's name, file and first line */
	__u64 qtext[8];   /* a name's length and first characters */
	struct py_code_key key;
	struct py_code_seen seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSTING_STACK_SLOTS);
	__type(key, __u32);
	__type(value, struct py_scratch);
} py_scratch SEC(".maps");

struct py_walk_ctx {
	struct py_scratch *sc;
	struct py_proc *proc;
	struct py_frame *out; /* SYSTING_PY_FRAMES of them */
};

/* One frame: record it (and its code object if new), then go to its caller. */
static long py_frame_step(__u64 i, struct py_walk_ctx *ctx)
{
	struct py_scratch *sc = ctx->sc;
	struct py_walk *w = &sc->w;
	__u8 *head = sc->head, *codebuf = sc->codebuf;
	__u64 *qtext = sc->qtext;
	struct py_code_key *key = &sc->key;
	struct py_code_seen *seen = &sc->seen;
	struct py_offsets *off;
	__u64 code, previous, instr, fp, qualname, filename, *known;
	__u32 firstlineno, lo, hi, n = w->n;
	__u8 owner = 0, entry = 0;
	struct py_frame *f;

	if (!ctx->proc || !w->frame)
		return 1;
	off = &ctx->proc->off;
	if (n >= SYSTING_PY_FRAMES) {
		w->status = PY_TRUNCATED;
		return 1;
	}
	if (bpf_probe_read_user(head, sizeof(sc->head), (void *)w->frame) < 0) {
		w->status = PY_READ_FAILED;
		return 1;
	}
	if (off->frame_code > 88 || off->frame_previous > 88 || off->frame_instr > 88 ||
	    off->frame_owner > 95) {
		w->status = PY_READ_FAILED;
		return 1;
	}
	/* Pointers sit at multiples of 8 in the frame, and head starts on one: say so (& ~7). */
	code = *(__u64 *)(head + (off->frame_code & ~7));
	previous = *(__u64 *)(head + (off->frame_previous & ~7));
	instr = *(__u64 *)(head + (off->frame_instr & ~7));
	owner = head[off->frame_owner];
	if (off->frame_is_entry <= 95)
		entry = head[off->frame_is_entry];
	w->frame = previous;
	if (owner == off->owner_cstack) {
		/* The shim the C loop pushes under its first frame (3.12+): that frame is an entry. */
		if (n > 0 && n <= SYSTING_PY_FRAMES) {
			f = &ctx->out[(n - 1) & (SYSTING_PY_FRAMES - 1)];
			f->flags |= PY_FRAME_ENTRY;
		}
		return 0;
	}
	if (!code)
		return 0;
	/* The code object's name, file and first line, in one read of their span (from a multiple of 8). */
	lo = off->code_firstlineno;
	if (off->code_filename < lo)
		lo = off->code_filename;
	if (off->code_qualname < lo)
		lo = off->code_qualname;
	lo &= ~7;
	if (bpf_probe_read_user(codebuf, sizeof(sc->codebuf), (void *)(code + lo)) < 0) {
		w->status = PY_READ_FAILED;
		return 1;
	}
	hi = off->code_firstlineno - lo;
	if (hi > 88)
		return 1;
	firstlineno = *(__u32 *)(codebuf + (hi & ~3));
	hi = off->code_qualname - lo;
	if (hi > 88)
		return 1;
	qualname = *(__u64 *)(codebuf + (hi & ~7));
	hi = off->code_filename - lo;
	if (hi > 88)
		return 1;
	filename = *(__u64 *)(codebuf + (hi & ~7));
	/*
	 * The pointers alone do not tell a reused address apart: a code object freed and another
	 * made in its place may get its name string's old address too. So the name's length, hash,
	 * state and first characters go in as well (one read, from its length on).
	 */
	fp = qualname ^ (filename << 1) ^ firstlineno;
	if (qualname && bpf_probe_read_user(qtext, sizeof(sc->qtext),
					    (void *)(qualname + off->unicode_length)) == 0) {
		for (int j = 0; j < 8; j++)
			fp = (fp ^ qtext[j]) * 0x100000001b3ULL;
	}
	key->tgid = w->tgid;
	key->__pad0 = 0;
	key->code = code;
	known = bpf_map_lookup_elem(&py_known, key);
	if (!known || *known != fp) {
		seen->code = code;
		seen->fingerprint = fp;
		seen->qualname = qualname;
		seen->filename = filename;
		seen->firstlineno = firstlineno;
		seen->slot = w->slot;
		if (py_send_code(off, w->tgid, seen))
			bpf_map_update_elem(&py_known, key, &fp, BPF_ANY);
	}
	f = &ctx->out[n & (SYSTING_PY_FRAMES - 1)];
	f->code = code;
	f->fingerprint = fp;
	f->instr = instr > code && instr - code < 0xffffffff ? instr - code : 0;
	f->flags = entry ? PY_FRAME_ENTRY : 0;
	w->n = n + 1;
	return 0;
}

/*
 * The current thread's Python frames into OUT (room for SYSTING_PY_FRAMES), leaf first; returns
 * how many, and the walk's enum py_status in *status.
 */
__noinline int py_walk(struct py_frames *out, __u32 slot, __u8 *status)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = task->tgid, tid = task->pid, key = slot;
	struct py_walk_ctx ctx;
	struct py_scratch *sc;
	struct py_proc *proc;
	struct py_walk *w;
	__u64 *exec, tstate, cframe;

	if (!status)
		return 0;
	*status = PY_NONE;
	if (!out || !(cfg.stack_bits & CFG_PYTHON))
		return 0;
	proc = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!proc)
		return 0;
	exec = bpf_map_lookup_elem(&py_execs, &tgid);
	if (exec && *exec > proc->since + PY_EXEC_GRACE_NS)
		return 0; /* the image it describes was replaced */
	sc = bpf_map_lookup_elem(&py_scratch, &key);
	if (!sc)
		return 0;
	py_thread_states(proc, tid, bpf_ktime_get_boot_ns(), &sc->states);
	if (!sc->states.nfound) {
		*status = PY_NO_THREAD;
		return 0;
	}
	ctx.sc = sc;
	ctx.proc = proc;
	ctx.out = out->f;
	w = &sc->w;
	w->frame = 0;
	w->tgid = tgid;
	w->n = 0;
	w->slot = slot;
	w->status = PY_OK;
	/* Each state's frames in turn, innermost interpreter first. */
	for (int k = 0; k < PY_TSTATES; k++) {
		if (k >= sc->states.nfound || w->status != PY_OK)
			break;
		tstate = sc->states.found[k & (PY_TSTATES - 1)];
		if (proc->off.tstate_cframe != PY_OFF_NONE) {
			cframe = py_read_ptr(tstate + proc->off.tstate_cframe);
			w->frame = cframe ? py_read_ptr(cframe + proc->off.current_frame) : 0;
		} else {
			w->frame = py_read_ptr(tstate + proc->off.current_frame);
		}
		bpf_loop(SYSTING_PY_FRAMES + 8, (void *)py_frame_step, &ctx, 0);
		if (w->status == PY_OK && w->frame && w->n >= SYSTING_PY_FRAMES)
			w->status = PY_TRUNCATED;
		/* A state's outermost frame was entered from C (the interpreter's own entry). */
		if (w->n > 0 && w->n <= SYSTING_PY_FRAMES)
			ctx.out[(w->n - 1) & (SYSTING_PY_FRAMES - 1)].flags |= PY_FRAME_ENTRY;
	}
	*status = w->status;
	return w->n;
}

/* Process lifecycle (processes.bpf.c): a child inherits its parent's image; exec replaces it. */
static __always_inline void py_forked(__u32 parent_tgid, __u32 child_tgid)
{
	struct py_proc *p;
	__u64 *exec;

	if (parent_tgid == child_tgid)
		return;
	p = bpf_map_lookup_elem(&py_procs, &parent_tgid);
	exec = bpf_map_lookup_elem(&py_execs, &parent_tgid);
	if (p && !(exec && *exec > p->since + PY_EXEC_GRACE_NS))
		bpf_map_update_elem(&py_procs, &child_tgid, p, BPF_ANY);
}

/*
 * Every exec, Python or not: the image an entry describes is gone, and userspace may be about
 * to add what it saw mapped before the exec; the time tells the walk that it no longer holds.
 * An exec of an interpreter userspace already knows makes the entry at once.
 */
static __always_inline void py_execed(struct task_struct *p, __u64 ts)
{
	struct py_exe_key key = {};
	__u32 tgid = p->tgid;
	struct py_exe *exe;
	struct py_proc proc;
	struct file *f;

	bpf_map_delete_elem(&py_procs, &tgid);
	bpf_map_update_elem(&py_execs, &tgid, &ts, BPF_ANY);
	f = BPF_CORE_READ(p, mm, exe_file);
	if (!f)
		return;
	key.ino = BPF_CORE_READ(f, f_inode, i_ino);
	key.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	exe = bpf_map_lookup_elem(&py_exes, &key);
	if (!exe)
		return;
	/* A known interpreter: where its _PyRuntime landed in this process, seen from now on. */
	__builtin_memcpy(&proc, &exe->proc, sizeof(proc));
	proc.runtime += BPF_CORE_READ(p, mm, start_code) - exe->text_vaddr;
	proc.since = ts;
	bpf_map_update_elem(&py_procs, &tgid, &proc, BPF_ANY);
}

static __always_inline void py_exited(__u32 tgid)
{
	bpf_map_delete_elem(&py_procs, &tgid);
	bpf_map_delete_elem(&py_execs, &tgid);
}
