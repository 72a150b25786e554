// SPDX-License-Identifier: GPL-2.0
/*
 * Sleeps that are short but end in a long wait to run: the main thread sleeps
 * COUNT times for SLEEP_US in nanosleep, pinned to CPU next to a SCHED_FIFO
 * hog that spins 10 ms and sleeps 10 ms. A sleep whose timer fires while the
 * hog spins is woken on time but runs only when the hog sleeps: blocked for
 * SLEEP_US, then runnable for up to 10 ms.
 *
 * usage: busy_sleeper CPU [COUNT] [SLEEP_US]
 * prints {"tid":…,"hog_tid":…,"sleeps":COUNT,"sleep_us":SLEEP_US}
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int done;
static pid_t hog_tid;
static int cpu;

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
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
	hog_tid = syscall(SYS_gettid);
	pin();
	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
		perror("sched_setscheduler");
		exit(1);
	}
	while (!atomic_load(&done)) {
		long long until = mono_ns() + 10000000;

		while (mono_ns() < until)
			;
		nanosleep(&rest, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long count, sleep_us;
	struct timespec nap;
	pthread_t t;

	if (argc < 2) {
		fprintf(stderr, "usage: busy_sleeper CPU [COUNT] [SLEEP_US]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	count = argc > 2 ? atol(argv[2]) : 100;
	sleep_us = argc > 3 ? atol(argv[3]) : 2000;
	nap.tv_sec = sleep_us / 1000000;
	nap.tv_nsec = (sleep_us % 1000000) * 1000;
	pin();
	if (pthread_create(&t, NULL, hog, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	for (long i = 0; i < count; i++)
		nanosleep(&nap, NULL);
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	printf("{\"tid\":%ld,\"hog_tid\":%d,\"sleeps\":%ld,\"sleep_us\":%ld}\n", syscall(SYS_gettid),
	       hog_tid, count, sleep_us);
	return 0;
}
