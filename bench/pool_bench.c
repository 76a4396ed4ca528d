/* Our pool (pool/pool.h) against the reference pool (refpool.h) in the same
 * run, over the same ns machines through the daemon's own adapter
 * (vmm/machine_pool.c): how long the caller's thread is blocked in acquire and in
 * release, and cycles/s of acquire → EXEC `true` → release, for one client
 * (200 cycles) and four at once (100 each); then four clients whose command
 * does 20 ms of waiting (`sleep 0.02`, 50 cycles each), the case of users
 * whose jobs take longer than a reset. Pools take turns, a fresh pool
 * per measurement, ROUNDS rounds in a rotating order so that the host's
 * drift falls on every pool alike. Usage: pool_bench [IMAGE_DIR] (default:
 * the build's image, or $VMPOOL_IMAGE). Needs root. Prints markdown tables. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/machine_pool.h"
#include "proto/client.h"
#include "pool/pool.h"
#include "vmm/machine.h"
#include "benchrun.h"
#include "benchstat.h"
#include "refpool.h"

#ifndef VMPOOL_IMAGE_DEFAULT
#define VMPOOL_IMAGE_DEFAULT "image"
#endif

#define ROUNDS 3
#define SINGLE_CYCLES 200
#define CONC_CLIENTS 4
#define CONC_CYCLES 100 /* per client */
#define JOB_CYCLES 50	/* per client, with the 20 ms job */
#define MAX_SAMPLES (ROUNDS * CONC_CLIENTS * CONC_CYCLES)

static const struct vp_exec exec_true = { .cmd = { .p = (const uint8_t *)"true", .len = 4 } };
static const char job_cmd[] = "sleep 0.02";
static const struct vp_exec exec_job = { .cmd = { .p = (const uint8_t *)job_cmd, .len = sizeof(job_cmd) - 1 } };

/* What the reference's cleanup is for our machines. The seed's
 * clear_backend_artifacts calls KvmBackend::clear_pool_artifacts, which in
 * upstream mimobox (crates/mimobox-vm/src/kvm.rs of that time) only empties
 * host-side buffers (serial output, last command, exit reason, I/O details)
 * and does nothing in the guest; our client keeps no such buffers, so its
 * literal equivalent is no work at all ("seed" below: the strictest peer).
 * docs/design.md §2 describes the reference as wiping one directory, and later
 * upstream versions make the cleanup a guest operation; the one scratch
 * directory of our guest is /tmp, so "wipe" runs this, through the
 * machine's client, status ignored as the reference ignores its cleanup's.
 * Neither touches processes or any other file of the previous user. */
static const char wipe_cmd[] = "rm -rf /tmp/* 2>/dev/null; true";
static const struct vp_exec exec_wipe = { .cmd = { .p = (const uint8_t *)wipe_cmd,
						   .len = sizeof(wipe_cmd) - 1 } };

/* ---- machines: the daemon's ops, counted so that a leak shows ---- */

struct counted {
	struct machine_backend *b;
	atomic_long live, creates, resets;
};

static int cnt_create(void *ctx, void **m)
{
	struct counted *c = ctx;
	int r = machine_pool_ops.create(c->b, m);
	if (r == 0) {
		atomic_fetch_add(&c->live, 1);
		atomic_fetch_add(&c->creates, 1);
	}
	return r;
}

static int cnt_reset(void *ctx, void *m)
{
	struct counted *c = ctx;
	atomic_fetch_add(&c->resets, 1);
	return machine_pool_ops.reset(c->b, m);
}

static void cnt_destroy(void *ctx, void *m)
{
	struct counted *c = ctx;
	atomic_fetch_sub(&c->live, 1);
	machine_pool_ops.destroy(c->b, m);
}

static bool cnt_alive(void *ctx, void *m)
{
	return machine_pool_ops.is_alive(((struct counted *)ctx)->b, m);
}

static int cnt_health(void *ctx, void *m)
{
	return machine_pool_ops.health_check(((struct counted *)ctx)->b, m);
}

