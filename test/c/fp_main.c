// SPDX-License-Identifier: GPL-2.0
/*
 * Built normally (-O2, with unwind tables): loads the frame-pointer-only
 * library LIB (fp_lib.c) and calls its fp_outer(SECONDS of CPU time), so a
 * CPU sample in fp_spin is main → fp_outer → fp_spin with the library's
 * frames unwindable only through rbp. Prints {"pid":…}.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile unsigned long sink;

int main(int argc, char **argv)
{
	void (*fp_outer)(double);
	void *lib;

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
	fp_outer(atof(argv[2]));
	sink++;
	printf("{\"pid\":%d}\n", getpid());
	return 0;
}
