// dlopen-main spins in its own code for half a second, then dlopens
// libplugin.so (next to it) and spends the rest of its time in
// main -> call_plugin -> plugin_work (library) -> host_callback -> plugin_spin (library).
//
// Usage: dlopen-main [seconds]   (default 10)
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t sink;
static void (*spin)(void);

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) void host_callback(void) {
	spin();
	sink++;
}

__attribute__((noinline)) void call_plugin(void (*work)(void (*)(void))) {
	work(host_callback);
	sink++;
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	int64_t end = now_nanos() + (int64_t)seconds * 1000000000;
	while (now_nanos() < end - (int64_t)seconds * 1000000000 + 500000000)
		sink++;
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n <= 0)
		return 1;
	path[n] = 0;
	strcpy(strrchr(path, '/') + 1, "libplugin.so");
	void *lib = dlopen(path, RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	spin = (void (*)(void))dlsym(lib, "plugin_spin");
	void (*work)(void (*)(void)) = (void (*)(void (*)(void)))dlsym(lib, "plugin_work");
	while (now_nanos() < end)
		call_plugin(work);
	return 0;
}
