/* Host client tests against a fake agent: a thread on the other end of a
 * socketpair that speaks raw frames with the codec. */
#include "proto/client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "tests/common/testutil.h"

/* For the peer thread: counts failures instead of printing a verdict. */
#define PEER_EXPECT(p, cond)                                                                \
	do {                                                                                \
		if (!(cond)) {                                                              \
			printf("#   peer %s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
			atomic_fetch_add(&(p)->errors, 1);                                  \
		}                                                                           \
	} while (0)

#define FILE_LEN 3000000u
#define NDIRENTS 10u

/* ---- the fake agent ------------------------------------------------------------ */

struct peer {
	int fd;
	pthread_t thread;
	void (*run)(struct peer *);
	void *arg;
	atomic_int errors;
	atomic_int forgets;  /* FORGET frames seen */
	atomic_int requests; /* requests read */
};

static int peer_read(struct peer *p, struct vp_hdr *h, uint8_t **pl)
{
	int e = vp_frame_read(p->fd, h, pl);
	if (e == 0) {
		atomic_fetch_add(&p->requests, 1);
		PEER_EXPECT(p, vp_validate(h->type, *pl, h->len) == 0);
	}
	return e;
}

static void peer_send(struct peer *p, uint16_t type, uint32_t id, struct vp_buf *b)
{
	PEER_EXPECT(p, b->err == 0);
	vp_frame_write(p->fd, type, id, b->data, b->len);
	vp_buf_reset(b);
}

static void peer_error(struct peer *p, uint32_t id, int err)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_error(&b, &(struct vp_error){ err, { (const uint8_t *)"fake", 4 } });
	peer_send(p, VP_ERROR, id, &b);
	vp_buf_free(&b);
}

static void peer_ok(struct peer *p, uint32_t id)
{
	vp_frame_write(p->fd, VP_OK, id, NULL, 0);
}

static void peer_ready0(struct peer *p)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"fake", 4 } });
	peer_send(p, VP_READY, 0, &b);
	vp_buf_free(&b);
}

static uint8_t pattern(uint64_t fh, uint64_t off)
{
	return (uint8_t)(off * 31 + fh);
}

static struct vp_attr attr_of(uint64_t ino)
{
	return (struct vp_attr){ .ino = ino, .size = ino * 2, .mode = 0100644, .nlink = 1, .blksize = 4096 };
}

/* A deterministic answer to any request, so callers can check results. */
static void fake_reply(struct peer *p, const struct vp_hdr *h, const uint8_t *pl)
{
	struct vp_buf b;
	vp_buf_init(&b);
	struct vp_fs_req m;
	uint16_t rt = VP_OK;
	if (h->type >= VP_FS_LOOKUP && h->type <= VP_FS_STATFS && h->type != VP_FS_SETATTR)
		PEER_EXPECT(p, vp_dec_fs_req(pl, h->len, h->type, &m) == 0);
	switch (h->type) {
	case VP_HELLO:
		rt = VP_READY;
		vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"fake", 4 } });
		break;
	case VP_PING:
		rt = VP_PONG;
		vp_put_raw(&b, pl, h->len);
		break;
	case VP_FS_LOOKUP:
		if (m.name.len > 3 && memcmp(m.name.p, "err", 3) == 0) {
			char num[32] = { 0 };
			memcpy(num, m.name.p + 3, m.name.len - 3 < 31 ? m.name.len - 3 : 31);
			peer_error(p, h->id, atoi(num));
			vp_buf_free(&b);
			return;
		}
		rt = VP_FS_ENTRY;
		vp_enc_entry(&b, &(struct vp_entry){ m.node * 1000 + m.name.len,
						     attr_of(m.node * 1000 + m.name.len) });
		break;
	case VP_FS_FORGET:
		atomic_fetch_add(&p->forgets, 1);
		PEER_EXPECT(p, h->id == 0);
		vp_buf_free(&b);
		return;
	case VP_FS_GETATTR: {
		struct vp_attr a = attr_of(m.node);
		rt = VP_FS_ATTR;
		vp_enc_attr(&b, &a);
		break;
	}
	case VP_FS_SETATTR: {
		struct vp_setattr s;
		PEER_EXPECT(p, vp_dec_setattr(pl, h->len, &s) == 0);
		struct vp_attr a = attr_of(s.node);
		a.size = s.size;
		a.mode = s.mode;
		rt = VP_FS_ATTR;
		vp_enc_attr(&b, &a);
		break;
	}
	case VP_FS_READLINK: {
		char t[64];
		int n = snprintf(t, sizeof t, "target-%llu", (unsigned long long)m.node);
		rt = VP_FS_DATA;
		vp_put_str(&b, t, (size_t)n);
		break;
	}
	case VP_FS_MKNOD:
	case VP_FS_MKDIR:
	case VP_FS_SYMLINK:
	case VP_FS_LINK:
		rt = VP_FS_ENTRY;
		vp_enc_entry(&b, &(struct vp_entry){ 500 + h->type, attr_of(500 + h->type) });
		break;
	case VP_FS_OPEN:
	case VP_FS_OPENDIR:
		rt = VP_FS_HANDLE;
		vp_put_u64(&b, m.node + 10000);
		break;
	case VP_FS_CREATE:
		rt = VP_FS_CREATED;
		vp_put_u64(&b, 777);
		vp_enc_entry(&b, &(struct vp_entry){ 778, attr_of(778) });
		break;
	case VP_FS_READ: {
		uint32_t n = m.offset >= FILE_LEN
				     ? 0
				     : (uint32_t)(FILE_LEN - m.offset < m.size ? FILE_LEN - m.offset : m.size);
		rt = VP_FS_DATA;
		vp_put_u32(&b, n);
		for (uint32_t i = 0; i < n; i++)
			vp_put_u8(&b, pattern(m.fh, m.offset + i));
		break;
	}
	case VP_FS_WRITE: {
		bool good = true;
		for (uint32_t i = 0; i < m.data.len; i++)
			good &= m.data.p[i] == pattern(m.fh, m.offset + i);
		if (!good) {
			peer_error(p, h->id, EIO);
			vp_buf_free(&b);
			return;
		}
		rt = VP_FS_WRITTEN;
		vp_put_u32(&b, m.data.len);
		break;
	}
	case VP_FS_READDIR: {
		uint32_t count = 0;
		size_t at = b.len;
		vp_put_u32(&b, 0);
		for (uint64_t i = m.offset; i < NDIRENTS && count < 3; i++, count++) {
			char name[16];
			int n = snprintf(name, sizeof name, "e%llu", (unsigned long long)i);
			vp_enc_dirent(&b, &(struct vp_dirent){ 100 + i,
							       i + 1,
							       8,
							       { (uint8_t *)name, (uint32_t)n } });
		}
		b.data[at] = (uint8_t)count;
		rt = VP_FS_DIRENTS;
		break;
	}
	case VP_FS_STATFS:
		rt = VP_FS_STATFS_REPLY;
		vp_enc_statfs(&b, &(struct vp_statfs){ 1, 2, 3, 4, 5, 4096, 4096, 255 });
		break;
	case VP_SIGNAL: {
		struct vp_signal s;
		PEER_EXPECT(p, vp_dec_signal(pl, h->len, &s) == 0);
		if (s.exec_id == 0xdead) {
			peer_error(p, h->id, ESRCH);
			vp_buf_free(&b);
			return;
		}
		break;
	}
	default: /* UNLINK, RMDIR, RENAME, FSYNC, CLOSE, STDIN */ break;
	}
	peer_send(p, rt, h->id, &b);
	vp_buf_free(&b);
}

