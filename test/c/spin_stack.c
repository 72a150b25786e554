// SPDX-License-Identifier: GPL-2.0
/*
 * A known call chain for CPU samples: main → middle → leaf, where leaf spins
 * on the CPU for MS milliseconds of this thread's CPU time (default 1500).
 * Built -O0 -fno-omit-frame-pointer so a frame-pointer walk sees every frame;
 * noinline keeps the three functions apart at any level. The clock is read
 * only every few hundred thousand iterations, so nearly every sample lands in
 * leaf itself rather than in the vDSO. Prints {"pid":…,"cpu_ns":…,
 * "start":boot_ns,"end":boot_ns}, cpu_ns being the CPU time of the whole
 * process, start and end the spin's CLOCK_BOOTTIME (the trace's clock).
 *
 * usage: spin_stack [MS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long long boot_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((noinline)) unsigned long leaf(long ms)
{
	volatile unsigned long sink = 0;
	double end = cpu_ms() + ms;

	do {
		for (int i = 0; i < 200000; i++)
			sink = sink * 31 + i;
	} while (cpu_ms() < end);
	return sink;
}

__attribute__((noinline)) unsigned long middle(long ms)
{
	return leaf(ms) + 1;
}

__attribute__((noinline)) int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 1500;
	long long start = boot_ns();
	unsigned long r = middle(ms);
	long long end = boot_ns();
	struct timespec cpu;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	printf("{\"pid\":%d,\"cpu_ns\":%lld,\"start\":%lld,\"end\":%lld,\"sink\":%lu}\n",
	       (int)getpid(), cpu.tv_sec * 1000000000LL + cpu.tv_nsec, start, end, r & 1);
	return 0;
}
