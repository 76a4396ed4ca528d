/* Host-side protocol client: lifecycle, the id table, writing frames and
 * synchronous calls. See client.h, client_internal.h (ownership, locks)
 * and docs/protocol.md. */
#include "client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/clock.h"

#define MAX_ERRNO 4095
#define TAB_INIT 64u

/* ---- id table ------------------------------------------------------------ */

struct pend *client_tab_find(struct vp_client *c, uint32_t id)
{
	struct u64map_link *l = u64map_find(&c->tab, id);
	return l ? container_of(l, struct pend, link) : NULL;
}

/* Ids wrap at 2^32 and skip 0 and every id still in the table (running
 * execs, tombstones of requests whose reply never came). */
void client_tab_insert_new(struct vp_client *c, struct pend *p)
{
	uint32_t id;
	do {
		id = c->next_id++ & VP_CLIENT_ID_MASK;
	} while (id == 0 || client_tab_find(c, id));
	p->link.key = id;
	u64map_insert(&c->tab, &p->link);
}

void client_tab_remove(struct vp_client *c, struct pend *p)
{
	u64map_remove(&c->tab, &p->link);
}

/* ---- channel death --------------------------------------------------------- */

void client_complete_locked(struct pend *p, int err)
{
	struct waiter *w = p->w;
	w->err = err;
	w->done = true;
	p->w = NULL;
	pthread_cond_signal(&w->cond);
}

/* Fails every waiter not being completed by the reader right now. Tombstones
 * and running execs stay: the reader disposes of them when it exits. */
static void fail_waiters_locked(struct vp_client *c) REQUIRES(&c->lock)
{
	u64map_for_each_safe(&c->tab, it, tmp)
	{
		struct pend *p = container_of(it, struct pend, link);
		if (p->w && !p->claimed) {
			u64map_remove(&c->tab, it);
			client_complete_locked(p, -ECONNRESET);
			free(p);
		}
	}
}

void client_kill(struct vp_client *c)
{
	vp_mutex_lock(&c->lock);
	bool first = !atomic_exchange(&c->dead, true);
	if (first) {
		fail_waiters_locked(c);
		pthread_cond_broadcast(&c->cond);
	}
	vp_mutex_unlock(&c->lock);
	if (first) {
		/* Wakes the reader and the peer; the eventfd also wakes pollers on
		 * fds that are not sockets. */
		shutdown(c->fd, SHUT_RDWR);
		uint64_t one = 1;
		ssize_t r = c->wakefd >= 0 ? write(c->wakefd, &one, sizeof one) : 0;
		(void)r; /* an eventfd write of 1 cannot fail short of overflow */
	}
}

/* ---- writing --------------------------------------------------------------- */

/* Takes wlock within the deadline (0: no limit). Whoever holds it may be
 * waiting on a peer that does not read: callers queued behind it must not
 * wait longer than their own deadline, however many are ahead of them. */
static bool wlock_take(struct vp_client *c, uint64_t deadline) TRY_ACQUIRE(true, &c->wlock)
{
	if (deadline == 0) {
		vp_mutex_lock(&c->wlock);
		return true;
	}
	struct timespec ts = deadline_timespec(deadline);
	return vp_mutex_clocklock(&c->wlock, &ts);
}

/* With wlock held: the frame in v, within the deadline. */
static int send_iov_locked(struct vp_client *c, struct iovec *v, int cnt, uint64_t deadline, size_t *sentp)
	REQUIRES(&c->wlock)
{
	int err = 0;
	size_t sent = 0;
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
			int ms = deadline_left_ms(deadline);
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
	*sentp = sent;
	return err;
}

static int send_iov(struct vp_client *c, struct iovec *v, int cnt, uint64_t deadline)
{
	size_t sent = 0;
	if (!wlock_take(c, deadline))
		return atomic_load(&c->dead) ? -ECONNRESET : -ETIMEDOUT; /* nothing sent */
	int err = send_iov_locked(c, v, cnt, deadline, &sent);
	vp_mutex_unlock(&c->wlock);
	/* Half a frame on the wire desynchronises the stream for good, and a
	 * write error means the peer is gone: either way the channel is dead. */
	if (err && (sent || err != -ETIMEDOUT))
		client_kill(c);
	return err;
}

