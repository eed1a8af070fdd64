// storm is a context-switch storm, in one of two kinds, for the seconds
// given:
//   storm SECS          two threads pass one byte back and forth through
//                       two pipes, each blocking in read until the other
//                       writes: switches from the same place each time.
//   storm SECS preempt  on each CPU two threads spin through a few
//                       functions while a third wakes every 20 µs and
//                       preempts one: preemptions at a new place each time,
//                       the case a host of busy processes gives a profiler.
// It prints the round trips (or wake-ups) per second.
//
// Build: gcc -O2 -pthread -o storm storm.c
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static volatile int done;
static volatile unsigned long sink;

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *echo(void *arg) {
	(void)arg;
	char b;
	while (read(ping[0], &b, 1) == 1)
		if (write(pong[1], &b, 1) != 1)
			break;
	return NULL;
}

static int pingpong(double secs) {
	if (pipe(ping) || pipe(pong))
		return 1;
	pthread_t t;
	pthread_create(&t, NULL, echo, NULL);
	char b = 0;
	long trips = 0;
	double start = now(), end = start + secs;
	while (now() < end) {
		for (int i = 0; i < 1000; i++) {
			if (write(ping[1], &b, 1) != 1 || read(pong[0], &b, 1) != 1)
				return 1;
		}
		trips += 1000;
	}
	double took = now() - start;
	printf("round trips/s: %.0f\n", trips / took);
	return 0;
}

// Spinners: a few levels of calls, so a preemption lands in different
// functions and lines.
static __attribute__((noinline)) unsigned long mix(unsigned long x) {
	for (int i = 0; i < 50; i++)
		x = x * 6364136223846793005ul + 1442695040888963407ul;
	return x;
}
static __attribute__((noinline)) unsigned long fold(unsigned long x) {
	for (int i = 0; i < 20; i++)
		x ^= mix(x + i) >> 7;
	return x;
}
static __attribute__((noinline)) unsigned long churn(unsigned long x) {
	for (int i = 0; i < 10; i++)
		x += fold(x ^ i);
	return x;
}

static void pin(long cpu) {
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *spin(void *arg) {
	pin((long)arg);
	unsigned long x = (unsigned long)arg;
	while (!done)
		x = churn(x);
	sink = x;
	return NULL;
}

static long wakeups;

static void *wake(void *arg) {
	pin((long)arg);
	prctl(PR_SET_TIMERSLACK, 1UL);
	struct timespec ts = {0, 20000};
	long n = 0;
	while (!done) {
		nanosleep(&ts, NULL);
		n++;
	}
	__sync_fetch_and_add(&wakeups, n);
	return NULL;
}

static int preempt(double secs) {
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t *t = calloc(3 * cpus, sizeof(*t));
	double start = now();
	for (long c = 0; c < cpus; c++) {
		pthread_create(&t[3 * c], NULL, spin, (void *)c);
		pthread_create(&t[3 * c + 1], NULL, spin, (void *)c);
		pthread_create(&t[3 * c + 2], NULL, wake, (void *)c);
	}
	struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
	nanosleep(&ts, NULL);
	done = 1;
	for (long i = 0; i < 3 * cpus; i++)
		pthread_join(t[i], NULL);
	printf("wake-ups/s: %.0f\n", wakeups / (now() - start));
	return 0;
}

int main(int argc, char **argv) {
	double secs = argc > 1 ? atof(argv[1]) : 10;
	if (argc > 2 && strcmp(argv[2], "preempt") == 0)
		return preempt(secs);
	return pingpong(secs);
}
