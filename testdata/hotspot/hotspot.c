// hotspot burns CPU in three leaf functions with a known split of time:
// alpha 50%, beta 30%, gamma 20%. Ember's sampler tests profile it and check
// each leaf's share of its samples and the call chain from main to the leaf.
//
// Chains: main -> run -> alpha
//         main -> run -> work_b -> beta
//         main -> run -> gamma
//
// Usage: hotspot [seconds]   (default 10)
//
// Build (see build.sh):
//   gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -o hotspot hotspot.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// Checking the clock only every CHECK_EVERY iterations keeps the time spent
// outside the leaf's own code negligible.
#define CHECK_EVERY 100000

// sink keeps the arithmetic observable so the compiler cannot drop it.
static volatile uint64_t sink;

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); // vDSO, no syscall
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The leaves split CPU time, not wall-clock time: on a loaded machine the
// process waits long between its turns on a CPU, and with wall-clock slices
// each turn would find the last slice over and start a new cycle in alpha.
// A system call, but one per CHECK_EVERY rounds.
static int64_t cpu_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Each leaf runs xorshift64 until its deadline: pure arithmetic with no
// closed form, so the loop can be neither removed nor folded.
#define BURN_UNTIL(deadline, seed)                          \
	do {                                                    \
		uint64_t x = sink ^ (seed);                         \
		do {                                                \
			for (int i = 0; i < CHECK_EVERY; i++) {         \
				x ^= x << 13;                               \
				x ^= x >> 7;                                \
				x ^= x << 17;                               \
			}                                               \
		} while (cpu_nanos() < (deadline));                 \
		sink = x;                                           \
	} while (0)

__attribute__((noinline)) void alpha(int64_t deadline) {
	BURN_UNTIL(deadline, 0x9e3779b97f4a7c15ull);
}

__attribute__((noinline)) void beta(int64_t deadline) {
	BURN_UNTIL(deadline, 0xbf58476d1ce4e5b9ull);
}

// gamma is also a libm builtin; ours takes a deadline and is not libm's.
#pragma GCC diagnostic ignored "-Wbuiltin-declaration-mismatch"
__attribute__((noinline)) void gamma(int64_t deadline) {
	BURN_UNTIL(deadline, 0x94d049bb133111ebull);
}

// work_b adds a level so one chain is deeper than main -> run -> leaf.
__attribute__((noinline)) void work_b(int64_t deadline) {
	beta(deadline);
	sink++; // not a tail call, so work_b stays on the stack
}

__attribute__((noinline)) void run(int64_t nanos) {
	int64_t end = now_nanos() + nanos;
	while (now_nanos() < end) {
		int64_t t = cpu_nanos();
		alpha(t + 50000000);
		work_b(t + 80000000);
		gamma(t + 100000000);
	}
}

int main(int argc, char **argv) {
	double seconds = 10;
	if (argc > 1) {
		seconds = strtod(argv[1], NULL);
		if (seconds <= 0) {
			fprintf(stderr, "usage: %s [seconds]\n", argv[0]);
			return 2;
		}
	}
	run((int64_t)(seconds * 1e9));
	printf("%llu\n", (unsigned long long)sink);
	return 0;
}