void client_frame_begin(struct vp_buf *b)
{
	vp_buf_init(b);
	uint8_t zero[VP_HDR_SIZE] = { 0 };
	vp_put_raw(b, zero, sizeof zero);
}

int client_send_frame(struct vp_client *c, struct vp_buf *b, uint16_t type, uint32_t id, const void *extra,
		      size_t extra_len, uint64_t deadline)
{
	if (b->err)
		return b->err;
	size_t len = b->len - VP_HDR_SIZE + extra_len;
	if (len > VP_MAX_PAYLOAD)
		return -EMSGSIZE;
	struct vp_hdr h = { .len = (uint32_t)len, .type = type, .flags = 0, .id = id };
	vp_hdr_encode(b->data, &h);
	struct iovec v[2] = { { .iov_base = b->data, .iov_len = b->len },
			      { .iov_base = (void *)(uintptr_t)extra, .iov_len = extra_len } };
	return send_iov(c, v, extra_len ? 2 : 1, deadline);
}

static uint64_t deadline_in_ms(int ms)
{
	return ms < 0 ? 0 : deadline_after_ms((uint64_t)ms);
}

uint64_t client_call_deadline(struct vp_client *c)
{
	vp_mutex_lock(&c->lock);
	int ms = c->timeout_ms;
	vp_mutex_unlock(&c->lock);
	return deadline_in_ms(ms);
}

static bool len_ok(const struct vp_buf *b)
{
	return b->len - VP_HDR_SIZE <= VP_MAX_PAYLOAD;
}

/* One-way frame (id 0). */
int client_send_oneway(struct vp_client *c, struct vp_buf *b, uint16_t type)
{
	return client_send_frame(c, b, type, 0, NULL, 0, client_call_deadline(c));
}

/* ---- users (vp_client_free waits for them) ------------------------------- */

void client_enter_locked(struct vp_client *c)
{
	c->users++;
}

void client_leave(struct vp_client *c)
{
	vp_mutex_lock(&c->lock);
	if (--c->users == 0 && c->freeing)
		pthread_cond_broadcast(&c->cond);
	vp_mutex_unlock(&c->lock);
}

/* ---- synchronous calls ------------------------------------------------------ */

int client_map_error(const uint8_t *p, uint32_t n)
{
	struct vp_error m;
	if (vp_dec_error(p, n, &m))
		return -EIO;
	return m.err > 0 && m.err <= MAX_ERRNO ? -m.err : -EIO;
}

struct pend *client_pend_new(uint16_t req)
{
	struct pend *p = calloc(1, sizeof *p);
	if (p) {
		p->req = req;
		p->expect = vp_msg_reply(req);
		p->kind = PK_CALL;
	}
	return p;
}

/* Waits for w after its request went out. The pend stays a tombstone when
 * the caller gives up. Called and returns with the lock held. */
static int wait_reply_locked(struct vp_client *c, struct pend *p, struct waiter *w, uint64_t dl, int tmo)
	REQUIRES(&c->lock)
{
	bool extended = false, killed = false;
	while (!w->done) {
		int r = clock_cond_wait(&w->cond, vp_mutex_raw(&c->lock), dl);
		if (r != -ETIMEDOUT || w->done)
			continue;
		if (!p->claimed) {
			/* The reply may still come: the pend stays as a tombstone. */
			p->w = NULL;
			if (p->kind == PK_EXEC)
				p->orphan = true;
			return -ETIMEDOUT;
		}
		/* The reply is arriving into our buffer; allow it one more
		 * period, then declare a channel that stalls mid-frame dead. */
		if (!extended) {
			extended = true;
			dl = deadline_in_ms(tmo);
		} else {
			vp_mutex_unlock(&c->lock);
			client_kill(c);
			vp_mutex_lock(&c->lock);
			dl = 0;
			killed = true;
		}
	}
	/* The caller ran out of time; the channel's death is how it got out,
	 * not what happened to its request. */
	if (killed && w->err == -ECONNRESET)
		return -ETIMEDOUT;
	return w->err;
}

