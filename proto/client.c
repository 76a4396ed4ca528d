/* Host-side protocol client: see client.h and docs/protocol.md.
 *
 * Ownership rules that keep this free of use-after-free:
 *  - Every request in flight is a heap `struct pend` in the id table, owned
 *    by the table. A synchronous caller waits on a `struct waiter` on its own
 *    stack, linked from pend->w until the reader (or the channel's death)
 *    completes it, or until the caller gives up (timeout), which leaves the
 *    pend in the table as a tombstone so the late reply is recognised.
 *  - The reader may work on a waiter outside the lock only while the pend is
 *    `claimed`; a timing-out caller waits for the claim to end instead of
 *    leaving (its buffer is being filled).
 *  - Only the reader thread removes tombstones and running execs and runs
 *    exec callbacks, so on_exit runs exactly once and never concurrently
 *    with another callback of the same exec.
 * Lock order: wlock before lock, never the reverse. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IB_SIZE (64u * 1024u)  /* batches small replies into one read() */
#define MAX_ERRNO 4095
#define TAB_INIT 64u
/* Tests shrink the id space to see it wrap and skip ids in use. */
#ifndef VP_CLIENT_ID_MASK
#define VP_CLIENT_ID_MASK 0xffffffffu
#endif

struct waiter {
	pthread_cond_t cond;
	bool done;
	int err;          /* transport result: 0 = a reply is here */
	uint16_t rtype;   /* reply type */
	uint8_t *payload; /* malloc'ed reply payload, owned by the caller once done */
	uint32_t plen;
	bool direct;      /* FS_READ: DATA bytes go straight to rbuf */
	void *rbuf;
	uint32_t rcap, rgot;
};

/* PK_ASYNC: a request whose reply goes to a callback (vp_fs_write_async)
 * instead of a waiter. */
enum pend_kind { PK_CALL, PK_EXEC, PK_ASYNC };

struct pend {
	struct pend *next;
	uint32_t id;
	uint16_t req;    /* request type sent */
	uint16_t expect; /* the reply type other than ERROR it may get */
	uint8_t kind;
	bool claimed;    /* the reader is completing w outside the lock */
	bool started;    /* EXEC: EXEC_STARTED seen */
	bool orphan;     /* EXEC: its caller gave up before EXEC_STARTED; no callbacks */
	struct waiter *w;
	struct vp_exec_cb cb;
	void *ctx;
	/* PK_ASYNC: done runs once, by whoever takes the pend out of the
	 * table (the reader); refs: the table's and, while it sends, the
	 * sender's, so a failed send can tell whether the reader took it
	 * without touching freed memory. */
	void (*done)(void *ctx, int err, uint32_t written);
	uint32_t size;
	uint8_t refs;
	bool in_tab;
};

struct vp_client {
	int fd;
	int wakefd; /* eventfd, readable once the channel is dead: wakes every poll */
	bool is_sock;
	pthread_t reader;
	pthread_mutex_t lock;  /* everything below except reader-only fields */
	pthread_mutex_t wlock; /* one frame on the wire at a time */
	pthread_cond_t cond;   /* READY seen, channel dead, users back to 0 */
	pthread_condattr_t cattr;
	atomic_bool dead;
	bool ready_seen;
	bool freeing;
	unsigned users;
	int timeout_ms;
	uint32_t next_id;
	struct pend **tab;
	uint32_t nbuckets, count;
	/* reader-only */
	uint8_t *ib;
	size_t ib_off, ib_len;
	uint8_t *scratch;
	size_t scratch_cap;
};

