// SPDX-License-Identifier: GPL-2.0
/*
 * Sleeps COUNT times for 1 ms in nanosleep: every wake-up is the hrtimer's,
 * from the timer interrupt. Prints {"pid":…,"tid":…,"sleeps":COUNT}.
 *
 * usage: timer_sleeper [COUNT]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 200;
	struct timespec ms = { 0, 1000000 };

	for (long i = 0; i < count; i++)
		nanosleep(&ms, NULL);
	printf("{\"pid\":%d,\"tid\":%ld,\"sleeps\":%ld}\n", getpid(), syscall(SYS_gettid), count);
	return 0;
}
