// libember.c is the shared library fixture (libember.so).
#include <stdint.h>

volatile uint64_t ember_lib_sink;

__attribute__((noinline)) void ember_lib_compute(uint64_t n) {
	for (uint64_t i = 0; i < n; i++)
		ember_lib_sink += i * 13;
}

__attribute__((noinline)) void ember_lib_entry(uint64_t n) {
	ember_lib_compute(n);
	ember_lib_sink ^= n;
}
