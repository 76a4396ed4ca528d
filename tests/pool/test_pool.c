/* Unit tests for pool/pool.c against a fake machine backend: counters,
 * injectable failures, an is_alive flag per machine, an injectable clock and
 * optional delays. Prints `ok N - name` / `not ok N - name`; exits non-zero
 * on any failure. */
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "tests/common/testutil.h"

#define MAX_IDS 4096

struct fake {
	pthread_mutex_t mu;
	int live, max_live, next_id;
	unsigned creates, destroys, resets, health_checks;
	int fail_create, fail_reset, fail_health; /* upcoming calls that fail; -1 = all */
	int create_err;
	unsigned create_delay_ms, reset_delay_ms;
	uint64_t now;
	bool destroyed[MAX_IDS];
};

struct fm {
	int id;
	atomic_bool alive;
	atomic_int users; /* > 1 means two callers held it at once */
};

/* Consumes one injected failure, if any is armed. */
static bool take_failure(int *n)
{
	if (*n == 0)
		return false;
	if (*n > 0)
		(*n)--;
	return true;
}

static int fake_create(void *ctx, void **out)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	unsigned delay = f->create_delay_ms;
	bool fail = take_failure(&f->fail_create);
	int err = f->create_err ? f->create_err : -EIO;
	pthread_mutex_unlock(&f->mu);
	if (delay)
		sleep_ms(delay);
	if (fail)
		return err;
	struct fm *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	atomic_init(&m->alive, true);
	atomic_init(&m->users, 0);
	pthread_mutex_lock(&f->mu);
	m->id = f->next_id++;
	f->creates++;
	f->live++;
	if (f->live > f->max_live)
		f->max_live = f->live;
	pthread_mutex_unlock(&f->mu);
	*out = m;
	return 0;
}

static int fake_reset(void *ctx, void *machine)
{
	struct fake *f = ctx;
	(void)machine;
	pthread_mutex_lock(&f->mu);
	unsigned delay = f->reset_delay_ms;
	bool fail = take_failure(&f->fail_reset);
	f->resets++;
	pthread_mutex_unlock(&f->mu);
	if (delay)
		sleep_ms(delay);
	return fail ? -EIO : 0;
}

static void fake_destroy(void *ctx, void *machine)
{
	struct fake *f = ctx;
	struct fm *m = machine;
	pthread_mutex_lock(&f->mu);
	f->destroys++;
	f->live--;
	if (m->id >= 0 && m->id < MAX_IDS)
		f->destroyed[m->id] = true;
	pthread_mutex_unlock(&f->mu);
	free(m);
}

static bool fake_is_alive(void *ctx, void *machine)
{
	(void)ctx;
	return atomic_load(&((struct fm *)machine)->alive);
}

static int fake_health(void *ctx, void *machine)
{
	struct fake *f = ctx;
	(void)machine;
	pthread_mutex_lock(&f->mu);
	f->health_checks++;
	bool fail = take_failure(&f->fail_health);
	pthread_mutex_unlock(&f->mu);
	return fail ? -EIO : 0;
}

static uint64_t fake_now(void *ctx)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	uint64_t now = f->now;
	pthread_mutex_unlock(&f->mu);
	return now;
}

static const struct pool_machine_ops fake_ops = {
	.create = fake_create,
	.reset = fake_reset,
	.destroy = fake_destroy,
	.is_alive = fake_is_alive,
	.health_check = fake_health,
	.now_ms = NULL,
};

static const struct pool_machine_ops fake_ops_clock = {
	.create = fake_create,
	.reset = fake_reset,
	.destroy = fake_destroy,
	.is_alive = fake_is_alive,
	.health_check = fake_health,
	.now_ms = fake_now,
};

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	f->next_id = 1;
}

static void fake_fini(struct fake *f)
{
	pthread_mutex_destroy(&f->mu);
}

#define FAKE_GET(f, field)                                                                         \
	({                                                                                         \
		pthread_mutex_lock(&(f)->mu);                                                      \
		__typeof__((f)->field) v_ = (f)->field;                                            \
		pthread_mutex_unlock(&(f)->mu);                                                    \
		v_;                                                                                \
	})
#define FAKE_SET(f, field, val)                                                                    \
	do {                                                                                       \
		pthread_mutex_lock(&(f)->mu);                                                      \
		(f)->field = (val);                                                                \
		pthread_mutex_unlock(&(f)->mu);                                                    \
	} while (0)