/* Answers everything, in order, until the channel closes. */
static void run_serve(struct peer *p)
{
	struct vp_hdr h;
	uint8_t *pl;
	while (peer_read(p, &h, &pl) == 0) {
		fake_reply(p, &h, pl);
		free(pl);
	}
}

static void run_ready_serve(struct peer *p)
{
	peer_ready0(p);
	run_serve(p);
}

struct req {
	struct vp_hdr h;
	uint8_t *pl;
};

/* Reads a request, then up to max - 1 more that arrive close together;
 * how many it read (0: the channel is gone). */
static int read_batch(struct peer *p, struct req *batch, int max)
{
	if (peer_read(p, &batch[0].h, &batch[0].pl))
		return 0;
	int n = 1;
	struct pollfd pf = { .fd = p->fd, .events = POLLIN };
	while (n < max && poll(&pf, 1, 2) > 0) {
		if (peer_read(p, &batch[n].h, &batch[n].pl))
			break;
		n++;
	}
	return n;
}

/* Collects up to 64 requests that arrive close together, then answers
 * them newest first: replies always come out of order. */
static void run_batch_reverse(struct peer *p)
{
	struct req batch[64];
	for (;;) {
		int n = read_batch(p, batch, 64);
		if (n == 0)
			return;
		for (int i = n - 1; i >= 0; i--) {
			fake_reply(p, &batch[i].h, batch[i].pl);
			free(batch[i].pl);
		}
	}
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	p->run(p);
	return NULL;
}

static struct vp_client *start(struct peer *p, void (*run)(struct peer *), void *arg)
{
	int sv[2];
	memset(p, 0, sizeof *p);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return NULL;
	p->fd = sv[1];
	p->run = run;
	p->arg = arg;
	struct vp_client *c;
	if (vp_client_new(sv[0], &c)) {
		close(sv[1]);
		return NULL;
	}
	pthread_create(&p->thread, NULL, peer_main, p);
	return c;
}

/* Frees the client (the peer then sees EOF) and collects the peer. */
static int finish(struct vp_client *c, struct peer *p)
{
	vp_client_free(c);
	pthread_join(p->thread, NULL);
	close(p->fd);
	return atomic_load(&p->errors);
}

/* ---- exec callbacks ---------------------------------------------------------- */

struct exec_rec {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t pid;
	int started;
	char out[1 << 20];
	size_t out_len;
	char err[4096];
	size_t err_len;
	int exits;
	int exit_err;
	struct vp_exit ex;
	int after_exit; /* callbacks after on_exit: must stay 0 */
	struct vp_client *c;
	int nested; /* result of a sync call from a callback */
};

static void rec_init(struct exec_rec *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->nested = 1;
}

static void rec_destroy(struct exec_rec *r)
{
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
}

static void on_started(void *ctx, uint32_t pid)
{
	struct exec_rec *r = ctx;
	pthread_mutex_lock(&r->lock);
	r->pid = pid;
	r->started++;
	r->after_exit += r->exits;
	pthread_mutex_unlock(&r->lock);
}

static void on_output(void *ctx, int stream, const void *data, size_t len)
{
	struct exec_rec *r = ctx;
	if (r->c && r->nested == 1)
		r->nested = vp_ping(r->c);
	pthread_mutex_lock(&r->lock);
	r->after_exit += r->exits;
	if (stream == VP_STREAM_STDOUT && r->out_len + len <= sizeof r->out) {
		memcpy(r->out + r->out_len, data, len);
		r->out_len += len;
	} else if (stream == VP_STREAM_STDERR && r->err_len + len <= sizeof r->err) {
		memcpy(r->err + r->err_len, data, len);
		r->err_len += len;
	}
	pthread_mutex_unlock(&r->lock);
}

