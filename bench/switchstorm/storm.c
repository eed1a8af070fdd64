// storm is a context-switch storm: two threads pass one byte back and forth
// through two pipes, each blocking in read until the other writes, for the
// seconds given. It prints the round trips per second; each is two
// switches out and two in on a CPU that has nothing else to run.
//
// Build: gcc -O2 -pthread -o storm storm.c
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static volatile int done;

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

int main(int argc, char **argv) {
	double secs = argc > 1 ? atof(argv[1]) : 10;
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