static struct pool_config cfg_with(uint32_t min, uint32_t max, uint32_t max_machines)
{
	struct pool_config c;
	pool_config_defaults(&c);
	c.min_size = min;
	c.max_size = max;
	c.max_machines = max_machines;
	return c;
}

static int id_of(void *m)
{
	return ((struct fm *)m)->id;
}

static struct pool_stats stats(struct pool *p)
{
	struct pool_stats s;
	pool_get_stats(p, &s);
	return s;
}

/* A pool over a fresh fake; pool_new's result. */
static int start(struct fake *f, const struct pool_config *c, const struct pool_machine_ops *ops,
		 struct pool **p)
{
	fake_init(f);
	return pool_new(c, ops, f, p);
}

/* Frees the pool, which must destroy every machine the fake made. */
static void stop(struct fake *f, struct pool *p)
{
	pool_free(p);
	CHECK_EQ(f->live, 0);
	fake_fini(f);
}

/* Releases m and waits until the pool is done with it (reset or evicted). */
static void release_sync(struct pool *p, void *m)
{
	pool_release(p, m);
	pool_quiesce(p);
}

/* ---- tests ---- */

static void t_config(void)
{
	struct pool_config c;
	pool_config_defaults(&c);
	REQUIRE_EQ(c.min_size, 1);
	REQUIRE_EQ(c.max_size, 16);
	REQUIRE_EQ(c.max_idle_ms, 30000);
	REQUIRE_EQ(c.health_check_interval, 0);
	REQUIRE_EQ(c.max_machines, 64);
	REQUIRE_EQ(pool_config_validate(&c), 0);

	struct fake f;
	fake_init(&f);
	struct pool *p = (struct pool *)&f; /* must be overwritten with NULL */
	struct pool_config bad = c;
	bad.max_size = 0;
	REQUIRE_EQ(pool_config_validate(&bad), -EINVAL);
	REQUIRE_EQ(pool_new(&bad, &fake_ops, &f, &p), -EINVAL);
	REQUIRE(p == NULL);
	bad = c;
	bad.min_size = 5;
	bad.max_size = 4;
	REQUIRE_EQ(pool_config_validate(&bad), -EINVAL);
	REQUIRE_EQ(pool_new(&bad, &fake_ops, &f, &p), -EINVAL);
	bad = c;
	bad.min_size = 3;
	bad.max_machines = 2;
	REQUIRE_EQ(pool_config_validate(&bad), -EINVAL);
	REQUIRE_EQ(pool_new(&bad, &fake_ops, &f, &p), -EINVAL);
	/* max_machines 0 means no cap, whatever min_size. */
	bad.max_machines = 0;
	REQUIRE_EQ(pool_config_validate(&bad), 0);
	/* min_size == max_size is valid, as in the reference. */
	bad = c;
	bad.min_size = bad.max_size = 4;
	REQUIRE_EQ(pool_config_validate(&bad), 0);
	REQUIRE_EQ(pool_config_validate(NULL), -EINVAL);

	struct pool_machine_ops no_create = fake_ops;
	no_create.create = NULL;
	REQUIRE_EQ(pool_new(&c, &no_create, &f, &p), -EINVAL);
	REQUIRE_EQ(pool_new(&c, NULL, &f, &p), -EINVAL);
	REQUIRE_EQ(f.creates, 0);

	/* A valid config is kept as given. */
	struct pool_config good = cfg_with(0, 3, 7);
	good.max_idle_ms = 1234;
	good.health_check_interval = 5;
	REQUIRE_EQ(pool_new(&good, &fake_ops, &f, &p), 0);
	const struct pool_config *got = pool_get_config(p);
	REQUIRE(memcmp(got, &good, sizeof(good)) == 0);
	pool_free(p);
	fake_fini(&f);
}

static void t_warm_lifo(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	REQUIRE_EQ(pool_warm(p, 3), 3);
	REQUIRE_EQ(stats(p).idle, 3);
	REQUIRE_EQ(pool_warm(p, 2), 0); /* already there */
	void *a, *b, *d;
	REQUIRE_EQ(pool_acquire(p, &a), 0);
	REQUIRE_EQ(pool_acquire(p, &b), 0);
	REQUIRE_EQ(id_of(a), 3); /* most recently pushed first */
	REQUIRE_EQ(id_of(b), 2);
	release_sync(p, b);
	release_sync(p, a);
	/* Released last, taken first. */
	REQUIRE_EQ(pool_acquire(p, &d), 0);
	REQUIRE(d == a);
	release_sync(p, d);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.hits, 3);
	REQUIRE_EQ(s.misses, 0);
	REQUIRE_EQ(f.creates, 3);
	stop(&f, p);
}