int client_do_call(struct vp_client *c, struct pend *p, struct vp_buf *b, const void *extra, size_t extra_len,
		   struct waiter *w, int timeout_ms, uint32_t *id_out)
{
	int err = b->err;
	if (!p)
		err = -ENOMEM;
	if (!err && pthread_equal(pthread_self(), c->reader))
		err = -EDEADLK; /* an exec callback waiting for a reply only it could read */
	if (!err)
		err = clock_cond_init(&w->cond);
	if (err) {
		free(p);
		return err;
	}
	w->done = false;
	w->payload = NULL;
	w->plen = 0;

	vp_mutex_lock(&c->lock);
	if (atomic_load(&c->dead)) {
		vp_mutex_unlock(&c->lock);
		pthread_cond_destroy(&w->cond);
		free(p);
		return -ECONNRESET;
	}
	client_enter_locked(c);
	int tmo = timeout_ms != INT32_MIN ? timeout_ms : c->timeout_ms;
	uint64_t dl = deadline_in_ms(tmo);
	p->w = w;
	client_tab_insert_new(c, p);
	uint32_t id = pend_id(p);
	uint16_t type = p->req;
	vp_mutex_unlock(&c->lock);
	if (id_out)
		*id_out = id;

	err = client_send_frame(c, b, type, id, extra, extra_len, dl);

	vp_mutex_lock(&c->lock);
	if (err) {
		/* A guest answering a request it has not wholly received could
		 * be filling our buffer right now: let the reader finish. */
		while (!w->done && p->claimed)
			pthread_cond_wait(&w->cond, vp_mutex_raw(&c->lock));
		if (!w->done) {
			/* Nothing of it reached the guest, so no reply will come. */
			client_tab_remove(c, p);
			p->w = NULL;
			free(p);
		} else if (w->err == 0 && w->rtype == VP_EXEC_STARTED) {
			/* The agent said it started an exec whose frame did not
			 * (wholly) reach it: ids are easy to guess. The pend is a
			 * running exec now, whose on_exit runs at EXIT or at the
			 * channel's death, so the caller must be told it started
			 * and wait for that, not free ctx under the callbacks. */
			err = 0;
		} else if (w->payload) {
			free(w->payload);
			w->payload = NULL;
		}
	} else {
		err = wait_reply_locked(c, p, w, dl, tmo);
	}
	vp_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w->cond);
	client_leave(c);
	return err;
}

void client_reply_free(struct client_reply *rep)
{
	free(rep->payload);
	rep->payload = NULL;
}

int client_call(struct vp_client *c, uint16_t type, struct vp_buf *b, const void *extra, size_t extra_len,
		struct client_reply *rep)
{
	return client_call_timeout(c, type, b, extra, extra_len, rep, INT32_MIN);
}

int client_call_timeout(struct vp_client *c, uint16_t type, struct vp_buf *b, const void *extra,
			size_t extra_len, struct client_reply *rep, int timeout_ms)
{
	struct waiter w;
	memset(&w, 0, sizeof w);
	rep->payload = NULL;
	int err = client_do_call(c, client_pend_new(type), b, extra, extra_len, &w, timeout_ms, NULL);
	vp_buf_free(b);
	if (err)
		return err;
	rep->type = w.rtype;
	rep->payload = w.payload;
	if (w.rtype == VP_ERROR)
		err = client_map_error(w.payload, w.plen);
	/* The reader validated it already; decoding cannot fail short of a bug. */
	else if (vp_decode(w.rtype, w.payload, w.plen, &rep->m))
		err = -EPROTO;
	if (err)
		client_reply_free(rep);
	return err;
}

