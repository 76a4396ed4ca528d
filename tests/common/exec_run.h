/* Running a command through the agent client in C tests (header only):
 * run_start + run_wait, or run_cmd for both; output is collected in
 * r->o / r->e (NUL-terminated), the exit in r->ex. run_free after. */
#ifndef VMPOOL_TESTS_EXEC_RUN_H
#define VMPOOL_TESTS_EXEC_RUN_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "tests/common/testutil.h"

struct out {
	char *p;
	size_t len, cap;
};

struct run {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct out o, e;
	bool done;
	int err;
	struct vp_exit ex;
	uint32_t exec_id;
};

static inline void out_add(struct out *o, const void *d, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = (o->len + n + 1) * 2;
		char *p = realloc(o->p, cap);
		if (!p)
			abort();
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, d, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static inline void cb_output(void *ctx, int stream, const void *data, size_t len)
{
	struct run *r = ctx;
	pthread_mutex_lock(&r->mu);
	out_add(stream == VP_STREAM_STDERR ? &r->e : &r->o, data, len);
	pthread_mutex_unlock(&r->mu);
}

static inline void cb_exit(void *ctx, const struct vp_exit *ex, int err)
{
	struct run *r = ctx;
	pthread_mutex_lock(&r->mu);
	if (ex)
		r->ex = *ex;
	r->err = err;
	r->done = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static const struct vp_exec_cb run_cb = {.on_output = cb_output, .on_exit = cb_exit};

static inline void run_init(struct run *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	cond_init_monotonic(&r->cv);
	out_add(&r->o, "", 0);
	out_add(&r->e, "", 0);
}

static inline void run_free(struct run *r)
{
	free(r->o.p);
	free(r->e.p);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

static inline int run_start(struct vp_client *c, const char *cmd, uint32_t timeout_ms, uint32_t flags, struct run *r)
{
	run_init(r);
	static struct vp_exec zero;
	struct vp_exec *req = malloc(sizeof *req);
	if (!req)
		return -ENOMEM;
	*req = zero;
	req->cmd.p = (const uint8_t *)cmd;
	req->cmd.len = (uint32_t)strlen(cmd);
	req->timeout_ms = timeout_ms;
	req->flags = flags;
	int err = vp_exec_start(c, req, &run_cb, r, &r->exec_id);
	free(req);
	if (err) {
		r->err = err;
		r->done = true;
	}
	return err;
}

/* 0 once on_exit ran; -ETIMEDOUT when it did not within limit_ms. */
static inline int run_wait(struct run *r, int limit_ms)
{
	struct timespec ts = deadline_ms(limit_ms);
	pthread_mutex_lock(&r->mu);
	int rc = 0;
	while (!r->done && rc == 0)
		rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	bool done = r->done;
	pthread_mutex_unlock(&r->mu);
	return done ? 0 : -ETIMEDOUT;
}

/* Runs cmd to the end (the agent's timeout: timeout_ms); r holds output
 * and status (caller frees r). A command the agent does not end in time
 * + 10 s costs the channel: shut down, its on_exit runs before r can go
 * away, and the result is -ETIMEDOUT. */
static inline int run_cmd_within(struct vp_client *c, const char *cmd, uint32_t timeout_ms, struct run *r)
{
	int err = run_start(c, cmd, timeout_ms, 0, r);
	if (err)
		return err;
	if (run_wait(r, (int)timeout_ms + 10000)) {
		vp_client_shutdown(c);
		run_wait(r, 600000); /* at once: the shutdown ended every call */
		return -ETIMEDOUT;
	}
	return r->err;
}

static inline int run_cmd(struct vp_client *c, const char *cmd, struct run *r)
{
	return run_cmd_within(c, cmd, 60000, r);
}

#endif
