/* Warm pool: the reference pool (shared/seeds/mimobox_pool.rs) plus DESIGN
 * §2's improvements. docs/pool.md explains where and why it departs from the
 * reference.
 *
 * Locking: one mutex guards every field below it in struct pool. Machine
 * operations (create, reset, health_check, destroy, is_alive) always run
 * with it released, because they are slow; only now_ms is called with it
 * held. Every machine the pool is responsible for is counted in exactly one
 * of idle, in_use, create_pending/creates_running/warm_creating (being
 * made), jobs/resets_running (being released) or destroying, so the
 * max_machines cap covers every live machine, not just the visible ones. */
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Background threads for creates and resets. A few are enough: resets are
 * meant to cost milliseconds, and refill rarely needs more than min_size
 * creates at once; more threads would only compete for the host's CPUs. */
#define POOL_WORKERS 4

/* One machine in the idle deque, the release queue or a destroy batch. The
 * node made at release time is the one that later sits in the idle deque, so
 * a machine going back to idle never needs an allocation that could fail. */
struct slot {
	struct slot *prev, *next;
	void *m;
	uint64_t last_used_ms;
	bool health_check; /* release job: this release is due for a check */
};

struct slist {
	struct slot *head, *tail;
	uint32_t len;
};

struct pool {
	struct pool_config cfg;
	struct pool_machine_ops ops;
	void *ctx;
	pthread_t workers[POOL_WORKERS];
	unsigned nworkers;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;   /* workers: a job arrived, or stop */
	pthread_cond_t change_cv; /* acquire waiters, quiesce: a machine went idle or work ended */
	bool stopping;

	struct slist idle;  /* front = oldest, back = most recently released */
	struct slist jobs;  /* releases waiting for a worker (FIFO) */
	uint32_t in_use;
	uint32_t create_pending;  /* refill creates not yet picked by a worker */
	uint32_t creates_running; /* refill creates a worker is doing */
	uint32_t warm_creating;   /* pool_warm's creates on its caller's thread */
	uint32_t resets_running;  /* releases a worker is processing */
	uint32_t destroying;      /* evicted, destroy not finished yet */
	uint32_t waiters;         /* acquires waiting for background work */
	uint64_t recycle_count;

	uint64_t hits, misses, evictions;
	uint64_t creates, create_failures, resets, reset_failures;
	uint64_t health_checks, health_failures;
	uint64_t boot_us_last, boot_us_total, reset_us_last, reset_us_total;
};

/* ---- small helpers ---- */

static void slist_push_back(struct slist *l, struct slot *s)
{
	s->next = NULL;
	s->prev = l->tail;
	if (l->tail)
		l->tail->next = s;
	else
		l->head = s;
	l->tail = s;
	l->len++;
}

static void slist_unlink(struct slist *l, struct slot *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		l->tail = s->prev;
	s->prev = s->next = NULL;
	l->len--;
}

static struct slot *slist_pop_front(struct slist *l)
{
	struct slot *s = l->head;
	if (s)
		slist_unlink(l, s);
	return s;
}