/* ---- time ---------------------------------------------------------------- */

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Milliseconds left, rounded up; 0 when past; -1 without a deadline. */
static int ms_left(const struct timespec *dl)
{
	if (!dl)
		return -1;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ns = (long long)(dl->tv_sec - now.tv_sec) * 1000000000LL + (dl->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	long long ms = (ns + 999999) / 1000000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* ---- id table ------------------------------------------------------------ */

static uint32_t bucket(const struct vp_client *c, uint32_t id)
{
	return (id ^ (id >> 16)) & (c->nbuckets - 1);
}

static struct pend *tab_find(struct vp_client *c, uint32_t id)
{
	for (struct pend *p = c->tab[bucket(c, id)]; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

static void tab_grow(struct vp_client *c)
{
	uint32_t n = c->nbuckets * 2;
	struct pend **t = calloc(n, sizeof *t);
	if (!t)
		return; /* longer chains, still correct */
	struct pend **old = c->tab;
	uint32_t on = c->nbuckets;
	c->tab = t;
	c->nbuckets = n;
	for (uint32_t i = 0; i < on; i++) {
		for (struct pend *p = old[i], *nx; p; p = nx) {
			nx = p->next;
			uint32_t b = bucket(c, p->id);
			p->next = t[b];
			t[b] = p;
		}
	}
	free(old);
}

/* Ids wrap at 2^32 and skip 0 and every id still in the table (running
 * execs, tombstones of requests whose reply never came). */
static void tab_insert_new(struct vp_client *c, struct pend *p)
{
	if (c->count >= c->nbuckets * 2 && c->nbuckets < (1u << 24))
		tab_grow(c);
	uint32_t id;
	do {
		id = c->next_id++ & VP_CLIENT_ID_MASK;
	} while (id == 0 || tab_find(c, id));
	p->id = id;
	uint32_t b = bucket(c, id);
	p->next = c->tab[b];
	c->tab[b] = p;
	c->count++;
}

static void tab_remove(struct vp_client *c, struct pend *p)
{
	for (struct pend **pp = &c->tab[bucket(c, p->id)]; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			p->next = NULL;
			c->count--;
			return;
		}
	}
}

/* ---- channel death --------------------------------------------------------- */

static void complete_locked(struct pend *p, int err)
{
	struct waiter *w = p->w;
	w->err = err;
	w->done = true;
	p->w = NULL;
	pthread_cond_signal(&w->cond);
}

/* Fails every waiter not being completed by the reader right now. Tombstones
 * and running execs stay: the reader disposes of them when it exits. */
static void fail_waiters_locked(struct vp_client *c)
{
	for (uint32_t i = 0; i < c->nbuckets; i++) {
		for (struct pend **pp = &c->tab[i]; *pp;) {
			struct pend *p = *pp;
			if (p->w && !p->claimed) {
				*pp = p->next;
				c->count--;
				complete_locked(p, -ECONNRESET);
				free(p);
			} else {
				pp = &p->next;
			}
		}
	}
}

static void kill_channel(struct vp_client *c)
{
	pthread_mutex_lock(&c->lock);
	bool first = !atomic_exchange(&c->dead, true);
	if (first) {
		fail_waiters_locked(c);
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	if (first) {
		/* Wakes the reader and the peer; the eventfd also wakes pollers on
		 * fds that are not sockets. */
		shutdown(c->fd, SHUT_RDWR);
		uint64_t one = 1;
		ssize_t r = write(c->wakefd, &one, sizeof one);
		(void)r; /* an eventfd write of 1 cannot fail short of overflow */
	}
}

/* ---- writing --------------------------------------------------------------- */

static int send_iov(struct vp_client *c, struct iovec *v, int cnt, const struct timespec *dl)
{
	int err = 0;
	size_t sent = 0;
	pthread_mutex_lock(&c->wlock);
	while (cnt) {
		if (atomic_load(&c->dead)) {
			err = -ECONNRESET;
			break;
		}
		ssize_t w;
		if (c->is_sock) {
			/* MSG_NOSIGNAL: a dead guest is an error, not a SIGPIPE. */
			struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)cnt };
			w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else {
			w = writev(c->fd, v, cnt);
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf[2] = { { .fd = c->fd, .events = POLLOUT },
						{ .fd = c->wakefd, .events = POLLIN } };
			int ms = ms_left(dl);
			int r = ms == 0 ? 0 : poll(pf, 2, ms);
			if (r < 0 && errno != EINTR) {
				err = -errno;
				break;
			}
			if (r == 0) {
				err = -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (w <= 0) {
			err = -ECONNRESET;
			break;
		}
		sent += (size_t)w;
		vp_iov_advance(&v, &cnt, (size_t)w);
	}
	pthread_mutex_unlock(&c->wlock);
	/* Half a frame on the wire desynchronises the stream for good, and a
	 * write error means the peer is gone: either way the channel is dead. */
	if (err && (sent || err != -ETIMEDOUT))
		kill_channel(c);
	return err;
}

/* Frames are built in a vp_buf whose first VP_HDR_SIZE bytes are reserved
 * for the header; `extra` (WRITE/STDIN data) follows without being copied. */
static void frame_begin(struct vp_buf *b)
{
	vp_buf_init(b);
	uint8_t zero[VP_HDR_SIZE] = { 0 };
	vp_put_raw(b, zero, sizeof zero);
}

static int send_frame(struct vp_client *c, struct vp_buf *b, uint16_t type, uint32_t id, const void *extra,
		      size_t extra_len, const struct timespec *dl)
{
	if (b->err)
		return b->err;
	size_t len = b->len - VP_HDR_SIZE + extra_len;
	if (len > VP_MAX_PAYLOAD)
		return -EMSGSIZE;
	struct vp_hdr h = { .len = (uint32_t)len, .type = type, .flags = 0, .id = id };
	vp_hdr_encode(b->data, &h);
	struct iovec v[2] = { { .iov_base = b->data, .iov_len = b->len },
			      { .iov_base = (void *)extra, .iov_len = extra_len } };
	return send_iov(c, v, extra_len ? 2 : 1, dl);
}

static int timeout_deadline(struct vp_client *c, struct timespec *ts)
{
	pthread_mutex_lock(&c->lock);
	int ms = c->timeout_ms;
	pthread_mutex_unlock(&c->lock);
	if (ms < 0)
		return -1;
	deadline_in(ts, ms);
	return 0;
}

/* One-way frame (id 0). */
static int send_oneway(struct vp_client *c, struct vp_buf *b, uint16_t type)
{
	struct timespec ts;
	const struct timespec *dl = timeout_deadline(c, &ts) == 0 ? &ts : NULL;
	return send_frame(c, b, type, 0, NULL, 0, dl);
}

/* ---- users (vp_client_free waits for them) ------------------------------- */

static void enter_locked(struct vp_client *c)
{
	c->users++;
}

static void leave(struct vp_client *c)
{
	pthread_mutex_lock(&c->lock);
	if (--c->users == 0 && c->freeing)
		pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* ---- synchronous calls ------------------------------------------------------ */

static int map_error(const uint8_t *p, uint32_t n)
{
	struct vp_error m;
	if (vp_dec_error(p, n, &m))
		return -EIO;
	return m.err > 0 && m.err <= MAX_ERRNO ? -m.err : -EIO;
}

static struct pend *pend_new(uint16_t req, uint16_t expect)
{
	struct pend *p = calloc(1, sizeof *p);
	if (p) {
		p->req = req;
		p->expect = expect;
		p->kind = PK_CALL;
	}
	return p;
}

/* Sends the frame in b (+extra) as request `p` and waits for its reply.
 * 0: w->rtype/payload (or the direct read) hold the reply; else -errno. */
static int do_call(struct vp_client *c, struct pend *p, struct vp_buf *b, const void *extra, size_t extra_len,
		   struct waiter *w, int timeout_override, uint32_t *id_out)
{
	int err = b->err;
	if (!p)
		err = -ENOMEM;
	if (!err && pthread_equal(pthread_self(), c->reader))
		err = -EDEADLK; /* an exec callback waiting for a reply only it could read */
	if (err) {
		free(p);
		return err;
	}
	pthread_condattr_t *ca = &c->cattr;
	pthread_cond_init(&w->cond, ca);
	w->done = false;
	w->payload = NULL;
	w->plen = 0;

	pthread_mutex_lock(&c->lock);
	if (atomic_load(&c->dead)) {
		pthread_mutex_unlock(&c->lock);
		pthread_cond_destroy(&w->cond);
		free(p);
		return -ECONNRESET;
	}
	enter_locked(c);
	int tmo = timeout_override != INT32_MIN ? timeout_override : c->timeout_ms;
	struct timespec ts;
	const struct timespec *dl = NULL;
	if (tmo >= 0) {
		deadline_in(&ts, tmo);
		dl = &ts;
	}
	p->w = w;
	tab_insert_new(c, p);
	uint32_t id = p->id;
	uint16_t type = p->req;
	pthread_mutex_unlock(&c->lock);
	if (id_out)
		*id_out = id;

	err = send_frame(c, b, type, id, extra, extra_len, dl);

	pthread_mutex_lock(&c->lock);
	if (err) {
		/* A guest answering a request it has not wholly received could
		 * be filling our buffer right now: let the reader finish. */
		while (!w->done && p->claimed)
			pthread_cond_wait(&w->cond, &c->lock);
		if (!w->done) {
			/* Nothing of it reached the guest, so no reply will come. */
			tab_remove(c, p);
			p->w = NULL;
			free(p);
		} else if (w->payload) {
			free(w->payload);
			w->payload = NULL;
		}
	} else {
		bool extended = false;
		while (!w->done) {
			int r = dl ? pthread_cond_timedwait(&w->cond, &c->lock, dl)
				   : pthread_cond_wait(&w->cond, &c->lock);
			if (r != ETIMEDOUT || w->done)
				continue;
			if (!p->claimed) {
				/* The reply may still come: the pend stays as a tombstone. */
				p->w = NULL;
				if (p->kind == PK_EXEC)
					p->orphan = true;
				err = -ETIMEDOUT;
				break;
			}
			/* The reply is arriving into our buffer; allow it one more
			 * period, then declare a channel that stalls mid-frame dead. */
			if (!extended) {
				extended = true;
				deadline_in(&ts, tmo);
			} else {
				pthread_mutex_unlock(&c->lock);
				kill_channel(c);
				pthread_mutex_lock(&c->lock);
				dl = NULL;
			}
		}
		if (!err)
			err = w->err;
	}
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w->cond);
	leave(c);
	return err;
}

/* A call whose reply is `expect` or ERROR; on success the payload is in w
 * (caller frees w->payload). */
static int call(struct vp_client *c, uint16_t type, uint16_t expect, struct vp_buf *b, const void *extra,
		size_t extra_len, struct waiter *w)
{
	memset(w, 0, sizeof *w);
	int err = do_call(c, pend_new(type, expect), b, extra, extra_len, w, INT32_MIN, NULL);
	vp_buf_free(b);
	if (err)
		return err;
	if (w->rtype == VP_ERROR) {
		err = map_error(w->payload, w->plen);
		free(w->payload);
		w->payload = NULL;
		return err;
	}
	return 0;
}

/* Requests answered with OK. */
static int call_ok(struct vp_client *c, uint16_t type, struct vp_buf *b, const void *extra, size_t extra_len)
{
	struct waiter w;
	int err = call(c, type, VP_OK, b, extra, extra_len, &w);
	free(w.payload);
	return err;
}

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
		struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = c->wakefd, .events = POLLIN } };
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
	struct pend *p = pend_new(type, VP_OK);
	pthread_mutex_lock(&c->lock);
	if (!p || atomic_load(&c->dead) || b->err) {
		pthread_mutex_unlock(&c->lock);
		free(p);
		return;
	}
	tab_insert_new(c, p);
	uint32_t id = p->id;
	pthread_mutex_unlock(&c->lock);
	struct timespec ts;
	const struct timespec *dl = timeout_deadline(c, &ts) == 0 ? &ts : NULL;
	if (send_frame(c, b, type, id, NULL, 0, dl)) {
		pthread_mutex_lock(&c->lock);
		if (tab_find(c, id) == p) {
			tab_remove(c, p);
			free(p);
		}
		pthread_mutex_unlock(&c->lock);
	}
}

static void send_close(struct vp_client *c, uint64_t fh)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_CLOSE, &(struct vp_fs_req){ .fh = fh });
	send_tomb(c, VP_FS_CLOSE, &b);
	vp_buf_free(&b);
}

