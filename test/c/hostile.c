// SPDX-License-Identifier: GPL-2.0
/*
 * The attacker of test/hostile_test.ts: an unprivileged process (it drops to
 * nobody when started as root) that maps crafted files and runs the code in
 * them, so that the tracer's samples land in those files and the tracer has to
 * open and parse them.
 *
 * usage:
 *   hostile exec FILE MS DEPTH   map FILE, call its rec(DEPTH, n) for MS ms of
 *                                CPU time (as many samples on a busy machine)
 *   hostile fifo FILE MS ROUNDS  ROUNDS times: write FILE again, map it, run it
 *                                a little, unmap and unlink it, and put a FIFO
 *                                at its name (often reusing the inode number)
 *   hostile bigargs KIB FORKS    exec itself with KIB KiB of arguments, then
 *                                fork FORKS copies; all wait for SIGTERM.
 *                                Prints {"pid":…} once they all run.
 * The code of a crafted file sits at CODE_AT: spin(n) at +0, rec(depth, n)
 * at +16 (test/crafted_elf.ts). Prints {"pid":…} at the end (exec, fifo).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CODE_AT 0x1000
#define MAP_LEN 0x10000

typedef void (*rec_fn)(long depth, long n);

static void drop_privileges(void)
{
	if (getuid() != 0)
		return;
	if (setgid(65534) || setuid(65534)) {
		perror("dropping to nobody");
		exit(1);
	}
}

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *map_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	char *p;

	if (fd < 0) {
		perror(path);
		exit(1);
	}
	p = mmap(NULL, MAP_LEN, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void run_for(char *map, double ms, long depth)
{
	rec_fn rec = (rec_fn)(void *)(map + CODE_AT + 16);
	double end = cpu_ms() + ms;

	while (cpu_ms() < end)
		rec(depth, 200000);
}

static int do_exec(const char *path, double ms, long depth)
{
	run_for(map_file(path), ms, depth);
	printf("{\"pid\":%d}\n", (int)getpid());
	return 0;
}

static int do_fifo(const char *path, double ms, int rounds)
{
	struct stat st;
	char *bytes;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st)) {
		perror(path);
		return 1;
	}
	bytes = malloc(st.st_size);
	if (read(fd, bytes, st.st_size) != st.st_size) {
		perror("read");
		return 1;
	}
	close(fd);
	for (int i = 0; i < rounds; i++) {
		char *map;

		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0755);
		if (fd < 0 || write(fd, bytes, st.st_size) != st.st_size) {
			perror("rewrite");
			return 1;
		}
		close(fd);
		map = map_file(path);
		run_for(map, ms, 8);
		munmap(map, MAP_LEN);
		/* The file is gone; a FIFO takes its name, and ext4 often hands it the same inode. */
		unlink(path);
		if (mkfifo(path, 0666)) {
			perror("mkfifo");
			return 1;
		}
		usleep(150000);
	}
	printf("{\"pid\":%d}\n", (int)getpid());
	return 0;
}

static void wait_term(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigwait(&set, &sig);
}

static int do_bigargs(long kib, int forks)
{
	struct rlimit rl;
	long per = 120 * 1024; /* one argument may not exceed 128 KiB */
	long n = kib * 1024 / per + 1;
	char **argv = calloc(n + 3, sizeof(char *));
	char *arg = malloc(per + 1);
	char forks_s[16];

	/* The kernel allows a quarter of the stack limit for arguments. */
	getrlimit(RLIMIT_STACK, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_STACK, &rl);
	memset(arg, 'x', per);
	arg[per] = 0;
	snprintf(forks_s, sizeof(forks_s), "%d", forks);
	argv[0] = "hostile";
	argv[1] = "hold";
	argv[2] = forks_s;
	for (long i = 0; i < n; i++)
		argv[3 + i] = arg;
	execv("/proc/self/exe", argv);
	perror("execv");
	return 1;
}

static int do_hold(int forks)
{
	pid_t *kids = calloc(forks, sizeof(pid_t));

	for (int i = 0; i < forks; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			wait_term();
			_exit(0);
		}
	}
	printf("{\"pid\":%d}\n", (int)getpid());
	fflush(stdout);
	wait_term();
	for (int i = 0; i < forks; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGTERM);
	while (wait(NULL) > 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "hold"))
		return do_hold(atoi(argv[2]));
	drop_privileges();
	if (argc == 5 && !strcmp(argv[1], "exec"))
		return do_exec(argv[2], atof(argv[3]), atol(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "fifo"))
		return do_fifo(argv[2], atof(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "bigargs"))
		return do_bigargs(atol(argv[2]), atoi(argv[3]));
	fprintf(stderr, "usage: hostile exec|fifo FILE MS N | bigargs KIB FORKS\n");
	return 2;
}
