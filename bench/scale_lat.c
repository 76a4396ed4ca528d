/* Cost of acquire, command and release against the number of machines
 * held, through a mounted vmpoolfs (run by scale_bench.sh, which mounts it
 * with min=0 so every acquire that finds no idle machine is a miss).
 *
 * Usage: scale_lat MOUNT DAEMON_PID K N1 [N2 ...] (N ascending)
 * For each N: holds N machines (pool/hI, each running `sleep`), then at
 * that count times K misses (mkdir of a fresh name, no idle machine), K
 * command round trips (write "true" to cmd, read exit) on those, K rmdirs,
 * then, once the pool is quiet, K warm mkdirs (a hit, each followed by an
 * untimed rmdir). Also the daemon's fds and the host's memory per machine
 * held. One line per N:
 *   N miss_p50 miss_p95 exec_p50 exec_p95 rmdir_p50 rmdir_p95 warm_p50
 *     fds_per_machine kb_per_machine fill_s
 * (latencies in ms). At the end every machine is released, and the time
 * until the pool holds nothing more is printed as "release_all N s". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchstat.h"

struct ctx {
	const char *mnt;
	int pid;
	int held;
};

/* Until nothing runs in the pool's background (resets, creates, destroys
 * show as resetting/creating). */
static void wait_quiet(const char *mnt, int want_idle)
{
	for (int i = 0; i < 30000; i++) {
		long idle = bench_stats_val(mnt, "idle");
		if (bench_stats_val(mnt, "creating") == 0 && bench_stats_val(mnt, "resetting") == 0 &&
		    (want_idle < 0 || idle >= want_idle))
			return;
		usleep(2000);
	}
}

static long count_fds(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static long mem_available_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, text, strlen(text));
	int r = close(fd);
	return w == (ssize_t)strlen(text) && r == 0 ? 0 : -1;
}

static int read_exit(const char *dir)
{
	char path[4200], buf[64];
	snprintf(path, sizeof path, "%s/exit", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	return n > 0 ? 0 : -1;
}

/* One round trip: "true" into cmd, then its exit status. */
static int round_trip(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/cmd", dir);
	if (write_file(path, "true\n") < 0)
		return -1;
	return read_exit(dir);
}

/* Holds machines up to n, each answering a command, then running sleep. */
static int fill(struct ctx *c, int n)
{
	char dir[4096], path[4200];
	for (; c->held < n; c->held++) {
		snprintf(dir, sizeof dir, "%s/pool/h%d", c->mnt, c->held);
		if (mkdir(dir, 0755) < 0) {
			fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno));
			return -1;
		}
		snprintf(path, sizeof path, "%s/cmd", dir);
		if (round_trip(dir) < 0 || write_file(path, "exec sleep 1000000\n") < 0) {
			fprintf(stderr, "command in %s: %s\n", dir, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int step(struct ctx *c, int n, int k)
{
	long mem0 = mem_available_kb();
	int held0 = c->held;
	double t0 = bench_now_us();
	if (fill(c, n) < 0)
		return -1;
	double fill_s = (bench_now_us() - t0) / 1e6;
	wait_quiet(c->mnt, -1);
	long mem1 = mem_available_kb();
	long fds = count_fds(c->pid);
	/* fds per machine: what the daemon holds beyond its base, measured
	 * with no machine (caller's first step at N=1 gives the slope only
	 * together with the later steps: the script computes the slope). */
	double *miss = calloc((size_t)k, sizeof *miss), *ex = calloc((size_t)k, sizeof *ex);
	double *rm = calloc((size_t)k, sizeof *rm), *warm = calloc((size_t)k, sizeof *warm);
	if (!miss || !ex || !rm || !warm)
		return -1;
	char dir[4096];
	for (int i = 0; i < k; i++) {
		snprintf(dir, sizeof dir, "%s/pool/m%d", c->mnt, i);
		double a = bench_now_us();
		if (mkdir(dir, 0755) < 0) {
			fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno));
			return -1;
		}
		miss[i] = bench_now_us() - a;
	}
	for (int i = 0; i < k; i++) {
		snprintf(dir, sizeof dir, "%s/pool/m%d", c->mnt, i);
		if (round_trip(dir) < 0) /* first command: not timed */
			return -1;
		double a = bench_now_us();
		if (round_trip(dir) < 0)
			return -1;
		ex[i] = bench_now_us() - a;
	}
	for (int i = 0; i < k; i++) {
		snprintf(dir, sizeof dir, "%s/pool/m%d", c->mnt, i);
		double a = bench_now_us();
		if (rmdir(dir) < 0) {
			fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
			return -1;
		}
		rm[i] = bench_now_us() - a;
	}
	snprintf(dir, sizeof dir, "%s/pool/w", c->mnt);
	for (int i = 0; i < k; i++) {
		wait_quiet(c->mnt, 1);
		double a = bench_now_us();
		if (mkdir(dir, 0755) < 0) {
			fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno));
			return -1;
		}
		warm[i] = bench_now_us() - a;
		if (rmdir(dir) < 0)
			return -1;
	}
	wait_quiet(c->mnt, -1);
	int added = c->held - held0;
	printf("%d %.3f %.3f %.3f %.3f %.3f %.3f %.3f %ld %.1f %.2f\n", n,
	       bench_percentile(miss, k, 0.5) / 1000, bench_percentile(miss, k, 0.95) / 1000,
	       bench_percentile(ex, k, 0.5) / 1000, bench_percentile(ex, k, 0.95) / 1000,
	       bench_percentile(rm, k, 0.5) / 1000, bench_percentile(rm, k, 0.95) / 1000,
	       bench_percentile(warm, k, 0.5) / 1000, fds,
	       added > 0 && mem0 > 0 && mem1 > 0 ? (double)(mem0 - mem1) / added : 0.0, fill_s);
	fflush(stdout);
	free(miss);
	free(ex);
	free(rm);
	free(warm);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s MOUNT DAEMON_PID K N1 [N2 ...]\n", argv[0]);
		return 2;
	}
	struct ctx c = { .mnt = argv[1], .pid = atoi(argv[2]), .held = 0 };
	int k = atoi(argv[3]);
	if (k <= 0)
		return 2;
	printf("# N miss_p50 miss_p95 exec_p50 exec_p95 rmdir_p50 rmdir_p95 warm_p50 fds kb_per_machine "
	       "fill_s\n");
	printf("# base fds %ld\n", count_fds(c.pid));
	fflush(stdout);
	for (int i = 4; i < argc; i++)
		if (step(&c, atoi(argv[i]), k) < 0)
			return 1;
	double t0 = bench_now_us();
	char dir[4096];
	for (int i = 0; i < c.held; i++) {
		snprintf(dir, sizeof dir, "%s/pool/h%d", c.mnt, i);
		if (rmdir(dir) < 0)
			fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
	}
	double rm_s = (bench_now_us() - t0) / 1e6;
	wait_quiet(c.mnt, -1);
	printf("# release_all %d rmdir_s %.2f quiet_s %.2f\n", c.held, rm_s, (bench_now_us() - t0) / 1e6);
	return 0;
}