static void send_forget(struct vp_client *c, uint64_t node)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_FORGET, &(struct vp_fs_req){ .node = node, .nlookup = 1 });
	send_oneway(c, &b, VP_FS_FORGET);
	vp_buf_free(&b);
}

/* Undoes what a reply nobody waited for did in the guest, so a timeout
 * leaks neither lookup counts nor open handles. */
static void late_reply(struct vp_client *c, uint16_t rtype, const uint8_t *p, uint32_t n)
{
	struct vp_reader r;
	struct vp_entry e;
	vp_reader_init(&r, p, n);
	switch (rtype) {
	case VP_FS_ENTRY:
		if (vp_dec_entry(p, n, &e) == 0)
			send_forget(c, e.node);
		break;
	case VP_FS_CREATED: {
		uint64_t fh = vp_get_u64(&r);
		e.node = vp_get_u64(&r);
		vp_get_attr(&r, &e.attr);
		if (vp_reader_finish(&r) == 0) {
			send_forget(c, e.node);
			send_close(c, fh);
		}
		break;
	}
	case VP_FS_HANDLE: {
		uint64_t fh = vp_get_u64(&r);
		if (vp_reader_finish(&r) == 0)
			send_close(c, fh);
		break;
	}
	}
}

static void send_kill(struct vp_client *c, uint32_t exec_id)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_signal(&b, &(struct vp_signal){ .exec_id = exec_id, .signo = SIGKILL });
	send_tomb(c, VP_SIGNAL, &b);
	vp_buf_free(&b);
}

