// SPDX-License-Identifier: GPL-2.0
/*
 * Built with plain `gcc -O2`: main → recurse × DEPTH → bottom, each recurse
 * frame holding a 256-byte array (about 280 bytes of stack per level), and
 * bottom spins for SECONDS of CPU time. Prints {"pid":…,"depth":…,
 * "start":boot_ns,"end":boot_ns} (the spin's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static long long start, end;

/* CLOCK_BOOTTIME, the trace's clock: the test judges only samples of the spin. */
static long long boot_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_BOOTTIME, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) static void bottom(double seconds)
{
	double deadline = cpu_seconds() + seconds;

	start = boot_ns();
	while (cpu_seconds() < deadline)
		for (int i = 0; i < 200000; i++)
			sink += i;
	end = boot_ns();
}

__attribute__((noinline)) static unsigned long recurse(int depth, double seconds)
{
	volatile unsigned char buf[256];
	unsigned long r;

	for (int i = 0; i < 256; i++)
		buf[i] = (unsigned char)(depth + i);
	if (depth <= 1)
		bottom(seconds);
	else
		recurse(depth - 1, seconds);
	/* Uses the array after the call: no tail call, the frame stays. */
	r = 0;
	for (int i = 0; i < 256; i += 64)
		r += buf[i];
	return r;
}

int main(int argc, char **argv)
{
	int depth = argc > 1 ? atoi(argv[1]) : 30;
	double seconds = argc > 2 ? atof(argv[2]) : 1;

	sink += recurse(depth, seconds);
	printf("{\"pid\":%d,\"depth\":%d,\"start\":%lld,\"end\":%lld}\n", getpid(), depth, start,
	       end);
	return 0;
}