static void on_exit_cb(void *ctx, const struct vp_exit *ex, int err)
{
	struct exec_rec *r = ctx;
	pthread_mutex_lock(&r->lock);
	r->exits++;
	r->exit_err = err;
	if (ex)
		r->ex = *ex;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static const struct vp_exec_cb rec_cb = { on_started, on_output, on_exit_cb };

/* Waits until on_exit ran, for at most ms; returns how many times it ran. */
static int rec_wait_exit(struct exec_rec *r, int ms)
{
	double end = now_s() + ms / 1000.0;
	pthread_mutex_lock(&r->lock);
	while (r->exits == 0 && now_s() < end) {
		pthread_mutex_unlock(&r->lock);
		sleep_ms(5);
		pthread_mutex_lock(&r->lock);
	}
	int n = r->exits;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static struct vp_exec simple_exec(const char *cmd)
{
	struct vp_exec e;
	memset(&e, 0, sizeof e);
	e.cmd = (struct vp_bytes){ (const uint8_t *)cmd, (uint32_t)strlen(cmd) };
	return e;
}

/* ---- tests: write without waiting ------------------------------------------------- */

#define NASYNC 8

static void run_silent(struct peer *p);

struct arec {
	pthread_mutex_t lock;
	int order[NASYNC * 2]; /* slots in callback order */
	int n;
	int calls[NASYNC];
	int err[NASYNC];
	uint32_t written[NASYNC];
	pthread_t thread[NASYNC];
};

struct aslot {
	struct arec *r;
	int i;
};

static void arec_done(void *ctx, int err, uint32_t written)
{
	struct aslot *s = ctx;
	struct arec *r = s->r;
	pthread_mutex_lock(&r->lock);
	if (r->n < NASYNC * 2)
		r->order[r->n++] = s->i;
	r->calls[s->i]++;
	r->err[s->i] = err;
	r->written[s->i] = written;
	r->thread[s->i] = pthread_self();
	pthread_mutex_unlock(&r->lock);
}

static int arec_wait(struct arec *r, int want, int ms)
{
	double end = now_s() + ms / 1000.0;
	pthread_mutex_lock(&r->lock);
	while (r->n < want && now_s() < end) {
		pthread_mutex_unlock(&r->lock);
		sleep_ms(2);
		pthread_mutex_lock(&r->lock);
	}
	int n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Sends NASYNC writes of fh 8 (slot 3's data is wrong, so the fake answers
 * EIO), reusing one buffer: the frame must be on the channel when the call
 * returns. */
static void send_async_batch(struct vp_client *c, struct arec *r, struct aslot *slots)
{
	uint32_t size = 100000;
	uint8_t *buf = malloc(size);
	for (int i = 0; i < NASYNC; i++) {
		uint64_t off = (uint64_t)i * size;
		for (uint32_t k = 0; k < size; k++)
			buf[k] = pattern(8, off + k + (i == 3));
		slots[i] = (struct aslot){ r, i };
		CHECK_EQ(vp_fs_write_async(c, 8, off, buf, size, arec_done, &slots[i]), 0);
		memset(buf, 0xee, size); /* too late to matter */
	}
	free(buf);
}

static void test_write_async(void)
{
	struct arec r;
	struct aslot slots[NASYNC];
	/* In order: callbacks in the order of the replies. */
	struct peer p;
	struct vp_client *c = start(&p, run_ready_serve, NULL);
	CHECK_EQ(vp_client_handshake(c, 2000), 0);
	memset(&r, 0, sizeof r);
	pthread_mutex_init(&r.lock, NULL);
	send_async_batch(c, &r, slots);
	CHECK_EQ(arec_wait(&r, NASYNC, 2000), NASYNC);
	for (int i = 0; i < NASYNC; i++) {
		CHECK_EQ(r.order[i], i);
		CHECK_EQ(r.calls[i], 1);
		CHECK_EQ(r.err[i], i == 3 ? -EIO : 0);
		CHECK_EQ(r.written[i], i == 3 ? 0u : 100000u);
		CHECK(!pthread_equal(r.thread[i], pthread_self())); /* the reader's */
	}
	/* Refused at once: no callback. */
	uint8_t one = 0;
	CHECK_EQ(vp_fs_write_async(c, 8, 0, &one, VP_MAX_DATA + 1, arec_done, &slots[0]), -EINVAL);
	CHECK_EQ(vp_fs_write_async(c, 8, 0, &one, 1, NULL, NULL), -EINVAL);
	/* A synchronous call after them still works (ids, table). */
	CHECK_EQ(vp_ping(c), 0);
	CHECK_EQ(r.n, NASYNC);
	CHECK_EQ(finish(c, &p), 0);
	pthread_mutex_destroy(&r.lock);

	/* Replies out of order: each callback still exactly once, its own. */
	c = start(&p, run_batch_reverse, NULL);
	memset(&r, 0, sizeof r);
	pthread_mutex_init(&r.lock, NULL);
	send_async_batch(c, &r, slots);
	CHECK_EQ(arec_wait(&r, NASYNC, 2000), NASYNC);
	for (int i = 0; i < NASYNC; i++) {
		CHECK_EQ(r.calls[i], 1);
		CHECK_EQ(r.err[i], i == 3 ? -EIO : 0);
		CHECK_EQ(r.written[i], i == 3 ? 0u : 100000u);
	}
	CHECK_EQ(finish(c, &p), 0);
	CHECK_EQ(r.n, NASYNC);
	pthread_mutex_destroy(&r.lock);
}

/* Writes the guest never answers end with the channel: shut down (then
 * later writes are refused and never call back) or freed. */
static void test_write_async_death(void)
{
	for (int how = 0; how < 2; how++) {
		struct arec r;
		struct aslot slots[NASYNC];
		struct peer p;
		struct vp_client *c = start(&p, run_silent, NULL);
		memset(&r, 0, sizeof r);
		pthread_mutex_init(&r.lock, NULL);
		send_async_batch(c, &r, slots);
		for (int i = 0; i < 400 && atomic_load(&p.requests) < NASYNC; i++)
			sleep_ms(5);
		CHECK_EQ(atomic_load(&p.requests), NASYNC);
		sleep_ms(20);
		CHECK_EQ(r.n, 0);
		double t0 = now_s();
		if (how == 0) {
			vp_client_shutdown(c);
			CHECK_EQ(arec_wait(&r, NASYNC, 2000), NASYNC);
			uint8_t one = 0;
			struct aslot late = { &r, 0 };
			CHECK_EQ(vp_fs_write_async(c, 8, 0, &one, 1, arec_done, &late), -ECONNRESET);
			CHECK_EQ(finish(c, &p), 0);
		} else {
			CHECK_EQ(finish(c, &p), 0); /* free sweeps them */
		}
		CHECK(now_s() - t0 < 2.0);
		CHECK_EQ(r.n, NASYNC);
		for (int i = 0; i < NASYNC; i++) {
			CHECK_EQ(r.calls[i], 1);
			CHECK_EQ(r.err[i], -ECONNRESET);
			CHECK_EQ(r.written[i], 0u);
		}
		pthread_mutex_destroy(&r.lock);
	}
}

/* ---- tests: handshake ------------------------------------------------------------- */

static void run_refuse_version(struct peer *p)
{
	struct vp_hdr h;
	uint8_t *pl;
	peer_ready0(p);
	while (peer_read(p, &h, &pl) == 0) {
		struct vp_hello hello;
		PEER_EXPECT(p, h.type == VP_HELLO && vp_dec_hello(pl, h.len, &hello) == 0);
		PEER_EXPECT(p, hello.min_version == 1 && hello.max_version == 1);
		if (p->arg) {
			struct vp_buf b;
			vp_buf_init(&b);
			vp_enc_ready(&b, &(struct vp_ready){ 2, 0, { NULL, 0 } });
			peer_send(p, VP_READY, h.id, &b);
			vp_buf_free(&b);
		} else {
			peer_error(p, h.id, EPROTONOSUPPORT);
		}
		free(pl);
	}
}

static void run_silent(struct peer *p)
{
	struct vp_hdr h;
	uint8_t *pl;
	while (peer_read(p, &h, &pl) == 0)
		free(pl);
}

/* One handshake, full or resumed, against a fake agent: its result; a
 * successful one is followed by a PING, a refused one leaves the channel
 * up. *took is how long the handshake took. */
static int handshake_with(void (*run)(struct peer *), void *arg, bool resumed, int ms, double *took)
{
	struct peer p;
	struct vp_client *c = start(&p, run, arg);
	double t0 = now_s();
	int rc = resumed ? vp_client_handshake_resumed(c, ms) : vp_client_handshake(c, ms);
	*took = now_s() - t0;
	if (rc == 0)
		CHECK_EQ(vp_ping(c), 0);
	if (rc == 0 || rc == -EPROTONOSUPPORT)
		CHECK(vp_client_alive(c));
	CHECK_EQ(finish(c, &p), 0);
	return rc;
}

static void test_handshake(void)
{
	double dt;
	CHECK_EQ(handshake_with(run_ready_serve, NULL, false, 2000, &dt), 0);
}

static void test_handshake_failures(void)
{
	double dt;
	CHECK_EQ(handshake_with(run_refuse_version, NULL, false, 2000, &dt), -EPROTONOSUPPORT);
	CHECK_EQ(handshake_with(run_refuse_version, (void *)1, false, 2000, &dt), -EPROTO);
	/* No READY at all. */
	CHECK_EQ(handshake_with(run_silent, NULL, false, 200, &dt), -ETIMEDOUT);
	CHECK(dt >= 0.19 && dt < 1.5);
}

/* A restored machine's agent said READY before its snapshot was taken: the
 * resumed handshake is HELLO → READY alone, still bounded. */
static void test_handshake_resumed(void)
{
	double dt;
	CHECK_EQ(handshake_with(run_serve, NULL, true, 2000, &dt), 0);
	CHECK_EQ(handshake_with(run_refuse_version, NULL, true, 2000, &dt), -EPROTONOSUPPORT);
	CHECK_EQ(handshake_with(run_silent, NULL, true, 200, &dt), -ETIMEDOUT);
	CHECK(dt >= 0.19 && dt < 1.5);
}

/* ---- tests: every call ------------------------------------------------------------ */

struct dir_acc {
	char names[NDIRENTS][16];
	uint64_t next;
	unsigned n;
	unsigned stop_after; /* refuse the entry after this many (0 = never) */
};

static int dir_fn(void *ctx, const struct vp_dirent *d)
{
	struct dir_acc *a = ctx;
	if (a->stop_after && a->n == a->stop_after)
		return 1;
	if (a->n < NDIRENTS && d->name.len < 16) {
		memcpy(a->names[a->n], d->name.p, d->name.len);
		a->names[a->n][d->name.len] = '\0';
	}
	a->n++;
	a->next = d->next_offset;
	return 0;
}

static void test_calls(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_ready_serve, NULL);
	CHECK_EQ(vp_client_handshake(c, 2000), 0);

	struct vp_entry e;
	CHECK_EQ(vp_fs_lookup(c, 7, "abc", &e), 0);
	CHECK(e.node == 7003 && e.attr.ino == 7003 && e.attr.size == 14006);
	struct vp_attr a;
	CHECK_EQ(vp_fs_getattr(c, 9, &a), 0);
	CHECK(a.ino == 9 && a.size == 18);
	struct vp_setattr sa = { .node = 4, .valid = VP_SET_SIZE | VP_SET_MODE, .size = 123, .mode = 0100600 };
	CHECK_EQ(vp_fs_setattr(c, &sa, &a), 0);
	CHECK(a.size == 123 && a.mode == 0100600);
	char link[64];
	CHECK_EQ(vp_fs_readlink(c, 5, link, sizeof link), 0);
	CHECK(strcmp(link, "target-5") == 0);
	CHECK_EQ(vp_fs_readlink(c, 5, link, 8), -ENAMETOOLONG);
	CHECK_EQ(vp_fs_readlink(c, 5, link, 9), 0);
	CHECK_EQ(vp_fs_mknod(c, 1, "fifo", 010644, 0, &e), 0);
	CHECK_EQ(e.node, 500 + VP_FS_MKNOD);
	CHECK_EQ(vp_fs_mkdir(c, 1, "d", 040755, &e), 0);
	CHECK_EQ(e.node, 500 + VP_FS_MKDIR);
	CHECK_EQ(vp_fs_unlink(c, 1, "f"), 0);
	CHECK_EQ(vp_fs_rmdir(c, 1, "d"), 0);
	CHECK_EQ(vp_fs_symlink(c, 1, "l", "/a/b/../c", &e), 0);
	CHECK_EQ(e.node, 500 + VP_FS_SYMLINK);
	CHECK_EQ(vp_fs_rename(c, 1, "a", 2, "b", 0), 0);
	CHECK_EQ(vp_fs_link(c, 3, 1, "h", &e), 0);
	CHECK_EQ(e.node, 500 + VP_FS_LINK);
	uint64_t fh = 0;
	CHECK_EQ(vp_fs_open(c, 5, 0, &fh), 0);
	CHECK_EQ(fh, 10005);
	CHECK_EQ(vp_fs_create(c, 1, "new", 0101, 0644, &fh, &e), 0);
	CHECK(fh == 777 && e.node == 778);

	/* READ straight into the buffer, short at EOF, empty past it. */
	uint8_t *buf = malloc(VP_MAX_DATA);
	uint32_t got = 0;
	CHECK_EQ(vp_fs_read(c, 3, 1000, buf, 70000, &got), 0);
	CHECK_EQ(got, 70000);
	bool same = true;
	for (uint32_t i = 0; i < got; i++)
		same &= buf[i] == pattern(3, 1000 + i);
	CHECK(same);
	CHECK_EQ(vp_fs_read(c, 3, FILE_LEN - 10, buf, VP_MAX_DATA, &got), 0);
	CHECK_EQ(got, 10);
	CHECK_EQ(buf[9], pattern(3, FILE_LEN - 1));
	CHECK_EQ(vp_fs_read(c, 3, FILE_LEN, buf, 100, &got), 0);
	CHECK_EQ(got, 0);
	CHECK_EQ(vp_fs_read(c, 3, 0, buf, VP_MAX_DATA, &got), 0);
	CHECK_EQ(got, VP_MAX_DATA);
	CHECK_EQ(vp_fs_read(c, 3, 0, buf, VP_MAX_DATA + 1, &got), -EINVAL);

	uint32_t w = 0;
	for (uint32_t i = 0; i < VP_MAX_DATA; i++)
		buf[i] = pattern(8, 50 + i);
	CHECK_EQ(vp_fs_write(c, 8, 50, buf, VP_MAX_DATA, &w), 0);
	CHECK_EQ(w, VP_MAX_DATA);
	CHECK_EQ(vp_fs_write(c, 8, 51, buf, 10, &w), -EIO); /* the fake checks the bytes */
	CHECK_EQ(vp_fs_write(c, 8, 0, buf, VP_MAX_DATA + 1, &w), -EINVAL);
	free(buf);

	CHECK_EQ(vp_fs_fsync(c, 8, true), 0);
	CHECK_EQ(vp_fs_close(c, 8), 0);
	CHECK_EQ(vp_fs_opendir(c, 1, &fh), 0);
	CHECK_EQ(fh, 10001);

	struct dir_acc d = { 0 };
	uint32_t cnt;
	int rounds = 0;
	do {
		CHECK_EQ(vp_fs_readdir(c, fh, d.next, 4096, dir_fn, &d, &cnt), 0);
	} while (cnt && ++rounds < 20);
	CHECK_EQ(d.n, NDIRENTS);
	CHECK(strcmp(d.names[0], "e0") == 0 && strcmp(d.names[9], "e9") == 0);
	struct dir_acc d2 = { .stop_after = 2 };
	CHECK_EQ(vp_fs_readdir(c, fh, 0, 4096, dir_fn, &d2, &cnt), 0);
	CHECK(cnt == 2 && d2.n == 2 && d2.next == 2);

	struct vp_statfs sf;
	CHECK_EQ(vp_fs_statfs(c, 1, &sf), 0);
	CHECK(sf.blocks == 1 && sf.ffree == 5 && sf.namemax == 255);

	/* Arguments refused before anything is sent. */
	int before = atomic_load(&p.requests);
	char longname[VP_MAX_NAME + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK_EQ(vp_fs_lookup(c, 1, "a/b", &e), -EINVAL);
	CHECK_EQ(vp_fs_lookup(c, 1, ".", &e), -EINVAL);
	CHECK_EQ(vp_fs_lookup(c, 1, "..", &e), -EINVAL);
	CHECK_EQ(vp_fs_lookup(c, 1, "", &e), -EINVAL);
	CHECK_EQ(vp_fs_lookup(c, 1, longname, &e), -ENAMETOOLONG);
	CHECK_EQ(vp_fs_rename(c, 1, "ok", 1, "x/y", 0), -EINVAL);
	CHECK_EQ(vp_exec_signal(c, 1, 0), -EINVAL);
	CHECK_EQ(vp_fs_lookup(c, 0, "x", &e), -EINVAL); /* node 0 does not exist */
	CHECK_EQ(atomic_load(&p.requests), before);

	vp_fs_forget(c, 7003, 1);
	vp_fs_forget(c, 778, 2);

	CHECK_EQ(vp_ping(c), 0); /* also orders the FORGETs before the count */
	CHECK_EQ(atomic_load(&p.forgets), 2);
	CHECK(vp_client_alive(c));
	CHECK_EQ(finish(c, &p), 0);
}

static void test_error_mapping(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_serve, NULL);
	struct vp_entry e;
	CHECK_EQ(vp_fs_lookup(c, 1, "err2", &e), -ENOENT);
	CHECK_EQ(vp_fs_lookup(c, 1, "err13", &e), -EACCES);
	CHECK_EQ(vp_fs_lookup(c, 1, "err4095", &e), -4095);
	CHECK_EQ(vp_fs_lookup(c, 1, "err0", &e), -EIO);
	CHECK_EQ(vp_fs_lookup(c, 1, "err4096", &e), -EIO);
	CHECK_EQ(vp_fs_lookup(c, 1, "err-5", &e), -EIO);
	CHECK_EQ(vp_fs_lookup(c, 1, "err2147483647", &e), -EIO);
	CHECK_EQ(vp_exec_signal(c, 0xdead, 9), -ESRCH);
	CHECK(vp_client_alive(c));
	CHECK_EQ(finish(c, &p), 0);
}

/* ---- tests: concurrency --------------------------------------------------------------- */

struct worker {
	struct vp_client *c;
	int idx;
	int failures;
};

/* Runs fn on n (≤ 8) threads against c; their failures, summed. */
static int run_workers(struct vp_client *c, void *(*fn)(void *), int n)
{
	struct worker w[8];
	pthread_t t[8];
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .c = c, .idx = i };
		pthread_create(&t[i], NULL, fn, &w[i]);
	}
	int failures = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		failures += w[i].failures;
	}
	return failures;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf = malloc(65536);
	unsigned seed = (unsigned)w->idx * 7919u + 1;
	for (int i = 0; i < 300; i++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t node = (uint64_t)w->idx * 100000 + (uint64_t)i + 1;
		switch (i % 4) {
		case 0: {
			struct vp_attr a;
			if (vp_fs_getattr(w->c, node, &a) || a.ino != node)
				w->failures++;
			break;
		}
		case 1: {
			char name[32];
			int n = snprintf(name, sizeof name, "n%d-%d", w->idx, i);
			struct vp_entry e;
			if (vp_fs_lookup(w->c, node, name, &e) || e.node != node * 1000 + (uint64_t)n)
				w->failures++;
			break;
		}
		case 2: {
			uint64_t off = seed % FILE_LEN;
			uint32_t size = 1 + seed % 65536, got = 0;
			if (vp_fs_read(w->c, node, off, buf, size, &got)) {
				w->failures++;
				break;
			}
			uint32_t want = FILE_LEN - off < size ? (uint32_t)(FILE_LEN - off) : size;
			if (got != want)
				w->failures++;
			for (uint32_t k = 0; k < got; k++)
				if (buf[k] != pattern(node, off + k)) {
					w->failures++;
					break;
				}
			break;
		}
		case 3: {
			uint32_t size = 1 + seed % 4096, wr = 0;
			for (uint32_t k = 0; k < size; k++)
				buf[k] = pattern(node, 9 + k);
			if (vp_fs_write(w->c, node, 9, buf, size, &wr) || wr != size)
				w->failures++;
			break;
		}
		}
	}
	free(buf);
	return NULL;
}

