/* The pool tests' fake machine backend (see test_pool.h): machines are
 * heap records with an id and an alive flag; every op counts its calls
 * under the fake's lock and may be made to fail or to take its time. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/testutil.h"
#include "tests/pool/test_pool.h"

/* Consumes one injected failure, if any is armed. */
static bool take_failure(int *n)
{
	if (*n == 0)
		return false;
	if (*n > 0)
		(*n)--;
	return true;
}

int fake_create(void *ctx, void **out)
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

void fake_destroy(void *ctx, void *machine)
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

const struct pool_machine_ops fake_ops = {
	.create = fake_create,
	.reset = fake_reset,
	.destroy = fake_destroy,
	.is_alive = fake_is_alive,
	.health_check = fake_health,
	.now_ms = NULL,
};

const struct pool_machine_ops fake_ops_clock = {
	.create = fake_create,
	.reset = fake_reset,
	.destroy = fake_destroy,
	.is_alive = fake_is_alive,
	.health_check = fake_health,
	.now_ms = fake_now,
};

void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	f->next_id = 1;
}

void fake_fini(struct fake *f)
{
	pthread_mutex_destroy(&f->mu);
}
