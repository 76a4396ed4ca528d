/* Parked reads and poll; see waiters.h for the ownership rules. */
#include "waiters.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct answer {
	int err;    /* > 0: reply_err */
	char *data; /* malloc'ed; len may be 0 (EOF) */
	size_t len;
};

static bool read_out(const struct outbuf *o, struct vfh *fh, uint64_t off, size_t size, struct answer *a);

/* Under s->lock. Returns true when req can be answered now (filled in a). */
static bool try_answer(struct session *s, struct vfh *fh, int kind, uint64_t off, size_t size,
		       struct answer *a) REQUIRES(&s->lock)
{
	memset(a, 0, sizeof(*a));
	if (kind != SF_EXIT && fh && fh->old) {
		/* An earlier command's output, complete: never waits. */
		if (!read_out(&fh->old->o, fh, off, size, a)) {
			a->err = fh->old->err ? EIO : 0;
			fh->pos = off;
		}
		return true;
	}
	if (s->pending > 0 || s->settling)
		return false; /* a command is about to start (or to be seen ended) */
	if (kind == SF_EXIT) {
		char txt[16];
		int n;
		switch (s->state) {
		case ST_RUNNING: return false;
		case ST_IDLE: return true; /* no command yet: empty */
		case ST_ERROR: /* dead guest or failed start: no status to give */ a->err = EIO; return true;
		default: n = snprintf(txt, sizeof(txt), "%d\n", s->exit_code); break;
		}
		if (off < (uint64_t)n) {
			size_t l = (size_t)n - (size_t)off;
			if (l > size)
				l = size;
			a->data = malloc(l ? l : 1);
			if (!a->data) {
				a->err = ENOMEM;
				return true;
			}
			memcpy(a->data, txt + off, l);
			a->len = l;
		}
		if (fh)
			fh->pos = off + a->len;
		return true;
	}

	if (read_out(&s->out[kind == SF_STDERR], fh, off, size, a))
		return true;
	if (s->state == ST_RUNNING)
		return false;
	/* At the end of a finished command: EOF, unless the guest died under it,
	 * output was lost or rmdir killed it, which a reader must not mistake
	 * for a clean end (`cat stdout > f` would exit 0 with a part). */
	if (s->state == ST_ERROR || s->out_err[kind == SF_STDERR] || s->cut)
		a->err = EIO;
	if (fh)
		fh->pos = off;
	return true;
}

/* Bytes of o at off into a (true), or false at its end. */
static bool read_out(const struct outbuf *o, struct vfh *fh, uint64_t off, size_t size, struct answer *a)
{
	uint64_t len = outbuf_len(o);
	if (off < len && size > 0) {
		size_t want = size;
		if (want > len - off)
			want = (size_t)(len - off);
		a->data = malloc(want);
		if (!a->data) {
			a->err = ENOMEM;
			return true;
		}
		ssize_t got = outbuf_read(o, off, a->data, want);
		if (got < 0) {
			free(a->data);
			a->data = NULL;
			a->err = (int)-got;
			return true;
		}
		a->len = (size_t)got;
		if (fh)
			fh->pos = off + a->len;
		return true;
	}
	return false;
}

static void send_answer(fuse_req_t req, struct answer *a)
{
	if (a->err)
		fuse_reply_err(req, a->err);
	else
		fuse_reply_buf(req, a->data, a->len);
	free(a->data);
	a->data = NULL;
}

static void unlink_waiter(struct waiter *w)
{
	list_del(&w->link);
	w->in_list = false;
}

/* Runs under the request's lock (libfuse), maybe on the thread that is
 * parking the request (already interrupted) or on a worker handling
 * FUSE_INTERRUPT. */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct waiter *w = data;
	struct session *s = w->s;
	vp_mutex_lock(&s->lock);
	if (!w->in_list) {
		/* Not parked yet (the parker will see the flag) or already taken
		 * by a waker, which waits for us before freeing w. */
		w->interrupted = true;
		vp_mutex_unlock(&s->lock);
		return;
	}
	unlink_waiter(w);
	vp_mutex_unlock(&s->lock);
	fuse_reply_err(req, EINTR);
	free(w);
}

