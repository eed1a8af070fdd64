// prog.c is built twice: as a PIE executable (prog-pie) and as a non-PIE
// executable (prog-nopie). Its functions have names the symbolizer tests
// look for; noinline keeps each one a real symbol with real code.
#include <stdio.h>
#include <stdint.h>

volatile uint64_t sink;

__attribute__((noinline)) void ember_leaf(uint64_t n) {
	for (uint64_t i = 0; i < n; i++)
		sink += i * 7;
}

__attribute__((noinline)) void ember_middle(uint64_t n) {
	ember_leaf(n);
	sink ^= n;
}

__attribute__((noinline)) static void ember_static_helper(uint64_t n) {
	ember_middle(n + 1);
	sink += 3;
}

int main(int argc, char **argv) {
	(void)argv;
	ember_static_helper((uint64_t)argc);
	printf("%llu\n", (unsigned long long)sink);
	return 0;
}