static const struct pool_machine_ops counted_ops = {
	.create = cnt_create,
	.reset = cnt_reset,
	.destroy = cnt_destroy,
	.is_alive = cnt_alive,
	.health_check = cnt_health,
};

static void wipe_tmp(void *ctx, void *m)
{
	(void)ctx;
	(void)bench_exec(machine_client(m), &exec_wipe);
}

/* ---- the contenders ---- */

enum kind { OURS, REF_SEED, REF_WIPE, REF_RESET, NKINDS };
static const char *const kind_name[NKINDS] = {
	[OURS] = "ours (pool.h)",
	[REF_SEED] = "reference, seed's cleanup (none in guest)",
	[REF_WIPE] = "reference, cleanup = rm -rf /tmp/*",
	[REF_RESET] = "reference, full reset on release",
};

struct any_pool {
	struct pool *ours;
	struct refpool *ref;
};

static int any_new(enum kind k, const struct pool_config *cfg, struct counted *c, struct any_pool *a)
{
	*a = (struct any_pool){ 0 };
	if (k == OURS) {
		int r = pool_new(cfg, &counted_ops, c, &a->ours);
		if (r == 0)
			pool_quiesce(a->ours); /* warm, as the reference's new returns */
		return r;
	}
	return refpool_new(cfg, &counted_ops, c, k == REF_RESET ? REFPOOL_FULL_RESET : REFPOOL_AS_REFERENCE,
			   k == REF_WIPE ? wipe_tmp : NULL, &a->ref);
}

static int any_acquire(struct any_pool *a, void **m)
{
	return a->ours ? pool_acquire(a->ours, m) : refpool_acquire(a->ref, m);
}

static void any_release(struct any_pool *a, void *m)
{
	if (a->ours)
		pool_release(a->ours, m);
	else
		refpool_release(a->ref, m);
}

static void any_stats(struct any_pool *a, struct pool_stats *s)
{
	if (a->ours)
		pool_get_stats(a->ours, s);
	else
		refpool_get_stats(a->ref, s);
}

static void any_free(struct any_pool *a)
{
	pool_free(a->ours);
	refpool_free(a->ref);
}

/* ---- one workload ---- */

struct samples {
	double acq[MAX_SAMPLES], rel[MAX_SAMPLES], exe[MAX_SAMPLES];
	int n;
	double cycles, secs, secs_clients; /* until quiet; until the last release returned */
	uint64_t hits, misses, creates, resets;
	uint64_t boot_us_sum, boot_n, reset_us_sum, reset_n; /* ours only: its pool_stats */
};

struct client {
	struct any_pool *pool;
	pthread_barrier_t *start;
	int cycles;
	const struct vp_exec *cmd;
	double *acq, *rel, *exe; /* this client's slice */
	int err;
};

static void *client_main(void *arg)
{
	struct client *cl = arg;
	pthread_barrier_wait(cl->start);
	for (int i = 0; i < cl->cycles && !cl->err; i++) {
		void *m;
		double t0 = bench_now_us();
		cl->err = any_acquire(cl->pool, &m);
		double t1 = bench_now_us();
		if (cl->err)
			break;
		cl->err = bench_exec(machine_client(m), cl->cmd);
		double t2 = bench_now_us();
		any_release(cl->pool, m);
		double t3 = bench_now_us();
		cl->acq[i] = t1 - t0;
		cl->exe[i] = t2 - t1;
		cl->rel[i] = t3 - t2;
	}
	return NULL;
}

/* nclients × cycles on a fresh pool; samples appended to s. The window ends
 * when our pool is quiet again, so work it left to its threads is paid. */
