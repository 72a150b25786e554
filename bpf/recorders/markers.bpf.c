// SPDX-License-Identifier: GPL-2.0
/*
 * markers: instants and ranges a program marks itself with no library, one faccessat2(2) call
 * each: faccessat2(-1, "Track:Event", SYSTING_MARKER_MAGIC | kind, 0). The kernel refuses that
 * mode at once (EINVAL: only the low 3 bits are permissions), so a marker costs the program a
 * system call that touches no file, traced or not. Its own tracepoint fires for nothing else.
 */

/* The sys_enter_faccessat2 record, as its format file lays it out. */
struct faccessat2_enter {
	__u64 common;
	__s32 nr;
	__u32 __pad0;
	__u64 dfd;
	__u64 filename;
	__u64 mode;
	__u64 flags;
};

SEC("tracepoint/syscalls/sys_enter_faccessat2")
int on_marker(struct faccessat2_enter *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 mode = ctx->mode, kind = mode & 0xffff;
	struct rec_marker *r;
	void *rb;

	if ((mode & 0xffff0000) != SYSTING_MARKER_MAGIC || kind < MARKER_INSTANT || kind > MARKER_END)
		return 0;
	if (is_tracer(task) || !traced(task))
		return 0;
	r = reserve(&rb, REC_MARKER, sizeof(*r), bpf_ktime_get_boot_ns());
	if (!r)
		return 0;
	r->pid = task->pid;
	r->tgid = task->tgid;
	r->kind = kind;
	r->__pad0 = 0;
	if (bpf_probe_read_user_str(r->text, sizeof(r->text), (void *)ctx->filename) < 0)
		r->text[0] = 0;
	submit(rb, r, sizeof(*r));
	return 0;
}
