// burst burns CPU-MS milliseconds of CPU in a short call chain and exits:
// a short-lived process, for checking that processes living a fraction of
// a second are unwound from their first samples. Built without frame
// pointers, so only unwind tables get its stacks right.
//
// Usage: burst [CPU-MS]   (default 300)
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink = 88172645463325252ULL;

static double cpu_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

__attribute__((noinline)) void spin(void) {
	uint64_t x = sink;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

__attribute__((noinline)) void burn(double ms) {
	double end = cpu_ms() + ms;
	while (cpu_ms() < end)
		spin();
	sink += 1; // work after the call keeps burn's frame
}

int main(int argc, char **argv) {
	burn(argc > 1 ? atof(argv[1]) : 300);
	return 0;
}
