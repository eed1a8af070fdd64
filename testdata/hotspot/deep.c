// deep recurses 200 levels (or as many as asked), deeper than the kernel's
// 127-frame stack limit, then burns CPU at the bottom: every sample's user
// stack walked by the kernel is cut at the limit and must be reported as
// truncated; Ember's unwinder must reach main through all of them, or mark
// the stack where its own, larger limit cuts it.
//
// Usage: deep [seconds] [levels]   (defaults 10, 200)
//
// Build (see build.sh):
//   gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls -o deep deep.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) void bottom(int64_t end) {
	uint64_t x = sink | 1;
	while (now_nanos() < end)
		for (int i = 0; i < 100000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
	sink = x;
}

__attribute__((noinline)) void descend(int depth, int64_t end) {
	if (depth == 0)
		bottom(end);
	else
		descend(depth - 1, end);
	sink++; // not a tail call: every level keeps its frame
}

int main(int argc, char **argv) {
	double seconds = argc > 1 ? strtod(argv[1], NULL) : 10;
	int levels = argc > 2 ? atoi(argv[2]) : 200;
	if (seconds <= 0 || levels < 0) {
		fprintf(stderr, "usage: %s [seconds] [levels]\n", argv[0]);
		return 2;
	}
	descend(levels, now_nanos() + (int64_t)(seconds * 1e9));
	printf("%llu\n", (unsigned long long)sink);
	return 0;
}
