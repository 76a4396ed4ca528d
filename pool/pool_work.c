/* The pool's background work (pool_impl.h): the workers' creates and
 * releases (the reference's recycle, with a full reset), refill up to
 * min_size, eviction of expired idle machines and destroying batches. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "lib/clock.h"
#include "pool/pool_impl.h"

uint64_t pool_now_ms(struct pool *p)
{
	if (p->ops.now_ms)
		return p->ops.now_ms(p->ctx);
	return clock_mono_ms();
}

/* Normalises a backend's return so a sloppy backend (positive errno, or 0
 * with no machine) can never hand the caller a NULL machine. On failure the
 * backend owns whatever it half-made, so *m is dropped, never destroyed. */
int pool_create_machine(struct pool *p, void **m, uint64_t *us)
{
	*m = NULL;
	uint64_t t0 = clock_mono_us();
	int rc = p->ops.create(p->ctx, m);
	*us = clock_mono_us() - t0;
	if (rc > 0)
		rc = -rc;
	if (rc == 0 && *m == NULL)
		rc = -EIO;
	if (rc < 0)
		*m = NULL;
	return rc;
}

void pool_record_create_locked(struct pool *p, int rc, uint64_t us)
{
	if (rc < 0) {
		p->create_failures++;
		return;
	}
	p->creates++;
	p->boot_us_last = us;
	p->boot_us_total += us;
}

uint32_t pool_room_locked(const struct pool *p)
{
	if (p->cfg.max_machines == 0)
		return UINT32_MAX;
	uint64_t total = (uint64_t)p->idle.len + p->in_use + pool_background_creating(p) + p->warm_creating +
			 pool_releasing(p) + p->destroying;
	return total >= p->cfg.max_machines ? 0 : (uint32_t)(p->cfg.max_machines - total);
}

/* Queues background creates so idle (counting machines already on their way
 * to idle) reaches min_size, never past max_machines. A failed background
 * create is not retried here: the next acquire or release asks again, so a
 * broken backend cannot make the workers spin. */
void pool_refill_locked(struct pool *p)
{
	if (p->stopping)
		return;
	uint64_t future = (uint64_t)p->idle.len + pool_background_creating(p) + p->warm_creating +
			  pool_releasing(p);
	if (future >= p->cfg.min_size)
		return;
	uint32_t n = pool_min_u32(p->cfg.min_size - (uint32_t)future, pool_room_locked(p));
	if (n == 0)
		return;
	p->create_pending += n;
	if (n == 1)
		pthread_cond_signal(&p->work_cv);
	else
		pthread_cond_broadcast(&p->work_cv);
}

/* Moves expired idle machines (oldest first, as the reference: the front is
 * the oldest, so the scan stops at the first one still fresh) to *out. */
static void take_expired_locked(struct pool *p, struct slist *out) REQUIRES(&p->mu)
{
	uint64_t now = pool_now_ms(p);
	for (struct slot *s; (s = slist_front(&p->idle));) {
		uint64_t last = s->last_used_ms;
		if (now < last || now - last < p->cfg.max_idle_ms)
			break;
		slist_pop_front(&p->idle);
		p->evictions++;
		p->destroying++;
		slist_push_back(out, s);
	}
}

/* Reference push_idle_after_release: over max_size the oldest is evicted. */
static void push_idle_locked(struct pool *p, struct slot *s, struct slist *evicted) REQUIRES(&p->mu)
{
	if (p->idle.len >= p->cfg.max_size) {
		struct slot *old = slist_pop_front(&p->idle);
		if (old) {
			p->evictions++;
			p->destroying++;
			slist_push_back(evicted, old);
		}
	}
	s->last_used_ms = pool_now_ms(p);
	s->health_check = false;
	slist_push_back(&p->idle, s);
	pthread_cond_broadcast(&p->change_cv);
}

/* Destroys machines already counted in p->destroying, then gives their
 * places back: that can let a refill or a waiting acquire proceed. */
void pool_destroy_list(struct pool *p, struct slist *l)
{
	uint32_t n = 0;
	struct slot *s;
	while ((s = slist_pop_front(l))) {
		p->ops.destroy(p->ctx, s->m);
		free(s);
		n++;
	}
	if (n == 0)
		return;
	vp_mutex_lock(&p->mu);
	p->destroying -= n;
	pool_refill_locked(p);
	pthread_cond_broadcast(&p->change_cv);
	vp_mutex_unlock(&p->mu);
}

void pool_evict_expired(struct pool *p)
{
	struct slist dead;
	slist_init(&dead);
	vp_mutex_lock(&p->mu);
	take_expired_locked(p, &dead);
	vp_mutex_unlock(&p->mu);
	pool_destroy_list(p, &dead);
}

static void worker_create(struct pool *p)
{
	struct slot *s = calloc(1, sizeof(*s));
	void *m = NULL;
	uint64_t us = 0;
	int rc = s ? pool_create_machine(p, &m, &us) : -ENOMEM;
	struct slist evicted;
	slist_init(&evicted);

	vp_mutex_lock(&p->mu);
	p->creates_running--;
	if (s)
		pool_record_create_locked(p, rc, us);
	else
		p->create_failures++;
	if (rc == 0) {
		s->m = m;
		push_idle_locked(p, s, &evicted);
	} else {
		free(s);
	}
	pthread_cond_broadcast(&p->change_cv);
	vp_mutex_unlock(&p->mu);
	pool_destroy_list(p, &evicted);
}

