// jit copies a tiny function into anonymous executable memory, as a JIT
// compiler would, and spends its time in a C function called from there:
// main -> run -> [jit code, frame pointer, no file] -> hot. The JIT code has
// no unwind table, so the walk crosses it by its frame pointer.
// With "late", it maps a new page of that code every 20 ms, as V8 does while
// it compiles: most samples land under a page mapped after the profiler last
// read the mappings. With "builtin" too, the JIT code calls hot through an
// assembly function that keeps a frame pointer but has no CFI, as V8's JIT
// code calls its builtins: [jit code] -> asm_builtin -> hot.
//
// Usage: jit [seconds [late [builtin]]]   (default 10)
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static volatile uint64_t sink;

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

// push %rbp; mov %rsp,%rbp; call *%rdi; pop %rbp; ret -- and no .cfi_*.
__asm__(".text\n"
	".globl asm_builtin\n"
	".type asm_builtin, @function\n"
	"asm_builtin:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	call *%rdi\n"
	"	pop %rbp\n"
	"	ret\n"
	".size asm_builtin, .-asm_builtin\n");
void asm_builtin(void (*fn)(void));

// push %rbp; mov %rsp,%rbp; mov %rsi,%rax; call *%rax; pop %rbp; ret:
// calls its second argument with its first (hot, or asm_builtin with hot).
static const unsigned char trampoline[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x89, 0xf0,
					   0xff, 0xd0, 0x5d, 0xc3};

typedef void (*jitted)(void (*)(void), void *);

// compile maps a page holding the trampoline. Pages are never unmapped,
// so that no new one lands where an old one was.
static jitted compile(void) {
	unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED)
		exit(1);
	memcpy(code, trampoline, sizeof(trampoline));
	if (mprotect(code, 4096, PROT_READ | PROT_EXEC))
		exit(1);
	return (jitted)code;
}

__attribute__((noinline)) void run(int64_t end, int late, int builtin) {
	void *callee = builtin ? (void *)asm_builtin : (void *)hot;
	jitted code = compile();
	int64_t next = now_nanos() + 20000000;
	for (int64_t now; (now = now_nanos()) < end;) {
		if (late && now >= next) {
			code = compile();
			next = now + 20000000;
		}
		code(hot, callee);
	}
	sink++;
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	int late = argc > 2 && strcmp(argv[2], "late") == 0;
	int builtin = late && argc > 3 && strcmp(argv[3], "builtin") == 0;
	run(now_nanos() + (int64_t)seconds * 1000000000, late, builtin);
	return 0;
}
