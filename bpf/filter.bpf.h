/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which tasks a filtered recording traces (-p, -c, -- CMD): traced() for every program that
 * records a task's own events, switch_verdict() for the program on sched_switch, and the
 * part that passes a traced process's mark on to the processes it forks. With
 * cfg.filter_bits 0 (no filter) the verifier sees every check fold to "traced" and drops it.
 */
#ifndef SYSTING_FILTER_BPF_H
#define SYSTING_FILTER_BPF_H

#define CLONE_THREAD 0x10000

/*
 * The tasks traced by mark (-p, -- CMD): userspace marks the threads of each -p process
 * through pidfds, filter_newtask_part every task a marked one creates. The mark lives and dies with
 * the task, so a reused pid is never taken for a traced one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} traced_tasks SEC(".maps");

static __always_inline bool filtering(void)
{
	return cfg.filter_bits != 0;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/*
 * A kernel address read by bpf_probe_read_kernel, as a pointer the program may load from
 * directly (each load faults safely), which is several times cheaper than a helper call each.
 */
#define kernel_ptr(type, addr) \
	((struct type *)bpf_rdonly_cast((void *)(addr), bpf_core_type_id_kernel(struct type)))

/*
 * Whether T is in one of the filter's cgroups or below: its cgroup on that hierarchy has the
 * filter's cgroup among its ancestors (at the filter's level, by kernfs id). Read from the
 * task's css_set, so a task moved, or a cgroup created under a traced one, counts at once.
 */
static __always_inline bool in_cgroups(struct task_struct *t)
{
	struct css_set *cs = t->cgroups;

	for (__u32 i = 0; i < SYSTING_MAX_FILTER_CGROUPS; i++) {
		struct cgroup *cg;
		__u64 at = 0;
		__s32 ssid;
		__u32 level;

		if (i >= cfg.cgroup_count)
			break;
		ssid = cfg.cgroups[i].ssid;
		level = cfg.cgroups[i].level;
		if (ssid < 0)
			cg = cs->dfl_cgrp;
		else
			cg = cs->subsys[ssid]->cgroup;
		if (!cg || cg->level < (int)level)
			continue;
		/* Past the struct's declared end (a flexible array): not for a direct load. */
		bpf_probe_read_kernel(&at, sizeof(at), &cg->ancestors[level]);
		if (at && kernel_ptr(cgroup, at)->kn->id == cfg.cgroups[i].id)
			return true;
	}
	return false;
}

/* Whether T's own events belong in the trace. */
static __always_inline bool traced(struct task_struct *t)
{
	if (!filtering())
		return true;
	if ((cfg.filter_bits & FILTER_TASKS) && bpf_task_storage_get(&traced_tasks, t, 0, 0))
		return true;
	return (cfg.filter_bits & FILTER_CGROUPS) && in_cgroups(t);
}

#define VERDICT_PREV 1 /* the task switched out is traced */
#define VERDICT_NEXT 2 /* the task switched in is traced */

/* Which side of a switch is traced. */
static __always_inline __u32 switch_verdict(struct task_struct *prev, struct task_struct *next)
{
	if (!filtering())
		return VERDICT_PREV | VERDICT_NEXT;
	return (traced(prev) ? VERDICT_PREV : 0) | (traced(next) ? VERDICT_NEXT : 0);
}

/*
 * A task created by a traced one is traced, from before it first runs: its threads, and the
 * processes it forks. While the tracer starts `-- CMD` (state.adopt), so is the process it
 * forks for it.
 */
static __always_inline void filter_newtask_part(struct task_struct *task, u64 clone_flags)
{
	struct task_struct *parent = bpf_get_current_task_btf();
	bool adopted = state.adopt && !(clone_flags & CLONE_THREAD) && is_tracer(parent);

	if (adopted || bpf_task_storage_get(&traced_tasks, parent, 0, 0))
		bpf_task_storage_get(&traced_tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

#endif /* SYSTING_FILTER_BPF_H */
