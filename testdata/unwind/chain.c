// chain calls through 28 distinct functions (level27 ... level0) from main,
// then burns CPU in leaf: a stack of about 32 frames with known names, for
// checking full chains and measuring the unwinder's cost per frame.
// Built with and without frame pointers (see build.sh).
//
// Usage: chain [seconds]   (default 10)
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) void leaf(int64_t end) {
	uint64_t x = sink | 1;
	while (now_nanos() < end)
		for (int i = 0; i < 100000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
	sink = x;
}

// Each level keeps a frame (work after the call, a local array so the
// compiler moves the stack pointer) and has its own name.
#define LEVEL(n, next)                                          \
	__attribute__((noinline)) void level##n(int64_t end) {  \
		volatile uint64_t pad[n % 4 + 1];               \
		pad[0] = (uint64_t)end;                         \
		next(end);                                      \
		sink += pad[0];                                 \
	}
LEVEL(0, leaf)
LEVEL(1, level0)
LEVEL(2, level1)
LEVEL(3, level2)
LEVEL(4, level3)
LEVEL(5, level4)
LEVEL(6, level5)
LEVEL(7, level6)
LEVEL(8, level7)
LEVEL(9, level8)
LEVEL(10, level9)
LEVEL(11, level10)
LEVEL(12, level11)
LEVEL(13, level12)
LEVEL(14, level13)
LEVEL(15, level14)
LEVEL(16, level15)
LEVEL(17, level16)
LEVEL(18, level17)
LEVEL(19, level18)
LEVEL(20, level19)
LEVEL(21, level20)
LEVEL(22, level21)
LEVEL(23, level22)
LEVEL(24, level23)
LEVEL(25, level24)
LEVEL(26, level25)
LEVEL(27, level26)

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	int64_t end = now_nanos() + (int64_t)seconds * 1000000000;
	// Short calls so samples also land at different depths of the chain.
	while (now_nanos() < end)
		level27(now_nanos() + 20000000 < end ? now_nanos() + 20000000 : end);
	return 0;
}
