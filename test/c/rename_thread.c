// SPDX-License-Identifier: GPL-2.0
/*
 * A thread that renames itself to "renamed-thr" after ~50 ms, then keeps
 * sleeping and spinning for ~100 ms so that it is switched in several times
 * under the new name. Prints {"pid":…,"tid":…}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pid_t tid;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *worker(void *arg)
{
	volatile unsigned long sink = 0;

	(void)arg;
	tid = (pid_t)syscall(SYS_gettid);
	sleep_ms(50);
	if (prctl(PR_SET_NAME, "renamed-thr", 0, 0, 0)) {
		perror("prctl");
		return (void *)1;
	}
	/* Alternate sleeping and spinning: each sleep is a switch out and back in. */
	for (int i = 0; i < 10; i++) {
		double end = now_ms() + 2;

		sleep_ms(8);
		while (now_ms() < end)
			sink++;
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	void *ret;

	if (pthread_create(&t, NULL, worker, NULL)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	pthread_join(t, &ret);
	if (ret)
		return 1;
	printf("{\"pid\":%d,\"tid\":%d}\n", (int)getpid(), (int)tid);
	return 0;
}
