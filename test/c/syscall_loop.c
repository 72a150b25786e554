// SPDX-License-Identifier: GPL-2.0
/*
 * A thread of its own makes exactly N getppid() calls (raw syscalls, so that
 * libc can neither cache nor add any), then one close(-1), which fails with
 * EBADF. The main thread waits for it and exits.
 *
 * usage: syscall_loop N
 * prints {"pid":…,"tid":…,"ppid":…,"calls":N,"ns_per_call":…}
 * (the loop's own time: the benchmark's figure).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long calls;
static pid_t tid;
static long ppid;
static double ns_per_call;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *loop(void *arg)
{
	double t0;

	(void)arg;
	tid = syscall(SYS_gettid);
	t0 = now_ns();
	for (long i = 0; i < calls; i++)
		ppid = syscall(SYS_getppid);
	ns_per_call = (now_ns() - t0) / (calls ? calls : 1);
	syscall(SYS_close, -1);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc != 2 || (calls = atol(argv[1])) < 0) {
		fprintf(stderr, "usage: syscall_loop N\n");
		return 2;
	}
	if (pthread_create(&t, NULL, loop, NULL) != 0 || pthread_join(t, NULL) != 0) {
		perror("pthread");
		return 1;
	}
	printf("{\"pid\":%d,\"tid\":%d,\"ppid\":%ld,\"calls\":%ld,\"ns_per_call\":%.1f}\n",
	       getpid(), tid, ppid, calls, ns_per_call);
	return 0;
}