static void t_warm_capped(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 2, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	REQUIRE_EQ(pool_warm(p, 5), 2);
	REQUIRE_EQ(FAKE_GET(&f, creates), 2);
	REQUIRE_EQ(stats(p).idle, 2);
	stop(&f, p);
}

struct warm_arg {
	struct pool *p;
	int rc;
};

static void *warm_thread(void *arg)
{
	struct warm_arg *w = arg;
	w->rc = pool_warm(w->p, 2);
	return NULL;
}

/* Releases fill idle while warm is still booting: warm keeps what fits
 * under max_size and destroys the rest, as the reference. */
static void t_warm_extras(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 2, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	void *a, *b;
	REQUIRE_EQ(pool_acquire(p, &a), 0);
	REQUIRE_EQ(pool_acquire(p, &b), 0);
	FAKE_SET(&f, create_delay_ms, 100);
	struct warm_arg w = { p, -1 };
	pthread_t t;
	REQUIRE_EQ(pthread_create(&t, NULL, warm_thread, &w), 0);
	sleep_ms(40);
	pool_release(p, a);
	release_sync(p, b);
	pthread_join(t, NULL);
	REQUIRE_EQ(w.rc, 0);
	REQUIRE_EQ(stats(p).idle, 2);
	REQUIRE_EQ(FAKE_GET(&f, creates), 4);
	REQUIRE_EQ(FAKE_GET(&f, live), 2);
	REQUIRE(!f.destroyed[1] && !f.destroyed[2]);
	REQUIRE(f.destroyed[3] && f.destroyed[4]);
	stop(&f, p);
}

static void t_warm_failure(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	REQUIRE_EQ(pool_warm(p, 1), 1);
	FAKE_SET(&f, fail_create, 1);
	FAKE_SET(&f, create_err, -ENOSPC);
	REQUIRE_EQ(pool_warm(p, 3), -ENOSPC);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.idle, 1);
	REQUIRE_EQ(s.creating, 0);
	REQUIRE_EQ(s.create_failures, 1);
	REQUIRE_EQ(FAKE_GET(&f, live), 1);
	FAKE_SET(&f, fail_create, 0);
	REQUIRE_EQ(pool_warm(p, 2), 1);
	stop(&f, p);
}

/* A create that fails after others succeeded in the same warm drops them. */
static int fail_second_create(void *ctx, void **out)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	unsigned n = f->creates;
	pthread_mutex_unlock(&f->mu);
	if (n == 1)
		return -EMFILE;
	return fake_create(ctx, out);
}

static void t_warm_partial_failure(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	struct pool_machine_ops ops = fake_ops;
	ops.create = fail_second_create;
	REQUIRE_EQ(start(&f, &c, &ops, &p), 0);
	REQUIRE_EQ(pool_warm(p, 3), -EMFILE);
	REQUIRE_EQ(stats(p).idle, 0);
	REQUIRE_EQ(stats(p).creates, 1);
	REQUIRE_EQ(stats(p).create_failures, 1);
	REQUIRE_EQ(FAKE_GET(&f, live), 0);
	stop(&f, p);
}

static void t_miss(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	void *m;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	REQUIRE(m != NULL);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.misses, 1);
	REQUIRE_EQ(s.hits, 0);
	REQUIRE_EQ(s.in_use, 1);
	REQUIRE_EQ(s.creates, 1);
	REQUIRE_EQ(FAKE_GET(&f, creates), 1);
	release_sync(p, m);
	s = stats(p);
	REQUIRE_EQ(s.in_use, 0);
	REQUIRE_EQ(s.idle, 1);
	REQUIRE_EQ(s.resets, 1);
	stop(&f, p);
}

static void t_create_failure(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	FAKE_SET(&f, fail_create, 1);
	FAKE_SET(&f, create_err, -ENOMEM);
	void *m = (void *)&f;
	REQUIRE_EQ(pool_acquire(p, &m), -ENOMEM);
	REQUIRE(m == NULL);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.in_use, 0);
	REQUIRE_EQ(s.misses, 1);
	REQUIRE_EQ(s.create_failures, 1);
	REQUIRE_EQ(s.creates, 0);
	/* Next one works. */
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	REQUIRE_EQ(stats(p).in_use, 1);
	pool_release(p, m);
	stop(&f, p);
}

