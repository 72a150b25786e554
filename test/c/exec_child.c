// SPDX-License-Identifier: GPL-2.0
/*
 * Forks a child that execs TARGET with "--marker TOKEN", waits for it and
 * prints {"child_pid":…}. The token makes the child's cmdline unique to one
 * test run, so the test cannot match a stale process by accident.
 *
 * usage: exec_child TARGET TOKEN
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int status;
	pid_t child;

	if (argc != 3) {
		fprintf(stderr, "usage: %s TARGET TOKEN\n", argv[0]);
		return 2;
	}
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		char *args[] = { argv[1], "--marker", argv[2], NULL };

		execv(argv[1], args);
		perror("execv");
		_exit(127);
	}
	if (waitpid(child, &status, 0) != child) {
		perror("waitpid");
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "child failed: status %d\n", status);
		return 1;
	}
	printf("{\"child_pid\":%d}\n", (int)child);
	return 0;
}
