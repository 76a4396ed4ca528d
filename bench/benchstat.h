/* Timing helpers shared by the benchmarks: a monotonic clock in µs and a
 * nearest-rank percentile (sorts the samples in place); a counter of a
 * mount's stats file. */
#ifndef VMPOOL_BENCHSTAT_H
#define VMPOOL_BENCHSTAT_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* p in [0, 1]; n > 0. */
static inline double bench_percentile(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
	return v[(int)(p * (n - 1) + 0.5)];
}

/* The value of key in MNT/stats, -1 if unreadable. */
static inline long bench_stats_val(const char *mnt, const char *key)
{
	char path[4096], buf[4096];
	snprintf(path, sizeof path, "%s/stats", mnt);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	size_t kl = strlen(key);
	for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == '=')
			return strtol(p + kl + 1, NULL, 10);
	return -1;
}

#endif
