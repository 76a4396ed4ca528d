/* The client's reader thread: reads every frame, hands replies to their
 * waiters (or callbacks), runs exec callbacks and undoes what late replies
 * did in the guest. See client_internal.h for the ownership rules. */
#include "client_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- reader ----------------------------------------------------------------- */

/* One read() of at most n bytes; waits while nothing is there. */
static ssize_t raw_read(struct vp_client *c, void *buf, size_t n)
{
	for (;;) {
		if (atomic_load(&c->dead))
			return -ECONNRESET;
		ssize_t r = read(c->fd, buf, n);
		if (r > 0)
			return r;
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN },
					{ .fd = c->wakefd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (pf[1].revents)
			return -ECONNRESET;
	}
}

/* Exactly n bytes: from the input buffer, then big remainders straight into
 * dst (no copy through the buffer), small ones through a buffer refill. */
static int rd_take(struct vp_client *c, void *dst, size_t n)
{
	uint8_t *d = dst;
	while (n) {
		if (c->ib_len) {
			size_t k = n < c->ib_len ? n : c->ib_len;
			memcpy(d, c->ib + c->ib_off, k);
			c->ib_off += k;
			c->ib_len -= k;
			d += k;
			n -= k;
			continue;
		}
		c->ib_off = 0;
		ssize_t r;
		if (n >= IB_SIZE / 2) {
			r = raw_read(c, d, n);
			if (r < 0)
				return (int)r;
			d += r;
			n -= (size_t)r;
		} else {
			r = raw_read(c, c->ib, IB_SIZE);
			if (r < 0)
				return (int)r;
			c->ib_len = (size_t)r;
		}
	}
	return 0;
}

static uint8_t *scratch(struct vp_client *c, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > c->scratch_cap) {
		uint8_t *p = realloc(c->scratch, n);
		if (!p)
			return NULL;
		c->scratch = p;
		c->scratch_cap = n;
	}
	return c->scratch;
}

/* Reader-side request whose reply nobody waits for (cleanup after a late
 * reply): registered as a tombstone so that its reply is recognised. */
static void send_tomb(struct vp_client *c, uint16_t type, struct vp_buf *b)
{
	struct pend *p = client_pend_new(type);
	vp_mutex_lock(&c->lock);
	if (!p || atomic_load(&c->dead) || b->err) {
		vp_mutex_unlock(&c->lock);
		free(p);
		return;
	}
	client_tab_insert_new(c, p);
	uint32_t id = pend_id(p);
	vp_mutex_unlock(&c->lock);
	if (client_send_frame(c, b, type, id, NULL, 0, client_call_deadline(c))) {
		vp_mutex_lock(&c->lock);
		if (client_tab_find(c, id) == p) {
			client_tab_remove(c, p);
			free(p);
		}
		vp_mutex_unlock(&c->lock);
	}
}

static void send_close(struct vp_client *c, uint64_t fh)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_CLOSE, &(struct vp_fs_req){ .fh = fh });
	send_tomb(c, VP_FS_CLOSE, &b);
	vp_buf_free(&b);
}

static void send_forget(struct vp_client *c, uint64_t node)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_FORGET, &(struct vp_fs_req){ .node = node, .nlookup = 1 });
	client_send_oneway(c, &b, VP_FS_FORGET);
	vp_buf_free(&b);
}

/* Undoes what a reply nobody waited for did in the guest, so a timeout
 * leaks neither lookup counts nor open handles. */
static void late_reply(struct vp_client *c, uint16_t rtype, const uint8_t *p, uint32_t n)
{
	union vp_msg m;
	if (vp_decode(rtype, p, n, &m))
		return;
	switch (rtype) {
	case VP_FS_ENTRY: send_forget(c, m.entry.node); break;
	case VP_FS_CREATED:
		send_forget(c, m.created.entry.node);
		send_close(c, m.created.fh);
		break;
	case VP_FS_HANDLE: send_close(c, m.handle.fh); break;
	case VP_FS_DIRENTS_PLUS: {
		struct vp_reader r;
		vp_reader_init(&r, m.direntsplus.entries.p, m.direntsplus.entries.len);
		for (uint32_t i = 0; i < m.direntsplus.count && !r.err; i++) {
			struct vp_direntplus d;
			vp_get_direntplus(&r, &d);
			if (!r.err && d.e.node)
				send_forget(c, d.e.node);
		}
		break;
	}
	}
}

static void send_kill(struct vp_client *c, uint32_t exec_id)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_signal(&b, &(struct vp_signal){ .exec_id = exec_id, .signo = SIGKILL });
	send_tomb(c, VP_SIGNAL, &b);
	vp_buf_free(&b);
}