static int send_ack(struct vp_client *c, uint32_t exec_id, uint32_t bytes)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_output_ack(&b, &(struct vp_output_ack){ .exec_id = exec_id, .bytes = bytes });
	int err = send_oneway(c, &b, VP_OUTPUT_ACK);
	vp_buf_free(&b);
	/* A lost ACK would stall the command forever. */
	if (err)
		kill_channel(c);
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
static int direct_read(struct vp_client *c, struct pend *p, const struct vp_hdr *h)
{
	struct waiter *w = p->w;
	p->claimed = true;
	pthread_mutex_unlock(&c->lock);
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
	pthread_mutex_lock(&c->lock);
	p->claimed = false;
	tab_remove(c, p);
	w->rtype = VP_FS_DATA;
	w->rgot = n;
	complete_locked(p, err ? -ECONNRESET : 0);
	pthread_mutex_unlock(&c->lock);
	free(p);
	return err;
}

static void async_put_locked(struct pend *p, bool *free_it)
{
	*free_it = --p->refs == 0;
}

/* Reply to vp_fs_write_async: decoded and handed to done outside the lock.
 * Called with the lock held; returns with it released. */
static int async_reply(struct vp_client *c, struct pend *p, const struct vp_hdr *h, const uint8_t *buf)
{
	tab_remove(c, p);
	p->in_tab = false;
	pthread_mutex_unlock(&c->lock);
	int err = 0;
	uint32_t n = 0;
	if (h->type == VP_ERROR) {
		err = map_error(buf, h->len);
	} else {
		struct vp_reader r;
		vp_reader_init(&r, buf, h->len);
		n = vp_get_u32(&r);
		if (vp_reader_finish(&r) || n > p->size) {
			err = -EPROTO;
			n = 0;
		}
	}
	p->done(p->ctx, err, n);
	bool free_it;
	pthread_mutex_lock(&c->lock);
	async_put_locked(p, &free_it);
	pthread_mutex_unlock(&c->lock);
	if (free_it)
		free(p);
	return 0;
}

/* The frame with a validated payload, for the pend with this id. `owned`:
 * buf is malloc'ed for a waiter; else it is the reader's scratch. */
