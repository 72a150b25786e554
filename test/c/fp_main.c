// SPDX-License-Identifier: GPL-2.0
/*
 * Built normally (-O2, with unwind tables): loads the frame-pointer-only
 * library LIB (fp_lib.c) and calls its fp_outer(SECONDS of CPU time), so a
 * CPU sample in fp_spin is main → fp_outer → fp_spin with the library's
 * frames unwindable only through rbp. Prints {"pid":…,"start":boot_ns,
 * "end":boot_ns} (the spin's).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

/* CLOCK_BOOTTIME, the trace's clock: the test judges only samples of the spin. */
static long long boot_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_BOOTTIME, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	void (*fp_outer)(double);
	void *lib;
	long long start, end;

	if (argc < 3) {
		fprintf(stderr, "usage: %s LIB SECONDS\n", argv[0]);
		return 2;
	}
	lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	fp_outer = (void (*)(double))dlsym(lib, "fp_outer");
	if (!fp_outer) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	start = boot_ns();
	fp_outer(atof(argv[2]));
	end = boot_ns();
	sink++;
	printf("{\"pid\":%d,\"start\":%lld,\"end\":%lld}\n", getpid(), start, end);
	return 0;
}