enum release_outcome { REL_IDLE, REL_DEAD, REL_UNHEALTHY, REL_RESET_FAILED };

/* The reference's recycle(), off the caller's thread, with a full reset in
 * place of its clear_pool_artifacts. */
static void worker_release(struct pool *p, struct slot *s)
{
	enum release_outcome out = REL_IDLE;
	bool checked = false;
	uint64_t reset_us = 0;

	if (p->ops.is_alive && !p->ops.is_alive(p->ctx, s->m)) {
		out = REL_DEAD;
	} else {
		if (s->health_check && p->ops.health_check) {
			checked = true;
			if (p->ops.health_check(p->ctx, s->m) != 0)
				out = REL_UNHEALTHY;
		}
		if (out == REL_IDLE && p->ops.reset) {
			uint64_t t0 = clock_mono_us();
			int rc = p->ops.reset(p->ctx, s->m);
			reset_us = clock_mono_us() - t0;
			if (rc != 0)
				out = REL_RESET_FAILED;
		}
	}

	struct slist dead;
	slist_init(&dead);
	vp_mutex_lock(&p->mu);
	p->resets_running--;
	if (checked) {
		p->health_checks++;
		if (out == REL_UNHEALTHY)
			p->health_failures++;
	}
	if (out == REL_RESET_FAILED)
		p->reset_failures++;
	if (out == REL_IDLE && p->ops.reset) {
		p->resets++;
		p->reset_us_last = reset_us;
		p->reset_us_total += reset_us;
	}
	if (out == REL_IDLE) {
		push_idle_locked(p, s, &dead);
	} else {
		/* The reference's mark_evict + destroy + replenish_if_needed; the
		 * replenish is queued by destroy_list once the place is free. */
		p->evictions++;
		p->destroying++;
		slist_push_back(&dead, s);
	}
	pthread_cond_broadcast(&p->change_cv);
	vp_mutex_unlock(&p->mu);
	pool_destroy_list(p, &dead);
}

/* Idle machines past max_idle_ms are evicted by acquire (the reference),
 * but a pool nobody acquires from would keep them for ever: after a burst,
 * every machine of it stayed warm, holding memory, until the next mkdir.
 * So one worker at a time also waits for the oldest idle machine to
 * expire and evicts it then. Only down to min_size: those would be
 * recreated at once, a boot for nothing. A pool on an injected clock
 * (ops.now_ms, the tests') is left to its caller, who moves that clock:
 * real time passing would race with it. Returns the ms to wait, or 0 when
 * there is nothing to wait for; moves what expired already to *out. */
static uint64_t take_timed_out_locked(struct pool *p, struct slist *out) REQUIRES(p->mu)
{
	if (p->ops.now_ms)
		return 0;
	uint64_t now = pool_now_ms(p);
	for (struct slot *s; p->idle.len > p->cfg.min_size && (s = slist_front(&p->idle));) {
		uint64_t last = s->last_used_ms;
		if (now >= last && now - last >= p->cfg.max_idle_ms) {
			slist_pop_front(&p->idle);
			p->evictions++;
			p->destroying++;
			slist_push_back(out, s);
			continue;
		}
		uint64_t left = now < last ? p->cfg.max_idle_ms : p->cfg.max_idle_ms - (now - last);
		return left + 1; /* +1: at the deadline itself it must be expired */
	}
	return 0;
}

/* Waits for work under mu; the worker holding the timer (p->timer_held)
 * wakes at the next idle expiry too. */
static void wait_for_work_locked(struct pool *p) REQUIRES(p->mu)
{
	struct slist dead;
	slist_init(&dead);
	uint64_t wait_ms = p->timer_held ? 0 : take_timed_out_locked(p, &dead);
	if (dead.len) {
		vp_mutex_unlock(&p->mu);
		pool_destroy_list(p, &dead);
		vp_mutex_lock(&p->mu);
		return; /* look again: work or another deadline may be due */
	}
	if (wait_ms == 0) {
		pthread_cond_wait(&p->work_cv, vp_mutex_raw(&p->mu));
		return;
	}
	p->timer_held = true;
	struct timespec ts = deadline_timespec(deadline_after_ms(wait_ms));
	pthread_cond_clockwait(&p->work_cv, vp_mutex_raw(&p->mu), CLOCK_MONOTONIC, &ts);
	p->timer_held = false;
}

void *pool_worker_main(void *arg)
{
	struct pool *p = arg;

	vp_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && p->jobs.len == 0 && p->create_pending == 0)
			wait_for_work_locked(p);
		if (p->stopping)
			break;
		/* Releases first: a reset gives back a warm machine sooner than a
		 * create makes one. */
		struct slot *job = slist_pop_front(&p->jobs);
		if (job) {
			p->resets_running++;
			vp_mutex_unlock(&p->mu);
			worker_release(p, job);
		} else {
			p->create_pending--;
			p->creates_running++;
			vp_mutex_unlock(&p->mu);
			worker_create(p);
		}
		vp_mutex_lock(&p->mu);
	}
	vp_mutex_unlock(&p->mu);
	return NULL;
}
