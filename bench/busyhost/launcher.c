// launcher starts short programs at a steady rate, for bench/busyhost.sh:
// one fork+exec every 1/RATE seconds on absolute deadlines, cycling through
// the command lines of FILE (one program a line, arguments split on spaces;
// repeat a line to weight it). A shell loop cannot hold a rate: its own
// forks and waits drift with the load. At most MAX children run at once;
// a start that would pass it is skipped and counted, so an overloaded host
// degrades to a lower rate instead of an ever-growing run queue.
//
// Usage: launcher RATE MAX FILE [CHILD-NICE]
// Children run at CHILD-NICE (default 0) whatever the launcher's own nice
// value: busyhost.sh raises the launcher so that a loaded host, which is
// the point, does not starve the rate.
// Every 10 s it prints to stdout: started, skipped, running.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CMDS 256
#define MAX_ARGS 16

static char *cmds[MAX_CMDS][MAX_ARGS + 1];

static int load(const char *path) {
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		exit(2);
	}
	char line[1024];
	int n = 0;
	while (n < MAX_CMDS && fgets(line, sizeof line, f)) {
		int argc = 0;
		for (char *tok = strtok(line, " \t\n"); tok && argc < MAX_ARGS; tok = strtok(NULL, " \t\n"))
			cmds[n][argc++] = strdup(tok);
		if (argc == 0 || cmds[n][0][0] == '#')
			continue;
		cmds[n][argc] = NULL;
		n++;
	}
	fclose(f);
	return n;
}

static void add_nanos(struct timespec *t, long ns) {
	t->tv_nsec += ns;
	t->tv_sec += t->tv_nsec / 1000000000L;
	t->tv_nsec %= 1000000000L;
}

int main(int argc, char **argv) {
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s RATE MAX FILE [CHILD-NICE]\n", argv[0]);
		return 2;
	}
	double rate = atof(argv[1]);
	long max = atol(argv[2]);
	int n = load(argv[3]);
	int child_nice = argc == 5 ? atoi(argv[4]) : 0;
	if (rate <= 0 || max <= 0 || n == 0) {
		fprintf(stderr, "launcher: need a positive rate and limit and at least one command\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	long step = (long)(1e9 / rate);
	long started = 0, skipped = 0, running = 0;
	struct timespec next, now, report;
	clock_gettime(CLOCK_MONOTONIC, &next);
	report = next;
	add_nanos(&report, 10000000000L);
	for (int i = 0;; i = (i + 1) % n) {
		add_nanos(&next, step);
		clock_gettime(CLOCK_MONOTONIC, &now);
		// More than a second behind (the launcher itself was starved):
		// count the missed starts as skipped and go on from now rather
		// than catch up in a burst.
		if (now.tv_sec - next.tv_sec > 1) {
			skipped += ((now.tv_sec - next.tv_sec) * 1000000000L + now.tv_nsec - next.tv_nsec) / step;
			next = now;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		while (running > 0 && waitpid(-1, NULL, WNOHANG) > 0)
			running--;
		if (running >= max) {
			skipped++;
		} else {
			// fork, not posix_spawn: vfork would block us until the child
			// is scheduled and execs, which on a loaded host is what
			// holds the rate down.
			pid_t pid = fork();
			if (pid == 0) {
				// The launcher may run at a raised priority to hold its
				// rate; what it starts competes like anything else.
				setpriority(PRIO_PROCESS, 0, child_nice);
				execv(cmds[i][0], cmds[i]);
				_exit(127);
			}
			if (pid < 0) {
				perror("launcher: fork");
				skipped++;
			} else {
				started++;
				running++;
			}
		}
		if (next.tv_sec > report.tv_sec || (next.tv_sec == report.tv_sec && next.tv_nsec >= report.tv_nsec)) {
			printf("launcher: started %ld skipped %ld running %ld\n", started, skipped, running);
			add_nanos(&report, 10000000000L);
		}
	}
}
