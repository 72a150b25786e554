// SPDX-License-Identifier: GPL-2.0
/*
 * Landmarks for the probes recorder, each a known number of times: COUNT calls of
 * probe_target_double(i) (uprobes; returns 2i) and of probe_target_name("item-i", i) (a string
 * argument), COUNT firings of USDT probe systing:tick(i, i*3)
 * and of the semaphore-guarded systing:guarded(i) (fired only while a tracer is attached: the
 * semaphore counts them), and COUNT raw getppid() calls. It waits for a line on stdin first, so
 * that a tracer can attach, then prints {"pid":…,"tid":…,"count":…,"guarded":…}: guarded is how
 * many times the semaphore let the guarded probe fire.
 *
 * usage: probe_target COUNT
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <sys/syscall.h>
#include <unistd.h>

/* With _SDT_HAS_SEMAPHORES every probe has one; only guarded's is looked at. */
unsigned short systing_tick_semaphore __attribute__((unused, section(".probes")));
unsigned short systing_guarded_semaphore __attribute__((unused, section(".probes")));
#define SYSTING_GUARDED_ENABLED() __builtin_expect(systing_guarded_semaphore, 0)

__attribute__((noinline)) long probe_target_double(long x)
{
	__asm__ volatile("" ::: "memory");
	return 2 * x;
}

__attribute__((noinline)) long probe_target_name(const char *name, long n)
{
	__asm__ volatile("" ::: "memory");
	return name[0] + n;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 100, sum = 0, guarded = 0;
	char line[16], name[32];

	if (!fgets(line, sizeof(line), stdin))
		return 2;
	for (long i = 0; i < count; i++) {
		sum += probe_target_double(i);
		snprintf(name, sizeof(name), "item-%ld", i);
		probe_target_name(name, i);
		DTRACE_PROBE2(systing, tick, i, i * 3);
		if (SYSTING_GUARDED_ENABLED()) {
			DTRACE_PROBE1(systing, guarded, i);
			guarded++;
		}
		syscall(SYS_getppid);
	}
	printf("{\"pid\":%d,\"tid\":%ld,\"count\":%ld,\"guarded\":%ld,\"sum\":%ld}\n", getpid(),
	       (long)syscall(SYS_gettid), count, guarded, sum);
	return 0;
}