static int run_one(enum kind k, const struct pool_config *cfg, struct counted *c, int nclients, int cycles,
		   const struct vp_exec *cmd, struct samples *s)
{
	struct any_pool a;
	long creates0 = atomic_load(&c->creates), resets0 = atomic_load(&c->resets);
	int err = any_new(k, cfg, c, &a);
	if (err)
		return err;
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)nclients + 1);
	struct client cl[CONC_CLIENTS];
	pthread_t t[CONC_CLIENTS];
	for (int i = 0; i < nclients; i++) {
		int base = s->n + i * cycles;
		cl[i] = (struct client){ .pool = &a,
					 .start = &start,
					 .cycles = cycles,
					 .cmd = cmd,
					 .acq = s->acq + base,
					 .rel = s->rel + base,
					 .exe = s->exe + base };
		pthread_create(&t[i], NULL, client_main, &cl[i]);
	}
	pthread_barrier_wait(&start);
	double t0 = bench_now_us();
	for (int i = 0; i < nclients; i++) {
		pthread_join(t[i], NULL);
		if (cl[i].err && !err)
			err = cl[i].err;
	}
	s->secs_clients += (bench_now_us() - t0) / 1e6;
	if (a.ours)
		pool_quiesce(a.ours);
	s->secs += (bench_now_us() - t0) / 1e6;
	pthread_barrier_destroy(&start);

	struct pool_stats st;
	any_stats(&a, &st);
	any_free(&a);
	s->n += nclients * cycles;
	s->cycles += nclients * cycles;
	s->hits += st.hits;
	s->misses += st.misses;
	s->creates += (uint64_t)(atomic_load(&c->creates) - creates0);
	s->resets += (uint64_t)(atomic_load(&c->resets) - resets0);
	s->boot_us_sum += st.boot_us_avg * st.creates;
	s->boot_n += st.creates;
	s->reset_us_sum += st.reset_us_avg * st.resets;
	s->reset_n += st.resets;
	if (!err && atomic_load(&c->live) != 0)
		err = -EBADFD; /* a machine outlived its pool */
	return err;
}

/* ---- report ---- */

struct figures {
	double acq50, acq95, rel50, rel95, exe50, rate, rate_clients;
};

static struct figures summarize(struct samples *s)
{
	struct figures f = {
		bench_percentile(s->acq, s->n, 0.5), bench_percentile(s->acq, s->n, 0.95),
		bench_percentile(s->rel, s->n, 0.5), bench_percentile(s->rel, s->n, 0.95),
		bench_percentile(s->exe, s->n, 0.5), s->cycles / s->secs,
		s->cycles / s->secs_clients,
	};
	return f;
}

/* A ratio as "1.62x", "523x" or, far below 1, "1/28800x". */
static const char *ratio(char *buf, size_t cap, double r)
{
	if (r < 0.1)
		snprintf(buf, cap, 1 / r < 100 ? "1/%.1fx" : "1/%.0fx", 1 / r);
	else
		snprintf(buf, cap, r < 100 ? "%.2fx" : "%.0fx", r);
	return buf;
}

static void print_table(const char *title, struct samples *s)
{
	struct figures f[NKINDS];
	printf("\n%s\n\n", title);
	printf("| pool | acquire p50 / p95 | release p50 / p95 | command p50 | cycles/s (clients done) |"
	       " hits / misses | creates / resets |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < NKINDS; k++) {
		f[k] = summarize(&s[k]);
		printf("| %s | %.1f / %.1f µs | %.1f / %.1f µs | %.0f µs | %.0f (%.0f) | %llu / %llu | %llu "
		       "/ %llu |\n",
		       kind_name[k], f[k].acq50, f[k].acq95, f[k].rel50, f[k].rel95, f[k].exe50, f[k].rate,
		       f[k].rate_clients, (unsigned long long)s[k].hits, (unsigned long long)s[k].misses,
		       (unsigned long long)s[k].creates, (unsigned long long)s[k].resets);
	}
	/* Why ours waits or boots when nothing is idle: it waits for a
	 * running reset only while resets average no slower than boots. */
	printf("\nours, from its pool_stats: boot avg %.2f ms (n=%llu), reset avg %.2f ms (n=%llu)\n",
	       s[OURS].boot_n ? (double)s[OURS].boot_us_sum / (double)s[OURS].boot_n / 1e3 : 0.0,
	       (unsigned long long)s[OURS].boot_n,
	       s[OURS].reset_n ? (double)s[OURS].reset_us_sum / (double)s[OURS].reset_n / 1e3 : 0.0,
	       (unsigned long long)s[OURS].reset_n);
	/* Peer over ours for times, ours over peer for cycles/s: > 1 is ours
	 * better, < 1 is ours worse. */
	printf("\n| ours vs | acquire p50 / p95 | release p50 / p95 | cycles/s |\n|---|---|---|---|\n");
	for (int k = 1; k < NKINDS; k++) {
		char r[5][32];
		printf("| %s | %s / %s | %s / %s | %s |\n", kind_name[k],
		       ratio(r[0], 32, f[k].acq50 / f[0].acq50), ratio(r[1], 32, f[k].acq95 / f[0].acq95),
		       ratio(r[2], 32, f[k].rel50 / f[0].rel50), ratio(r[3], 32, f[k].rel95 / f[0].rel95),
		       ratio(r[4], 32, f[0].rate / f[k].rate));
	}
}

