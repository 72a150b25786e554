// SPDX-License-Identifier: GPL-2.0
/*
 * The program exec_child execs. It lives ~50 ms so that it is scheduled (and
 * seen by the process tracker) under its new name before it exits.
 */
#include <errno.h>
#include <time.h>

int main(void)
{
	struct timespec ts = { 0, 50 * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	return 0;
}