static struct slot *slist_pop_back(struct slist *l)
{
	struct slot *s = l->tail;
	if (s)
		slist_unlink(l, s);
	return s;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t pool_now_ms(struct pool *p)
{
	if (p->ops.now_ms)
		return p->ops.now_ms(p->ctx);
	return mono_us() / 1000u;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Normalises a backend's return so a sloppy backend (positive errno, or 0
 * with no machine) can never hand the caller a NULL machine. On failure the
 * backend owns whatever it half-made, so *m is dropped, never destroyed. */
static int create_machine(struct pool *p, void **m, uint64_t *us)
{
	*m = NULL;
	uint64_t t0 = mono_us();
	int rc = p->ops.create(p->ctx, m);
	*us = mono_us() - t0;
	if (rc > 0)
		rc = -rc;
	if (rc == 0 && *m == NULL)
		rc = -EIO;
	if (rc < 0)
		*m = NULL;
	return rc;
}

static void record_create_locked(struct pool *p, int rc, uint64_t us)
{
	if (rc < 0) {
		p->create_failures++;
		return;
	}
	p->creates++;
	p->boot_us_last = us;
	p->boot_us_total += us;
}

static uint32_t background_creating(const struct pool *p)
{
	return p->create_pending + p->creates_running;
}

static uint32_t releasing(const struct pool *p)
{
	return p->jobs.len + p->resets_running;
}

/* How many more machines may exist; UINT32_MAX when uncapped. */
static uint32_t room_locked(const struct pool *p)
{
	if (p->cfg.max_machines == 0)
		return UINT32_MAX;
	uint64_t total = (uint64_t)p->idle.len + p->in_use + background_creating(p) +
			 p->warm_creating + releasing(p) + p->destroying;
	return total >= p->cfg.max_machines ? 0 : (uint32_t)(p->cfg.max_machines - total);
}

/* Queues background creates so idle (counting machines already on their way
 * to idle) reaches min_size, never past max_machines. A failed background
 * create is not retried here: the next acquire or release asks again, so a
 * broken backend cannot make the workers spin. */
static void refill_locked(struct pool *p)
{
	if (p->stopping)
		return;
	uint64_t future = (uint64_t)p->idle.len + background_creating(p) + p->warm_creating +
			  releasing(p);
	if (future >= p->cfg.min_size)
		return;
	uint32_t n = min_u32(p->cfg.min_size - (uint32_t)future, room_locked(p));
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
static void take_expired_locked(struct pool *p, struct slist *out)
{
	uint64_t now = pool_now_ms(p);
	while (p->idle.head) {
		uint64_t last = p->idle.head->last_used_ms;
		if (now < last || now - last < p->cfg.max_idle_ms)
			break;
		struct slot *s = slist_pop_front(&p->idle);
		p->evictions++;
		p->destroying++;
		slist_push_back(out, s);
	}
}

/* Reference push_idle_after_release: over max_size the oldest is evicted. */
static void push_idle_locked(struct pool *p, struct slot *s, struct slist *evicted)
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
static void destroy_list(struct pool *p, struct slist *l)
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
	pthread_mutex_lock(&p->mu);
	p->destroying -= n;
	refill_locked(p);
	pthread_cond_broadcast(&p->change_cv);
	pthread_mutex_unlock(&p->mu);
}

static void evict_expired(struct pool *p)
{
	struct slist dead = { 0 };
	pthread_mutex_lock(&p->mu);
	take_expired_locked(p, &dead);
	pthread_mutex_unlock(&p->mu);
	destroy_list(p, &dead);
}

/* ---- background work ---- */

static void worker_create(struct pool *p)
{
	struct slot *s = calloc(1, sizeof(*s));
	void *m = NULL;
	uint64_t us = 0;
	int rc = s ? create_machine(p, &m, &us) : -ENOMEM;
	struct slist evicted = { 0 };

	pthread_mutex_lock(&p->mu);
	p->creates_running--;
	if (s)
		record_create_locked(p, rc, us);
	else
		p->create_failures++;
	if (rc == 0) {
		s->m = m;
		push_idle_locked(p, s, &evicted);
	} else {
		free(s);
	}
	pthread_cond_broadcast(&p->change_cv);
	pthread_mutex_unlock(&p->mu);
	destroy_list(p, &evicted);
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
			uint64_t t0 = mono_us();
			int rc = p->ops.reset(p->ctx, s->m);
			reset_us = mono_us() - t0;
			if (rc != 0)
				out = REL_RESET_FAILED;
		}
	}

	struct slist dead = { 0 };
	pthread_mutex_lock(&p->mu);
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
	pthread_mutex_unlock(&p->mu);
	destroy_list(p, &dead);
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && !p->jobs.head && p->create_pending == 0)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->stopping)
			break;
		/* Releases first: a reset gives back a warm machine sooner than a
		 * create makes one. */
		struct slot *job = slist_pop_front(&p->jobs);
		if (job) {
			p->resets_running++;
			pthread_mutex_unlock(&p->mu);
			worker_release(p, job);
		} else {
			p->create_pending--;
			p->creates_running++;
			pthread_mutex_unlock(&p->mu);
			worker_create(p);
		}
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- interface ---- */

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
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i], NULL);
	p->nworkers = 0;
}

