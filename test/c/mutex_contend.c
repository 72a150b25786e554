// SPDX-License-Identifier: GPL-2.0
/*
 * Lock contention with its own account: THREADS threads take one pthread mutex ROUNDS times each
 * and hold it HOLD_US microseconds (spinning), measuring every pthread_mutex_lock call from just
 * before to just after. Waits for a line on stdin first, so that a tracer can attach. Prints
 * {"pid":…,"tids":[…],"wait_ns":…}: wait_ns, the time all threads spent in pthread_mutex_lock.
 *
 * usage: mutex_contend THREADS ROUNDS HOLD_US
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long rounds, hold_ns;
static long long waited[64];
static pid_t tids[64];

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *worker(void *arg)
{
	long i = (long)arg;

	tids[i] = syscall(SYS_gettid);
	for (long r = 0; r < rounds; r++) {
		long long a = now_ns();
		pthread_mutex_lock(&lock);
		long long b = now_ns();
		waited[i] += b - a;
		while (now_ns() - b < hold_ns)
			;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2;
	pthread_t t[64];
	long long total = 0;
	char line[8];

	rounds = argc > 2 ? atol(argv[2]) : 100;
	hold_ns = (argc > 3 ? atol(argv[3]) : 1000) * 1000;
	if (n < 1 || n > 64 || !fgets(line, sizeof(line), stdin))
		return 2;
	for (long i = 0; i < n; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (long i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("{\"pid\":%d,\"tids\":[", getpid());
	for (long i = 0; i < n; i++) {
		printf("%s%d", i ? "," : "", tids[i]);
		total += waited[i];
	}
	printf("],\"wait_ns\":%lld}\n", total);
	return 0;
}
