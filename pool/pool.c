/* Warm pool (pool.h): the reference pool (bench/refpool.c transcribes it)
 * plus full reset on release, creation / reset / refill on background
 * threads (pool_work.c), the max_machines cap and timing stats.
 * docs/pool.md explains where and why it departs from the reference;
 * pool_impl.h states the locking. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool_impl.h"

void pool_config_defaults(struct pool_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->min_size = 1;
	cfg->max_size = 16;
	cfg->max_idle_ms = 30000;
	cfg->health_check_interval = 0;
	cfg->max_machines = 64;
}

int pool_config_validate(const struct pool_config *cfg)
{
	if (!cfg)
		return -EINVAL;
	if (cfg->max_size == 0 || cfg->min_size > cfg->max_size)
		return -EINVAL;
	if (cfg->max_machines != 0 && cfg->max_machines < cfg->min_size)
		return -EINVAL;
	return 0;
}

static void stop_workers(struct pool *p)
{
	vp_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work_cv);
	vp_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i], NULL);
	p->nworkers = 0;
}

static void free_pool_memory(struct pool *p)
{
	pthread_cond_destroy(&p->change_cv);
	pthread_cond_destroy(&p->work_cv);
	vp_mutex_destroy(&p->mu);
	free(p);
}

int pool_new(const struct pool_config *cfg, const struct pool_machine_ops *ops, void *ctx, struct pool **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	int rc = pool_config_validate(cfg);
	if (rc < 0)
		return rc;
	if (!ops || !ops->create || !ops->destroy)
		return -EINVAL;

	struct pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	p->ops = *ops;
	p->ctx = ctx;
	slist_init(&p->idle);
	slist_init(&p->jobs);
	if ((rc = vp_mutex_init(&p->mu)) != 0) {
		free(p);
		return -rc;
	}
	if ((rc = pthread_cond_init(&p->work_cv, NULL)) != 0) {
		vp_mutex_destroy(&p->mu);
		free(p);
		return -rc;
	}
	if ((rc = pthread_cond_init(&p->change_cv, NULL)) != 0) {
		pthread_cond_destroy(&p->work_cv);
		vp_mutex_destroy(&p->mu);
		free(p);
		return -rc;
	}

	/* Workers never take signals: the daemon handles them on its own
	 * threads, and a handler running on a worker would interrupt a boot. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < POOL_WORKERS; i++) {
		rc = pthread_create(&p->workers[i], NULL, pool_worker_main, p);
		if (rc != 0)
			break;
		p->nworkers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		stop_workers(p);
		free_pool_memory(p);
		return -rc;
	}

	vp_mutex_lock(&p->mu);
	pool_refill_locked(p);
	vp_mutex_unlock(&p->mu);
	*out = p;
	return 0;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	/* Workers finish the machine they hold (a boot or reset cannot be
	 * interrupted) and leave queued work alone; what is left is ours. */
	stop_workers(p);
	struct slot *s;
	while ((s = slist_pop_front(&p->jobs))) {
		p->ops.destroy(p->ctx, s->m);
		free(s);
	}
	while ((s = slist_pop_front(&p->idle))) {
		p->ops.destroy(p->ctx, s->m);
		free(s);
	}
	free_pool_memory(p);
}

/* With no idle machine, should this acquire wait for background work rather
 * than create one (or fail)? Each waiter claims one machine on its way, so a
 * crowd does not wait on a single reset. Below the cap we wait only for work
 * already running: a create started earlier ends before one we would start
 * now. A running reset is, on average, half done, so it is waited for while
 * half a reset costs no more than a boot (unknown averages: assume so).
 * That also keeps a busy pool from booting a machine per miss: a reset of
 * the ns backend is a destroy plus a boot, never cheaper than a boot, and
 * booting instead grew the pool to max_machines under 4 clients on 2 cores
 * while the resets competed for the same CPUs (docs/benchmarks.md, "pool
 * against the reference"). At the cap the alternative is -EAGAIN, so
 * anything that will come back (queued work too, or a destroy freeing a
 * place) is worth the wait. */
static bool should_wait_locked(const struct pool *p) REQUIRES(&p->mu)
{
	if (pool_room_locked(p) == 0)
		return pool_background_creating(p) + p->warm_creating + pool_releasing(p) > p->waiters ||
		       p->destroying > 0;
	bool reset_soon = p->resets == 0 || p->creates == 0 ||
			  p->reset_us_total / p->resets <= 2 * (p->boot_us_total / p->creates);
	uint32_t running = p->creates_running + (reset_soon ? p->resets_running : 0);
	return running > p->waiters;
}

int pool_acquire(struct pool *p, void **machine)
{
	if (!p || !machine)
		return -EINVAL;
	*machine = NULL;

	/* Expired machines are destroyed before any wait, as the wait below
	 * may be for a place that only their destroy frees. */
	pool_evict_expired(p);

	struct slot *hit = NULL;
	vp_mutex_lock(&p->mu);
	for (;;) {
		hit = slist_pop_back(&p->idle);
		if (hit) {
			p->hits++;
			p->in_use++;
			break;
		}
		if (should_wait_locked(p)) {
			p->waiters++;
			pthread_cond_wait(&p->change_cv, vp_mutex_raw(&p->mu));
			p->waiters--;
			continue;
		}
		if (pool_room_locked(p) == 0) {
			vp_mutex_unlock(&p->mu);
			return -EAGAIN;
		}
		p->misses++;
		p->in_use++;
		break;
	}
	pool_refill_locked(p);
	vp_mutex_unlock(&p->mu);

	if (hit) {
		*machine = hit->m;
		free(hit);
		return 0;
	}

	void *m;
	uint64_t us;
	int rc = pool_create_machine(p, &m, &us);
	vp_mutex_lock(&p->mu);
	pool_record_create_locked(p, rc, us);
	if (rc < 0) {
		/* The reference's rollback_in_use; the freed place may let a
		 * waiter or a refill go ahead. */
		if (p->in_use > 0)
			p->in_use--;
		pool_refill_locked(p);
		pthread_cond_broadcast(&p->change_cv);
	}
	vp_mutex_unlock(&p->mu);
	if (rc < 0)
		return rc;
	*machine = m;
	return 0;
}