static void test_concurrent_out_of_order(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_batch_reverse, NULL);
	CHECK_EQ(run_workers(c, worker_main, 8), 0);
	CHECK_EQ(atomic_load(&p.requests), 8 * 300);
	CHECK(vp_client_alive(c));
	CHECK_EQ(finish(c, &p), 0);
}

/* ---- tests: exec ------------------------------------------------------------------- */

#define BIG_OUT (256u * 1024u)

static void run_exec(struct peer *p)
{
	struct vp_hdr h;
	uint8_t *pl;
	struct vp_buf b;
	vp_buf_init(&b);
	while (peer_read(p, &h, &pl) == 0) {
		if (h.type != VP_EXEC) {
			fake_reply(p, &h, pl);
			free(pl);
			continue;
		}
		struct vp_exec *ex = malloc(sizeof *ex);
		PEER_EXPECT(p, vp_dec_exec(pl, h.len, ex) == 0);
		bool refuse = ex->cmd.len == 4 && memcmp(ex->cmd.p, "nope", 4) == 0;
		PEER_EXPECT(p, ex->nenv == 1 || refuse);
		free(ex);
		free(pl);
		if (refuse) {
			peer_error(p, h.id, ENOENT);
			continue;
		}
		uint32_t id = h.id;
		vp_enc_exec_started(&b, &(struct vp_exec_started){ 321 });
		peer_send(p, VP_EXEC_STARTED, id, &b);
		/* Output chunks; the client must ack each with its length. */
		uint8_t *big = malloc(BIG_OUT);
		for (uint32_t i = 0; i < BIG_OUT; i++)
			big[i] = (uint8_t)('a' + i % 26);
		struct {
			uint8_t stream;
			const void *p;
			uint32_t len;
		} chunks[] = {
			{ 1, "line1\n", 6 }, { 2, "err1\n", 5 }, { 1, "line2\n", 6 },
			{ 1, big, BIG_OUT }, { 2, "err2\n", 5 },
		};
		uint32_t sent = 0, acked = 0, nacks = 0;
		for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
			vp_enc_output(&b,
				      &(struct vp_output){ chunks[i].stream, { chunks[i].p, chunks[i].len } });
			peer_send(p, VP_OUTPUT, id, &b);
			sent += chunks[i].len;
		}
		free(big);
		/* Collect ACKs (and serve STDIN/SIGNAL in between) until all is acked. */
		while (acked < sent && peer_read(p, &h, &pl) == 0) {
			if (h.type == VP_OUTPUT_ACK) {
				struct vp_output_ack a;
				PEER_EXPECT(p, vp_dec_output_ack(pl, h.len, &a) == 0);
				PEER_EXPECT(p, h.id == 0 && a.exec_id == id);
				PEER_EXPECT(p, a.bytes == chunks[nacks].len);
				acked += a.bytes;
				nacks++;
			} else {
				if (h.type == VP_STDIN) {
					struct vp_stdin s;
					PEER_EXPECT(p, vp_dec_stdin(pl, h.len, &s) == 0);
					PEER_EXPECT(p, s.exec_id == id && s.eof == 1 && s.data.len == 5);
				}
				fake_reply(p, &h, pl);
			}
			free(pl);
		}
		PEER_EXPECT(p, acked == sent);
		vp_enc_exit(&b, &(struct vp_exit){ 3, 0, 0, 4242 });
		peer_send(p, VP_EXIT, id, &b);
	}
	vp_buf_free(&b);
}

