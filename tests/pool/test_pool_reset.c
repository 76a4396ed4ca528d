/* Pool tests: release and reset in the background, acquire waiting for a
 * reset or booting past it, refill to min_size, and the max_machines cap. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/common/testutil.h"
#include "tests/pool/test_pool.h"

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

static const struct tap_test tests[] = {
	{ "release returns before a slow reset", t_release_async },
	{ "acquire waits for a running reset over a boot", t_wait_for_reset },
	{ "a running reset somewhat slower than a boot is still waited for", t_wait_for_equal_reset },
	{ "a reset far slower than a boot is not waited for", t_boot_past_slow_reset },
	{ "background refill to min_size after a hit", t_refill_after_hit },
	{ "max_machines gives EAGAIN", t_max_machines },
};

TAP_PART(pool_reset_part, tests);
