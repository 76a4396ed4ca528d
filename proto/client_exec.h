/* Running one command to its end through a client (included by
 * client.h): the exec-and-wait loop that the pool's health check, the
 * tests and the benches share, built on vp_exec_start.
 *
 *   struct vp_exec_run r;
 *   int err = vp_client_exec_wait(c, &req, VP_RUN_COLLECT, 10000, &r);
 *   ... r.ex.code, r.out.p ...
 *   vp_exec_run_free(&r);
 *
 * A vp_exec_run must stay where it is (the reader thread's callbacks
 * point at it) from vp_exec_run_start until it is done. */
#ifndef VMPOOL_CLIENT_EXEC_H
#define VMPOOL_CLIENT_EXEC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct vp_client;

#define VP_RUN_COLLECT 0x1u /* keep stdout and stderr in out and errout */

/* Collected output: NUL-terminated, p is "" (not NULL) once started. */
struct vp_exec_out {
	char *p;
	size_t len, cap;
};

struct vp_exec_run {
	pthread_mutex_t mu; /* protects the fields below: the reader thread fills them */
	pthread_cond_t cv;  /* done became true */
	unsigned opts;	    /* VP_RUN_* */
	bool done;	    /* on_exit ran, or the start failed */
	int err;	    /* 0: the command ended and ex says how; else -errno */
	struct vp_exit ex;
	struct vp_exec_out out, errout; /* with VP_RUN_COLLECT; an allocation failure drops output */
	uint32_t exec_id;		/* for vp_exec_stdin / vp_exec_signal while it runs */
};

/* Starts req (vp_exec_start) with r collecting its end. On an error, r is
 * done with that error (and still to be freed). */
int vp_exec_run_start(struct vp_client *c, const struct vp_exec *req, unsigned opts, struct vp_exec_run *r);
/* 0 once the command ended; -ETIMEDOUT when it did not within limit_ms
 * (< 0: no limit). */
int vp_exec_run_wait(struct vp_exec_run *r, int limit_ms);
/* Only once done (or never started). */
void vp_exec_run_free(struct vp_exec_run *r);
/* Start and wait. A command still running after limit_ms (< 0: no limit;
 * give it more than req->timeout_ms so the agent's own timeout comes
 * first) costs the channel: vp_client_shutdown ends it at once, and the
 * result is -ETIMEDOUT. Else r->err: 0 with r->ex filled, or -errno. */
int vp_client_exec_wait(struct vp_client *c, const struct vp_exec *req, unsigned opts, int limit_ms,
			struct vp_exec_run *r);
/* The usual verdict on an ended command: 0 for exit code 0, -EIO for any
 * other end (code, signal, the agent's timeout). */
int vp_exit_status(const struct vp_exit *ex);

#endif
