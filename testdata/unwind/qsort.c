// qsort sorts arrays with libc's qsort and spends its time in the
// comparator, so almost every sample's stack runs
// cmp_items <- (libc qsort internals) <- sort_round <- run <- main <- libc <- _start
// through Debian's libc, which has no frame pointers. Built twice (see
// build.sh): qsort-nofp at -O2 -fomit-frame-pointer, qsort-fp with frame
// pointers.
//
// Usage: qsort [seconds]   (default 10)
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define N 4096

static volatile uint64_t sink;
static uint64_t items[N];

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The hot spot: a deliberately slow comparison.
__attribute__((noinline)) int cmp_items(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	for (int i = 0; i < 200; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		y ^= y << 13;
		y ^= y >> 7;
		y ^= y << 17;
	}
	sink += x ^ y;
	uint64_t p = *(const uint64_t *)a, q = *(const uint64_t *)b;
	return p < q ? -1 : p > q;
}

__attribute__((noinline)) void sort_round(uint64_t seed) {
	for (int i = 0; i < N; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		items[i] = seed;
	}
	qsort(items, N, sizeof(items[0]), cmp_items);
	sink += items[0]; // not a tail call: sort_round stays on the stack
}

__attribute__((noinline)) void run(int64_t end) {
	uint64_t seed = 88172645463325252ull;
	while (now_nanos() < end)
		sort_round(seed++);
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	run(now_nanos() + (int64_t)seconds * 1000000000);
	return 0;
}
