// waits spends a worker thread's time with a known split: about half of it
// asleep in nanosleep under sleep_part, about 30% blocked reading a pipe
// under pipe_part (a helper thread writes 3 ms after each request), and the
// rest spinning in spin_part. It measures the time around each blocking
// call itself, so the split it reports holds on a loaded machine, where
// wake-ups come late. Ember's off-CPU tests profile it and compare.
//
// Chains: worker -> sleep_part -> nanosleep (libc)
//         worker -> pipe_part -> read (libc)
//
// Usage: waits SECONDS OUT
// It reads one byte from stdin before starting the worker (the test sends
// it once the process's unwind tables are in; end of file starts it at
// once), and writes to OUT, after
// the worker ends: "tid sleep_ns pipe_ns wall_ns oncpu_ns", wall and on-CPU
// (its schedstat) over the worker's whole life.
//
// Build (see build.sh):
//   gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -pthread -o waits waits.c
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int request[2], response[2];
static int64_t run_nanos;
static volatile uint64_t sink;

struct result {
	long tid;
	int64_t sleep_ns, pipe_ns, wall_ns, oncpu_ns;
};

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) static int64_t sleep_part(void) {
	struct timespec d = {0, 5000000};
	int64_t t0 = now_nanos();
	nanosleep(&d, NULL);
	return now_nanos() - t0;
}

__attribute__((noinline)) static int64_t pipe_part(void) {
	char b = 0;
	if (write(request[1], &b, 1) != 1)
		exit(2);
	int64_t t0 = now_nanos();
	if (read(response[0], &b, 1) != 1)
		exit(2);
	return now_nanos() - t0;
}

__attribute__((noinline)) static void spin_part(void) {
	int64_t end = now_nanos() + 2000000;
	uint64_t x = 88172645463325252ull;
	while (now_nanos() < end) {
		for (int i = 0; i < 1000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
	}
	sink = x;
}

static int64_t oncpu_nanos(long tid) {
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", tid);
	FILE *f = fopen(path, "r");
	long long run = 0;
	if (!f || fscanf(f, "%lld", &run) != 1)
		exit(3);
	fclose(f);
	return run;
}

__attribute__((noinline)) static void *worker(void *arg) {
	struct result *r = arg;
	int64_t start = now_nanos();
	r->tid = syscall(SYS_gettid);
	while (now_nanos() - start < run_nanos) {
		r->sleep_ns += sleep_part();
		r->pipe_ns += pipe_part();
		spin_part();
	}
	r->oncpu_ns = oncpu_nanos(r->tid);
	r->wall_ns = now_nanos() - start;
	return NULL;
}

static void *writer(void *arg) {
	(void)arg;
	char b;
	struct timespec d = {0, 3000000};
	while (read(request[0], &b, 1) == 1) {
		nanosleep(&d, NULL);
		if (write(response[1], &b, 1) != 1)
			exit(2);
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: waits SECONDS OUT\n");
		return 1;
	}
	run_nanos = (int64_t)(atof(argv[1]) * 1e9);
	if (pipe(request) || pipe(response))
		return 2;
	char go;
	if (read(0, &go, 1) < 0) // a byte, or at once on end of file
		return 2;
	pthread_t w, h;
	struct result r = {0};
	pthread_create(&h, NULL, writer, NULL);
	pthread_create(&w, NULL, worker, &r);
	pthread_join(w, NULL);
	FILE *out = fopen(argv[2], "w");
	if (!out)
		return 2;
	fprintf(out, "%ld %lld %lld %lld %lld\n", r.tid, (long long)r.sleep_ns, (long long)r.pipe_ns,
		(long long)r.wall_ns, (long long)r.oncpu_ns);
	fclose(out);
	return 0;
}
