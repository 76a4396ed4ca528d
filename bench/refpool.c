/* The reference pool, transcribed; see refpool.h. Each function names the
 * reference's function it follows. Machine operations run with the lock
 * released, as there; the only departures are C's (no poisoned lock, a
 * failed allocation destroys the machine as the reference's poisoned-lock
 * path does) and REFPOOL_FULL_RESET's failure path. */
#include "refpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "lib/clock.h"

/* IdleVm, in the VecDeque: head = front = oldest, tail = back = most
 * recently pushed. */
struct idle_vm {
	TAILQ_ENTRY(idle_vm) link;
	void *m;
	uint64_t last_used_ms;
};
TAILQ_HEAD(idle_list, idle_vm);

struct refpool {
	struct pool_config cfg;
	struct pool_machine_ops ops;
	void *ctx;
	enum refpool_release mode;
	refpool_clear_fn clear;

	pthread_mutex_t mu; /* guards everything below (PoolState) */
	struct idle_list idle;
	uint32_t idle_len, in_use;
	uint64_t hits, misses, evictions, recycle_count;
};

static uint64_t now_ms(struct refpool *p)
{
	if (p->ops.now_ms)
		return p->ops.now_ms(p->ctx);
	return clock_mono_ms();
}

static void remove_locked(struct refpool *p, struct idle_vm *e)
{
	TAILQ_REMOVE(&p->idle, e, link);
	p->idle_len--;
}

static void push_back_locked(struct refpool *p, struct idle_vm *e)
{
	e->last_used_ms = now_ms(p); /* IdleVm::new */
	TAILQ_INSERT_TAIL(&p->idle, e, link);
	p->idle_len++;
}

/* destroy_idle_entry for each, leaving l empty. */
static void destroy_all(struct refpool *p, struct idle_list *l)
{
	struct idle_vm *e;
	while ((e = TAILQ_FIRST(l))) {
		TAILQ_REMOVE(l, e, link);
		p->ops.destroy(p->ctx, e->m);
		free(e);
	}
}

/* take_expired_idle: the expired run at the front, moved to *out. */
static void take_expired(struct refpool *p, struct idle_list *out)
{
	TAILQ_INIT(out);
	pthread_mutex_lock(&p->mu);
	uint64_t now = now_ms(p);
	struct idle_vm *e;
	while ((e = TAILQ_FIRST(&p->idle)) && now >= e->last_used_ms &&
	       now - e->last_used_ms >= p->cfg.max_idle_ms) {
		remove_locked(p, e);
		p->evictions++;
		TAILQ_INSERT_TAIL(out, e, link);
	}
	pthread_mutex_unlock(&p->mu);
}

static void evict_expired(struct refpool *p)
{
	struct idle_list expired;
	take_expired(p, &expired);
	destroy_all(p, &expired);
}

/* push_idle_after_release, and the caller's destroy of the oldest it
 * evicts over max_size (outside the lock). No memory for the entry: the
 * machine is destroyed, as on the reference's poisoned-lock path. */
static void push_idle_after_release(struct refpool *p, void *m)
{
	struct idle_vm *e = calloc(1, sizeof(*e));
	if (!e) {
		p->ops.destroy(p->ctx, m);
		return;
	}
	e->m = m;
	struct idle_list evicted;
	TAILQ_INIT(&evicted);
	pthread_mutex_lock(&p->mu);
	struct idle_vm *old = TAILQ_FIRST(&p->idle);
	if (p->idle_len >= p->cfg.max_size && old) {
		remove_locked(p, old);
		p->evictions++;
		TAILQ_INSERT_TAIL(&evicted, old, link);
	}
	push_back_locked(p, e);
	pthread_mutex_unlock(&p->mu);
	destroy_all(p, &evicted);
}

/* replenish_if_needed: one synchronous create when idle is under min_size;
 * a failure is only logged there, ignored here. */
static void replenish_if_needed(struct refpool *p)
{
	pthread_mutex_lock(&p->mu);
	bool need = p->idle_len < p->cfg.min_size;
	pthread_mutex_unlock(&p->mu);
	void *m = NULL;
	if (need && p->ops.create(p->ctx, &m) == 0 && m)
		push_idle_after_release(p, m);
}

/* mark_evict + destroy_backend + replenish_if_needed. */
static void evict_and_replace(struct refpool *p, void *m)
{
	pthread_mutex_lock(&p->mu);
	p->evictions++;
	pthread_mutex_unlock(&p->mu);
	p->ops.destroy(p->ctx, m);
	replenish_if_needed(p);
}

