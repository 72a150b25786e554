// SPDX-License-Identifier: GPL-2.0
/*
 * A fixed amount of CPU work on N threads (default: one per CPU), for
 * measuring what sampling costs a CPU-bound program. Prints the wall time and
 * the CPU time (user + system, all threads): in a VM the wall time swings
 * with the host, while the CPU time the work took is what tracing adds to.
 *
 * usage: cpu_work [ITERATIONS] [THREADS]
 */
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static unsigned long iterations = 400000000UL;

static __attribute__((noinline)) unsigned long mix(unsigned long x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdUL;
	x ^= x >> 33;
	return x;
}

static void *work(void *arg)
{
	unsigned long x = (unsigned long)arg, i;

	for (i = 0; i < iterations; i++)
		x = mix(x + i);
	return (void *)x;
}

int main(int argc, char **argv)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	struct timespec a, b;
	pthread_t t[256];
	long i;

	if (argc > 1)
		iterations = strtoul(argv[1], NULL, 0);
	if (argc > 2)
		n = strtol(argv[2], NULL, 0);
	if (n < 1 || n > 256)
		n = 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, work, (void *)i);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	printf("%.6f %.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
	       ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
		       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return 0;
}
