// uselib.c is a PIE executable linked against libember.so (found next to it
// through an $ORIGIN rpath). Run with no arguments it prints the runtime
// addresses of one of its own functions and one of the library's, then
// waits for stdin to close, so a test can read its /proc/PID/maps.
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

void ember_lib_entry(uint64_t n);
void ember_lib_compute(uint64_t n);

__attribute__((noinline)) void ember_app_work(uint64_t n) {
	ember_lib_entry(n);
}

int main(void) {
	ember_app_work(10);
	printf("ember_app_work %p\nember_lib_compute %p\n", (void *)ember_app_work,
	       (void *)ember_lib_compute);
	fflush(stdout);
	char buf[1];
	while (read(0, buf, 1) > 0) {
	}
	return 0;
}