void pool_release(struct pool *p, void *machine)
{
	if (!p || !machine)
		return;
	struct slot *s = calloc(1, sizeof(*s));

	vp_mutex_lock(&p->mu);
	if (p->in_use > 0)
		p->in_use--;
	/* Counted on every release, reusable or not, as the reference does. */
	p->recycle_count++;
	bool check = p->cfg.health_check_interval != 0 && p->recycle_count % p->cfg.health_check_interval == 0;
	if (!s) {
		/* No memory to queue it: it cannot be reset safely later, so it
		 * goes, as a machine that fails its reset would. */
		p->evictions++;
		p->destroying++;
		vp_mutex_unlock(&p->mu);
		p->ops.destroy(p->ctx, machine);
		vp_mutex_lock(&p->mu);
		p->destroying--;
		pool_refill_locked(p);
		pthread_cond_broadcast(&p->change_cv);
		vp_mutex_unlock(&p->mu);
		return;
	}
	s->m = machine;
	s->health_check = check;
	slist_push_back(&p->jobs, s);
	pthread_cond_signal(&p->work_cv);
	vp_mutex_unlock(&p->mu);
}

int pool_warm(struct pool *p, uint32_t count)
{
	if (!p)
		return -EINVAL;

	pool_evict_expired(p);

	vp_mutex_lock(&p->mu);
	uint32_t target = pool_min_u32(count, p->cfg.max_size);
	if (p->idle.len >= target) {
		vp_mutex_unlock(&p->mu);
		return 0;
	}
	uint32_t room = pool_room_locked(p);
	if (room == 0) {
		vp_mutex_unlock(&p->mu);
		return -EAGAIN;
	}
	/* Places are reserved before the creates so that concurrent acquires
	 * and refills see them and the cap holds throughout. */
	uint32_t n = pool_min_u32(target - p->idle.len, room);
	p->warm_creating += n;
	vp_mutex_unlock(&p->mu);

	struct slist made;
	slist_init(&made);
	int rc = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct slot *s = calloc(1, sizeof(*s));
		if (!s) {
			rc = -ENOMEM;
			break;
		}
		uint64_t us;
		rc = pool_create_machine(p, &s->m, &us);
		vp_mutex_lock(&p->mu);
		pool_record_create_locked(p, rc, us);
		vp_mutex_unlock(&p->mu);
		if (rc < 0) {
			free(s);
			break;
		}
		slist_push_back(&made, s);
	}

	vp_mutex_lock(&p->mu);
	p->warm_creating -= n;
	uint32_t kept = 0;
	if (rc == 0) {
		/* Reference: keep what fits under max_size now (releases may have
		 * filled idle meanwhile), destroy the rest. */
		uint32_t avail = p->cfg.max_size > p->idle.len ? p->cfg.max_size - p->idle.len : 0;
		uint64_t now = pool_now_ms(p);
		while (kept < avail && made.len) {
			struct slot *s = slist_pop_front(&made);
			s->last_used_ms = now;
			slist_push_back(&p->idle, s);
			kept++;
		}
	}
	/* On failure the reference drops everything it made (the `?` drops
	 * the Vec); we do the same, so a failed warm leaves no half-state. */
	p->destroying += made.len;
	pthread_cond_broadcast(&p->change_cv);
	if (kept && !p->timer_held)
		pthread_cond_signal(&p->work_cv); /* a worker takes the eviction timer */
	vp_mutex_unlock(&p->mu);
	pool_destroy_list(p, &made);
	return rc < 0 ? rc : (int)kept;
}

void pool_quiesce(struct pool *p)
{
	if (!p)
		return;
	vp_mutex_lock(&p->mu);
	/* Destroys count too: after quiesce the backend holds exactly the
	 * machines that are idle or in use. */
	while (pool_background_creating(p) + pool_releasing(p) + p->destroying > 0)
		pthread_cond_wait(&p->change_cv, vp_mutex_raw(&p->mu));
	vp_mutex_unlock(&p->mu);
}

void pool_get_stats(struct pool *p, struct pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	vp_mutex_lock(&p->mu);
	out->hits = p->hits;
	out->misses = p->misses;
	out->evictions = p->evictions;
	out->idle = p->idle.len;
	out->in_use = p->in_use;
	out->creating = pool_background_creating(p) + p->warm_creating;
	out->resetting = pool_releasing(p);
	out->creates = p->creates;
	out->create_failures = p->create_failures;
	out->resets = p->resets;
	out->reset_failures = p->reset_failures;
	out->health_checks = p->health_checks;
	out->health_failures = p->health_failures;
	out->boot_us_last = p->boot_us_last;
	out->boot_us_avg = p->creates ? p->boot_us_total / p->creates : 0;
	out->reset_us_last = p->reset_us_last;
	out->reset_us_avg = p->resets ? p->reset_us_total / p->resets : 0;
	vp_mutex_unlock(&p->mu);
}

const struct pool_config *pool_get_config(const struct pool *p)
{
	return p ? &p->cfg : NULL;
}
