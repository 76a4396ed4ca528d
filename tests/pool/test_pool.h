/* Shared by the pool tests (tests/pool/test_pool_*.c): the fake machine
 * backend of pool_fake.c (counters, injectable failures, an is_alive flag
 * per machine, an injectable clock and optional delays), helpers to run a
 * pool over it, and the parts of tests that test_pool.c runs in order. */
#ifndef VMPOOL_TESTS_POOL_TEST_POOL_H
#define VMPOOL_TESTS_POOL_TEST_POOL_H

#include "pool/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/common/tap.h"

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

/* ---- the fake (pool_fake.c) ---- */

/* now_ms NULL (the pool's own clock), or fake_now: f->now. */
extern const struct pool_machine_ops fake_ops, fake_ops_clock;

int fake_create(void *ctx, void **out);
void fake_destroy(void *ctx, void *machine);
void fake_init(struct fake *f);
void fake_fini(struct fake *f);

#define FAKE_GET(f, field)                              \
	({                                              \
		pthread_mutex_lock(&(f)->mu);           \
		__typeof__((f)->field) v_ = (f)->field; \
		pthread_mutex_unlock(&(f)->mu);         \
		v_;                                     \
	})
#define FAKE_SET(f, field, val)                 \
	do {                                    \
		pthread_mutex_lock(&(f)->mu);   \
		(f)->field = (val);             \
		pthread_mutex_unlock(&(f)->mu); \
	} while (0)

/* ---- helpers (inline: their checks count in the calling file) ---- */

static inline struct pool_config cfg_with(uint32_t min, uint32_t max, uint32_t max_machines)
{
	struct pool_config c;
	pool_config_defaults(&c);
	c.min_size = min;
	c.max_size = max;
	c.max_machines = max_machines;
	return c;
}

static inline int id_of(void *m)
{
	return ((struct fm *)m)->id;
}

static inline struct pool_stats stats(struct pool *p)
{
	struct pool_stats s;
	pool_get_stats(p, &s);
	return s;
}

/* A pool over a fresh fake; pool_new's result. */
static inline int start(struct fake *f, const struct pool_config *c, const struct pool_machine_ops *ops,
			struct pool **p)
{
	fake_init(f);
	return pool_new(c, ops, f, p);
}

/* Frees the pool, which must destroy every machine the fake made. */
static inline void stop(struct fake *f, struct pool *p)
{
	pool_free(p);
	CHECK_EQ(f->live, 0);
	fake_fini(f);
}

/* Releases m and waits until the pool is done with it (reset or evicted). */
static inline void release_sync(struct pool *p, void *m)
{
	pool_release(p, m);
	pool_quiesce(p);
}

/* ---- parts ---- */

/* The files of tests, each a part (tests/common/tap.h, TAP_PART). */
extern const struct tap_part pool_create_part, pool_evict_part, pool_reset_part, pool_load_part;

#endif
