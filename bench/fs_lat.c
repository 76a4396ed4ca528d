/* Latency of single tree operations through a mounted vmpoolfs, timed
 * around the system calls themselves (no fork/exec of mkdir or cat in the
 * measurement): mkdir(2) of pool/NAME on a warm hit, and the command round
 * trip (write "true" to cmd, read exit) as open/write/close + open/read/close.
 * Usage: fs_lat MOUNT N [mkdir|rt|all]. Prints "name p50_ms p95_ms" lines. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "benchstat.h"

static void report(const char *name, double *v, int n)
{
	double p50 = bench_percentile(v, n, 0.50), p95 = bench_percentile(v, n, 0.95);
	printf("%s %.3f %.3f\n", name, p50 / 1000, p95 / 1000);
}

/* Until the pool has a warm machine and nothing in the background. */
static void wait_idle(const char *mnt)
{
	for (int i = 0; i < 2000; i++) {
		if (bench_stats_val(mnt, "idle") >= 1 && bench_stats_val(mnt, "creating") == 0 &&
		    bench_stats_val(mnt, "resetting") == 0)
			return;
		usleep(2000);
	}
}

static int bench_mkdir(const char *mnt, int n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/pool/lat", mnt);
	double *v = calloc((size_t)n, sizeof *v);
	if (!v)
		return -1;
	for (int i = 0; i < n; i++) {
		wait_idle(mnt);
		double t0 = bench_now_us();
		if (mkdir(path, 0755) < 0) {
			perror("mkdir");
			free(v);
			return -1;
		}
		double t1 = bench_now_us();
		v[i] = t1 - t0;
		if (rmdir(path) < 0) {
			perror("rmdir");
			free(v);
			return -1;
		}
	}
	report("mkdir_hit", v, n);
	free(v);
	return 0;
}

static int one_rt(const char *cmd, const char *ex)
{
	char buf[64];
	int fd = open(cmd, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, "true\n", 5) != 5) {
		perror("cmd");
		return -1;
	}
	if (close(fd) < 0) {
		perror("close cmd");
		return -1;
	}
	fd = open(ex, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof buf) <= 0) {
		perror("exit");
		return -1;
	}
	close(fd);
	return 0;
}

static int bench_rt(const char *mnt, int n)
{
	char dir[4096], cmd[4200], ex[4200];
	snprintf(dir, sizeof dir, "%s/pool/latrt", mnt);
	snprintf(cmd, sizeof cmd, "%s/cmd", dir);
	snprintf(ex, sizeof ex, "%s/exit", dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		perror("mkdir");
		return -1;
	}
	double *v = calloc((size_t)n, sizeof *v);
	int r = v ? 0 : -1;
	for (int i = 0; i < 20 && r == 0; i++)
		r = one_rt(cmd, ex);
	for (int i = 0; i < n && r == 0; i++) {
		double t0 = bench_now_us();
		r = one_rt(cmd, ex);
		v[i] = bench_now_us() - t0;
	}
	if (r == 0)
		report("roundtrip", v, n);
	free(v);
	rmdir(dir);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s MOUNT N [mkdir|rt|all]\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[2]);
	const char *what = argc > 3 ? argv[3] : "all";
	if (n <= 0)
		return 2;
	int r = 0;
	if (!strcmp(what, "mkdir") || !strcmp(what, "all"))
		r |= bench_mkdir(argv[1], n);
	if (!strcmp(what, "rt") || !strcmp(what, "all"))
		r |= bench_rt(argv[1], n);
	return r ? 1 : 0;
}
