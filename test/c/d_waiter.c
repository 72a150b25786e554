// SPDX-License-Identifier: GPL-2.0
/*
 * A thread blocked in D that must then wait for its CPU: COUNT vforks, each
 * child sleeping 1 ms on another CPU before it exits, on CPU next to a
 * SCHED_FIFO hog that spins 10 ms and sleeps 10 ms (so the parent is often
 * woken while the hog runs). A vfork parent waits for its child killably
 * (TASK_UNINTERRUPTIBLE | TASK_WAKEKILL, reported as D) whatever the machine,
 * where a read's wait depends on how fast the disk answers (a fast one often
 * answers before the reader is switched out). Children are reaped by the
 * kernel (SIGCHLD ignored), so the parent never sleeps in S. The kernel's own
 * account is the ground truth: over the loop, the time not running (its
 * schedstat cpu time) nor waiting to run (its run_delay) is the time it was
 * blocked.
 *
 * usage: d_waiter CPU [COUNT]
 * prints {"tid":…,"waits":COUNT,"blocked_ns":…,"wall_ns":…,"cpu_ns":…,
 *         "delay_ns":…,"start":boot_ns,"end":boot_ns}
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int done;
static int cpu;
static cpu_set_t elsewhere;

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
	long count;
	pthread_t t;

	if (argc < 2) {
		fprintf(stderr, "usage: d_waiter CPU [COUNT]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	count = argc > 2 ? atol(argv[2]) : 200;
	if (signal(SIGCHLD, SIG_IGN) == SIG_ERR) {
		perror("signal");
		return 1;
	}
	CPU_ZERO(&elsewhere);
	CPU_SET(cpu == 0 ? 1 : 0, &elsewhere);
	pin();
	if (pthread_create(&t, NULL, hog, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	schedstat(&c0, &d0);
	w0 = clock_ns(CLOCK_MONOTONIC);
	b0 = clock_ns(CLOCK_BOOTTIME);
	for (long i = 0; i < count; i++) {
		pid_t pid = vfork();

		if (pid == 0) {
			/* Only raw system calls: the child borrows the parent's memory. */
			struct timespec nap = { 0, 1000000 };

			syscall(SYS_sched_setaffinity, 0, sizeof(elsewhere), &elsewhere);
			syscall(SYS_nanosleep, &nap, NULL);
			_exit(0);
		}
		if (pid < 0) {
			perror("vfork");
			return 1;
		}
	}
	b1 = clock_ns(CLOCK_BOOTTIME);
	w1 = clock_ns(CLOCK_MONOTONIC);
	schedstat(&c1, &d1);
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	printf("{\"tid\":%ld,\"waits\":%ld,\"blocked_ns\":%lld,\"wall_ns\":%lld,\"cpu_ns\":%lld,"
	       "\"delay_ns\":%lld,\"start\":%lld,\"end\":%lld}\n",
	       syscall(SYS_gettid), count, (w1 - w0) - (c1 - c0) - (d1 - d0), w1 - w0, c1 - c0,
	       d1 - d0, b0, b1);
	return 0;
}
