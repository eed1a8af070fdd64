// plugin.c becomes libplugin.so, which dlopen-main loads at run time: its
// hot function only appears in the process's mappings after the first
// snapshot, so unwinding through it needs the mappings read again.
#include <stdint.h>

static volatile uint64_t sink;

__attribute__((noinline)) void plugin_spin(void) {
	uint64_t x = sink | 1;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	sink = x;
}

// plugin_work calls back into the program, so stacks cross the library
// twice: main -> plugin_work -> host_callback -> plugin_spin.
__attribute__((noinline)) void plugin_work(void (*callback)(void)) {
	callback();
	sink++;
}
