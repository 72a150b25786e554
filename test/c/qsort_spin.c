// SPDX-License-Identifier: GPL-2.0
/*
 * Built with plain `gcc -O2` (no frame pointers, like Debian's own code):
 * main → a → b → c → qsort → comparator, spinning in the comparator for
 * SECONDS of CPU time (default 1.5: as many samples on a busy machine as on
 * an idle one); then, with a second argument, sleeps in usleep
 * called from the same chain N times. Prints {"pid":…,"start":boot_ns,
 * "end":boot_ns} (the spin's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static double deadline;
static int sleeps;
static long long start, end;

/* CLOCK_BOOTTIME, the trace's clock: the test judges only samples of the spin. */
static long long boot_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_BOOTTIME, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) static int comparator(const void *x, const void *y)
{
	for (int i = 0; i < 20000; i++)
		sink += i;
	return *(const int *)x - *(const int *)y;
}

__attribute__((noinline)) void c(void)
{
	int v[256];

	start = boot_ns();
	while (now() < deadline) {
		for (int i = 0; i < 256; i++)
			v[i] = rand();
		qsort(v, 256, sizeof(v[0]), comparator);
	}
	end = boot_ns();
	for (int i = 0; i < sleeps; i++)
		usleep(2000);
}

__attribute__((noinline)) void b(void)
{
	c();
	sink++;
}

__attribute__((noinline)) void a(void)
{
	b();
	sink++;
}

int main(int argc, char **argv)
{
	deadline = now() + (argc > 1 ? atof(argv[1]) : 1.5);
	sleeps = argc > 2 ? atoi(argv[2]) : 0;
	a();
	printf("{\"pid\":%d,\"start\":%lld,\"end\":%lld}\n", getpid(), start, end);
	return 0;
}