static int run_config(struct counted *c, uint32_t min_size)
{
	struct pool_config cfg;
	pool_config_defaults(&cfg); /* the reference's defaults: min 1, max 16, 30 s, no checks */
	cfg.min_size = min_size;
	static struct samples one[NKINDS], four[NKINDS], jobs[NKINDS];
	memset(one, 0, sizeof(one));
	memset(four, 0, sizeof(four));
	memset(jobs, 0, sizeof(jobs));
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < NKINDS; i++) {
			enum kind k = (enum kind)((i + r) % NKINDS);
			int err = run_one(k, &cfg, c, 1, SINGLE_CYCLES, &exec_true, &one[k]);
			if (!err)
				err = run_one(k, &cfg, c, CONC_CLIENTS, CONC_CYCLES, &exec_true, &four[k]);
			if (!err)
				err = run_one(k, &cfg, c, CONC_CLIENTS, JOB_CYCLES, &exec_job, &jobs[k]);
			if (err) {
				fprintf(stderr, "pool_bench: %s: %s\n", kind_name[k], strerror(-err));
				return err;
			}
		}
	}
	char title[160];
	snprintf(title, sizeof(title), "min=%u max=%u: 1 client, %d cycles x %d rounds", cfg.min_size,
		 cfg.max_size, SINGLE_CYCLES, ROUNDS);
	print_table(title, one);
	snprintf(title, sizeof(title), "min=%u max=%u: %d clients at once, %d cycles each x %d rounds",
		 cfg.min_size, cfg.max_size, CONC_CLIENTS, CONC_CYCLES, ROUNDS);
	print_table(title, four);
	snprintf(title, sizeof(title),
		 "min=%u max=%u: %d clients at once, `%s` as the command, %d cycles each x %d rounds",
		 cfg.min_size, cfg.max_size, CONC_CLIENTS, job_cmd, JOB_CYCLES, ROUNDS);
	print_table(title, jobs);
	return 0;
}

/* Other work on the host skews every pool's figures; say how much there was. */
static void print_loadavg(const char *when)
{
	char buf[128] = "?";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			strcpy(buf, "?\n");
		fclose(f);
	}
	printf("\nload average at %s: %s", when, buf);
}

int main(int argc, char **argv)
{
	struct counted c = { 0 };
	int err = bench_open_ns(argc, argv, VMPOOL_IMAGE_DEFAULT, &c.b);
	if (err)
		return 1;
	print_loadavg("start");
	static const uint32_t mins[] = { 2, 1 };
	for (size_t i = 0; i < sizeof(mins) / sizeof(mins[0]) && !err; i++)
		err = run_config(&c, mins[i]);
	print_loadavg("end");
	/* Every pool is freed by now; a machine still counted live would be a
	 * pool's leak, and closing the backend under it would be wrong. */
	if (atomic_load(&c.live) == 0)
		machine_backend_close(c.b);
	else
		fprintf(stderr, "pool_bench: %ld machines leaked\n", atomic_load(&c.live));
	return err ? 1 : 0;
}