static int dispatch(struct vp_client *c, const struct vp_hdr *h, uint8_t *buf, bool owned)
{
	pthread_mutex_lock(&c->lock);
	struct pend *p = tab_find(c, h->id);
	if (!p) {
		/* Only the channel's death removes a pend behind the reader's back. */
		pthread_mutex_unlock(&c->lock);
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
			pthread_mutex_unlock(&c->lock);
			send_kill(c, h->id); /* started after its caller gave up */
			return 0;
		}
		p->claimed = true;
		struct vp_exec_cb cb = p->cb;
		void *ctx = p->ctx;
		pthread_mutex_unlock(&c->lock);
		if (cb.on_started)
			cb.on_started(ctx, m.pid);
		pthread_mutex_lock(&c->lock);
		p->claimed = false;
		p->w->rtype = h->type;
		complete_locked(p, 0);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}

	if (final) {
		tab_remove(c, p);
		if (p->w) {
			/* reader_step gave a waiter's reply its own buffer (owned)
			 * unless it is empty; the caller frees it. */
			p->w->rtype = h->type;
			p->w->payload = h->len ? buf : NULL;
			p->w->plen = h->len;
			complete_locked(p, 0);
			pthread_mutex_unlock(&c->lock);
			free(p);
			return 0;
		}
		pthread_mutex_unlock(&c->lock);
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
	pthread_mutex_unlock(&c->lock);
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
	pthread_mutex_lock(&c->lock);
	if (h->type != VP_READY || c->ready_seen || vp_validate(h->type, buf, h->len)) {
		pthread_mutex_unlock(&c->lock);
		return -EPROTO;
	}
	c->ready_seen = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
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

	pthread_mutex_lock(&c->lock);
	struct pend *p = tab_find(c, h.id);
	if (!p || !reply_allowed(p, h.type)) {
		pthread_mutex_unlock(&c->lock);
		return -EPROTO; /* an id not in flight, or a reply it cannot get */
	}
	if (h.type == VP_FS_DATA && p->w && p->w->direct)
		return direct_read(c, p, &h);
	bool owned = p->w && h.type != VP_EXEC_STARTED && h.len;
	pthread_mutex_unlock(&c->lock);

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

static void *reader_main(void *arg)
{
	struct vp_client *c = arg;
	while (reader_step(c) == 0)
		;
	kill_channel(c);

	/* What is left are tombstones and running execs, all ours alone now. */
	pthread_mutex_lock(&c->lock);
	struct pend *list = NULL;
	for (uint32_t i = 0; i < c->nbuckets; i++) {
		while (c->tab[i]) {
			struct pend *p = c->tab[i];
			c->tab[i] = p->next;
			if (p->w) /* cannot happen (fail_waiters_locked ran); never strand one */
				complete_locked(p, -ECONNRESET);
			p->in_tab = false; /* a sender whose send fails now leaves done to us */
			p->next = list;
			list = p;
		}
	}
	c->count = 0;
	pthread_mutex_unlock(&c->lock);
	while (list) {
		struct pend *p = list;
		list = p->next;
		if (p->kind == PK_EXEC && p->started && !p->orphan)
			p->cb.on_exit(p->ctx, NULL, -ECONNRESET);
		if (p->kind == PK_ASYNC) {
			p->done(p->ctx, -ECONNRESET, 0);
			bool free_it;
			pthread_mutex_lock(&c->lock);
			async_put_locked(p, &free_it);
			pthread_mutex_unlock(&c->lock);
			if (!free_it)
				continue; /* its sender is still in send_frame; it frees it */
		}
		free(p);
	}
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

int vp_client_new(int fd, struct vp_client **out)
{
	*out = NULL;
	if (fd < 0)
		return -EBADF;
	/* Ownership of fd is taken even on failure, so callers never double-close. */
	struct vp_client *c = calloc(1, sizeof *c);
	int err = -ENOMEM;
	if (!c)
		goto fail_fd;
	c->fd = fd;
	c->wakefd = -1;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		err = -errno;
		goto fail_c;
	}
	struct stat st;
	c->is_sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	c->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wakefd < 0) {
		err = -errno;
		goto fail_c;
	}
	c->tab = calloc(TAB_INIT, sizeof *c->tab);
	c->ib = malloc(IB_SIZE);
	if (!c->tab || !c->ib)
		goto fail_c;
	c->nbuckets = TAB_INIT;
	c->timeout_ms = VP_CLIENT_DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	atomic_init(&c->dead, false);
	pthread_condattr_init(&c->cattr);
	pthread_condattr_setclock(&c->cattr, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_cond_init(&c->cond, &c->cattr);

	/* The reader takes no signals: they belong to the daemon's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = -pthread_create(&c->reader, NULL, reader_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->wlock);
		pthread_mutex_destroy(&c->lock);
		pthread_condattr_destroy(&c->cattr);
		goto fail_c;
	}
	*out = c;
	return 0;

fail_c:
	if (c->wakefd >= 0)
		close(c->wakefd);
	free(c->tab);
	free(c->ib);
	free(c);
fail_fd:
	close(fd);
	return err;
}

void vp_client_shutdown(struct vp_client *c)
{
	if (c)
		kill_channel(c);
}

bool vp_client_alive(struct vp_client *c)
{
	return c && !atomic_load(&c->dead);
}

/* Not from an exec callback: it joins the thread that runs them. */
void vp_client_free(struct vp_client *c)
{
	if (!c)
		return;
	kill_channel(c);
	pthread_mutex_lock(&c->lock);
	c->freeing = true;
	while (c->users)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->reader, NULL);
	close(c->fd);
	close(c->wakefd);
	pthread_cond_destroy(&c->cond);
	pthread_condattr_destroy(&c->cattr);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->lock);
	free(c->tab);
	free(c->ib);
	free(c->scratch);
	free(c);
}

void vp_client_set_timeout(struct vp_client *c, int timeout_ms)
{
	pthread_mutex_lock(&c->lock);
	c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
	pthread_mutex_unlock(&c->lock);
}

/* HELLO → READY{version}, bounded by the deadline (NULL: no limit). */
static int hello_exchange(struct vp_client *c, const struct timespec *dl)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_hello(&b, &(struct vp_hello){ .min_version = VP_PROTO_VERSION, .max_version = VP_PROTO_VERSION });
	struct waiter w;
	memset(&w, 0, sizeof w);
	int err = do_call(c, pend_new(VP_HELLO, VP_READY), &b, NULL, 0, &w, dl ? ms_left(dl) : -1, NULL);
	vp_buf_free(&b);
	if (err)
		return err;
	struct vp_ready r;
	if (w.rtype == VP_ERROR)
		err = map_error(w.payload, w.plen);
	else if (vp_dec_ready(w.payload, w.plen, &r) || r.version != VP_PROTO_VERSION)
		err = -EPROTO;
	free(w.payload);
	return err;
}

static const struct timespec *handshake_deadline(struct timespec *ts, int timeout_ms)
{
	if (timeout_ms < 0)
		return NULL;
	deadline_in(ts, timeout_ms);
	return ts;
}

int vp_client_handshake(struct vp_client *c, int timeout_ms)
{
	struct timespec ts;
	const struct timespec *dl = handshake_deadline(&ts, timeout_ms);
	int err = 0;
	pthread_mutex_lock(&c->lock);
	enter_locked(c);
	while (!c->ready_seen && !atomic_load(&c->dead) && err == 0) {
		int r = dl ? pthread_cond_timedwait(&c->cond, &c->lock, dl) : pthread_cond_wait(&c->cond, &c->lock);
		if (r == ETIMEDOUT && !c->ready_seen)
			err = -ETIMEDOUT;
	}
	if (atomic_load(&c->dead))
		err = -ECONNRESET;
	pthread_mutex_unlock(&c->lock);
	leave(c);
	/* The rest of the handshake's time bounds HELLO too. */
	return err ? err : hello_exchange(c, dl);
}

int vp_client_handshake_resumed(struct vp_client *c, int timeout_ms)
{
	struct timespec ts;
	return hello_exchange(c, handshake_deadline(&ts, timeout_ms));
}

int vp_ping(struct vp_client *c)
{
	static const char echo[] = "vmpoolfs";
	struct vp_buf b;
	frame_begin(&b);
	vp_put_str(&b, echo, sizeof echo - 1);
	struct waiter w;
	int err = call(c, VP_PING, VP_PONG, &b, NULL, 0, &w);
	if (err)
		return err;
	if (w.plen != 4 + sizeof echo - 1 || memcmp(w.payload + 4, echo, sizeof echo - 1) != 0)
		err = -EPROTO;
	free(w.payload);
	return err;
}