static void test_exec(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_exec, NULL);
	struct exec_rec *r = malloc(sizeof *r);
	rec_init(r);
	struct vp_exec ex = simple_exec("make -j2");
	ex.nenv = 1;
	ex.env[0] = (struct vp_bytes){ (const uint8_t *)"A=B", 3 };
	ex.flags = VP_EXEC_STDIN;
	uint32_t id = 0;
	CHECK_EQ(vp_exec_start(c, &ex, &rec_cb, r, &id), 0);
	CHECK(id != 0);
	CHECK_EQ(r->started, 1); /* on_started ran before vp_exec_start returned */
	CHECK_EQ(r->pid, 321);
	CHECK_EQ(vp_exec_stdin(c, id, "input", 5, true), 0);
	CHECK_EQ(vp_exec_signal(c, id, SIGTERM), 0);
	CHECK_EQ(rec_wait_exit(r, 5000), 1);
	CHECK_EQ(r->exit_err, 0);
	CHECK(r->ex.code == 3 && r->ex.duration_us == 4242);
	CHECK_EQ(r->out_len, 12 + BIG_OUT);
	CHECK(memcmp(r->out, "line1\nline2\n", 12) == 0);
	bool same = true;
	for (uint32_t i = 0; i < BIG_OUT; i++)
		same &= r->out[12 + i] == (char)('a' + i % 26);
	CHECK(same);
	CHECK(r->err_len == 10 && memcmp(r->err, "err1\nerr2\n", 10) == 0);

	/* Refused: -errno and no callback. */
	struct exec_rec *r2 = malloc(sizeof *r2);
	rec_init(r2);
	struct vp_exec bad = simple_exec("nope");
	CHECK_EQ(vp_exec_start(c, &bad, &rec_cb, r2, &id), -ENOENT);
	CHECK(r2->started == 0 && r2->exits == 0);
	struct vp_exec_cb nocb = { NULL, NULL, on_exit_cb };
	CHECK_EQ(vp_exec_start(c, &ex, &nocb, r2, &id), -EINVAL);

	CHECK_EQ(vp_ping(c), 0);
	CHECK_EQ(finish(c, &p), 0);
	CHECK_EQ(r->exits, 1);
	CHECK_EQ(r->after_exit, 0);
	CHECK(r2->started == 0 && r2->exits == 0);
	rec_destroy(r);
	rec_destroy(r2);
	free(r);
	free(r2);
}