static void t_expiry(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	c.max_idle_ms = 1000;
	REQUIRE_EQ(start(&f, &c, &fake_ops_clock, &p), 0);
	void *a, *b, *m3;
	REQUIRE_EQ(pool_acquire(p, &a), 0);
	REQUIRE_EQ(pool_acquire(p, &b), 0);
	REQUIRE_EQ(pool_acquire(p, &m3), 0);
	FAKE_SET(&f, now, 10000);
	release_sync(p, a);
	FAKE_SET(&f, now, 10500);
	release_sync(p, b);
	FAKE_SET(&f, now, 10700);
	release_sync(p, m3);
	REQUIRE_EQ(stats(p).idle, 3);

	/* a has been idle exactly max_idle: evicted (≥, as the reference). */
	FAKE_SET(&f, now, 11000);
	void *x;
	REQUIRE_EQ(pool_acquire(p, &x), 0);
	REQUIRE(x == m3);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.evictions, 1);
	REQUIRE_EQ(s.idle, 1);
	REQUIRE_EQ(s.hits, 1);
	REQUIRE(f.destroyed[1]);
	REQUIRE(!f.destroyed[2]);

	/* b (released at 10500) expires at 11500: next acquire is a miss. */
	FAKE_SET(&f, now, 11500);
	void *y;
	REQUIRE_EQ(pool_acquire(p, &y), 0);
	s = stats(p);
	REQUIRE_EQ(s.evictions, 2);
	REQUIRE_EQ(s.idle, 0);
	REQUIRE_EQ(s.misses, 4);
	REQUIRE(f.destroyed[2]);
	REQUIRE(!f.destroyed[3]);

	/* warm evicts expired ones too. */
	release_sync(p, x);
	FAKE_SET(&f, now, 20000);
	REQUIRE_EQ(pool_warm(p, 1), 1);
	REQUIRE_EQ(stats(p).evictions, 3);
	REQUIRE(f.destroyed[3]);

	pool_release(p, y);
	stop(&f, p);
}

/* With nobody acquiring, idle machines past max_idle are still evicted
 * (a timer, not only acquire), oldest first, down to min_size; a pool
 * on an injected clock is left to its caller. */
static void t_idle_timer(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(1, 8, 0);
	c.max_idle_ms = 150;
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	pool_quiesce(p);
	void *m[4];
	for (int i = 0; i < 4; i++)
		REQUIRE_EQ(pool_acquire(p, &m[i]), 0);
	for (int i = 0; i < 4; i++)
		release_sync(p, m[i]);
	pool_quiesce(p);
	uint32_t before = stats(p).idle;
	REQUIRE(before >= 4);
	uint64_t t0 = now_ms();
	while (stats(p).idle > 1 && now_ms() - t0 < 3000)
		usleep(10000);
	struct pool_stats s = stats(p);
	CHECKF(s.idle == 1, "idle %u after %llu ms", s.idle, (unsigned long long)(now_ms() - t0));
	CHECK_EQ(s.evictions, before - 1);
	CHECK(now_ms() - t0 >= 100); /* not before they expired */
	stop(&f, p);

	c.max_idle_ms = 50;
	REQUIRE_EQ(start(&f, &c, &fake_ops_clock, &p), 0);
	void *a, *b;
	REQUIRE_EQ(pool_acquire(p, &a), 0);
	REQUIRE_EQ(pool_acquire(p, &b), 0);
	release_sync(p, a);
	release_sync(p, b);
	FAKE_SET(&f, now, 100000);
	usleep(200000);
	CHECK_EQ(stats(p).evictions, 0);
	stop(&f, p);
}

static void t_max_size_eviction(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 2, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	void *m[3];
	for (int i = 0; i < 3; i++)
		REQUIRE_EQ(pool_acquire(p, &m[i]), 0);
	for (int i = 0; i < 3; i++) {
		release_sync(p, m[i]);
	}
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.idle, 2);
	REQUIRE_EQ(s.evictions, 1);
	REQUIRE(f.destroyed[1]); /* the oldest */
	REQUIRE(!f.destroyed[2] && !f.destroyed[3]);
	REQUIRE_EQ(FAKE_GET(&f, live), 2);
	void *x;
	REQUIRE_EQ(pool_acquire(p, &x), 0);
	REQUIRE(x == m[2]);
	pool_release(p, x);
	stop(&f, p);
}

/* min 2 under a cap of 2: taking one leaves no room to refill, so the only
 * create afterwards is the replacement of the dead machine. */
