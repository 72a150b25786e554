// SPDX-License-Identifier: GPL-2.0
/* cpu-frequency: every frequency change cpufreq reports (power:cpu_frequency). */

SEC("tp_btf/cpu_frequency")
int BPF_PROG(on_cpu_frequency, unsigned int khz, unsigned int cpu)
{
	struct rec_cpu_frequency *r;
	void *rb;

	r = reserve(&rb, REC_CPU_FREQUENCY, sizeof(*r), bpf_ktime_get_boot_ns());
	if (!r)
		return 0;
	r->cpu = cpu;
	r->khz = khz;
	submit(rb, r, sizeof(*r));
	return 0;
}