/* A callback that makes a synchronous call would wait for a reply that only
 * its own thread can read: refused with -EDEADLK instead of hanging. */
static void test_callback_deadlock_refused(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_exec, NULL);
	struct exec_rec *r = malloc(sizeof *r);
	rec_init(r);
	r->c = c;
	struct vp_exec ex = simple_exec("x");
	ex.nenv = 1;
	ex.env[0] = (struct vp_bytes){ (const uint8_t *)"A=B", 3 };
	uint32_t id;
	CHECK_EQ(vp_exec_start(c, &ex, &rec_cb, r, &id), 0);
	CHECK_EQ(vp_exec_stdin(c, id, "input", 5, true), 0);
	CHECK_EQ(rec_wait_exit(r, 5000), 1);
	CHECK_EQ(r->nested, -EDEADLK);
	CHECK_EQ(finish(c, &p), 0);
	rec_destroy(r);
	free(r);
}

/* ---- tests: timeouts and late replies ---------------------------------------------- */

static void expect_frame(struct peer *p, uint16_t type, struct vp_hdr *h, uint8_t **pl)
{
	int e = peer_read(p, h, pl);
	PEER_EXPECT(p, e == 0);
	if (e == 0 && h->type != type)
		printf("#   peer got %s, expected %s\n", vp_type_name(h->type), vp_type_name(type));
	PEER_EXPECT(p, e == 0 && h->type == type);
}

static void answer_ping(struct peer *p)
{
	struct vp_hdr h;
	uint8_t *pl;
	expect_frame(p, VP_PING, &h, &pl);
	fake_reply(p, &h, pl);
	free(pl);
}

/* Answers a request of this type once the client gave up on it, then the
 * PING that the client sends after a timeout. */
static void answer_late(struct peer *p, uint16_t type)
{
	struct vp_hdr h;
	uint8_t *pl;
	expect_frame(p, type, &h, &pl);
	sleep_ms(400);
	fake_reply(p, &h, pl);
	free(pl);
	answer_ping(p);
}

/* Reads a file request of this type into *m. */
static void expect_fs_req(struct peer *p, uint16_t type, struct vp_hdr *h, struct vp_fs_req *m)
{
	uint8_t *pl;
	expect_frame(p, type, h, &pl);
	PEER_EXPECT(p, vp_dec_fs_req(pl, h->len, type, m) == 0);
	free(pl);
}

static void run_late(struct peer *p)
{
	struct vp_hdr h;
	uint8_t *pl;
	struct vp_fs_req m;
	struct vp_buf b;
	vp_buf_init(&b);

	/* 1. GETATTR answered too late: simply dropped. */
	answer_late(p, VP_FS_GETATTR);

	/* 2. LOOKUP too late: the client forgets the entry it never returned.
	 * (Each timed-out call is followed by a PING from the client, and the
	 * cleanup reaches the wire before the PONG is read.) */
	answer_late(p, VP_FS_LOOKUP);
	expect_fs_req(p, VP_FS_FORGET, &h, &m);
	PEER_EXPECT(p, m.node == 1003 && m.nlookup == 1);

	/* 3. OPEN too late: the client closes the handle. */
	answer_late(p, VP_FS_OPEN);
	expect_fs_req(p, VP_FS_CLOSE, &h, &m);
	PEER_EXPECT(p, m.fh == 10006);
	peer_ok(p, h.id);

	/* 4. CREATE too late: forget + close. */
	answer_late(p, VP_FS_CREATE);
	expect_fs_req(p, VP_FS_FORGET, &h, &m);
	PEER_EXPECT(p, m.node == 778);
	expect_fs_req(p, VP_FS_CLOSE, &h, &m);
	PEER_EXPECT(p, m.fh == 777);
	peer_error(p, h.id, EBADF); /* an error for a cleanup is dropped as well */

	/* 5. EXEC_STARTED too late: the client kills it, acks and drops its output. */
	expect_frame(p, VP_EXEC, &h, &pl);
	uint32_t id = h.id;
	free(pl);
	sleep_ms(400);
	vp_enc_exec_started(&b, &(struct vp_exec_started){ 9 });
	peer_send(p, VP_EXEC_STARTED, id, &b);
	vp_enc_output(&b, &(struct vp_output){ 1, { (const uint8_t *)"zzz", 3 } });
	peer_send(p, VP_OUTPUT, id, &b);
	bool killed = false, acked = false, pinged = false;
	while (!(killed && acked && pinged) && peer_read(p, &h, &pl) == 0) {
		if (h.type == VP_PING) {
			fake_reply(p, &h, pl);
			pinged = true;
		} else if (h.type == VP_SIGNAL) {
			struct vp_signal s;
			PEER_EXPECT(p, vp_dec_signal(pl, h.len, &s) == 0 && s.exec_id == id &&
					       s.signo == SIGKILL);
			peer_ok(p, h.id);
			killed = true;
		} else if (h.type == VP_OUTPUT_ACK) {
			struct vp_output_ack a;
			PEER_EXPECT(p,
				    vp_dec_output_ack(pl, h.len, &a) == 0 && a.exec_id == id && a.bytes == 3);
			acked = true;
		} else {
			PEER_EXPECT(p, false);
		}
		free(pl);
	}
	vp_enc_exit(&b, &(struct vp_exit){ -1, 9, 0, 1 });
	peer_send(p, VP_EXIT, id, &b);

	/* 6. Serve normally: the channel is still in sync. */
	vp_buf_free(&b);
	run_serve(p);
}