static void t_dead_release(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(2, 4, 2);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	pool_quiesce(p);
	REQUIRE_EQ(stats(p).idle, 2);
	void *m;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	pool_quiesce(p);
	REQUIRE_EQ(stats(p).idle, 1);
	REQUIRE_EQ(FAKE_GET(&f, creates), 2);
	atomic_store(&((struct fm *)m)->alive, false);
	int id = id_of(m);
	release_sync(p, m);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.evictions, 1);
	REQUIRE_EQ(s.resets, 0); /* a dead machine is not reset */
	REQUIRE_EQ(FAKE_GET(&f, resets), 0);
	REQUIRE(f.destroyed[id]);
	REQUIRE_EQ(s.idle, 2); /* replaced */
	REQUIRE_EQ(FAKE_GET(&f, creates), 3);
	REQUIRE_EQ(FAKE_GET(&f, live), 2);
	stop(&f, p);
}

static void t_health_check(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(1, 4, 1);
	c.health_check_interval = 2;
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	pool_quiesce(p);
	void *m;
	for (int i = 1; i <= 4; i++) {
		REQUIRE_EQ(pool_acquire(p, &m), 0);
		release_sync(p, m);
		REQUIRE_EQ(stats(p).health_checks, (unsigned)i / 2);
		REQUIRE_EQ(FAKE_GET(&f, health_checks), (unsigned)i / 2);
	}
	REQUIRE_EQ(stats(p).resets, 4);
	REQUIRE_EQ(FAKE_GET(&f, creates), 1);

	/* Release 5: no check, so the armed failure waits; release 6 fails. */
	FAKE_SET(&f, fail_health, 1);
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	release_sync(p, m);
	REQUIRE_EQ(stats(p).health_failures, 0);
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	int id = id_of(m);
	release_sync(p, m);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.health_checks, 3);
	REQUIRE_EQ(s.health_failures, 1);
	REQUIRE_EQ(s.evictions, 1);
	REQUIRE_EQ(s.resets, 5); /* unhealthy: destroyed, not reset */
	REQUIRE(f.destroyed[id]);
	REQUIRE_EQ(s.idle, 1); /* replenished */
	REQUIRE_EQ(FAKE_GET(&f, creates), 2);
	REQUIRE_EQ(FAKE_GET(&f, live), 1);
	stop(&f, p);
}

static void t_reset_failure(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	void *m;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	FAKE_SET(&f, fail_reset, 1);
	release_sync(p, m);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.reset_failures, 1);
	REQUIRE_EQ(s.resets, 0);
	REQUIRE_EQ(s.evictions, 1);
	REQUIRE_EQ(s.idle, 0);
	REQUIRE_EQ(FAKE_GET(&f, live), 0);
	stop(&f, p);
}

static void t_release_async(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	void *m;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	FAKE_SET(&f, reset_delay_ms, 200);
	uint64_t t0 = now_ms();
	pool_release(p, m);
	uint64_t dt = now_ms() - t0;
	REQUIRE(dt < 100);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.resetting, 1);
	REQUIRE_EQ(s.idle, 0);
	REQUIRE_EQ(s.in_use, 0);
	pool_quiesce(p);
	s = stats(p);
	REQUIRE_EQ(s.resetting, 0);
	REQUIRE_EQ(s.idle, 1);
	REQUIRE_EQ(s.resets, 1);
	REQUIRE(s.reset_us_last >= 150000);
	REQUIRE_EQ(s.reset_us_avg, s.reset_us_last);
	stop(&f, p);
}

/* With no idle machine and a reset running, acquire waits for that reset
 * rather than booting (boots here take 300 ms, the reset 50 ms). */
static void t_wait_for_reset(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	FAKE_SET(&f, create_delay_ms, 300);
	FAKE_SET(&f, reset_delay_ms, 50);
	void *m, *x;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	pool_release(p, m);
	sleep_ms(10); /* let a worker start the reset */
	uint64_t t0 = now_ms();
	REQUIRE_EQ(pool_acquire(p, &x), 0);
	uint64_t dt = now_ms() - t0;
	REQUIRE(x == m);
	REQUIRE(dt < 250);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.hits, 1);
	REQUIRE_EQ(s.misses, 1);
	REQUIRE_EQ(s.creates, 1);
	pool_release(p, x);
	stop(&f, p);
}

/* One acquire/release cycle to the end, so the pool has a boot and a
 * reset average; returns the machine (idle again). */
static void *cycle_once(struct pool *p)
{
	void *m = NULL;
	CHECK_EQ(pool_acquire(p, &m), 0);
	if (m)
		pool_release(p, m);
	pool_quiesce(p);
	return m;
}

/* A reset somewhat slower than a boot (as the ns backend's, a destroy plus
 * a boot) is still waited for once it runs (on average half of it is
 * left); booting would add a machine for nothing. */
