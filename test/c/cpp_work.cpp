// SPDX-License-Identifier: GPL-2.0
/*
 * C++ names for the demangler: ns::Worker<int>::crunch(int) spins on the CPU
 * for MS milliseconds of this thread's CPU time (default 500). Built with g++
 * -O0 -fno-omit-frame-pointer. Prints {"pid":…}.
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
	int r = w.crunch(7);

	std::printf("{\"pid\":%d,\"sink\":%d}\n", static_cast<int>(getpid()), r & 1);
	return 0;
}
