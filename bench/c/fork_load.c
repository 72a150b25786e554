// SPDX-License-Identifier: GPL-2.0
/*
 * Fork-heavy load: keeps forking children that exec /bin/true (new mappings,
 * new processes, exits) until killed.
 */
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	for (;;) {
		pid_t p = fork();

		if (p == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, NULL, 0);
	}
}
