// SPDX-License-Identifier: GPL-2.0
/*
 * Two processes with one pid, one after the other: child A names itself
 * "reuse-a", sleeps 20 ms and exits; once it is reaped, ns_last_pid is set
 * so that the next fork gets A's pid, and child B, named "reuse-b", does the
 * same. Another process may take the pid first: B is then retried.
 *
 * usage: pid_reuse      (root: writes /proc/sys/kernel/ns_last_pid)
 * prints {"pid":…,"a":…,"b":…,"tries":n}
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child(const char *name)
{
	struct timespec nap = { 0, 20000000 };
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_NAME, name);
		nanosleep(&nap, NULL);
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	if (waitpid(pid, NULL, 0) != pid) {
		perror("waitpid");
		exit(1);
	}
}

int main(void)
{
	pid_t a = child("reuse-a"), b = -1;
	int tries = 0;

	reap(a);
	while (b != a && tries < 200) {
		FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");

		if (!f || fprintf(f, "%d", a - 1) < 0 || fclose(f) != 0) {
			perror("ns_last_pid");
			return 1;
		}
		tries++;
		b = child("reuse-b");
		if (b != a)
			reap(b); /* somebody else took the pid: try again */
	}
	if (b != a) {
		fprintf(stderr, "pid %d never came back\n", a);
		return 1;
	}
	reap(b);
	printf("{\"pid\":%d,\"a\":%d,\"b\":%d,\"tries\":%d}\n", getpid(), a, b, tries);
	return 0;
}
