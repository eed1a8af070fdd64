// nocfi calls its hot C function through a hand-written assembly function
// that keeps a frame pointer but has no call-frame information, as V8's
// builtins in node's .text: main -> run -> asm_trampoline -> hot. The walk
// finds no row for asm_trampoline and must cross it by its frame pointer.
// The C code is built without frame pointers.
//
// Usage: nocfi [seconds]   (default 10)
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

// push %rbp; mov %rsp,%rbp; call *%rdi; pop %rbp; ret -- and no .cfi_*.
__asm__(".text\n"
	".globl asm_trampoline\n"
	".type asm_trampoline, @function\n"
	"asm_trampoline:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	call *%rdi\n"
	"	pop %rbp\n"
	"	ret\n"
	".size asm_trampoline, .-asm_trampoline\n");
void asm_trampoline(void (*fn)(void));

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) void hot(void) {
	uint64_t x = sink | 1;
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

__attribute__((noinline)) void run(int64_t end) {
	while (now_nanos() < end)
		asm_trampoline(hot);
	sink++;
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	run(now_nanos() + (int64_t)seconds * 1000000000);
	return 0;
}
