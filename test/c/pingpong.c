// SPDX-License-Identifier: GPL-2.0
/*
 * Two threads, "ping" and "pong", bounce one byte over two pipes.
 *
 * With --lockstep both threads share one CPU as SCHED_FIFO tasks of equal
 * priority: a woken thread then cannot preempt the writer, so every read()
 * blocks and every round trip switches each thread out (state S), wakes it
 * and switches it back in, exactly once. Without it, on an SMP machine the
 * reader often finds the byte before it gets to sleep, and the counts are
 * anywhere below N. The default mode is for load, not for counting.
 *
 * usage: pingpong [--lockstep] ROUND_TRIPS [START_DELAY_MS]
 * prints {"pid":…,"ping_tid":…,"pong_tid":…,"round_trips":N,
 *         "ping_nvcsw":…,"pong_nvcsw":…} when done; *_nvcsw are the voluntary
 * context switches of each thread up to the end of its loop (getrusage).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long round_trips;
static int to_pong[2], to_ping[2];
static pid_t ping_tid, pong_tid;
static long ping_nvcsw, pong_nvcsw;
static pthread_barrier_t named;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static long nvcsw(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		die("getrusage");
	return ru.ru_nvcsw;
}

static void xread(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		die("read");
}

static void xwrite(int fd)
{
	char c = 'x';
	ssize_t n;

	do
		n = write(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		die("write");
}

/* Names are set before the barrier so that no bounce happens under the old name. */
static void *ping(void *arg)
{
	(void)arg;
	ping_tid = (pid_t)syscall(SYS_gettid);
	if (pthread_setname_np(pthread_self(), "ping"))
		die("pthread_setname_np");
	pthread_barrier_wait(&named);
	for (long i = 0; i < round_trips; i++) {
		xwrite(to_pong[1]);
		xread(to_ping[0]);
	}
	ping_nvcsw = nvcsw();
	return NULL;
}

static void *pong(void *arg)
{
	(void)arg;
	pong_tid = (pid_t)syscall(SYS_gettid);
	if (pthread_setname_np(pthread_self(), "pong"))
		die("pthread_setname_np");
	pthread_barrier_wait(&named);
	for (long i = 0; i < round_trips; i++) {
		xread(to_pong[0]);
		xwrite(to_ping[1]);
	}
	pong_nvcsw = nvcsw();
	return NULL;
}

/* Threads inherit both settings from main. */
static void lockstep(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	cpu_set_t cpus;
	int cpu = sched_getcpu();

	if (cpu < 0)
		die("sched_getcpu");
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		die("sched_setaffinity");
	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		die("sched_setscheduler(SCHED_FIFO)");
}

int main(int argc, char **argv)
{
	pthread_t a, b;
	long delay_ms;
	int arg = 1;

	if (arg < argc && !strcmp(argv[arg], "--lockstep")) {
		lockstep();
		arg++;
	}
	if (arg >= argc) {
		fprintf(stderr, "usage: %s [--lockstep] ROUND_TRIPS [START_DELAY_MS]\n", argv[0]);
		return 2;
	}
	round_trips = atol(argv[arg]);
	delay_ms = arg + 1 < argc ? atol(argv[arg + 1]) : 0;
	if (round_trips <= 0 || delay_ms < 0) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	if (delay_ms > 0) {
		struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	if (pipe(to_pong) || pipe(to_ping))
		die("pipe");
	/* Three parties: main waits too, so it can read the tids safely afterwards. */
	pthread_barrier_init(&named, NULL, 3);
	if (pthread_create(&a, NULL, ping, NULL) || pthread_create(&b, NULL, pong, NULL))
		die("pthread_create");
	pthread_barrier_wait(&named);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("{\"pid\":%d,\"ping_tid\":%d,\"pong_tid\":%d,\"round_trips\":%ld,"
	       "\"ping_nvcsw\":%ld,\"pong_nvcsw\":%ld}\n",
	       (int)getpid(), (int)ping_tid, (int)pong_tid, round_trips, ping_nvcsw, pong_nvcsw);
	return 0;
}
