/*
 * The native front of dist/systing when no `denort` is at hand to `deno compile` with.
 *
 * The file is this launcher followed by zstd-compressed entries (the Deno runtime, the bundled
 * program, and libgcc_s for hosts that lack it) and a trailer that lists them. The launcher
 * decompresses each entry into a sealed memfd, so nothing is written to disk, nothing is left
 * behind and no other user can swap what we execute as root, then replaces itself with the
 * runtime running the program. Only glibc is needed from the host; libzstd is linked in.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* Must match src/dist/pack.ts. */
#define TRAILER_MAGIC "SYSTING1"
#define NAME_LEN 32
#define MAX_ENTRIES 8

struct entry {
	char name[NAME_LEN];
	uint64_t offset; /* of the compressed bytes in this file */
	uint64_t csize;
	uint64_t size;
};

struct trailer {
	uint32_t count;
	uint32_t reserved;
	struct entry entries[MAX_ENTRIES];
	char magic[8];
};

_Static_assert(sizeof(struct entry) == 56, "entry layout is shared with pack.ts");
_Static_assert(sizeof(struct trailer) == 8 + MAX_ENTRIES * 56 + 8, "trailer layout");

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "systing: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(70);
}

static int pread_all(int fd, void *buf, size_t len, off_t at)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, at + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void write_all(int fd, const void *buf, size_t len, const char *name)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("cannot fill memory file (out of memory?)", name);
		done += (size_t)n;
	}
}

/*
 * Decompresses one entry into a sealed memfd; the runtime's fd closes on exec, the others stay.
 * It streams through two small buffers: mapping the whole part instead would count all of it in
 * this process's peak memory, which the runtime inherits across exec.
 */
static int unpack(int self, const struct entry *e, int cloexec)
{
	enum { CHUNK = 1 << 20 };
	char name[NAME_LEN + 1];
	memcpy(name, e->name, NAME_LEN);
	name[NAME_LEN] = 0;
	int fd = memfd_create(name, MFD_ALLOW_SEALING | (cloexec ? MFD_CLOEXEC : 0));
	if (fd < 0)
		die("memfd_create failed (kernel ≥ 3.17 with memfd needed)", strerror(errno));
	ZSTD_DStream *z = ZSTD_createDStream();
	char *in = malloc(CHUNK), *out = malloc(CHUNK);
	if (!z || !in || !out)
		die("out of memory unpacking", name);
	ZSTD_initDStream(z);
	uint64_t read_at = 0, written = 0;
	size_t last = 1;
	while (read_at < e->csize) {
		size_t len = e->csize - read_at < CHUNK ? (size_t)(e->csize - read_at) : CHUNK;
		if (pread_all(self, in, len, (off_t)(e->offset + read_at)) < 0)
			die("this file is damaged or was cut short; copy dist/systing again", name);
		read_at += len;
		ZSTD_inBuffer ib = { in, len, 0 };
		while (ib.pos < ib.size) {
			ZSTD_outBuffer ob = { out, CHUNK, 0 };
			last = ZSTD_decompressStream(z, &ob, &ib);
			if (ZSTD_isError(last))
				die("this file is damaged; copy dist/systing again", ZSTD_getErrorName(last));
			written += ob.pos;
			if (written > e->size)
				die("this file is damaged; copy dist/systing again", name);
			write_all(fd, out, ob.pos, name);
		}
	}
	if (last != 0 || written != e->size)
		die("this file is damaged; copy dist/systing again", name);
	ZSTD_freeDStream(z);
	free(in);
	free(out);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		die("cannot seal memory file", strerror(errno));
	return fd;
}

static const struct entry *find(const struct trailer *t, const char *name)
{
	for (uint32_t i = 0; i < t->count; i++)
		if (strncmp(t->entries[i].name, name, NAME_LEN) == 0)
			return &t->entries[i];
	die("this file lacks a part; rebuild it with `make dist`", name);
	return NULL;
}

