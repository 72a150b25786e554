// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace markers, the convention's C form: COUNT times an instant "work:tick" and a range
 * "work:step" around a 1 ms sleep, then one marker with no track ("lonely"). Waits for a line on
 * stdin first, so that a tracer can attach. Prints {"pid":…,"tid":…,"count":…,"step_ns":…}:
 * step_ns is the time all the steps took, measured around the marker calls themselves.
 *
 * usage: marker_target COUNT
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SYSTING_MARKER_MAGIC 0x53590000
#define SYSTING_INSTANT 1
#define SYSTING_BEGIN 2
#define SYSTING_END 3

/*
 * One marker: a faccessat2 call the kernel refuses at once (EINVAL) and systing records. The
 * text is copied to the stack first: the kernel never reads it, so a string literal's page may
 * never be faulted in, and a tracer cannot read a page that is not there.
 */
static void mark(const char *what, int kind)
{
	char text[128];

	snprintf(text, sizeof(text), "%s", what);
	syscall(SYS_faccessat2, -1, text, SYSTING_MARKER_MAGIC | kind, 0);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 10;
	struct timespec ms = { 0, 1000000 };
	long long total = 0;
	char line[8];

	if (!fgets(line, sizeof(line), stdin))
		return 2;
	for (long i = 0; i < count; i++) {
		mark("work:tick", SYSTING_INSTANT);
		long long a = now_ns();
		mark("work:step", SYSTING_BEGIN);
		nanosleep(&ms, NULL);
		mark("work:step", SYSTING_END);
		total += now_ns() - a;
	}
	mark("lonely", SYSTING_INSTANT);
	printf("{\"pid\":%d,\"tid\":%ld,\"count\":%ld,\"step_ns\":%lld}\n", getpid(),
	       (long)syscall(SYS_gettid), count, total);
	return 0;
}
