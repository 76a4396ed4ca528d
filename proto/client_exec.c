/* EXEC, STDIN, SIGNAL and the exec-and-wait helper (client_exec.h). */
#include "client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

int vp_exec_start(struct vp_client *c, const struct vp_exec *req, const struct vp_exec_cb *cb, void *ctx,
		  uint32_t *exec_id)
{
	if (!req || !cb || !cb->on_output || !cb->on_exit)
		return -EINVAL;
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_exec(&b, req);
	struct pend *p = client_pend_new(VP_EXEC);
	if (p) {
		p->kind = PK_EXEC;
		p->cb = *cb;
		p->ctx = ctx;
	}
	struct waiter w;
	memset(&w, 0, sizeof w);
	uint32_t id = 0;
	int err = client_do_call(c, p, &b, NULL, 0, &w, INT32_MIN, &id);
	vp_buf_free(&b);
	if (err)
		return err;
	if (w.rtype == VP_ERROR) {
		err = client_map_error(w.payload, w.plen);
		free(w.payload);
		return err;
	}
	if (exec_id)
		*exec_id = id;
	return 0;
}

/* Requests answered with OK; the payload prefix is in b, + extra. */
static int call_ok(struct vp_client *c, uint16_t type, struct vp_buf *b, const void *extra, size_t extra_len,
		   int timeout_ms)
{
	struct client_reply r;
	int err = client_call_timeout(c, type, b, extra, extra_len, &r, timeout_ms);
	if (!err)
		client_reply_free(&r);
	return err;
}

int vp_exec_stdin(struct vp_client *c, uint32_t exec_id, const void *data, size_t len, bool eof)
{
	return vp_exec_stdin_timeout(c, exec_id, data, len, eof, INT32_MIN);
}

int vp_exec_stdin_timeout(struct vp_client *c, uint32_t exec_id, const void *data, size_t len, bool eof,
			  int timeout_ms)
{
	if (exec_id == 0 || (len && !data))
		return -EINVAL;
	const uint8_t *d = data;
	do {
		uint32_t n = len > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)len;
		bool last = n == len;
		/* The layout of STDIN, with the data sent from d without a copy. */
		struct vp_buf b;
		client_frame_begin(&b);
		vp_put_u32(&b, exec_id);
		vp_put_u8(&b, last && eof);
		vp_put_u32(&b, n);
		int err = call_ok(c, VP_STDIN, &b, d, n, timeout_ms);
		if (err)
			return err;
		d += n;
		len -= n;
	} while (len);
	return 0;
}

int vp_exec_signal(struct vp_client *c, uint32_t exec_id, int signo)
{
	return vp_exec_signal_timeout(c, exec_id, signo, INT32_MIN);
}

int vp_exec_signal_timeout(struct vp_client *c, uint32_t exec_id, int signo, int timeout_ms)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_signal(&b, &(struct vp_signal){ .exec_id = exec_id, .signo = signo });
	return call_ok(c, VP_SIGNAL, &b, NULL, 0, timeout_ms);
}

int vp_exec_signal_nowait(struct vp_client *c, uint32_t exec_id, int signo, int wait_ms)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_signal(&b, &(struct vp_signal){ .exec_id = exec_id, .signo = signo });
	int err = client_send_nowait(c, VP_SIGNAL, &b, wait_ms);
	vp_buf_free(&b);
	return err;
}

/* ---- exec and wait ------------------------------------------------------------------ */

static void out_add(struct vp_exec_out *o, const void *d, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = (o->len + n + 1) * 2;
		char *p = realloc(o->p, cap);
		if (!p)
			return; /* output is best effort; the exit status is not */
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, d, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void run_output(void *ctx, int stream, const void *data, size_t len)
{
	struct vp_exec_run *r = ctx;
	if (!(r->opts & VP_RUN_COLLECT))
		return;
	pthread_mutex_lock(&r->mu);
	out_add(stream == VP_STREAM_STDERR ? &r->errout : &r->out, data, len);
	pthread_mutex_unlock(&r->mu);
}

static void run_exit(void *ctx, const struct vp_exit *ex, int err)
{
	struct vp_exec_run *r = ctx;
	pthread_mutex_lock(&r->mu);
	if (ex)
		r->ex = *ex;
	r->err = err;
	r->done = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static const struct vp_exec_cb run_cb = { .on_output = run_output, .on_exit = run_exit };

int vp_exec_run_start(struct vp_client *c, const struct vp_exec *req, unsigned opts, struct vp_exec_run *r)
{
	memset(r, 0, sizeof *r);
	r->opts = opts;
	pthread_mutex_init(&r->mu, NULL);
	int err = clock_cond_init(&r->cv);
	if (!err && (opts & VP_RUN_COLLECT)) {
		out_add(&r->out, "", 0);
		out_add(&r->errout, "", 0);
		if (!r->out.p || !r->errout.p)
			err = -ENOMEM;
	}
	if (!err)
		err = vp_exec_start(c, req, &run_cb, r, &r->exec_id);
	if (err) {
		r->err = err;
		r->done = true;
	}
	return err;
}

int vp_exec_run_wait(struct vp_exec_run *r, int limit_ms)
{
	uint64_t dl = limit_ms < 0 ? 0 : deadline_after_ms((uint64_t)limit_ms);
	pthread_mutex_lock(&r->mu);
	while (!r->done && clock_cond_wait(&r->cv, &r->mu, dl) == 0)
		;
	bool done = r->done;
	pthread_mutex_unlock(&r->mu);
	return done ? 0 : -ETIMEDOUT;
}

void vp_exec_run_free(struct vp_exec_run *r)
{
	free(r->out.p);
	free(r->errout.p);
	r->out.p = r->errout.p = NULL;
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

int vp_client_exec_wait(struct vp_client *c, const struct vp_exec *req, unsigned opts, int limit_ms,
			struct vp_exec_run *r)
{
	int err = vp_exec_run_start(c, req, opts, r);
	if (err)
		return err;
	if (vp_exec_run_wait(r, limit_ms)) {
		/* A hung agent: killing the channel delivers on_exit, so r can
		 * go away once that has run. */
		vp_client_shutdown(c);
		vp_exec_run_wait(r, -1);
		return -ETIMEDOUT;
	}
	return r->err;
}

int vp_exit_status(const struct vp_exit *ex)
{
	return ex->timed_out || ex->signal || ex->code != 0 ? -EIO : 0;
}
