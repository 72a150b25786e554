// SPDX-License-Identifier: GPL-2.0
/*
 * Short sleeps that end on another CPU: a thread sleeps COUNT times (default
 * 1000) for 200 µs in nanosleep while the main thread keeps moving it to the
 * next CPU, so that many sleeps start on one CPU and end (the switch back in)
 * on another. Their stack and sleep-end records then sit in different CPUs'
 * rings and may reach userspace in either order.
 * Prints {"pid":…,"tid":…,"sleeps":COUNT}.
 *
 * usage: migrate_sleep [COUNT]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int done;
static volatile pid_t sleeper_tid;
static long count = 1000;

static void *sleeper(void *arg)
{
	struct timespec ts = { 0, 200000 };

	(void)arg;
	sleeper_tid = (pid_t)syscall(SYS_gettid);
	for (long i = 0; i < count; i++)
		nanosleep(&ts, NULL);
	done = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct timespec ts = { 0, 150000 };
	pthread_t t;

	if (argc > 1)
		count = atol(argv[1]);
	if (pthread_create(&t, NULL, sleeper, NULL)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	for (long i = 0; !done; i++) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(i % ncpu, &set);
		pthread_setaffinity_np(t, sizeof(set), &set);
		nanosleep(&ts, NULL);
	}
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"tid\":%d,\"sleeps\":%ld}\n", (int)getpid(), (int)sleeper_tid, count);
	return 0;
}
