// SPDX-License-Identifier: GPL-2.0
/*
 * C++ names for the demangler: ns::Worker<int>::crunch(int) spins on the CPU
 * for MS milliseconds of this thread's CPU time (default 500). Built with g++
 * -O0 -fno-omit-frame-pointer. Prints {"pid":…,"start":boot_ns,"end":boot_ns}
 * (the spin's CLOCK_BOOTTIME, the trace's clock).
 *
 * usage: cpp_work [MS]
 */
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

namespace ns {

static double cpu_ms()
{
	timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long long boot_ns()
{
	timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

template <typename T> class Worker {
public:
	explicit Worker(long ms) : ms_(ms) {}

	__attribute__((noinline)) T crunch(T seed)
	{
		volatile T sink = seed;
		double end = cpu_ms() + ms_;

		do {
			for (int i = 0; i < 200000; i++)
				sink = sink * 31 + static_cast<T>(i);
		} while (cpu_ms() < end);
		return sink;
	}

private:
	long ms_;
};

} // namespace ns

int main(int argc, char **argv)
{
	long ms = argc > 1 ? std::atol(argv[1]) : 500;
	ns::Worker<int> w(ms);
	long long start = ns::boot_ns();
	int r = w.crunch(7);
	long long end = ns::boot_ns();

	std::printf("{\"pid\":%d,\"start\":%lld,\"end\":%lld,\"sink\":%d}\n",
		    static_cast<int>(getpid()), start, end, r & 1);
	return 0;
}
