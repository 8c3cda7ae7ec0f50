/* bench_rusage: runs a command and prints "wall_s cpu_s maxrss_kib exit" on stderr's
 * last line (cpu = user + sys of the command and its waited-for children).
 * A small launcher, because Linux carries the parent's peak RSS across fork and exec:
 * measured from a Python process, every child would report at least Python's RSS.
 * Usage: bench_rusage CMD [ARG...] */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_rusage CMD [ARG...]\n");
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		fprintf(stderr, "bench_rusage: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		     (double)ru.ru_stime.tv_usec / 1e6;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	fprintf(stderr, "\nRUSAGE %.6f %.6f %ld %d\n", wall, cpu, ru.ru_maxrss, code);
	return code;
}
