/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which tasks a filtered recording traces (-p, -c, -- CMD): traced() for every program that
 * records a task's own events, switch_verdict() for the programs on sched_switch, and the
 * program that passes a traced process's mark on to the processes it forks. With
 * cfg.filter_bits 0 (no filter) the verifier sees every check fold to "traced" and drops it.
 */
#ifndef SYSTING_FILTER_BPF_H
#define SYSTING_FILTER_BPF_H

#define CLONE_THREAD 0x10000

/*
 * The tasks traced by mark (-p, -- CMD): userspace marks the threads of each -p process
 * through pidfds, filter_newtask every task a marked one creates. The mark lives and dies with
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
		__u64 addr = 0, at = 0;
		__s32 ssid;
		__u32 level;

		if (i >= cfg.cgroup_count)
			break;
		ssid = cfg.cgroups[i].ssid;
		level = cfg.cgroups[i].level;
		/* Read as numbers: a pointer may not be indexed by a variable. */
		if (ssid < 0) {
			bpf_probe_read_kernel(&addr, sizeof(addr), &cs->dfl_cgrp);
		} else {
			bpf_probe_read_kernel(&addr, sizeof(addr), &cs->subsys[ssid & 15]);
			if (addr)
				addr = (__u64)kernel_ptr(cgroup_subsys_state, addr)->cgroup;
		}
		if (!addr || kernel_ptr(cgroup, addr)->level < (int)level)
			continue;
		bpf_probe_read_kernel(&at, sizeof(at),
				      (void *)(addr + bpf_core_field_offset(struct cgroup, ancestors) +
					       (__u64)(level & 255) * sizeof(void *)));
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

#define VERDICT_KNOWN 1
#define VERDICT_PREV 2 /* the task switched out is traced */
#define VERDICT_NEXT 4 /* the task switched in is traced */

/* Which side of this switch is traced, worked out once for every program on it. */
static __always_inline __u32 switch_verdict(struct cpu_switch *c, struct task_struct *prev,
					    struct task_struct *next)
{
	__u32 v;

	if (!filtering())
		return VERDICT_PREV | VERDICT_NEXT;
	if (c && c->verdict)
		return c->verdict;
	v = VERDICT_KNOWN | (traced(prev) ? VERDICT_PREV : 0) | (traced(next) ? VERDICT_NEXT : 0);
	if (c)
		c->verdict = v;
	return v;
}

/*
 * A task created by a traced one is traced, from before it first runs: its threads, and the
 * processes it forks. While the tracer starts `-- CMD` (state.adopt), so is the process it
 * forks for it.
 */
SEC("tp_btf/task_newtask")
int BPF_PROG(filter_newtask, struct task_struct *task, u64 clone_flags)
{
	struct task_struct *parent = bpf_get_current_task_btf();
	bool adopted = state.adopt && !(clone_flags & CLONE_THREAD) && is_tracer(parent);

	if (adopted || bpf_task_storage_get(&traced_tasks, parent, 0, 0))
		bpf_task_storage_get(&traced_tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	return 0;
}

#endif /* SYSTING_FILTER_BPF_H */
