// SPDX-License-Identifier: GPL-2.0
/*
 * Spins on one CPU until its stdin is closed, and logs every time it was
 * switched out: a jump of CLOCK_BOOTTIME (the clock BPF stamps records with)
 * between two turns of the loop longer than GAP_NS during which its context
 * switch count grew is a gap [before, after] (an interrupt alone is not).
 * The ground truth for "which task was running at time T on CPU C".
 *
 * usage: spin_logged CPU [fifo]   (fifo: SCHED_FIFO 1, so that little else runs there)
 * prints "ready" once spinning, then at the end
 * {"tid":…,"cpu":…,"start":ns,"end":ns,"gaps":[[a,b],…],"more_gaps":n}
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define GAP_NS 2000
#define MAX_GAPS 20000

static long long gaps[MAX_GAPS][2];

static long switches(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

static long long boot_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sched_param sp = { .sched_priority = 1 };
	struct pollfd in = { .fd = 0, .events = POLLIN };
	long long start, last, now, more = 0;
	long seen;
	int cpu, n = 0;
	cpu_set_t set;

	if (argc < 2) {
		fprintf(stderr, "usage: spin_logged CPU [fifo]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		perror("sched_setaffinity");
		return 1;
	}
	if (argc > 2 && strcmp(argv[2], "fifo") == 0 && sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
		perror("sched_setscheduler");
		return 1;
	}
	seen = switches();
	start = last = boot_ns();
	printf("ready\n");
	fflush(stdout);
	for (unsigned long i = 1;; i++) {
		now = boot_ns();
		if (now - last > GAP_NS && switches() > seen) {
			seen = switches();
			if (n < MAX_GAPS) {
				gaps[n][0] = last;
				gaps[n][1] = now;
				n++;
			} else {
				more++;
			}
			now = boot_ns(); /* the two getrusage calls are not a gap */
		}
		last = now;
		/* About every 10 ms: has the test closed stdin? (poll without timeout never sleeps) */
		if (i % 200000 == 0 && poll(&in, 1, 0) > 0)
			break;
	}
	printf("{\"tid\":%ld,\"cpu\":%d,\"start\":%lld,\"end\":%lld,\"gaps\":[", syscall(SYS_gettid),
	       cpu, start, last);
	for (int g = 0; g < n; g++)
		printf("%s[%lld,%lld]", g ? "," : "", gaps[g][0], gaps[g][1]);
	printf("],\"more_gaps\":%lld}\n", more);
	return 0;
}