int client_call_msg(struct vp_client *c, uint16_t type, const union vp_msg *req, struct client_reply *rep)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_encode(&b, type, req);
	return client_call(c, type, &b, NULL, 0, rep);
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
	/* A socket's shutdown wakes every poll on it (POLLHUP), so only other
	 * fds need the eventfd: one fd fewer per machine (docs/pool.md). The
	 * polls skip a wakefd of -1. */
	c->wakefd = c->is_sock ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!c->is_sock && c->wakefd < 0) {
		err = -errno;
		goto fail_c;
	}
	c->ib = malloc(IB_SIZE);
	if (!c->ib || u64map_init(&c->tab, TAB_INIT) < 0)
		goto fail_c;
	c->timeout_ms = VP_CLIENT_DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	atomic_init(&c->dead, false);
	vp_mutex_init(&c->lock);
	vp_mutex_init(&c->wlock);
	err = clock_cond_init(&c->cond);
	if (err)
		goto fail_locks;

	/* The reader takes no signals: they belong to the daemon's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = -pthread_create(&c->reader, NULL, client_reader_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_cond_destroy(&c->cond);
		goto fail_locks;
	}
	*out = c;
	return 0;

fail_locks:
	vp_mutex_destroy(&c->wlock);
	vp_mutex_destroy(&c->lock);
fail_c:
	if (c->wakefd >= 0)
		close(c->wakefd);
	u64map_destroy(&c->tab);
	free(c->ib);
	free(c);
fail_fd:
	close(fd);
	return err;
}

void vp_client_shutdown(struct vp_client *c)
{
	if (c)
		client_kill(c);
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
	client_kill(c);
	vp_mutex_lock(&c->lock);
	c->freeing = true;
	while (c->users)
		pthread_cond_wait(&c->cond, vp_mutex_raw(&c->lock));
	vp_mutex_unlock(&c->lock);
	pthread_join(c->reader, NULL);
	close(c->fd);
	if (c->wakefd >= 0)
		close(c->wakefd);
	pthread_cond_destroy(&c->cond);
	vp_mutex_destroy(&c->wlock);
	vp_mutex_destroy(&c->lock);
	u64map_destroy(&c->tab);
	free(c->ib);
	free(c->scratch);
	free(c);
}

void vp_client_set_timeout(struct vp_client *c, int timeout_ms)
{
	vp_mutex_lock(&c->lock);
	c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
	vp_mutex_unlock(&c->lock);
}

/* ---- session ---------------------------------------------------------------------- */

/* HELLO → READY{version}, bounded by the deadline (0: no limit). */
static int hello_exchange(struct vp_client *c, uint64_t deadline)
{
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_hello(&b,
		     &(struct vp_hello){ .min_version = VP_PROTO_VERSION, .max_version = VP_PROTO_VERSION });
	struct waiter w;
	memset(&w, 0, sizeof w);
	int err = client_do_call(c, client_pend_new(VP_HELLO), &b, NULL, 0, &w, deadline_left_ms(deadline),
				 NULL);
	vp_buf_free(&b);
	if (err)
		return err;
	struct vp_ready r;
	if (w.rtype == VP_ERROR)
		err = client_map_error(w.payload, w.plen);
	else if (vp_dec_ready(w.payload, w.plen, &r) || r.version != VP_PROTO_VERSION)
		err = -EPROTO;
	free(w.payload);
	return err;
}

int vp_client_handshake(struct vp_client *c, int timeout_ms)
{
	uint64_t dl = deadline_in_ms(timeout_ms);
	int err = 0;
	vp_mutex_lock(&c->lock);
	client_enter_locked(c);
	while (!c->ready_seen && !atomic_load(&c->dead) && err == 0) {
		int r = clock_cond_wait(&c->cond, vp_mutex_raw(&c->lock), dl);
		if (r == -ETIMEDOUT && !c->ready_seen)
			err = -ETIMEDOUT;
	}
	if (atomic_load(&c->dead))
		err = -ECONNRESET;
	vp_mutex_unlock(&c->lock);
	client_leave(c);
	/* The rest of the handshake's time bounds HELLO too. */
	return err ? err : hello_exchange(c, dl);
}

int vp_client_handshake_resumed(struct vp_client *c, int timeout_ms)
{
	return hello_exchange(c, deadline_in_ms(timeout_ms));
}

int vp_ping(struct vp_client *c)
{
	static const char echo[] = "vmpoolfs";
	union vp_msg q = { .data = { { (const uint8_t *)echo, sizeof echo - 1 } } };
	struct client_reply r;
	int err = client_call_msg(c, VP_PING, &q, &r);
	if (err)
		return err;
	if (r.m.data.data.len != sizeof echo - 1 || memcmp(r.m.data.data.p, echo, sizeof echo - 1) != 0)
		err = -EPROTO;
	client_reply_free(&r);
	return err;
}

