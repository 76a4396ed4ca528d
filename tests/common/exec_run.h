/* Running a command through the agent client in C tests (header only), a
 * thin layer over the client's exec-and-wait (proto/client_exec.h):
 * run_start + run_wait, or run_cmd for both; output is collected in
 * r->o / r->e (NUL-terminated), the exit in r->ex. run_free after. */
#ifndef VMPOOL_TESTS_EXEC_RUN_H
#define VMPOOL_TESTS_EXEC_RUN_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "proto/client.h"
#include "tests/common/testutil.h"

struct run {
	struct vp_exec_run x; /* the client's record; the fields below mirror it */
	struct vp_exec_out o, e;
	bool done;
	int err;
	struct vp_exit ex;
	uint32_t exec_id;
};

/* Copies what the reader thread filled in (under its lock). */
static inline void run_sync(struct run *r)
{
	pthread_mutex_lock(&r->x.mu);
	r->o = r->x.out;
	r->e = r->x.errout;
	r->done = r->x.done;
	r->err = r->x.err;
	r->ex = r->x.ex;
	r->exec_id = r->x.exec_id;
	pthread_mutex_unlock(&r->x.mu);
}

static inline void run_free(struct run *r)
{
	vp_exec_run_free(&r->x);
}

static inline int run_start(struct vp_client *c, const char *cmd, uint32_t timeout_ms, uint32_t flags,
			    struct run *r)
{
	memset(r, 0, sizeof *r);
	static const struct vp_exec zero;
	struct vp_exec req = zero;
	req.cmd.p = (const uint8_t *)cmd;
	req.cmd.len = (uint32_t)strlen(cmd);
	req.timeout_ms = timeout_ms;
	req.flags = flags;
	int err = vp_exec_run_start(c, &req, VP_RUN_COLLECT, &r->x);
	run_sync(r);
	return err;
}

/* 0 once on_exit ran; -ETIMEDOUT when it did not within limit_ms. */
static inline int run_wait(struct run *r, int limit_ms)
{
	int err = vp_exec_run_wait(&r->x, limit_ms);
	run_sync(r);
	return err;
}

/* Runs cmd to the end (the agent's timeout: timeout_ms); r holds output
 * and status (caller frees r). A command the agent does not end in time
 * + 10 s costs the channel: shut down, its on_exit runs before r can go
 * away, and the result is -ETIMEDOUT. */
static inline int run_cmd_within(struct vp_client *c, const char *cmd, uint32_t timeout_ms, struct run *r)
{
	memset(r, 0, sizeof *r);
	static const struct vp_exec zero;
	struct vp_exec req = zero;
	req.cmd.p = (const uint8_t *)cmd;
	req.cmd.len = (uint32_t)strlen(cmd);
	req.timeout_ms = timeout_ms;
	int err = vp_client_exec_wait(c, &req, VP_RUN_COLLECT, (int)timeout_ms + 10000, &r->x);
	run_sync(r);
	return err;
}

static inline int run_cmd(struct vp_client *c, const char *cmd, struct run *r)
{
	return run_cmd_within(c, cmd, 60000, r);
}

#endif