static void free_pool_memory(struct pool *p)
{
	pthread_cond_destroy(&p->change_cv);
	pthread_cond_destroy(&p->work_cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int pool_new(const struct pool_config *cfg, const struct pool_machine_ops *ops, void *ctx,
	     struct pool **out)
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
	if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0) {
		free(p);
		return -rc;
	}
	if ((rc = pthread_cond_init(&p->work_cv, NULL)) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return -rc;
	}
	if ((rc = pthread_cond_init(&p->change_cv, NULL)) != 0) {
		pthread_cond_destroy(&p->work_cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return -rc;
	}

	/* Workers never take signals: the daemon handles them on its own
	 * threads, and a handler running on a worker would interrupt a boot. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < POOL_WORKERS; i++) {
		rc = pthread_create(&p->workers[i], NULL, worker_main, p);
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

	pthread_mutex_lock(&p->mu);
	refill_locked(p);
	pthread_mutex_unlock(&p->mu);
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
static bool should_wait_locked(const struct pool *p)
{
	if (room_locked(p) == 0)
		return background_creating(p) + p->warm_creating + releasing(p) > p->waiters ||
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
	evict_expired(p);

	struct slot *hit = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		hit = slist_pop_back(&p->idle);
		if (hit) {
			p->hits++;
			p->in_use++;
			break;
		}
		if (should_wait_locked(p)) {
			p->waiters++;
			pthread_cond_wait(&p->change_cv, &p->mu);
			p->waiters--;
			continue;
		}
		if (room_locked(p) == 0) {
			pthread_mutex_unlock(&p->mu);
			return -EAGAIN;
		}
		p->misses++;
		p->in_use++;
		break;
	}
	refill_locked(p);
	pthread_mutex_unlock(&p->mu);

	if (hit) {
		*machine = hit->m;
		free(hit);
		return 0;
	}

	void *m;
	uint64_t us;
	int rc = create_machine(p, &m, &us);
	pthread_mutex_lock(&p->mu);
	record_create_locked(p, rc, us);
	if (rc < 0) {
		/* The reference's rollback_in_use; the freed place may let a
		 * waiter or a refill go ahead. */
		if (p->in_use > 0)
			p->in_use--;
		refill_locked(p);
		pthread_cond_broadcast(&p->change_cv);
	}
	pthread_mutex_unlock(&p->mu);
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

	pthread_mutex_lock(&p->mu);
	if (p->in_use > 0)
		p->in_use--;
	/* Counted on every release, reusable or not, as the reference does. */
	p->recycle_count++;
	bool check = p->cfg.health_check_interval != 0 &&
		     p->recycle_count % p->cfg.health_check_interval == 0;
	if (!s) {
		/* No memory to queue it: it cannot be reset safely later, so it
		 * goes, as a machine that fails its reset would. */
		p->evictions++;
		p->destroying++;
		pthread_mutex_unlock(&p->mu);
		p->ops.destroy(p->ctx, machine);
		pthread_mutex_lock(&p->mu);
		p->destroying--;
		refill_locked(p);
		pthread_cond_broadcast(&p->change_cv);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	s->m = machine;
	s->health_check = check;
	slist_push_back(&p->jobs, s);
	pthread_cond_signal(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
}

int pool_warm(struct pool *p, uint32_t count)
{
	if (!p)
		return -EINVAL;

	evict_expired(p);

	pthread_mutex_lock(&p->mu);
	uint32_t target = min_u32(count, p->cfg.max_size);
	if (p->idle.len >= target) {
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	uint32_t room = room_locked(p);
	if (room == 0) {
		pthread_mutex_unlock(&p->mu);
		return -EAGAIN;
	}
	/* Places are reserved before the creates so that concurrent acquires
	 * and refills see them and the cap holds throughout. */
	uint32_t n = min_u32(target - p->idle.len, room);
	p->warm_creating += n;
	pthread_mutex_unlock(&p->mu);

	struct slist made = { 0 };
	int rc = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct slot *s = calloc(1, sizeof(*s));
		if (!s) {
			rc = -ENOMEM;
			break;
		}
		uint64_t us;
		rc = create_machine(p, &s->m, &us);
		pthread_mutex_lock(&p->mu);
		record_create_locked(p, rc, us);
		pthread_mutex_unlock(&p->mu);
		if (rc < 0) {
			free(s);
			break;
		}
		slist_push_back(&made, s);
	}

	pthread_mutex_lock(&p->mu);
	p->warm_creating -= n;
	uint32_t kept = 0;
	if (rc == 0) {
		/* Reference: keep what fits under max_size now (releases may have
		 * filled idle meanwhile), destroy the rest. */
		uint32_t avail = p->cfg.max_size > p->idle.len ? p->cfg.max_size - p->idle.len : 0;
		uint64_t now = pool_now_ms(p);
		while (kept < avail && made.head) {
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
	pthread_mutex_unlock(&p->mu);
	destroy_list(p, &made);
	return rc < 0 ? rc : (int)kept;
}

void pool_quiesce(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	/* Destroys count too: after quiesce the backend holds exactly the
	 * machines that are idle or in use. */
	while (background_creating(p) + releasing(p) + p->destroying > 0)
		pthread_cond_wait(&p->change_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void pool_get_stats(struct pool *p, struct pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	out->hits = p->hits;
	out->misses = p->misses;
	out->evictions = p->evictions;
	out->idle = p->idle.len;
	out->in_use = p->in_use;
	out->creating = background_creating(p) + p->warm_creating;
	out->resetting = releasing(p);
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
	pthread_mutex_unlock(&p->mu);
}

const struct pool_config *pool_get_config(const struct pool *p)
{
	return p ? &p->cfg : NULL;
}
