/* Timing helpers shared by the benchmarks: a monotonic clock in µs and a
 * nearest-rank percentile (sorts the samples in place). */
#ifndef VMPOOL_BENCHSTAT_H
#define VMPOOL_BENCHSTAT_H

#include <stdlib.h>
#include <time.h>

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

#endif