static void test_timeout_late_reply(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_late, NULL);
	vp_client_set_timeout(c, 150);
	struct vp_attr a;
	double t0 = now_s();
	CHECK_EQ(vp_fs_getattr(c, 3, &a), -ETIMEDOUT);
	double dt = now_s() - t0;
	CHECK(dt >= 0.14 && dt < 1.0);
	vp_client_set_timeout(c, 5000);
	CHECK_EQ(vp_ping(c), 0); /* the late ATTR arrived before PONG and was dropped */

	/* Each timeout is followed by a PING that the peer expects. */
	struct vp_entry e;
	uint64_t fh;
	vp_client_set_timeout(c, 150);
	CHECK_EQ(vp_fs_lookup(c, 1, "abc", &e), -ETIMEDOUT);
	vp_client_set_timeout(c, 5000);
	CHECK_EQ(vp_ping(c), 0);
	vp_client_set_timeout(c, 150);
	CHECK_EQ(vp_fs_open(c, 6, 0, &fh), -ETIMEDOUT);
	vp_client_set_timeout(c, 5000);
	CHECK_EQ(vp_ping(c), 0);
	vp_client_set_timeout(c, 150);
	CHECK_EQ(vp_fs_create(c, 1, "f", 0, 0644, &fh, &e), -ETIMEDOUT);
	vp_client_set_timeout(c, 5000);
	CHECK_EQ(vp_ping(c), 0);

	struct exec_rec *r = malloc(sizeof *r);
	rec_init(r);
	struct vp_exec ex = simple_exec("sleep 1");
	uint32_t id;
	vp_client_set_timeout(c, 150);
	CHECK_EQ(vp_exec_start(c, &ex, &rec_cb, r, &id), -ETIMEDOUT);
	vp_client_set_timeout(c, 5000);
	CHECK_EQ(vp_ping(c), 0);
	/* The peer only serves again after the whole late sequence. */
	CHECK_EQ(vp_fs_getattr(c, 11, &a), 0);
	CHECK_EQ(a.ino, 11);
	CHECK(vp_client_alive(c));
	CHECK_EQ(finish(c, &p), 0);
	CHECK(r->started == 0 && r->exits == 0 && r->out_len == 0);
	rec_destroy(r);
	free(r);
}

/* ---- tests: the channel dies -------------------------------------------------------- */

enum death {
	D_CLOSE_MID_FRAME,
	D_GARBAGE,
	D_OVERSIZE,
	D_UNKNOWN_ID,
	D_BAD_PAYLOAD,
	D_WRONG_TYPE,
	D_ID0,
	D_BAD_FLAGS,
	D_READ_TOO_LONG,
	D_SHUTDOWN,
	D_FREE,
	D_COUNT
};
static const char *const death_names[] = {
	"peer closes mid-frame",  "garbage",
	"oversize header",	  "unknown id",
	"malformed payload",	  "wrong reply type",
	"unsolicited frame",	  "nonzero flags",
	"DATA longer than asked", "vp_client_shutdown",
	"vp_client_free",
};

#define NBLOCKED 4

/* Starts an exec, swallows NBLOCKED getattrs and one read, then breaks
 * the channel as told. */
static void run_death(struct peer *p)
{
	enum death how = (enum death)(intptr_t)p->arg;
	struct vp_hdr h;
	uint8_t *pl;
	struct vp_buf b;
	vp_buf_init(&b);
	expect_frame(p, VP_EXEC, &h, &pl);
	free(pl);
	vp_enc_exec_started(&b, &(struct vp_exec_started){ 1 });
	peer_send(p, VP_EXEC_STARTED, h.id, &b);
	uint32_t exec_id = h.id, some_id = 0, read_id = 0;
	for (int i = 0; i < NBLOCKED + 1; i++) {
		if (peer_read(p, &h, &pl))
			break;
		if (h.type == VP_FS_READ)
			read_id = h.id;
		else
			some_id = h.id;
		free(pl);
	}
	uint8_t raw[64];
	memset(raw, 0xa5, sizeof raw);
	struct vp_hdr bad = { 0 };
	switch (how) {
	case D_CLOSE_MID_FRAME:
		bad = (struct vp_hdr){ .len = 84, .type = VP_FS_ATTR, .id = some_id };
		vp_hdr_encode(raw, &bad);
		PEER_EXPECT(p, write(p->fd, raw, VP_HDR_SIZE + 20) == VP_HDR_SIZE + 20);
		shutdown(p->fd, SHUT_WR);
		break;
	case D_GARBAGE:
		/* A plausible length, then nonsense. */
		raw[0] = 4;
		raw[1] = raw[2] = raw[3] = 0;
		PEER_EXPECT(p, write(p->fd, raw, sizeof raw) == sizeof raw);
		break;
	case D_OVERSIZE:
		bad = (struct vp_hdr){ .len = VP_MAX_PAYLOAD + 1, .type = VP_FS_DATA, .id = read_id };
		vp_hdr_encode(raw, &bad);
		PEER_EXPECT(p, write(p->fd, raw, VP_HDR_SIZE) == VP_HDR_SIZE);
		break;
	case D_UNKNOWN_ID: peer_ok(p, 0x7777777); break;
	case D_BAD_PAYLOAD:
		vp_put_u64(&b, 5); /* ATTR of 8 bytes */
		peer_send(p, VP_FS_ATTR, some_id, &b);
		break;
	case D_WRONG_TYPE:
		peer_ok(p, some_id); /* GETATTR wants ATTR */
		break;
	case D_ID0: peer_ok(p, 0); break;
	case D_BAD_FLAGS:
		bad = (struct vp_hdr){ .len = 0, .type = VP_OK, .flags = 1, .id = some_id };
		vp_hdr_encode(raw, &bad);
		PEER_EXPECT(p, write(p->fd, raw, VP_HDR_SIZE) == VP_HDR_SIZE);
		break;
	case D_READ_TOO_LONG:
		vp_put_u32(&b, 200); /* the read asked for 100 */
		for (int i = 0; i < 200; i++)
			vp_put_u8(&b, 1);
		peer_send(p, VP_FS_DATA, read_id, &b);
		break;
	default: break;
	}
	(void)exec_id;
	/* Keep the socket open: the client must not need our EOF to notice. */
	while (peer_read(p, &h, &pl) == 0)
		free(pl);
	vp_buf_free(&b);
}

struct blocked {
	struct vp_client *c;
	uint64_t node;
	int result;
	double done_at;
	bool is_read;
};

static void *blocked_main(void *arg)
{
	struct blocked *b = arg;
	if (b->is_read) {
		uint8_t buf[100];
		uint32_t got;
		b->result = vp_fs_read(b->c, 1, 0, buf, sizeof buf, &got);
	} else {
		struct vp_attr a;
		b->result = vp_fs_getattr(b->c, b->node, &a);
	}
	b->done_at = now_s();
	return NULL;
}

