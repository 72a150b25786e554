// SPDX-License-Identifier: GPL-2.0
/*
 * A module with frame pointers but no unwind tables: built as a shared
 * library with -fno-asynchronous-unwind-tables -fno-omit-frame-pointer -g0,
 * so neither .eh_frame nor .debug_frame describes fp_outer or fp_spin.
 * fp_main.c loads it and calls fp_outer → fp_spin, which spins for SECONDS
 * of CPU time (not wall time: the machine may be busy).
 */
#include <time.h>

static volatile unsigned long sink;

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void fp_spin(double seconds)
{
	double deadline = cpu_seconds() + seconds;

	while (cpu_seconds() < deadline)
		for (int i = 0; i < 200000; i++)
			sink += i;
}

__attribute__((noinline)) void fp_outer(double seconds)
{
	fp_spin(seconds);
	sink++;
}
