/* The pool's inside, shared by its two files:
 *   pool.c       the interface (pool.h): config, new/free, acquire,
 *                release, warm, quiesce, stats
 *   pool_work.c  what runs off the caller's thread: the workers' creates
 *                and releases, refill, eviction, destroying batches
 *
 * Threads: the callers of pool.h (any number) and POOL_WORKERS workers.
 * Locking: `mu` protects every field below it in struct pool (the idle
 * deque, the release queue, every counter and statistic); cfg, ops, ctx
 * and the worker handles are set before the workers start and then only
 * read. A slot belongs to whichever list holds it (under mu) or, once
 * taken out, to the one thread that took it.
 * Lock order: mu is the only lock here and nothing is taken under it.
 * Machine operations (create, reset, health_check, destroy, is_alive) run
 * with it released, because they are slow and take the backend's own
 * locks; only ops.now_ms is called with it held, so it must not call back
 * into the pool.
 * Every machine the pool is responsible for is counted in exactly one of
 * idle, in_use, create_pending/creates_running/warm_creating (being made),
 * jobs/resets_running (being released) or destroying, so the max_machines
 * cap covers every live machine, not just the visible ones. */
#ifndef VMPOOL_POOL_IMPL_H
#define VMPOOL_POOL_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/list.h"
#include "pool/pool.h"
#include "lib/thread_safety.h"

/* Background threads for creates and resets. A few are enough: resets are
 * meant to cost milliseconds, and refill rarely needs more than min_size
 * creates at once; more threads would only compete for the host's CPUs. */
#define POOL_WORKERS 4

/* One machine in the idle deque, the release queue or a destroy batch. The
 * node made at release time is the one that later sits in the idle deque, so
 * a machine going back to idle never needs an allocation that could fail. */
struct slot {
	struct list_node link;
	void *m;
	uint64_t last_used_ms;
	bool health_check; /* release job: this release is due for a check */
};

/* A list of slots that knows its length (the cap and the stats need it). */
struct slist {
	struct list_node head; /* front = oldest */
	uint32_t len;
};

static inline void slist_init(struct slist *l)
{
	list_init(&l->head);
	l->len = 0;
}

static inline void slist_push_back(struct slist *l, struct slot *s)
{
	list_add_tail(&l->head, &s->link);
	l->len++;
}

static inline struct slot *slist_front(const struct slist *l)
{
	struct list_node *n = list_first(&l->head);
	return n ? container_of(n, struct slot, link) : NULL;
}

static inline struct slot *slist_take(struct slist *l, struct list_node *n)
{
	list_del(n);
	l->len--;
	return container_of(n, struct slot, link);
}

static inline struct slot *slist_pop_front(struct slist *l)
{
	return l->len ? slist_take(l, l->head.next) : NULL;
}

static inline struct slot *slist_pop_back(struct slist *l)
{
	return l->len ? slist_take(l, l->head.prev) : NULL;
}

struct pool {
	struct pool_config cfg;
	struct pool_machine_ops ops;
	void *ctx;
	pthread_t workers[POOL_WORKERS];
	unsigned nworkers;

	struct vp_mutex mu;
	pthread_cond_t work_cv;	  /* workers: a job arrived, or stop */
	pthread_cond_t change_cv; /* acquire waiters, quiesce: a machine went idle or work ended */
	bool stopping GUARDED_BY(mu);
	bool timer_held GUARDED_BY(mu); /* a worker waits for the next idle expiry (pool_work.c) */

	struct slist idle GUARDED_BY(mu); /* front = oldest, back = most recently released */
	struct slist jobs GUARDED_BY(mu); /* releases waiting for a worker (FIFO) */
	uint32_t in_use GUARDED_BY(mu);
	uint32_t create_pending GUARDED_BY(mu);	 /* refill creates not yet picked by a worker */
	uint32_t creates_running GUARDED_BY(mu); /* refill creates a worker is doing */
	uint32_t warm_creating GUARDED_BY(mu);	 /* pool_warm's creates on its caller's thread */
	uint32_t resets_running GUARDED_BY(mu);	 /* releases a worker is processing */
	uint32_t destroying GUARDED_BY(mu);	 /* evicted, destroy not finished yet */
	uint32_t waiters GUARDED_BY(mu);	 /* acquires waiting for background work */
	uint64_t recycle_count GUARDED_BY(mu);

	uint64_t hits GUARDED_BY(mu), misses GUARDED_BY(mu), evictions GUARDED_BY(mu);
	uint64_t creates GUARDED_BY(mu), create_failures GUARDED_BY(mu), resets GUARDED_BY(mu),
		reset_failures GUARDED_BY(mu);
	uint64_t health_checks GUARDED_BY(mu), health_failures GUARDED_BY(mu);
	uint64_t boot_us_last GUARDED_BY(mu), boot_us_total GUARDED_BY(mu), reset_us_last GUARDED_BY(mu),
		reset_us_total GUARDED_BY(mu);
};

static inline uint32_t pool_min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static inline uint32_t pool_background_creating(const struct pool *p) REQUIRES(&p->mu)
{
	return p->create_pending + p->creates_running;
}

static inline uint32_t pool_releasing(const struct pool *p) REQUIRES(&p->mu)
{
	return p->jobs.len + p->resets_running;
}

/* ---- pool_work.c (the _locked ones with mu held) ---- */

uint64_t pool_now_ms(struct pool *p);
/* ops.create, timed, normalised: 0 with *m set, or -errno with *m NULL. */
int pool_create_machine(struct pool *p, void **m, uint64_t *us);
void pool_record_create_locked(struct pool *p, int rc, uint64_t us) REQUIRES(&p->mu);
/* How many more machines may exist; UINT32_MAX when uncapped. */
uint32_t pool_room_locked(const struct pool *p) REQUIRES(&p->mu);
void pool_refill_locked(struct pool *p) REQUIRES(&p->mu);
/* Destroys (mu released) the slots of l, already counted in destroying. */
void pool_destroy_list(struct pool *p, struct slist *l);
void pool_evict_expired(struct pool *p);
void *pool_worker_main(void *arg); /* arg: the pool */

#endif
