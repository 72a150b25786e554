// SPDX-License-Identifier: GPL-2.0
/*
 * perf-counters: the counting perf events userspace opened on every CPU, read
 * on that CPU at a fixed interval (on_counters_tick, on a clock event of its
 * own) and at every CPU stack sample (on_cpu_sample calls read_counters).
 */

/* Counter i of CPU c at index i * cfg.counter_stride + c. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(max_entries, 1); /* sized by userspace */
	__type(key, __u32);
	__type(value, __u32);
} counters SEC(".maps");

static __noinline int read_counters(__u64 ts, __u32 reason)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct bpf_perf_event_value v;
	struct rec_counters *r;
	void *rb;

	r = reserve(&rb, REC_COUNTERS, sizeof(*r), ts);
	if (!r)
		return 0;
	r->cpu = cpu;
	r->count = cfg.counter_count;
	r->reason = reason;
	r->failed = 0;
	r->__pad0 = 0;
	for (__u32 i = 0; i < SYSTING_MAX_COUNTERS; i++) {
		r->values[i].value = 0;
		r->values[i].enabled = 0;
		r->values[i].running = 0;
		if (i >= cfg.counter_count)
			continue;
		if (bpf_perf_event_read_value(&counters, i * cfg.counter_stride + cpu, &v,
					      sizeof(v)) < 0) {
			r->failed |= 1u << i;
			continue;
		}
		r->values[i].value = v.counter;
		r->values[i].enabled = v.enabled;
		r->values[i].running = v.running;
	}
	submit(rb, r, sizeof(*r));
	return 0;
}

SEC("perf_event")
int on_counters_tick(struct bpf_perf_event_data *ctx)
{
	if (state.recording)
		read_counters(bpf_ktime_get_boot_ns(), COUNTERS_AT_TICK);
	return 0;
}
