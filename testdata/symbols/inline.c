// inline burns CPU in mix, a static inline function that gcc inlines into
// alpha: the symbolizer must show one location with two lines, mix at its
// source line inside alpha at the call's line. The symbolizer tests and
// the end-to-end test in cmd/ember read it.
//
// Usage: inline [seconds]   (default 10)
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline __attribute__((always_inline)) uint64_t mix(uint64_t x) {
	x ^= x << 13; // MIX_LINE: the hot loop's first line
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

__attribute__((noinline)) uint64_t alpha(uint64_t x, int n) {
	// A stack slot makes gcc set up alpha's frame pointer, without which
	// its caller, main, would vanish from frame-pointer stacks.
	volatile uint64_t spill = x;
	x = spill;
	for (int i = 0; i < n; i++)
		x = mix(x); // CALL_LINE: where mix is inlined
	return x;
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	int64_t deadline = now_nanos() + (int64_t)seconds * 1000000000;
	uint64_t x = 88172645463325252ull;
	while (now_nanos() < deadline)
		x = alpha(x, 1000000);
	sink = x;
	return 0;
}
