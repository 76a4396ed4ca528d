/* Pool tests: configs, pool_warm, and the create path of acquire. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/common/testutil.h"
#include "tests/pool/test_pool.h"

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

static const struct tap_test tests[] = {
	{ "invalid configs rejected, valid kept", t_config },
	{ "warm then hits in LIFO order", t_warm_lifo },
	{ "warm capped by max_size", t_warm_capped },
	{ "warm keeps what fits, destroys extras", t_warm_extras },
	{ "warm create failure returns the error", t_warm_failure },
	{ "warm failure drops machines it made", t_warm_partial_failure },
	{ "miss creates on the caller's thread", t_miss },
	{ "create failure rolls back in_use", t_create_failure },
};

TAP_PART(pool_create_part, tests);