static void t_wait_for_equal_reset(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	FAKE_SET(&f, create_delay_ms, 120);
	FAKE_SET(&f, reset_delay_ms, 170);
	void *m = cycle_once(p), *x;
	REQUIRE(m);
	REQUIRE_EQ(pool_acquire(p, &x), 0); /* the hit */
	REQUIRE(x == m);
	pool_release(p, x);
	sleep_ms(20); /* a worker runs the reset */
	REQUIRE_EQ(pool_acquire(p, &x), 0);
	REQUIRE(x == m);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.creates, 1);
	REQUIRE_EQ(s.misses, 1);
	REQUIRE_EQ(s.hits, 2);
	pool_release(p, x);
	stop(&f, p);
}

/* A reset far slower than a boot (here 500 ms against 40 ms) is not waited
 * for: the acquire boots a machine of its own. */
static void t_boot_past_slow_reset(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	FAKE_SET(&f, create_delay_ms, 40);
	FAKE_SET(&f, reset_delay_ms, 500);
	void *m = cycle_once(p), *x, *y;
	REQUIRE(m);
	REQUIRE_EQ(pool_acquire(p, &x), 0);
	REQUIRE(x == m);
	pool_release(p, x);
	sleep_ms(20);
	uint64_t t0 = now_ms();
	REQUIRE_EQ(pool_acquire(p, &y), 0);
	REQUIRE(now_ms() - t0 < 400);
	REQUIRE(y != m);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.creates, 2);
	REQUIRE_EQ(s.misses, 2);
	pool_release(p, y);
	stop(&f, p);
}

static void t_refill_after_hit(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(2, 4, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	pool_quiesce(p);
	REQUIRE_EQ(stats(p).idle, 2); /* warmed in the background at pool_new */
	REQUIRE_EQ(stats(p).creates, 2);
	void *m;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	REQUIRE_EQ(stats(p).hits, 1);
	pool_quiesce(p);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.idle, 2);
	REQUIRE_EQ(s.creates, 3);
	REQUIRE_EQ(s.in_use, 1);
	REQUIRE_EQ(s.misses, 0);
	/* A hit never waits for the refill's boot. */
	FAKE_SET(&f, create_delay_ms, 300);
	void *a, *b;
	uint64_t t0 = now_ms();
	REQUIRE_EQ(pool_acquire(p, &a), 0);
	REQUIRE_EQ(pool_acquire(p, &b), 0);
	REQUIRE(now_ms() - t0 < 150);
	REQUIRE_EQ(stats(p).hits, 3);
	pool_release(p, a);
	pool_release(p, b);
	release_sync(p, m);
	/* Releases go back idle up to max_size. */
	s = stats(p);
	REQUIRE_EQ(s.idle, 4);
	REQUIRE_EQ(s.evictions, 1);
	stop(&f, p);
}

static void t_max_machines(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 4, 2);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	void *a, *b, *x = NULL;
	REQUIRE_EQ(pool_acquire(p, &a), 0);
	REQUIRE_EQ(pool_acquire(p, &b), 0);
	uint64_t t0 = now_ms();
	REQUIRE_EQ(pool_acquire(p, &x), -EAGAIN);
	REQUIRE(now_ms() - t0 < 100);
	REQUIRE(x == NULL);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.misses, 2);
	REQUIRE_EQ(s.in_use, 2);
	REQUIRE_EQ(FAKE_GET(&f, creates), 2);
	REQUIRE_EQ(pool_warm(p, 1), -EAGAIN);
	/* At the cap, a machine being reset is waited for, not refused. */
	FAKE_SET(&f, reset_delay_ms, 50);
	pool_release(p, a);
	REQUIRE_EQ(pool_acquire(p, &x), 0);
	REQUIRE(x == a);
	REQUIRE_EQ(stats(p).hits, 1);
	pool_release(p, x);
	release_sync(p, b);
	REQUIRE_EQ(FAKE_GET(&f, max_live), 2);
	stop(&f, p);
}

struct stress {
	struct pool *p;
	struct fake *f;
	unsigned seed;
	int iters;
	atomic_int *got, *eagain, *errors, *shared;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	for (int i = 0; i < s->iters; i++) {
		void *m;
		int rc = pool_acquire(s->p, &m);
		if (rc == -EAGAIN) {
			atomic_fetch_add(s->eagain, 1);
			sleep_ms(1);
			continue;
		}
		if (rc < 0) {
			atomic_fetch_add(s->errors, 1);
			continue;
		}
		atomic_fetch_add(s->got, 1);
		struct fm *fm = m;
		if (atomic_fetch_add(&fm->users, 1) != 0)
			atomic_fetch_add(s->shared, 1);
		if (rand_r(&s->seed) % 3 == 0)
			sleep_ms(1);
		atomic_fetch_sub(&fm->users, 1);
		if (rand_r(&s->seed) % 10 == 0)
			atomic_store(&fm->alive, false);
		pool_release(s->p, m);
	}
	return NULL;
}