int client_send_nowait(struct vp_client *c, uint16_t type, struct vp_buf *b, int wait_ms)
{
	struct pend *p = client_pend_new(type);
	if (!p)
		return -ENOMEM;
	if (b->err) {
		free(p);
		return b->err;
	}
	vp_mutex_lock(&c->lock);
	if (atomic_load(&c->dead)) {
		vp_mutex_unlock(&c->lock);
		free(p);
		return -ECONNRESET;
	}
	client_enter_locked(c);
	client_tab_insert_new(c, p); /* a tombstone: its answer is dropped */
	uint32_t id = pend_id(p);
	vp_mutex_unlock(&c->lock);
	int err = client_send_frame(c, b, type, id, NULL, 0, deadline_after_ms((uint64_t)wait_ms));
	if (err) {
		vp_mutex_lock(&c->lock);
		if (client_tab_find(c, id) == p) {
			client_tab_remove(c, p);
			free(p);
		}
		vp_mutex_unlock(&c->lock);
	}
	client_leave(c);
	return err;
}

/* How long the probe may wait for the channel's write side: the probing
 * thread serves every machine, so it never queues behind a sender. */
#define PROBE_SEND_MS 50

int vp_client_probe(struct vp_client *c, int bound_ms)
{
	uint64_t now = clock_mono_ms();
	vp_mutex_lock(&c->lock);
	if (atomic_load(&c->dead)) {
		vp_mutex_unlock(&c->lock);
		return -ECONNRESET;
	}
	if (c->probe_since_ms == 0)
		c->probe_since_ms = now;
	if (now - c->probe_since_ms >= (uint64_t)bound_ms) {
		vp_mutex_unlock(&c->lock);
		return -ETIMEDOUT;
	}
	if (c->probe_id) {
		vp_mutex_unlock(&c->lock);
		return 0; /* the PING is out; its answer clears probe_since_ms */
	}
	/* A tombstone from the start: nobody waits, the reader recognises
	 * the answer by probe_id. */
	struct pend *p = client_pend_new(VP_PING);
	if (!p) {
		vp_mutex_unlock(&c->lock);
		return 0; /* tried again at the next tick; the clock runs */
	}
	client_tab_insert_new(c, p);
	uint32_t id = pend_id(p);
	c->probe_id = id;
	vp_mutex_unlock(&c->lock);

	static const char echo[] = "probe";
	struct vp_buf b;
	client_frame_begin(&b);
	vp_encode(&b, VP_PING, &(union vp_msg){ .data = { { (const uint8_t *)echo, sizeof echo - 1 } } });
	int err = b.err;
	size_t sent = 0;
	if (!err && len_ok(&b)) {
		if (vp_mutex_trylock(&c->wlock)) {
			struct vp_hdr h = { .len = (uint32_t)(b.len - VP_HDR_SIZE), .type = VP_PING, .id = id };
			vp_hdr_encode(b.data, &h);
			struct iovec v[1] = { { .iov_base = b.data, .iov_len = b.len } };
			err = send_iov_locked(c, v, 1, deadline_after_ms(PROBE_SEND_MS), &sent);
			vp_mutex_unlock(&c->wlock);
		} else {
			err = -EAGAIN; /* a sender holds the channel: not sent, nothing to undo there */
		}
	}
	vp_buf_free(&b);
	if (err && (sent || (err != -ETIMEDOUT && err != -EAGAIN)))
		client_kill(c); /* as send_iov: half a frame, or a dead peer */
	if (err) {
		/* Not sent: no answer will come. The wait goes on from
		 * probe_since_ms, so a channel that never takes a PING is as
		 * stuck as an agent that never answers one. */
		vp_mutex_lock(&c->lock);
		if (client_tab_find(c, id) == p) {
			client_tab_remove(c, p);
			free(p);
		}
		if (c->probe_id == id)
			c->probe_id = 0;
		vp_mutex_unlock(&c->lock);
	}
	return 0;
}

int vp_set_time(struct vp_client *c, const struct timespec *now)
{
	if (!now || now->tv_nsec < 0 || now->tv_nsec >= 1000000000L)
		return -EINVAL;
	union vp_msg q = { .set_time = { .sec = now->tv_sec, .nsec = (uint32_t)now->tv_nsec } };
	struct client_reply r;
	int err = client_call_msg(c, VP_SET_TIME, &q, &r);
	if (!err)
		client_reply_free(&r);
	return err;
}
