// SPDX-License-Identifier: GPL-2.0
/*
 * Two known sleeps of about MS milliseconds (default 1000), at the same time:
 *
 * - D: the main thread vfork()s; the child sleeps MS before _exit, and the
 *   parent waits for it uninterruptibly in the kernel's vfork completion.
 * - S: a second thread sleeps MS in nanosleep, called from sleeper_s.
 *
 * Both sleeps go through a helper with a frame (nap, vfork_parent): the libc
 * code between it and the syscall keeps no frame pointer, so a frame-pointer
 * walk goes from the syscall's address in libc straight to the return address
 * saved in that helper's frame, i.e. into the helper's caller — sleeper_s and
 * main, the names the test looks for. Built -O0 -fno-omit-frame-pointer.
 *
 * Prints {"pid":…,"vfork_tid":…,"vfork_child":…,"sleeper_tid":…,"sleep_ms":…}.
 *
 * usage: sleep_states [MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long sleep_ms = 1000;
static pid_t sleeper_tid;

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

__attribute__((noinline)) int nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	/* One uninterrupted sleep: a signal would split it into two samples. */
	return nanosleep(&ts, NULL);
}

__attribute__((noinline)) void sleeper_s(void)
{
	sleeper_tid = gettid_();
	if (nap(sleep_ms))
		perror("nanosleep");
}

static void *sleeper_main(void *arg)
{
	(void)arg;
	sleeper_s();
	return NULL;
}

/*
 * The child only calls nanosleep and _exit and never returns from this
 * function, which is what vfork allows: it shares the parent's stack.
 */
__attribute__((noinline)) pid_t vfork_parent(void)
{
	pid_t child = vfork();

	if (child == 0) {
		struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		_exit(0);
	}
	return child;
}

__attribute__((noinline)) int main(int argc, char **argv)
{
	pthread_t t;
	pid_t child;
	int status;

	if (argc > 1)
		sleep_ms = atol(argv[1]);
	if (pthread_create(&t, NULL, sleeper_main, NULL)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	child = vfork_parent();
	if (child < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) {
		fprintf(stderr, "vfork child failed\n");
		return 1;
	}
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"vfork_tid\":%d,\"vfork_child\":%d,\"sleeper_tid\":%d,\"sleep_ms\":%ld}\n",
	       (int)getpid(), (int)gettid_(), (int)child, (int)sleeper_tid, sleep_ms);
	return 0;
}
