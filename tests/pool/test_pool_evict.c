/* Pool tests: what leaves the pool (expiry, the idle timer, max_size,
 * dead and unhealthy machines, failed resets). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/common/testutil.h"
#include "tests/pool/test_pool.h"

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

static const struct tap_test tests[] = {
	{ "expiry evicts the oldest idle", t_expiry },
	{ "idle eviction runs on a timer too, down to min_size", t_idle_timer },
	{ "release over max_size evicts the oldest", t_max_size_eviction },
	{ "dead machine on release evicted and replaced", t_dead_release },
	{ "health check every N releases and its failure", t_health_check },
	{ "reset failure evicts", t_reset_failure },
};

TAP_PART(pool_evict_part, tests);
