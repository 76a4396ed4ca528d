/* Pool tests: threads under load, every counter after a script, pool_free
 * at any stage, and a backend with only create and destroy. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/common/testutil.h"
#include "tests/pool/test_pool.h"

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
		st[i] = (struct stress){ p, &f, (unsigned)i * 7919u + 1, 150, &got, &eagain, &errors, &shared };
		REQUIRE_EQ(pthread_create(&t[i], NULL, stress_thread, &st[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	pool_quiesce(p);
	struct pool_stats s = stats(p);
	printf("# got=%d eagain=%d hits=%llu misses=%llu evictions=%llu creates=%llu max_live=%d\n",
	       atomic_load(&got), atomic_load(&eagain), (unsigned long long)s.hits,
	       (unsigned long long)s.misses, (unsigned long long)s.evictions, (unsigned long long)s.creates,
	       FAKE_GET(&f, max_live));
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
	REQUIRE_EQ(pool_warm(p, 1), 1); /* creates 1 */
	void *a, *b, *d, *e;
	REQUIRE_EQ(pool_acquire(p, &a), 0); /* hit 1 */
	REQUIRE_EQ(pool_acquire(p, &b), 0); /* miss 1, creates 2 */
	pool_release(p, a);		    /* release 1: reset 1 */
	pool_release(p, b);		    /* release 2: reset 2 */
	pool_quiesce(p);
	REQUIRE_EQ(pool_acquire(p, &a), 0); /* hit 2 */
	REQUIRE_EQ(pool_acquire(p, &b), 0); /* hit 3 */
	FAKE_SET(&f, fail_create, 1);
	REQUIRE_EQ(pool_acquire(p, &d), -EIO); /* miss 2, create failure 1 */
	REQUIRE_EQ(pool_acquire(p, &d), 0);    /* miss 3, creates 3 */
	FAKE_SET(&f, fail_reset, 1);
	pool_release(p, a); /* release 3: check ok, reset fails: evict 1 */
	pool_quiesce(p);
	pool_release(p, b); /* release 4: reset 3 */
	pool_quiesce(p);
	pool_release(p, d); /* release 5: reset 4 */
	pool_quiesce(p);
	REQUIRE_EQ(pool_acquire(p, &e), 0); /* hit 4 */
	atomic_store(&((struct fm *)e)->alive, false);
	pool_release(p, e); /* release 6: dead: evict 2 */
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

static const struct tap_test tests[] = {
	{ "8 threads never exceed max_machines", t_concurrent },
	{ "stats after a scripted sequence", t_stats },
	{ "pool_free destroys everything", t_free_everything },
	{ "backend with only create and destroy", t_minimal_ops },
};

TAP_PART(pool_load_part, tests);