static void test_death(enum death how)
{
	struct peer p;
	struct vp_client *c = start(&p, run_death, (void *)(intptr_t)how);
	vp_client_set_timeout(c, 30000);
	struct exec_rec *r = malloc(sizeof *r);
	rec_init(r);
	struct vp_exec ex = simple_exec("sleep 100");
	uint32_t id;
	CHECK_EQ(vp_exec_start(c, &ex, &rec_cb, r, &id), 0);
	struct blocked b[NBLOCKED + 1];
	pthread_t t[NBLOCKED + 1];
	for (int i = 0; i <= NBLOCKED; i++) {
		b[i] = (struct blocked){ .c = c,
					 .node = (uint64_t)i + 1,
					 .result = 1,
					 .is_read = i == NBLOCKED };
		pthread_create(&t[i], NULL, blocked_main, &b[i]);
	}
	/* Let every request reach the peer before it breaks the channel. */
	for (int i = 0; i < 400 && atomic_load(&p.requests) < NBLOCKED + 2; i++)
		sleep_ms(5);
	CHECK_EQ(atomic_load(&p.requests), NBLOCKED + 2);
	double t0 = now_s();
	if (how == D_SHUTDOWN)
		vp_client_shutdown(c);
	if (how == D_FREE) {
		vp_client_free(c);
		c = NULL;
	}
	for (int i = 0; i <= NBLOCKED; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(b[i].result, -ECONNRESET);
		CHECK(b[i].done_at - t0 < 2.0);
	}
	CHECK_EQ(rec_wait_exit(r, 2000), 1);
	CHECK_EQ(r->exit_err, -ECONNRESET);
	CHECK(now_s() - t0 < 2.0);
	if (c) {
		CHECK(!vp_client_alive(c));
		/* Later calls fail at once. */
		struct vp_attr a;
		double t1 = now_s();
		CHECK_EQ(vp_fs_getattr(c, 1, &a), -ECONNRESET);
		CHECK_EQ(vp_exec_start(c, &ex, &rec_cb, r, &id), -ECONNRESET);
		CHECK_EQ(vp_client_handshake(c, 1000), -ECONNRESET);
		CHECK(now_s() - t1 < 0.5);
		CHECK_EQ(finish(c, &p), 0);
	} else {
		pthread_join(p.thread, NULL);
		close(p.fd);
		CHECK_EQ(atomic_load(&p.errors), 0);
	}
	CHECK_EQ(r->exits, 1);
	CHECK_EQ(r->after_exit, 0);
	rec_destroy(r);
	free(r);
}

/* A waiter in the handshake is woken by free too. */
static void *handshake_main(void *arg)
{
	struct blocked *b = arg;
	b->result = vp_client_handshake(b->c, -1);
	b->done_at = now_s();
	return NULL;
}

static void test_free_during_handshake(void)
{
	struct peer p;
	struct vp_client *c = start(&p, run_silent, NULL);
	struct blocked b = { .c = c, .result = 1 };
	pthread_t t;
	pthread_create(&t, NULL, handshake_main, &b);
	sleep_ms(50);
	double t0 = now_s();
	vp_client_free(c);
	pthread_join(t, NULL);
	CHECK_EQ(b.result, -ECONNRESET);
	CHECK(b.done_at - t0 < 2.0);
	pthread_join(p.thread, NULL);
	close(p.fd);
	vp_client_free(NULL);
}

/* ---- ids wrap (built with a 4-bit id space) ------------------------------------ */
#ifdef VP_CLIENT_ID_MASK

struct wrap_state {
	uint32_t exec_id;
	uint32_t seen[16];
};

/* Batches like run_batch_reverse; checks that no request reuses an id in
 * flight or the running exec's id, and that 0 never appears. */
static void run_wrap(struct peer *p)
{
	struct wrap_state *ws = p->arg;
	struct vp_buf b;
	vp_buf_init(&b);
	struct req batch[16];
	for (;;) {
		int n = read_batch(p, batch, 8);
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			uint32_t id = batch[i].h.id;
			PEER_EXPECT(p, id != 0 && id < 16);
			PEER_EXPECT(p, ws->exec_id == 0 || id != ws->exec_id);
			for (int j = 0; j < i; j++)
				PEER_EXPECT(p, batch[j].h.id != id);
			ws->seen[id & 15]++;
		}
		for (int i = n - 1; i >= 0; i--) {
			if (batch[i].h.type == VP_EXEC) {
				ws->exec_id = batch[i].h.id;
				vp_enc_exec_started(&b, &(struct vp_exec_started){ 5 });
				peer_send(p, VP_EXEC_STARTED, batch[i].h.id, &b);
			} else {
				fake_reply(p, &batch[i].h, batch[i].pl);
			}
			free(batch[i].pl);
		}
	}
	vp_buf_free(&b);
}

static void *pinger(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 40; i++)
		if (vp_ping(w->c))
			w->failures++;
	return NULL;
}

static void test_id_wrap(void)
{
	struct peer p;
	struct wrap_state *ws = calloc(1, sizeof *ws);
	struct vp_client *c = start(&p, run_wrap, ws);
	struct exec_rec *r = malloc(sizeof *r);
	rec_init(r);
	struct vp_exec ex = simple_exec("sleep 100");
	ex.flags = VP_EXEC_STDIN;
	uint32_t id = 0;
	CHECK_EQ(vp_exec_start(c, &ex, &rec_cb, r, &id), 0);
	CHECK_EQ(id, 1);
	CHECK_EQ(run_workers(c, pinger, 4), 0);
	CHECK_EQ(vp_exec_stdin(c, id, "x", 1, true), 0); /* the exec still answers to its id */
	CHECK(vp_client_alive(c));
	CHECK_EQ(finish(c, &p), 0);
	CHECK_EQ(ws->seen[0], 0);
	CHECK_EQ(ws->seen[1], 1); /* only the EXEC itself */
	for (int i = 2; i < 16; i++)
		CHECK(ws->seen[i] >= 5); /* 161 requests over 14 ids: wrapped many times */
	CHECK_EQ(r->exits, 1);
	CHECK_EQ(r->exit_err, -ECONNRESET);
	rec_destroy(r);
	free(r);
	free(ws);
}

#endif

/* Built with VP_CLIENT_ID_MASK the whole suite runs again in a 15-id space,
 * which makes every test wrap the ids. */
int main(void)
{
	alarm(100); /* a hang is a failure */
	static const struct tap_test tests[] = {
		{ "handshake", test_handshake },
		{ "handshake refused, bad version, no READY", test_handshake_failures },
		{ "resumed handshake: HELLO only, refused, silent", test_handshake_resumed },
		{ "every call against the fake agent", test_calls },
		{ "ERROR maps to -errno", test_error_mapping },
		{ "8 threads, replies out of order", test_concurrent_out_of_order },
		{ "exec: started, output in order, acks, exit", test_exec },
		{ "sync call from a callback is refused", test_callback_deadlock_refused },
		{ "timeouts and late replies", test_timeout_late_reply },
		{ "free during handshake", test_free_during_handshake },
		{ "write without waiting: callbacks once each, errors, order", test_write_async },
		{ "write without waiting: channel dies, callbacks -ECONNRESET", test_write_async_death },
#ifdef VP_CLIENT_ID_MASK
		{ "ids wrap, skip 0 and ids in use", test_id_wrap },
#endif
	};
	size_t n = sizeof tests / sizeof tests[0];
	tap_plan((int)(n + D_COUNT));
	tap_run_all(tests, n);
	for (int i = 0; i < D_COUNT; i++) {
		int mark = tap_mark();
		test_death((enum death)i);
		tap_ok_since(mark, "channel dies: %s", death_names[i]);
	}
	return tap_done();
}
