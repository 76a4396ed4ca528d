/* pool_machine_ops over machines; see machine_pool.h. */
#include "vmm/machine_pool.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "proto/client.h"

#define HEALTH_TIMEOUT_MS 10000

static int op_create(void *ctx, void **machine)
{
	struct machine *m = NULL;
	int r = machine_create(ctx, &m);
	if (r == 0)
		*machine = m;
	return r;
}

static int op_reset(void *ctx, void *machine)
{
	(void)ctx;
	return machine_reset(machine);
}

static void op_destroy(void *ctx, void *machine)
{
	(void)ctx;
	machine_destroy(machine);
}

static bool op_is_alive(void *ctx, void *machine)
{
	(void)ctx;
	return machine_is_alive(machine);
}

static int op_health(void *ctx, void *machine)
{
	(void)ctx;
	return machine_health_check(machine, HEALTH_TIMEOUT_MS);
}

const struct pool_machine_ops machine_pool_ops = {
	.create = op_create,
	.reset = op_reset,
	.destroy = op_destroy,
	.is_alive = op_is_alive,
	.health_check = op_health,
	.now_ms = NULL,
};

struct hc {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
};

static void hc_output(void *ctx, int stream, const void *data, size_t len)
{
	(void)ctx, (void)stream, (void)data, (void)len;
}

static void hc_exit(void *ctx, const struct vp_exit *ex, int err)
{
	struct hc *h = ctx;
	pthread_mutex_lock(&h->lock);
	if (err < 0)
		h->result = err;
	else if (ex->timed_out || ex->signal || ex->code != 0)
		h->result = -EIO;
	else
		h->result = 0;
	h->done = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

int machine_health_check(struct machine *m, int timeout_ms)
{
	struct vp_client *c = machine_client(m);
	if (!c || !vp_client_alive(c))
		return -ENOTCONN;
	static const char cmd[] = "/bin/true";
	struct vp_exec req;
	memset(&req, 0, sizeof(req));
	req.cmd.p = (const uint8_t *)cmd;
	req.cmd.len = sizeof(cmd) - 1;
	req.timeout_ms = (uint32_t)timeout_ms;
	static const struct vp_exec_cb cb = {NULL, hc_output, hc_exit};
	struct hc h = {.done = false, .result = -ETIMEDOUT};
	pthread_mutex_init(&h.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h.cond, &ca);
	pthread_condattr_destroy(&ca);
	uint32_t id;
	int r = vp_exec_start(c, &req, &cb, &h, &id);
	if (r == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ms / 1000 + 2; /* the agent's own timeout first */
		pthread_mutex_lock(&h.lock);
		while (!h.done) {
			if (pthread_cond_timedwait(&h.cond, &h.lock, &ts) == ETIMEDOUT && !h.done) {
				/* A hung agent: kill the channel, which delivers on_exit
				 * (h lives on this stack until then). */
				pthread_mutex_unlock(&h.lock);
				vp_client_shutdown(c);
				pthread_mutex_lock(&h.lock);
				while (!h.done)
					pthread_cond_wait(&h.cond, &h.lock);
				h.result = -ETIMEDOUT;
			}
		}
		r = h.result;
		pthread_mutex_unlock(&h.lock);
	}
	pthread_cond_destroy(&h.cond);
	pthread_mutex_destroy(&h.lock);
	return r;
}
