// SPDX-License-Identifier: GPL-2.0
/*
 * A reader blocked in D that must then wait for its CPU: COUNT O_DIRECT reads
 * of 256 KiB at scattered offsets of FILE (each waits for the disk, in D), on
 * CPU next to a SCHED_FIFO hog that spins 10 ms and sleeps 10 ms. The kernel's
 * own account of the reads is the ground truth: over the loop, the time not
 * running (its schedstat cpu time) nor waiting to run (its run_delay) is the
 * time it was blocked.
 *
 * usage: d_reader CPU FILE [COUNT]    (FILE: at least 16 MiB, on a disk)
 * prints {"tid":…,"reads":COUNT,"blocked_ns":…,"wall_ns":…,"cpu_ns":…,
 *         "delay_ns":…,"start":boot_ns,"end":boot_ns}
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (256 << 10) /* large enough that a read's D time dwarfs the tracer's own cost */
#define SPAN (16 << 20)

static atomic_int done;
static int cpu;

static long long clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		perror("sched_setaffinity");
		exit(1);
	}
}

static void *hog(void *arg)
{
	struct sched_param sp = { .sched_priority = 1 };
	struct timespec rest = { 0, 10000000 };

	(void)arg;
	pin();
	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
		perror("sched_setscheduler");
		exit(1);
	}
	while (!atomic_load(&done)) {
		long long until = clock_ns(CLOCK_MONOTONIC) + 10000000;

		while (clock_ns(CLOCK_MONOTONIC) < until)
			;
		nanosleep(&rest, NULL);
	}
	return NULL;
}

/* cpu time and run delay of this thread, from its schedstat. */
static void schedstat(long long *cpu_ns, long long *delay_ns)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", syscall(SYS_gettid));
	f = fopen(path, "r");
	if (!f || fscanf(f, "%lld %lld", cpu_ns, delay_ns) != 2) {
		perror("schedstat");
		exit(1);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	long long c0, d0, c1, d1, w0, w1, b0, b1;
	unsigned int seed = 1;
	long count;
	void *buf;
	pthread_t t;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: d_reader CPU FILE [COUNT]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	count = argc > 3 ? atol(argv[3]) : 200;
	fd = open(argv[2], O_RDONLY | O_DIRECT);
	if (fd < 0 || posix_memalign(&buf, BLOCK, BLOCK) != 0) {
		perror("open");
		return 1;
	}
	pin();
	if (pthread_create(&t, NULL, hog, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	schedstat(&c0, &d0);
	w0 = clock_ns(CLOCK_MONOTONIC);
	b0 = clock_ns(CLOCK_BOOTTIME);
	for (long i = 0; i < count; i++) {
		off_t off = (off_t)(rand_r(&seed) % (SPAN / BLOCK)) * BLOCK;

		if (pread(fd, buf, BLOCK, off) != BLOCK) {
			perror("pread");
			return 1;
		}
	}
	b1 = clock_ns(CLOCK_BOOTTIME);
	w1 = clock_ns(CLOCK_MONOTONIC);
	schedstat(&c1, &d1);
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	printf("{\"tid\":%ld,\"reads\":%ld,\"blocked_ns\":%lld,\"wall_ns\":%lld,\"cpu_ns\":%lld,"
	       "\"delay_ns\":%lld,\"start\":%lld,\"end\":%lld}\n",
	       syscall(SYS_gettid), count, (w1 - w0) - (c1 - c0) - (d1 - d0), w1 - w0, c1 - c0,
	       d1 - d0, b0, b1);
	return 0;
}
