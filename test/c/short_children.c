// SPDX-License-Identifier: GPL-2.0
/*
 * Short-lived processes: forks COUNT children (default 50), at most 4 at a
 * time; each spins MS milliseconds of its own CPU time (default 20) in
 * child_spin and exits. All have exited when this prints
 * {"children":[pid,…]}. Built -O0 -fno-omit-frame-pointer.
 *
 * usage: short_children [COUNT [MS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 1000
#define AT_ONCE 4

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) unsigned long child_spin(long ms)
{
	volatile unsigned long sink = 0;
	double end = cpu_ms() + ms;

	do {
		for (int i = 0; i < 50000; i++)
			sink = sink * 31 + i;
	} while (cpu_ms() < end);
	return sink;
}

static int reap(void)
{
	int status;

	if (wait(&status) < 0) {
		perror("wait");
		return -1;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 50;
	long ms = argc > 2 ? atol(argv[2]) : 20;
	static pid_t pids[MAX_CHILDREN];
	int running = 0, failed = 0;

	if (count < 1 || count > MAX_CHILDREN) {
		fprintf(stderr, "COUNT must be 1..%d\n", MAX_CHILDREN);
		return 2;
	}
	for (int i = 0; i < count; i++) {
		if (running == AT_ONCE) {
			failed |= reap();
			running--;
		}
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			return 1;
		}
		if (pids[i] == 0) {
			child_spin(ms);
			_exit(0);
		}
		running++;
	}
	while (running-- > 0)
		failed |= reap();
	if (failed) {
		fprintf(stderr, "a child failed\n");
		return 1;
	}
	printf("{\"children\":[");
	for (int i = 0; i < count; i++)
		printf("%s%d", i ? "," : "", (int)pids[i]);
	printf("]}\n");
	return 0;
}
