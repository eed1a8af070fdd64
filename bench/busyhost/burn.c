// burn spends CPU in two named functions, hot_a (60%) and hot_b (40%), for
// bench/busyhost.sh: once and exit (a short-lived process of the churn), or
// every period forever (a long-lived program).
//
// Usage: burn CPU-MS [PERIOD-MS]
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink = 88172645463325252ULL;

// Each call is a fixed amount of xorshift work, so the 3:2 split holds
// whatever the machine's speed.
__attribute__((noinline)) void hot_a(void) {
	uint64_t x = sink;
	for (int i = 0; i < 300000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

__attribute__((noinline)) void hot_b(void) {
	uint64_t x = sink;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

static double cpu_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

__attribute__((noinline)) void burn(double ms) {
	double end = cpu_ms() + ms;
	while (cpu_ms() < end) {
		hot_a();
		hot_b();
	}
}

int main(int argc, char **argv) {
	double ms = argc > 1 ? atof(argv[1]) : 200;
	double period = argc > 2 ? atof(argv[2]) : 0;
	if (period <= 0) {
		burn(ms);
		return 0;
	}
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		burn(ms);
		// Absolute deadlines keep the period steady when a burn runs late.
		next.tv_nsec += (long)(period * 1e6);
		next.tv_sec += next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
}