void waiters_read(struct session *s, fuse_req_t req, struct vfh *fh, int kind, size_t size, off_t off,
		  bool nonblock)
{
	struct waiter *w = NULL;
	struct answer a;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	for (;;) {
		vp_mutex_lock(&s->lock);
		if (try_answer(s, fh, kind, (uint64_t)off, size, &a)) {
			vp_mutex_unlock(&s->lock);
			if (w) {
				fuse_req_interrupt_func(req, NULL, NULL);
				free(w);
			}
			send_answer(req, &a);
			return;
		}
		if (nonblock) {
			vp_mutex_unlock(&s->lock);
			if (w) {
				fuse_req_interrupt_func(req, NULL, NULL);
				free(w);
			}
			fuse_reply_err(req, EAGAIN);
			return;
		}
		if (w) {
			if (w->interrupted) {
				vp_mutex_unlock(&s->lock);
				fuse_req_interrupt_func(req, NULL, NULL);
				free(w);
				fuse_reply_err(req, EINTR);
				return;
			}
			w->in_list = true;
			list_add_head(&s->waiters, &w->link);
			vp_mutex_unlock(&s->lock);
			return; /* answered later, by whoever unlinks it */
		}
		vp_mutex_unlock(&s->lock);
		w = calloc(1, sizeof(*w));
		if (!w) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		list_init(&w->link);
		w->s = s;
		w->req = req;
		w->fh = fh;
		w->kind = kind;
		w->off = (uint64_t)off;
		w->size = size;
		/* Registered before parking: an interrupt that already arrived
		 * runs on_interrupt here and sets w->interrupted. Then loop to
		 * re-check under the lock, since the state may have moved. */
		fuse_req_interrupt_func(req, on_interrupt, w);
	}
}

struct taken {
	struct waiter *w;
	struct answer a;
};

static void wake_pollers_locked(struct session *s, struct fuse_pollhandle ***phs, size_t *nph, size_t *cap)
	REQUIRES(&s->lock)
{
	list_for_each (&s->fhs, it) {
		struct vfh *fh = container_of(it, struct vfh, link);
		if (!fh->ph)
			continue;
		if (*nph == *cap) {
			size_t nc = *cap ? *cap * 2 : 8;
			struct fuse_pollhandle **n = realloc(*phs, nc * sizeof(**phs));
			if (!n)
				return; /* the poller re-polls on its own timeout */
			*phs = n;
			*cap = nc;
		}
		(*phs)[(*nph)++] = fh->ph;
		fh->ph = NULL;
	}
}

void waiters_wake(struct session *s, int kind)
{
	struct taken *t = NULL;
	size_t nt = 0, cap = 0;
	struct fuse_pollhandle **phs = NULL;
	size_t nph = 0, phcap = 0;

	vp_mutex_lock(&s->lock);
	list_for_each_safe (&s->waiters, it, next) {
		struct waiter *w = container_of(it, struct waiter, link);
		if (kind != SF_EXIT && w->kind != kind)
			continue;
		struct answer a;
		if (!try_answer(s, w->fh, w->kind, w->off, w->size, &a))
			continue;
		if (nt == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct taken *n = realloc(t, nc * sizeof(*t));
			if (!n) {
				free(a.data);
				break; /* the rest stay parked until the next event */
			}
			t = n;
			cap = nc;
		}
		unlink_waiter(w);
		t[nt].w = w;
		t[nt].a = a;
		nt++;
	}
	wake_pollers_locked(s, &phs, &nph, &phcap);
	vp_mutex_unlock(&s->lock);

	for (size_t i = 0; i < nt; i++) {
		fuse_req_interrupt_func(t[i].w->req, NULL, NULL);
		send_answer(t[i].w->req, &t[i].a);
		free(t[i].w);
	}
	free(t);
	for (size_t i = 0; i < nph; i++) {
		fuse_lowlevel_notify_poll(phs[i]);
		fuse_pollhandle_destroy(phs[i]);
	}
	free(phs);
}

void waiters_fail_all(struct session *s, int err)
{
	for (;;) {
		vp_mutex_lock(&s->lock);
		struct list_node *first = list_first(&s->waiters);
		struct waiter *w = first ? container_of(first, struct waiter, link) : NULL;
		if (w)
			unlink_waiter(w);
		vp_mutex_unlock(&s->lock);
		if (!w)
			return;
		fuse_req_interrupt_func(w->req, NULL, NULL);
		fuse_reply_err(w->req, err);
		free(w);
	}
}

void waiters_poll(struct session *s, fuse_req_t req, struct vfh *fh, struct fuse_pollhandle *ph)
{
	struct fuse_pollhandle *old = NULL;
	unsigned revents = 0;
	vp_mutex_lock(&s->lock);
	if (fh->vf->kind == VF_PIPE) {
		revents = s->state == ST_RUNNING && fh->gen == s->gen ? POLLOUT : POLLERR;
	} else {
		struct answer a;
		/* Readable when a read at the handle's position would not block. */
		if (fh->old) {
			revents = POLLIN;
		} else if (try_answer(s, NULL, (int)fh->vf->file, fh->pos, 1, &a)) {
			revents = POLLIN;
			free(a.data);
		}
	}
	if (ph) {
		old = fh->ph;
		fh->ph = ph;
	}
	vp_mutex_unlock(&s->lock);
	if (old)
		fuse_pollhandle_destroy(old);
	fuse_reply_poll(req, revents);
}
