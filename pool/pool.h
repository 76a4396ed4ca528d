/* Warm pool of machines: the reference pool (a warm pool in Rust, mimobox_pool.rs)
 * in C, plus docs/design.md §2's improvements (full reset on release, creation /
 * reset / refill on background threads, max_machines cap, timing stats).
 *
 * The pool knows machines only through pool_machine_ops, so unit tests use a
 * fake and the daemon plugs in vmm/machine.h. Thread-safe. Functions return
 * 0 or -errno. */
#ifndef VMPOOL_POOL_H
#define VMPOOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

struct pool_machine_ops {
	int (*create)(void *ctx, void **machine); /* a ready machine */
	int (*reset)(void *ctx, void *machine);	  /* back to pristine */
	void (*destroy)(void *ctx, void *machine);
	bool (*is_alive)(void *ctx, void *machine);    /* reusable check on release */
	int (*health_check)(void *ctx, void *machine); /* 0 = healthy (runs /bin/true) */
	uint64_t (*now_ms)(void *ctx);		       /* monotonic clock; NULL = CLOCK_MONOTONIC */
};

struct pool_config {
	uint32_t min_size;		/* idle machines kept warm (1) */
	uint32_t max_size;		/* idle machines retained (16) */
	uint32_t max_idle_ms;		/* idle longer than this → evicted on acquire (30000) */
	uint32_t health_check_interval; /* every N releases; 0 = off (0) */
	uint32_t max_machines; /* hard cap on every machine the backend holds: idle, in use, being made, reset or destroyed (64); 0 = none */
};
void pool_config_defaults(struct pool_config *cfg);
/* -EINVAL for max_size == 0, min_size > max_size, or max_machines < min_size. */
int pool_config_validate(const struct pool_config *cfg);

struct pool_stats {
	uint64_t hits, misses, evictions;
	uint32_t idle, in_use, creating, resetting;
	uint64_t creates, create_failures, resets, reset_failures, health_checks, health_failures;
	uint64_t boot_us_last, boot_us_avg, reset_us_last, reset_us_avg;
};

struct pool;
/* Starts the background workers and warms min_size machines in the background. */
int pool_new(const struct pool_config *cfg, const struct pool_machine_ops *ops, void *ctx, struct pool **out);
/* Destroys every machine the pool holds (idle and in progress) after the
 * workers finish; machines still acquired must have been released first. */
void pool_free(struct pool *p);

/* Evict expired idle machines; take the most recently released (hit) or
 * create one on the caller's thread (miss). -EAGAIN when max_machines would
 * be exceeded; a failed create rolls back in_use and returns its error. */
int pool_acquire(struct pool *p, void **machine);
/* Gives the machine back; returns at once. Not alive → evicted and replaced;
 * health check every N releases; else reset in the background, then idle
 * (evicting the oldest over max_size). */
void pool_release(struct pool *p, void *machine);
/* Bring idle up to min(count, max_size) synchronously; returns how many were
 * added (≥ 0) or -errno of the first failed create. */
int pool_warm(struct pool *p, uint32_t count);
/* Block until no background create/reset is in progress (tests, shutdown). */
void pool_quiesce(struct pool *p);
void pool_get_stats(struct pool *p, struct pool_stats *out);
const struct pool_config *pool_get_config(const struct pool *p);

#endif