static int send_ack(struct vp_client *c, uint32_t exec_id, uint32_t bytes)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_output_ack(&b, &(struct vp_output_ack){ .exec_id = exec_id, .bytes = bytes });
	int err = client_send_oneway(c, &b, VP_OUTPUT_ACK);
	vp_buf_free(&b);
	/* A lost ACK would stall the command forever. */
	if (err)
		client_kill(c);
	return err;
}

static bool reply_allowed(const struct pend *p, uint16_t type)
{
	if (p->kind == PK_CALL || p->kind == PK_ASYNC)
		return type == p->expect || type == VP_ERROR;
	if (!p->started)
		return type == VP_EXEC_STARTED || type == VP_ERROR;
	return type == VP_OUTPUT || type == VP_EXIT;
}

/* FS_READ reply: DATA is {u32 n, n bytes}; the bytes land in the caller's
 * buffer. Called with the lock held; returns with it released. */
static int direct_read(struct vp_client *c, struct pend *p, const struct vp_hdr *h) RELEASE(&c->lock)
{
	struct waiter *w = p->w;
	p->claimed = true;
	vp_mutex_unlock(&c->lock);
	uint8_t lb[4];
	uint32_t n = 0;
	int err = h->len < 4 ? -EBADMSG : rd_take(c, lb, sizeof lb);
	if (!err) {
		n = (uint32_t)lb[0] | (uint32_t)lb[1] << 8 | (uint32_t)lb[2] << 16 | (uint32_t)lb[3] << 24;
		if (n != h->len - 4 || n > w->rcap)
			err = -EBADMSG;
	}
	if (!err)
		err = rd_take(c, w->rbuf, n);
	vp_mutex_lock(&c->lock);
	p->claimed = false;
	client_tab_remove(c, p);
	w->rtype = VP_FS_DATA;
	w->rgot = n;
	client_complete_locked(p, err ? -ECONNRESET : 0);
	vp_mutex_unlock(&c->lock);
	free(p);
	return err;
}

bool client_async_put_locked(struct pend *p)
{
	return --p->refs == 0;
}

/* Reply to vp_fs_write_async: decoded and handed to done outside the lock.
 * Called with the lock held; returns with it released. */
static int async_reply(struct vp_client *c, struct pend *p, const struct vp_hdr *h, const uint8_t *buf)
	RELEASE(&c->lock)
{
	client_tab_remove(c, p);
	p->in_tab = false;
	vp_mutex_unlock(&c->lock);
	int err = 0;
	uint32_t n = 0;
	if (h->type == VP_ERROR) {
		err = client_map_error(buf, h->len);
	} else {
		struct vp_written m;
		if (vp_dec_written(buf, h->len, &m) || m.count > p->size)
			err = -EPROTO;
		else
			n = m.count;
	}
	p->done(p->ctx, err, n);
	vp_mutex_lock(&c->lock);
	bool free_it = client_async_put_locked(p);
	vp_mutex_unlock(&c->lock);
	if (free_it)
		free(p);
	return 0;
}

/* The frame with a validated payload, for the pend with this id. `owned`:
 * buf is malloc'ed for a waiter; else it is the reader's scratch. */
static int dispatch(struct vp_client *c, const struct vp_hdr *h, uint8_t *buf, bool owned)
{
	vp_mutex_lock(&c->lock);
	struct pend *p = client_tab_find(c, h->id);
	if (!p) {
		/* Only the channel's death removes a pend behind the reader's back. */
		vp_mutex_unlock(&c->lock);
		if (owned)
			free(buf);
		return -ECONNRESET;
	}
	if (p->kind == PK_ASYNC)
		return async_reply(c, p, h, buf);
	bool final = p->kind == PK_CALL || h->type == VP_ERROR || h->type == VP_EXIT;

	if (p->kind == PK_EXEC && h->type == VP_EXEC_STARTED) {
		struct vp_exec_started m;
		vp_dec_exec_started(buf, h->len, &m);
		p->started = true;
		if (!p->w) {
			vp_mutex_unlock(&c->lock);
			send_kill(c, h->id); /* started after its caller gave up */
			return 0;
		}
		p->claimed = true;
		struct vp_exec_cb cb = p->cb;
		void *ctx = p->ctx;
		vp_mutex_unlock(&c->lock);
		if (cb.on_started)
			cb.on_started(ctx, m.pid);
		vp_mutex_lock(&c->lock);
		p->claimed = false;
		p->w->rtype = h->type;
		client_complete_locked(p, 0);
		vp_mutex_unlock(&c->lock);
		return 0;
	}

	if (final) {
		client_tab_remove(c, p);
		if (p->w) {
			/* reader_step gave a waiter's reply its own buffer (owned)
			 * unless it is empty; the caller frees it. */
			p->w->rtype = h->type;
			p->w->payload = h->len ? buf : NULL;
			p->w->plen = h->len;
			client_complete_locked(p, 0);
			vp_mutex_unlock(&c->lock);
			free(p);
			return 0;
		}
		if (c->probe_id && pend_id(p) == c->probe_id) {
			c->probe_id = 0; /* vp_client_probe's PING: the agent is alive */
			c->probe_since_ms = 0;
		}
		vp_mutex_unlock(&c->lock);
		if (p->kind == PK_CALL)
			late_reply(c, h->type, buf, h->len);
		else if (h->type == VP_EXIT && p->started && !p->orphan) {
			struct vp_exit ex;
			vp_dec_exit(buf, h->len, &ex);
			p->cb.on_exit(p->ctx, &ex, 0);
		}
		if (owned)
			free(buf);
		free(p);
		return 0;
	}

	/* OUTPUT of a running exec: only this thread removes it, so p stays. */
	bool orphan = p->orphan;
	vp_mutex_unlock(&c->lock);
	struct vp_output m;
	vp_dec_output(buf, h->len, &m);
	if (!orphan)
		p->cb.on_output(p->ctx, m.stream, m.data.p, m.data.len);
	if (owned)
		free(buf);
	return send_ack(c, h->id, m.data.len);
}

