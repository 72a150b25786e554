// SPDX-License-Identifier: GPL-2.0
/*
 * Something of every kind a filter decides on, for as long as it runs: it spins about 2 ms in
 * filter_worker_spin (CPU samples), sleeps 1 ms in nanosleep (S-state sleep stacks) and makes
 * one getppid system call, over and over, until SECONDS have passed. Each line read on stdin
 * makes it fork one child doing the same for the rest of the time (a process started while the
 * trace runs); the children's pids go to stdout as they are forked, one per line. If CGROUP_PROCS
 * is given, it first writes its own pid there (joins that cgroup) and exits 3 if it cannot.
 *
 * usage: filter_worker SECONDS [CGROUP_PROCS]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile unsigned long sink;

__attribute__((noinline)) static void filter_worker_spin(void)
{
	double until = now() + 0.002;

	while (now() < until)
		for (int i = 0; i < 10000; i++)
			sink += i;
}

static void work(double end, int stdin_open)
{
	struct timespec nap = { 0, 1000000 };
	char buf[64];

	while (now() < end) {
		filter_worker_spin();
		nanosleep(&nap, NULL);
		syscall(SYS_getppid);
		if (!stdin_open)
			continue;
		struct pollfd p = { .fd = 0, .events = POLLIN };
		if (poll(&p, 1, 0) == 1) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				stdin_open = 0;
				continue;
			}
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] != '\n')
					continue;
				pid_t child = fork();
				if (child == 0) {
					work(end, 0);
					_exit(0);
				}
				printf("%d\n", child);
				fflush(stdout);
			}
		}
	}
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2;

	if (argc > 2) {
		FILE *f = fopen(argv[2], "w");

		if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0) {
			perror(argv[2]);
			return 3;
		}
	}
	signal(SIGCHLD, SIG_DFL);
	work(now() + seconds, 1);
	while (wait(NULL) > 0)
		;
	return 0;
}