int vp_set_time(struct vp_client *c, const struct timespec *now)
{
	if (!now || now->tv_nsec < 0 || now->tv_nsec >= 1000000000L)
		return -EINVAL;
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_set_time(&b, &(struct vp_set_time){ .sec = now->tv_sec, .nsec = (uint32_t)now->tv_nsec });
	return call_ok(c, VP_SET_TIME, &b, NULL, 0);
}

/* ---- exec ------------------------------------------------------------------------- */

int vp_exec_start(struct vp_client *c, const struct vp_exec *req, const struct vp_exec_cb *cb, void *ctx,
		  uint32_t *exec_id)
{
	if (!req || !cb || !cb->on_output || !cb->on_exit)
		return -EINVAL;
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_exec(&b, req);
	struct pend *p = pend_new(VP_EXEC, VP_EXEC_STARTED);
	if (p) {
		p->kind = PK_EXEC;
		p->cb = *cb;
		p->ctx = ctx;
	}
	struct waiter w;
	memset(&w, 0, sizeof w);
	uint32_t id = 0;
	int err = do_call(c, p, &b, NULL, 0, &w, INT32_MIN, &id);
	vp_buf_free(&b);
	if (err)
		return err;
	if (w.rtype == VP_ERROR) {
		err = map_error(w.payload, w.plen);
		free(w.payload);
		return err;
	}
	if (exec_id)
		*exec_id = id;
	return 0;
}

int vp_exec_stdin(struct vp_client *c, uint32_t exec_id, const void *data, size_t len, bool eof)
{
	if (exec_id == 0 || (len && !data))
		return -EINVAL;
	const uint8_t *d = data;
	do {
		uint32_t n = len > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)len;
		bool last = n == len;
		struct vp_buf b;
		frame_begin(&b);
		vp_put_u32(&b, exec_id);
		vp_put_u8(&b, last && eof);
		vp_put_u32(&b, n);
		int err = call_ok(c, VP_STDIN, &b, d, n);
		if (err)
			return err;
		d += n;
		len -= n;
	} while (len);
	return 0;
}

int vp_exec_signal(struct vp_client *c, uint32_t exec_id, int signo)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_signal(&b, &(struct vp_signal){ .exec_id = exec_id, .signo = signo });
	return call_ok(c, VP_SIGNAL, &b, NULL, 0);
}

/* ---- files ------------------------------------------------------------------------ */

static int name_arg(const char *name, struct vp_bytes *out)
{
	if (!name)
		return -EINVAL;
	size_t n = strlen(name);
	if (n > VP_MAX_NAME)
		return -ENAMETOOLONG;
	if (n == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	out->p = (const uint8_t *)name;
	out->len = (uint32_t)n;
	return 0;
}

static int fs_call(struct vp_client *c, uint16_t type, uint16_t expect, const struct vp_fs_req *m,
		   struct waiter *w)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_fs_req(&b, type, m);
	return call(c, type, expect, &b, NULL, 0, w);
}

static int fs_call_ok(struct vp_client *c, uint16_t type, const struct vp_fs_req *m)
{
	struct waiter w;
	int err = fs_call(c, type, VP_OK, m, &w);
	free(w.payload);
	return err;
}

static int fs_call_entry(struct vp_client *c, uint16_t type, const struct vp_fs_req *m, struct vp_entry *out)
{
	struct waiter w;
	int err = fs_call(c, type, VP_FS_ENTRY, m, &w);
	if (err)
		return err;
	struct vp_entry e;
	err = vp_dec_entry(w.payload, w.plen, &e) ? -EPROTO : 0;
	free(w.payload);
	if (!err && out)
		*out = e;
	return err;
}

int vp_fs_lookup(struct vp_client *c, uint64_t parent, const char *name, struct vp_entry *out)
{
	struct vp_fs_req m = { .node = parent };
	int err = name_arg(name, &m.name);
	return err ? err : fs_call_entry(c, VP_FS_LOOKUP, &m, out);
}

void vp_fs_forget(struct vp_client *c, uint64_t node, uint64_t nlookup)
{
	if (node == 0 || node == VP_ROOT_NODE || nlookup == 0)
		return;
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_FORGET, &(struct vp_fs_req){ .node = node, .nlookup = nlookup });
	pthread_mutex_lock(&c->lock);
	enter_locked(c);
	pthread_mutex_unlock(&c->lock);
	send_oneway(c, &b, VP_FS_FORGET); /* a dead channel forgets everything anyway */
	leave(c);
	vp_buf_free(&b);
}

static int attr_reply(struct waiter *w, struct vp_attr *out)
{
	struct vp_attr a;
	int err = vp_dec_attr(w->payload, w->plen, &a) ? -EPROTO : 0;
	free(w->payload);
	if (!err && out)
		*out = a;
	return err;
}

int vp_fs_getattr(struct vp_client *c, uint64_t node, struct vp_attr *out)
{
	struct waiter w;
	int err = fs_call(c, VP_FS_GETATTR, VP_FS_ATTR, &(struct vp_fs_req){ .node = node }, &w);
	return err ? err : attr_reply(&w, out);
}

int vp_fs_setattr(struct vp_client *c, const struct vp_setattr *req, struct vp_attr *out)
{
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_setattr(&b, req);
	struct waiter w;
	int err = call(c, VP_FS_SETATTR, VP_FS_ATTR, &b, NULL, 0, &w);
	return err ? err : attr_reply(&w, out);
}