static int on_unsolicited(struct vp_client *c, const struct vp_hdr *h)
{
	uint8_t *buf = scratch(c, h->len);
	if (!buf)
		return -ENOMEM;
	int err = rd_take(c, buf, h->len);
	if (err)
		return err;
	vp_mutex_lock(&c->lock);
	if (h->type != VP_READY || c->ready_seen || vp_validate(h->type, buf, h->len)) {
		vp_mutex_unlock(&c->lock);
		return -EPROTO;
	}
	c->ready_seen = true;
	pthread_cond_broadcast(&c->cond);
	vp_mutex_unlock(&c->lock);
	return 0;
}

static int reader_step(struct vp_client *c)
{
	uint8_t raw[VP_HDR_SIZE];
	struct vp_hdr h;
	int err = rd_take(c, raw, sizeof raw);
	if (err)
		return err;
	err = vp_hdr_decode(raw, &h);
	if (err)
		return err;
	if (h.id == 0)
		return on_unsolicited(c, &h);

	vp_mutex_lock(&c->lock);
	struct pend *p = client_tab_find(c, h.id);
	if (!p || !reply_allowed(p, h.type)) {
		vp_mutex_unlock(&c->lock);
		return -EPROTO; /* an id not in flight, or a reply it cannot get */
	}
	if (h.type == VP_FS_DATA && p->w && p->w->direct)
		return direct_read(c, p, &h);
	bool owned = p->w && h.type != VP_EXEC_STARTED && h.len;
	vp_mutex_unlock(&c->lock);

	uint8_t *buf = owned ? malloc(h.len) : scratch(c, h.len);
	if (!buf)
		return -ENOMEM;
	err = rd_take(c, buf, h.len);
	if (!err)
		err = vp_validate(h.type, buf, h.len);
	if (err) {
		if (owned)
			free(buf);
		return err;
	}
	return dispatch(c, &h, buf, owned);
}

void *client_reader_main(void *arg)
{
	struct vp_client *c = arg;
	while (reader_step(c) == 0)
		;
	client_kill(c);

	/* What is left are tombstones and running execs, all ours alone now. */
	vp_mutex_lock(&c->lock);
	/* Chained through their (now unused) table links. */
	struct u64map_link *list = NULL;
	u64map_for_each_safe(&c->tab, it, tmp)
	{
		struct pend *p = container_of(it, struct pend, link);
		u64map_remove(&c->tab, it);
		if (p->w) /* cannot happen (fail_waiters_locked ran); never strand one */
			client_complete_locked(p, -ECONNRESET);
		p->in_tab = false; /* a sender whose send fails now leaves done to us */
		it->next = list;
		list = it;
	}
	vp_mutex_unlock(&c->lock);
	while (list) {
		struct pend *p = container_of(list, struct pend, link);
		list = list->next;
		if (p->kind == PK_EXEC && p->started && !p->orphan)
			p->cb.on_exit(p->ctx, NULL, -ECONNRESET);
		if (p->kind == PK_ASYNC) {
			p->done(p->ctx, -ECONNRESET, 0);
			vp_mutex_lock(&c->lock);
			bool free_it = client_async_put_locked(p);
			vp_mutex_unlock(&c->lock);
			if (!free_it)
				continue; /* its sender is still in send_frame; it frees it */
		}
		free(p);
	}
	return NULL;
}
