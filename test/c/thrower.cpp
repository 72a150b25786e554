// SPDX-License-Identifier: GPL-2.0
/* COUNT C++ exceptions thrown and caught (libstdc++'s throw and catch USDT probes fire). */
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 10, caught = 0;

	for (int i = 0; i < count; i++) {
		try {
			throw std::runtime_error("example");
		} catch (const std::exception &) {
			caught++;
		}
	}
	printf("{\"caught\":%d}\n", caught);
	return 0;
}