int vp_fs_readlink(struct vp_client *c, uint64_t node, char *buf, size_t cap)
{
	if (!buf || cap == 0)
		return -EINVAL;
	struct waiter w;
	int err = fs_call(c, VP_FS_READLINK, VP_FS_DATA, &(struct vp_fs_req){ .node = node }, &w);
	if (err)
		return err;
	struct vp_reader r;
	const uint8_t *p;
	uint32_t n;
	vp_reader_init(&r, w.payload, w.plen);
	vp_get_str(&r, &p, &n, VP_MAX_PATH);
	if (vp_reader_finish(&r) || (n && memchr(p, 0, n)))
		err = -EPROTO;
	else if (n >= cap)
		err = -ENAMETOOLONG;
	else {
		memcpy(buf, p, n);
		buf[n] = '\0';
	}
	free(w.payload);
	return err;
}

int vp_fs_mknod(struct vp_client *c, uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
		struct vp_entry *out)
{
	struct vp_fs_req m = { .node = parent, .mode = mode, .rdev = rdev };
	int err = name_arg(name, &m.name);
	return err ? err : fs_call_entry(c, VP_FS_MKNOD, &m, out);
}

int vp_fs_mkdir(struct vp_client *c, uint64_t parent, const char *name, uint32_t mode, struct vp_entry *out)
{
	struct vp_fs_req m = { .node = parent, .mode = mode };
	int err = name_arg(name, &m.name);
	return err ? err : fs_call_entry(c, VP_FS_MKDIR, &m, out);
}

int vp_fs_unlink(struct vp_client *c, uint64_t parent, const char *name)
{
	struct vp_fs_req m = { .node = parent };
	int err = name_arg(name, &m.name);
	return err ? err : fs_call_ok(c, VP_FS_UNLINK, &m);
}

int vp_fs_rmdir(struct vp_client *c, uint64_t parent, const char *name)
{
	struct vp_fs_req m = { .node = parent };
	int err = name_arg(name, &m.name);
	return err ? err : fs_call_ok(c, VP_FS_RMDIR, &m);
}

int vp_fs_symlink(struct vp_client *c, uint64_t parent, const char *name, const char *target,
		  struct vp_entry *out)
{
	struct vp_fs_req m = { .node = parent };
	int err = name_arg(name, &m.name);
	if (err)
		return err;
	if (!target)
		return -EINVAL;
	size_t n = strlen(target);
	if (n > VP_MAX_PATH)
		return -ENAMETOOLONG;
	m.name2 = (struct vp_bytes){ (const uint8_t *)target, (uint32_t)n };
	return fs_call_entry(c, VP_FS_SYMLINK, &m, out);
}

int vp_fs_rename(struct vp_client *c, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags)
{
	struct vp_fs_req m = { .node = parent, .node2 = newparent, .flags = flags };
	int err = name_arg(name, &m.name);
	if (!err)
		err = name_arg(newname, &m.name2);
	return err ? err : fs_call_ok(c, VP_FS_RENAME, &m);
}

int vp_fs_link(struct vp_client *c, uint64_t node, uint64_t newparent, const char *newname,
	       struct vp_entry *out)
{
	struct vp_fs_req m = { .node = node, .node2 = newparent };
	int err = name_arg(newname, &m.name2);
	return err ? err : fs_call_entry(c, VP_FS_LINK, &m, out);
}

static int handle_reply(struct vp_client *c, uint16_t type, const struct vp_fs_req *m, uint64_t *fh)
{
	struct waiter w;
	int err = fs_call(c, type, VP_FS_HANDLE, m, &w);
	if (err)
		return err;
	struct vp_reader r;
	vp_reader_init(&r, w.payload, w.plen);
	uint64_t h = vp_get_u64(&r);
	err = vp_reader_finish(&r) ? -EPROTO : 0;
	free(w.payload);
	if (!err)
		*fh = h;
	return err;
}

int vp_fs_open(struct vp_client *c, uint64_t node, uint32_t flags, uint64_t *fh)
{
	return handle_reply(c, VP_FS_OPEN, &(struct vp_fs_req){ .node = node, .flags = flags }, fh);
}

int vp_fs_opendir(struct vp_client *c, uint64_t node, uint64_t *fh)
{
	return handle_reply(c, VP_FS_OPENDIR, &(struct vp_fs_req){ .node = node }, fh);
}

int vp_fs_create(struct vp_client *c, uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
		 uint64_t *fh, struct vp_entry *out)
{
	struct vp_fs_req m = { .node = parent, .flags = flags, .mode = mode };
	int err = name_arg(name, &m.name);
	if (err)
		return err;
	struct waiter w;
	err = fs_call(c, VP_FS_CREATE, VP_FS_CREATED, &m, &w);
	if (err)
		return err;
	struct vp_reader r;
	struct vp_entry e;
	vp_reader_init(&r, w.payload, w.plen);
	uint64_t h = vp_get_u64(&r);
	e.node = vp_get_u64(&r);
	vp_get_attr(&r, &e.attr);
	err = vp_reader_finish(&r) ? -EPROTO : 0;
	free(w.payload);
	if (!err) {
		*fh = h;
		if (out)
			*out = e;
	}
	return err;
}

int vp_fs_read(struct vp_client *c, uint64_t fh, uint64_t offset, void *buf, uint32_t size, uint32_t *got)
{
	if (size > VP_MAX_DATA || (size && !buf))
		return -EINVAL;
	struct vp_buf b;
	frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_READ, &(struct vp_fs_req){ .fh = fh, .offset = offset, .size = size });
	struct waiter w;
	memset(&w, 0, sizeof w);
	w.direct = true;
	w.rbuf = buf;
	w.rcap = size;
	int err = do_call(c, pend_new(VP_FS_READ, VP_FS_DATA), &b, NULL, 0, &w, INT32_MIN, NULL);
	vp_buf_free(&b);
	if (err)
		return err;
	if (w.rtype == VP_ERROR) {
		err = map_error(w.payload, w.plen);
		free(w.payload);
		return err;
	}
	*got = w.rgot;
	return 0;
}