int refpool_warm(struct refpool *p, uint32_t count)
{
	evict_expired(p);
	uint32_t target = count < p->cfg.max_size ? count : p->cfg.max_size;
	pthread_mutex_lock(&p->mu);
	uint32_t cur = p->idle_len;
	pthread_mutex_unlock(&p->mu);
	if (cur >= target)
		return 0;

	/* All creates first, then one insertion under the lock, as there. */
	struct idle_list made;
	TAILQ_INIT(&made);
	for (uint32_t i = 0; i < target - cur; i++) {
		struct idle_vm *e = calloc(1, sizeof(*e));
		int rc = e ? p->ops.create(p->ctx, &e->m) : -ENOMEM;
		if (rc == 0 && !e->m)
			rc = -EIO;
		if (rc) {
			free(e);
			destroy_all(p, &made); /* the `?` drops what was made */
			return rc < 0 ? rc : -rc;
		}
		TAILQ_INSERT_TAIL(&made, e, link);
	}
	int inserted = 0;
	struct idle_vm *e;
	pthread_mutex_lock(&p->mu);
	while (p->idle_len < p->cfg.max_size && (e = TAILQ_FIRST(&made))) {
		TAILQ_REMOVE(&made, e, link);
		push_back_locked(p, e);
		inserted++;
	}
	pthread_mutex_unlock(&p->mu);
	destroy_all(p, &made); /* over capacity */
	return inserted;
}

int refpool_new(const struct pool_config *cfg, const struct pool_machine_ops *ops, void *ctx,
		enum refpool_release mode, refpool_clear_fn clear, struct refpool **out)
{
	*out = NULL;
	if (!cfg || cfg->max_size == 0 || cfg->min_size > cfg->max_size || !ops || !ops->create ||
	    !ops->destroy || (mode == REFPOOL_FULL_RESET && !ops->reset))
		return -EINVAL;
	struct refpool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	p->ops = *ops;
	p->ctx = ctx;
	p->mode = mode;
	p->clear = clear;
	TAILQ_INIT(&p->idle);
	int rc = pthread_mutex_init(&p->mu, NULL);
	if (rc) {
		free(p);
		return -rc;
	}
	if (cfg->min_size > 0 && (rc = refpool_warm(p, cfg->min_size)) < 0) {
		refpool_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void refpool_free(struct refpool *p)
{
	if (!p)
		return;
	destroy_all(p, &p->idle);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int refpool_acquire(struct refpool *p, void **machine)
{
	evict_expired(p);
	pthread_mutex_lock(&p->mu);
	struct idle_vm *e = TAILQ_LAST(&p->idle, idle_list); /* pop_back: the most recently released */
	if (e) {
		remove_locked(p, e);
		p->hits++;
	} else {
		p->misses++;
	}
	p->in_use++;
	pthread_mutex_unlock(&p->mu);
	if (e) {
		*machine = e->m;
		free(e);
		return 0;
	}
	void *m = NULL;
	int rc = p->ops.create(p->ctx, &m);
	if (rc == 0 && !m)
		rc = -EIO;
	if (rc) {
		pthread_mutex_lock(&p->mu); /* rollback_in_use */
		if (p->in_use)
			p->in_use--;
		pthread_mutex_unlock(&p->mu);
		return rc < 0 ? rc : -rc;
	}
	*machine = m;
	return 0;
}

/* recycle (PooledVm's drop). */
void refpool_release(struct refpool *p, void *m)
{
	pthread_mutex_lock(&p->mu);
	if (p->in_use)
		p->in_use--;
	p->recycle_count++; /* should_health_check_on_recycle */
	bool check = p->cfg.health_check_interval && p->recycle_count % p->cfg.health_check_interval == 0;
	pthread_mutex_unlock(&p->mu);

	if (p->ops.is_alive && !p->ops.is_alive(p->ctx, m)) { /* backend_is_reusable */
		evict_and_replace(p, m);
		return;
	}
	if (check && p->ops.health_check && p->ops.health_check(p->ctx, m) != 0) {
		evict_and_replace(p, m);
		return;
	}
	if (p->mode == REFPOOL_FULL_RESET) {
		if (p->ops.reset(p->ctx, m) != 0) {
			evict_and_replace(p, m);
			return;
		}
	} else if (p->clear) {
		p->clear(p->ctx, m); /* clear_backend_artifacts */
	}
	push_idle_after_release(p, m);
}

void refpool_get_stats(struct refpool *p, struct pool_stats *out)
{
	*out = (struct pool_stats){ 0 };
	pthread_mutex_lock(&p->mu);
	out->hits = p->hits;
	out->misses = p->misses;
	out->evictions = p->evictions;
	out->idle = p->idle_len;
	out->in_use = p->in_use;
	pthread_mutex_unlock(&p->mu);
}
