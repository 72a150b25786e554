// SPDX-License-Identifier: GPL-2.0
/*
 * N calls of uprobe_loop_hit(i), timed by the loop itself: the cost of a probe on that
 * function is the time per call traced less untraced. Waits for a line on stdin first, so that
 * a tracer can attach. Prints {"calls":N,"ns_per_call":…}.
 *
 * usage: uprobe_loop N
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) long uprobe_loop_hit(long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000, s = 0;
	struct timespec a, b;
	char line[8];

	if (!fgets(line, sizeof(line), stdin))
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		s = uprobe_loop_hit(s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("{\"calls\":%ld,\"ns_per_call\":%.1f,\"sum\":%ld}\n", n,
	       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, s);
	return 0;
}
