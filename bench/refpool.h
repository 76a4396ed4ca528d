/* The reference pool (a warm pool in Rust, mimobox_pool.rs) as a benchmark peer for
 * pool/pool.h: the same acquire, release (its recycle) and warm, all on the
 * caller's thread, over the same pool_machine_ops, so both pools run the same
 * machines. Uses min_size, max_size, max_idle_ms and health_check_interval of
 * pool_config; max_machines is ignored (the reference has no cap). Thread-safe
 * (one mutex, as the reference). Functions return 0 or -errno. */
#ifndef VMPOOL_REFPOOL_H
#define VMPOOL_REFPOOL_H

#include "pool/pool.h"

enum refpool_release {
	/* The reference's own cleanup: `clear` (may be NULL: nothing). */
	REFPOOL_AS_REFERENCE,
	/* ops->reset in its place: the reference's structure with our
	 * isolation guarantee; a failed reset evicts and replaces. */
	REFPOOL_FULL_RESET,
};

/* The reference's clear_backend_artifacts, for REFPOOL_AS_REFERENCE; its
 * result is ignored, as the reference's is. */
typedef void (*refpool_clear_fn)(void *ctx, void *machine);

struct refpool;
/* Warms min_size machines synchronously, as VmPool::new does. */
int refpool_new(const struct pool_config *cfg, const struct pool_machine_ops *ops, void *ctx,
		enum refpool_release mode, refpool_clear_fn clear, struct refpool **out);
/* Destroys the idle machines (the reference's Drop); acquired ones are the
 * caller's to release first. */
void refpool_free(struct refpool *p);
int refpool_acquire(struct refpool *p, void **machine);
void refpool_release(struct refpool *p, void *machine);
/* Idle up to min(count, max_size); how many were added, or the first
 * create's -errno (what it had made is destroyed). */
int refpool_warm(struct refpool *p, uint32_t count);
/* Fills hits, misses, evictions, idle and in_use. */
void refpool_get_stats(struct refpool *p, struct pool_stats *out);

#endif