int vp_fs_write(struct vp_client *c, uint64_t fh, uint64_t offset, const void *buf, uint32_t size,
		uint32_t *written)
{
	if (size > VP_MAX_DATA || (size && !buf))
		return -EINVAL;
	/* The layout of FS_WRITE, with the data sent from buf without a copy. */
	struct vp_buf b;
	frame_begin(&b);
	vp_put_u64(&b, fh);
	vp_put_u64(&b, offset);
	vp_put_u32(&b, size);
	struct waiter w;
	int err = call(c, VP_FS_WRITE, VP_FS_WRITTEN, &b, buf, size, &w);
	if (err)
		return err;
	struct vp_reader r;
	vp_reader_init(&r, w.payload, w.plen);
	uint32_t n = vp_get_u32(&r);
	err = vp_reader_finish(&r) || n > size ? -EPROTO : 0;
	free(w.payload);
	if (!err)
		*written = n;
	return err;
}

int vp_fs_write_async(struct vp_client *c, uint64_t fh, uint64_t offset, const void *buf, uint32_t size,
		      void (*done)(void *ctx, int err, uint32_t written), void *ctx)
{
	if (size > VP_MAX_DATA || (size && !buf) || !done)
		return -EINVAL;
	if (pthread_equal(pthread_self(), c->reader))
		return -EDEADLK; /* it could block on a full channel only the reader drains */
	struct pend *p = pend_new(VP_FS_WRITE, VP_FS_WRITTEN);
	if (!p)
		return -ENOMEM;
	p->kind = PK_ASYNC;
	p->done = done;
	p->ctx = ctx;
	p->size = size;
	p->refs = 2;
	p->in_tab = true;
	struct vp_buf b;
	frame_begin(&b);
	vp_put_u64(&b, fh);
	vp_put_u64(&b, offset);
	vp_put_u32(&b, size);
	if (b.err) {
		int err = b.err;
		vp_buf_free(&b);
		free(p);
		return err;
	}
	struct timespec ts;
	const struct timespec *dl = timeout_deadline(c, &ts) == 0 ? &ts : NULL;
	pthread_mutex_lock(&c->lock);
	/* Checked under the lock that kill_channel sets it under: a pend
	 * inserted before is in the table the dying reader sweeps. */
	if (atomic_load(&c->dead)) {
		pthread_mutex_unlock(&c->lock);
		vp_buf_free(&b);
		free(p);
		return -ECONNRESET;
	}
	enter_locked(c);
	tab_insert_new(c, p);
	uint32_t id = p->id;
	pthread_mutex_unlock(&c->lock);

	int err = send_frame(c, &b, VP_FS_WRITE, id, buf, size, dl);
	vp_buf_free(&b);

	pthread_mutex_lock(&c->lock);
	if (err && p->in_tab) {
		/* Still ours: done has not run and now never will. */
		tab_remove(c, p);
		p->in_tab = false;
		p->refs--;
	} else {
		/* Sent, or the reader already took it (a reply to half a frame,
		 * or the channel's death): either way done runs or ran. */
		err = 0;
	}
	bool free_it;
	async_put_locked(p, &free_it);
	pthread_mutex_unlock(&c->lock);
	if (free_it)
		free(p);
	leave(c);
	return err;
}

int vp_fs_fsync(struct vp_client *c, uint64_t fh, bool datasync)
{
	return fs_call_ok(c, VP_FS_FSYNC, &(struct vp_fs_req){ .fh = fh, .flags = datasync ? 1 : 0 });
}

int vp_fs_close(struct vp_client *c, uint64_t fh)
{
	return fs_call_ok(c, VP_FS_CLOSE, &(struct vp_fs_req){ .fh = fh });
}

/* *count is the number of entries fn accepted (returned 0 for); the entry
 * fn refused is not counted, so a caller resumes from the last accepted
 * entry's next_offset. */
int vp_fs_readdir(struct vp_client *c, uint64_t fh, uint64_t offset, uint32_t max_bytes,
		  int (*fn)(void *ctx, const struct vp_dirent *d), void *ctx, uint32_t *count)
{
	if (!fn || max_bytes > VP_MAX_DATA)
		return -EINVAL;
	struct waiter w;
	int err = fs_call(c, VP_FS_READDIR, VP_FS_DIRENTS,
			  &(struct vp_fs_req){ .fh = fh, .offset = offset, .size = max_bytes }, &w);
	if (err)
		return err;
	struct vp_reader r;
	vp_reader_init(&r, w.payload, w.plen);
	uint32_t n = vp_get_u32(&r), done = 0;
	/* The reader validated the whole reply, so this walk cannot fail midway. */
	for (uint32_t i = 0; i < n && !r.err; i++) {
		struct vp_dirent d;
		vp_get_dirent(&r, &d);
		if (r.err || fn(ctx, &d))
			break;
		done++;
	}
	if (r.err)
		err = -EPROTO;
	free(w.payload);
	if (count)
		*count = done;
	return err;
}

int vp_fs_statfs(struct vp_client *c, uint64_t node, struct vp_statfs *out)
{
	struct waiter w;
	int err = fs_call(c, VP_FS_STATFS, VP_FS_STATFS_REPLY, &(struct vp_fs_req){ .node = node }, &w);
	if (err)
		return err;
	struct vp_statfs s;
	err = vp_dec_statfs(w.payload, w.plen, &s) ? -EPROTO : 0;
	free(w.payload);
	if (!err && out)
		*out = s;
	return err;
}