static void t_concurrent(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(1, 2, 3);
	c.health_check_interval = 7;
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	FAKE_SET(&f, create_delay_ms, 2);
	FAKE_SET(&f, reset_delay_ms, 1);
	FAKE_SET(&f, fail_reset, 0);
	atomic_int got = 0, eagain = 0, errors = 0, shared = 0;
	struct stress st[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		st[i] = (struct stress){ p, &f, (unsigned)i * 7919u + 1, 150, &got, &eagain,
					 &errors, &shared };
		REQUIRE_EQ(pthread_create(&t[i], NULL, stress_thread, &st[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	pool_quiesce(p);
	struct pool_stats s = stats(p);
	printf("# got=%d eagain=%d hits=%llu misses=%llu evictions=%llu creates=%llu max_live=%d\n",
	       atomic_load(&got), atomic_load(&eagain), (unsigned long long)s.hits,
	       (unsigned long long)s.misses, (unsigned long long)s.evictions,
	       (unsigned long long)s.creates, FAKE_GET(&f, max_live));
	REQUIRE_EQ(atomic_load(&errors), 0);
	REQUIRE_EQ(atomic_load(&shared), 0);
	REQUIRE(atomic_load(&got) > 0);
	REQUIRE_EQ(atomic_load(&got) + atomic_load(&eagain), 8 * 150);
	REQUIRE(FAKE_GET(&f, max_live) <= 3);
	REQUIRE_EQ(s.in_use, 0);
	REQUIRE_EQ(s.creating, 0);
	REQUIRE_EQ(s.resetting, 0);
	REQUIRE_EQ(s.hits + s.misses, (uint64_t)atomic_load(&got));
	REQUIRE(s.idle >= 1 && s.idle <= 2);
	REQUIRE_EQ(FAKE_GET(&f, live), (int)s.idle);
	REQUIRE_EQ(s.creates, FAKE_GET(&f, creates));
	stop(&f, p);
}

/* Every counter after a scripted sequence. */
static void t_stats(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(0, 2, 0);
	c.health_check_interval = 3;
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	FAKE_SET(&f, create_delay_ms, 2);
	REQUIRE_EQ(pool_warm(p, 1), 1);          /* creates 1 */
	void *a, *b, *d, *e;
	REQUIRE_EQ(pool_acquire(p, &a), 0);      /* hit 1 */
	REQUIRE_EQ(pool_acquire(p, &b), 0);      /* miss 1, creates 2 */
	pool_release(p, a);                    /* release 1: reset 1 */
	pool_release(p, b);                    /* release 2: reset 2 */
	pool_quiesce(p);
	REQUIRE_EQ(pool_acquire(p, &a), 0);      /* hit 2 */
	REQUIRE_EQ(pool_acquire(p, &b), 0);      /* hit 3 */
	FAKE_SET(&f, fail_create, 1);
	REQUIRE_EQ(pool_acquire(p, &d), -EIO);   /* miss 2, create failure 1 */
	REQUIRE_EQ(pool_acquire(p, &d), 0);      /* miss 3, creates 3 */
	FAKE_SET(&f, fail_reset, 1);
	pool_release(p, a);                    /* release 3: check ok, reset fails: evict 1 */
	pool_quiesce(p);
	pool_release(p, b);                    /* release 4: reset 3 */
	pool_quiesce(p);
	pool_release(p, d);                    /* release 5: reset 4 */
	pool_quiesce(p);
	REQUIRE_EQ(pool_acquire(p, &e), 0);      /* hit 4 */
	atomic_store(&((struct fm *)e)->alive, false);
	pool_release(p, e);                    /* release 6: dead: evict 2 */
	pool_quiesce(p);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.hits, 4);
	REQUIRE_EQ(s.misses, 3);
	REQUIRE_EQ(s.evictions, 2);
	REQUIRE_EQ(s.idle, 1);
	REQUIRE_EQ(s.in_use, 0);
	REQUIRE_EQ(s.creating, 0);
	REQUIRE_EQ(s.resetting, 0);
	REQUIRE_EQ(s.creates, 3);
	REQUIRE_EQ(s.create_failures, 1);
	REQUIRE_EQ(s.resets, 4);
	REQUIRE_EQ(s.reset_failures, 1);
	REQUIRE_EQ(s.health_checks, 1);
	REQUIRE_EQ(s.health_failures, 0);
	REQUIRE(s.boot_us_last >= 2000);
	REQUIRE(s.boot_us_avg >= 2000);
	REQUIRE(s.reset_us_avg <= s.boot_us_avg);
	REQUIRE_EQ(FAKE_GET(&f, live), 1);
	stop(&f, p);
}

/* pool_free with machines idle, resetting, queued for reset and being
 * created: the fake's live count must come back to 0. */
static void t_free_everything(void)
{
	struct fake f;
	struct pool *p;
	struct pool_config c = cfg_with(2, 16, 0);
	REQUIRE_EQ(start(&f, &c, &fake_ops, &p), 0);
	pool_quiesce(p);
	void *m[8];
	for (int i = 0; i < 8; i++)
		REQUIRE_EQ(pool_acquire(p, &m[i]), 0);
	pool_quiesce(p);
	FAKE_SET(&f, reset_delay_ms, 100);
	for (int i = 0; i < 8; i++)
		pool_release(p, m[i]);
	sleep_ms(20);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.resetting, 8);
	REQUIRE_EQ(s.idle, 2);
	pool_free(p);
	REQUIRE_EQ(f.live, 0);
	REQUIRE_EQ(f.destroys, f.creates);

	/* Refill creates still running or queued at free. */
	REQUIRE_EQ(pool_new(&c, &fake_ops, &f, &p), 0);
	FAKE_SET(&f, create_delay_ms, 50);
	pool_free(p);
	REQUIRE_EQ(f.live, 0);
	c.min_size = 8;
	REQUIRE_EQ(pool_new(&c, &fake_ops, &f, &p), 0);
	sleep_ms(10);
	REQUIRE(stats(p).creating > 0);
	pool_free(p);
	REQUIRE_EQ(f.live, 0);
	REQUIRE_EQ(f.destroys, f.creates);
	fake_fini(&f);
}

/* A backend with only create and destroy: no reset, no checks. */
static void t_minimal_ops(void)
{
	struct fake f;
	struct pool *p;
	struct pool_machine_ops ops = { .create = fake_create, .destroy = fake_destroy };
	struct pool_config c = cfg_with(1, 2, 0);
	c.health_check_interval = 1;
	REQUIRE_EQ(start(&f, &c, &ops, &p), 0);
	pool_quiesce(p);
	void *m;
	REQUIRE_EQ(pool_acquire(p, &m), 0);
	release_sync(p, m);
	struct pool_stats s = stats(p);
	REQUIRE_EQ(s.hits, 1);
	REQUIRE_EQ(s.idle, 2);
	REQUIRE_EQ(s.health_checks, 0);
	REQUIRE_EQ(s.resets, 0);
	stop(&f, p);
}

int main(void)
{
	static const struct tap_test tests[] = {
		{ "invalid configs rejected, valid kept", t_config },
		{ "warm then hits in LIFO order", t_warm_lifo },
		{ "warm capped by max_size", t_warm_capped },
		{ "warm keeps what fits, destroys extras", t_warm_extras },
		{ "warm create failure returns the error", t_warm_failure },
		{ "warm failure drops machines it made", t_warm_partial_failure },
		{ "miss creates on the caller's thread", t_miss },
		{ "create failure rolls back in_use", t_create_failure },
		{ "expiry evicts the oldest idle", t_expiry },
		{ "idle eviction runs on a timer too, down to min_size", t_idle_timer },
		{ "release over max_size evicts the oldest", t_max_size_eviction },
		{ "dead machine on release evicted and replaced", t_dead_release },
		{ "health check every N releases and its failure", t_health_check },
		{ "reset failure evicts", t_reset_failure },
		{ "release returns before a slow reset", t_release_async },
		{ "acquire waits for a running reset over a boot", t_wait_for_reset },
		{ "a running reset somewhat slower than a boot is still waited for", t_wait_for_equal_reset },
		{ "a reset far slower than a boot is not waited for", t_boot_past_slow_reset },
		{ "background refill to min_size after a hit", t_refill_after_hit },
		{ "max_machines gives EAGAIN", t_max_machines },
		{ "8 threads never exceed max_machines", t_concurrent },
		{ "stats after a scripted sequence", t_stats },
		{ "pool_free destroys everything", t_free_everything },
		{ "backend with only create and destroy", t_minimal_ops },
	};
	return tap_main(tests, sizeof tests / sizeof tests[0]);
}
