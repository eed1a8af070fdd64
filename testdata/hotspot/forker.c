// forker burns CPU in three processes: itself, a child it forks and a
// grandchild the child forks, none of which execs, so only a profiler that
// follows forks sees the two descendants. Each burns in its own leaf for the
// whole run: parent_burn, child_burn, grandchild_burn. The parent exits
// after both descendants.
//
// Usage: forker [seconds [pidfile]]   (default 2 s; each process appends
// "role pid" to pidfile, so a test knows the tree)
//
// Build (see build.sh):
//   gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -o forker forker.c
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t sink;

static int64_t now_nanos(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define BURN_UNTIL(deadline)                                \
	do {                                                    \
		uint64_t x = sink | 1;                              \
		do {                                                \
			for (int i = 0; i < 100000; i++) {              \
				x ^= x << 13;                               \
				x ^= x >> 7;                                \
				x ^= x << 17;                               \
			}                                               \
		} while (now_nanos() < (deadline));                 \
		sink = x;                                           \
	} while (0)

__attribute__((noinline)) void parent_burn(int64_t deadline) { BURN_UNTIL(deadline); }
__attribute__((noinline)) void child_burn(int64_t deadline) { BURN_UNTIL(deadline); }
__attribute__((noinline)) void grandchild_burn(int64_t deadline) { BURN_UNTIL(deadline); }

static const char *pidfile;

static void note(const char *role) {
	if (!pidfile)
		return;
	char line[64];
	int n = snprintf(line, sizeof line, "%s %d\n", role, (int)getpid());
	int fd = open(pidfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		if (write(fd, line, n) != n)
			exit(1);
		close(fd);
	}
}

int main(int argc, char **argv) {
	double seconds = argc > 1 ? atof(argv[1]) : 2;
	pidfile = argc > 2 ? argv[2] : NULL;
	note("parent");
	int64_t deadline = now_nanos() + (int64_t)(seconds * 1e9);
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		pid_t grandchild = fork();
		if (grandchild < 0)
			return 1;
		if (grandchild == 0) {
			note("grandchild");
			grandchild_burn(deadline);
			return 0;
		}
		note("child");
		child_burn(deadline);
		waitpid(grandchild, NULL, 0);
		return 0;
	}
	parent_burn(deadline);
	waitpid(child, NULL, 0);
	return 3; // a status the caller can check was passed on
}