int main(int argc, char **argv)
{
	int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		die("cannot read /proc/self/exe; mount /proc", strerror(errno));
	struct stat st;
	struct trailer t;
	if (fstat(self, &st) < 0 || st.st_size < (off_t)sizeof t ||
	    pread_all(self, &t, sizeof t, st.st_size - (off_t)sizeof t) < 0 ||
	    memcmp(t.magic, TRAILER_MAGIC, 8) != 0 || t.count > MAX_ENTRIES)
		die("this launcher carries no program; build dist/systing with `make dist`", NULL);
	for (uint32_t i = 0; i < t.count; i++) {
		const struct entry *e = &t.entries[i];
		if (e->offset > (uint64_t)st.st_size || e->csize > (uint64_t)st.st_size - e->offset)
			die("this file is damaged or was cut short; copy dist/systing again", NULL);
	}

	int runtime = unpack(self, find(&t, "deno"), 1);
	int program = unpack(self, find(&t, "systing.js"), 0);
	char preload[64] = "";
	/* Every glibc host but a bare image has it; ours needs a newer glibc than the rest. */
	void *host_gcc = dlopen("libgcc_s.so.1", RTLD_LAZY | RTLD_LOCAL);
	if (host_gcc)
		dlclose(host_gcc);
	else
		snprintf(preload, sizeof preload, "/proc/self/fd/%d", unpack(self, find(&t, "libgcc_s.so.1"), 0));
	close(self);

	char script[64];
	snprintf(script, sizeof script, "/proc/self/fd/%d", program);
	/*
	 * A young generation of 2 MB instead of up to 16: scavenges stay cheap (they cost what
	 * survives) and the heap stops growing with what passes through, which keeps `report` flat
	 * over a trace of any size and the recorder's peak about 8 MB lower.
	 *
	 * Recording also stops at V8's mid tier (Maglev): TurboFan's compiles of the hot decoders and
	 * the unwinder cost more CPU than their faster code saves until about 5 M events, and a
	 * recording's CPU is taken from the machine it watches. Measured: 12-32 % less of the
	 * recorder's own CPU over 5 s of stack sampling, 20-35 % less over 1 M scheduler events, 12 %
	 * more over 9 M. `report` and `check` (src/cli/subcommands.ts) read whole traces and keep it.
	 */
	int subcommand = argc > 1 && (strcmp(argv[1], "report") == 0 || strcmp(argv[1], "check") == 0);
	const char *v8_flags = subcommand ? "--v8-flags=--max-semi-space-size=2"
					  : "--v8-flags=--max-semi-space-size=2,--no-turbofan";
	const char *fixed[] = {
		"systing", "run", "--allow-all", "--no-config", "--no-lock", "--no-code-cache",
		"--no-prompt", "--quiet", v8_flags, "--ext=js", script,
	};
	size_t nfixed = sizeof fixed / sizeof fixed[0];
	char **args = calloc(nfixed + (size_t)argc, sizeof *args);
	if (!args)
		die("out of memory", NULL);
	for (size_t i = 0; i < nfixed; i++)
		args[i] = (char *)fixed[i];
	for (int i = 1; i < argc; i++)
		args[nfixed + (size_t)i - 1] = argv[i];

	/* Deno must find no cache to write to or read from: the program is all in the bundle. */
	setenv("DENO_DIR", "/proc/self/systing-no-cache", 1);
	setenv("DENO_NO_UPDATE_CHECK", "1", 1);
	setenv("DENO_NO_PACKAGE_JSON", "1", 1);
	setenv("SYSTING_LAUNCHER_FDS", script + strlen("/proc/self/fd/"), 1);
	if (preload[0]) {
		const char *old = getenv("LD_PRELOAD");
		char *both = malloc(strlen(preload) + (old ? strlen(old) + 1 : 0) + 1);
		if (!both)
			die("out of memory", NULL);
		sprintf(both, "%s%s%s", preload, old ? ":" : "", old ? old : "");
		setenv("LD_PRELOAD", both, 1);
		setenv("SYSTING_LAUNCHER_PRELOAD", preload, 1);
	}
	/*
	 * glibc raises its mmap threshold after a large free, after which big buffers come from the
	 * brk heap and are never given back: a fixed threshold keeps the tracer's peak memory at
	 * what it uses (about 90 MB less at worst on a 2-CPU guest).
	 */
	if (!getenv("GLIBC_TUNABLES")) {
		setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072", 1);
		setenv("SYSTING_LAUNCHER_TUNABLES", "1", 1);
	}
	/*
	 * SIGUSR1 would open Deno's inspector, a root shell for any local user. Blocked here, it stays
	 * blocked in every thread the runtime starts, so it can never be delivered.
	 */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	extern char **environ;
	fexecve(runtime, args, environ);
	die("cannot start the runtime", strerror(errno));
	return 70;
}
