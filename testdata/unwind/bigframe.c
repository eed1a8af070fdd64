// bigframe burns CPU in leaf, called from a function whose frame is more
// than 32 KiB (600,000 bytes), built without frame pointers: its callers
// are only found through a CFA offset that does not fit 16 bits, as in
// rustc (CFA rsp+540080).
//
// Usage: bigframe [seconds]   (default 10)
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uint64_t sink;

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) void leaf(volatile uint8_t *buf) {
	uint64_t x = sink | buf[0] | 1;
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

__attribute__((noinline)) void big(int64_t end) {
	volatile uint8_t buf[600000];
	buf[0] = (uint8_t)end;
	buf[sizeof(buf) - 1] = 1;
	while (now_nanos() < end)
		leaf(buf);
	sink += buf[sizeof(buf) - 1];
}

__attribute__((noinline)) void run(int64_t end) {
	big(end);
	sink++;
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	run(now_nanos() + (int64_t)seconds * 1000000000);
	return 0;
}
