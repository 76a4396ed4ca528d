/* The host client against agents that stall rather than break: one that
 * sends half a frame and stops, one that reads requests and never answers,
 * and one that stops reading so the host's writes fill the socket. A hostile
 * or wedged guest must cost its callers a timeout, never a hang: every call
 * ends within its bound, and vp_client_free returns promptly with no thread
 * left behind. */
#include "proto/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "tests/common/testutil.h"

#define TMO_MS 200
#define TMO_S (TMO_MS / 1000.0)
/* Scheduling slack on a loaded machine (sanitizers, shared cores). */
#define SLACK_S 1.5

/* ---- the fake agent ---------------------------------------------------------- */

enum mode {
	M_HALF_HEADER,	/* answers the first request with 6 bytes of a header */
	M_HALF_PAYLOAD, /* answers it with a whole header and half its payload */
	M_SILENT,	/* reads every request, answers none */
	M_DEAF,		/* stops reading after the handshake until released */
	M_FLOOD,	/* starts an exec and floods OUTPUT without reading */
};

struct agent {
	int fd;
	int release[2]; /* M_DEAF: a byte on release[1] lets it read again */
	pthread_t thread;
	enum mode mode;
	atomic_int requests;
	atomic_int errors;
};

#define AGENT_EXPECT(a, cond)                                                                \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			printf("#   agent %s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
			atomic_fetch_add(&(a)->errors, 1);                                   \
		}                                                                            \
	} while (0)

static int agent_read(struct agent *a, struct vp_hdr *h, uint8_t **pl)
{
	int e = vp_frame_read(a->fd, h, pl);
	if (e == 0)
		atomic_fetch_add(&a->requests, 1);
	return e;
}

static void drain(struct agent *a)
{
	struct vp_hdr h;
	uint8_t *pl;
	while (agent_read(a, &h, &pl) == 0)
		free(pl);
}

static void handshake(struct agent *a)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"slow", 4 } });
	AGENT_EXPECT(a, vp_frame_write(a->fd, VP_READY, 0, b.data, b.len) == 0);
	struct vp_hdr h;
	uint8_t *pl;
	if (agent_read(a, &h, &pl) == 0) {
		AGENT_EXPECT(a, h.type == VP_HELLO);
		AGENT_EXPECT(a, vp_frame_write(a->fd, VP_READY, h.id, b.data, b.len) == 0);
		free(pl);
	}
	vp_buf_free(&b);
}

/* The start of the reply a request would get: a whole header, then
 * `part` of the payload's bytes (a full FS_ATTR or FS_DATA of its size). */
static void send_partial(struct agent *a, const struct vp_hdr *req, const uint8_t *pl, size_t hdr_bytes)
{
	struct vp_buf b;
	vp_buf_init(&b);
	uint16_t type = VP_FS_ATTR;
	if (req->type == VP_FS_READ) {
		struct vp_fs_req m;
		AGENT_EXPECT(a, vp_dec_fs_req(pl, req->len, VP_FS_READ, &m) == 0);
		type = VP_FS_DATA;
		vp_put_u32(&b, m.size);
		for (uint32_t i = 0; i < m.size; i++)
			vp_put_u8(&b, (uint8_t)i);
	} else {
		vp_enc_attr(&b, &(struct vp_attr){ .ino = 2, .mode = 0100644, .nlink = 1 });
	}
	uint8_t frame[VP_HDR_SIZE];
	vp_hdr_encode(frame, &(struct vp_hdr){ .len = (uint32_t)b.len, .type = type, .id = req->id });
	size_t n = hdr_bytes < VP_HDR_SIZE ? hdr_bytes : VP_HDR_SIZE;
	AGENT_EXPECT(a, write(a->fd, frame, n) == (ssize_t)n);
	if (n == VP_HDR_SIZE)
		AGENT_EXPECT(a, write(a->fd, b.data, b.len / 2) == (ssize_t)(b.len / 2));
	vp_buf_free(&b);
}

static void flood_output(struct agent *a)
{
	struct vp_hdr h;
	uint8_t *pl;
	if (agent_read(a, &h, &pl))
		return;
	AGENT_EXPECT(a, h.type == VP_EXEC);
	free(pl);
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_exec_started(&b, &(struct vp_exec_started){ 42 });
	AGENT_EXPECT(a, vp_frame_write(a->fd, VP_EXEC_STARTED, h.id, b.data, b.len) == 0);
	vp_buf_reset(&b);
	vp_enc_output(&b, &(struct vp_output){ VP_STREAM_STDOUT, { (const uint8_t *)"x", 1 } });
	/* Each OUTPUT makes the client send an OUTPUT_ACK that nobody reads;
	 * the flood ends when the client gives up and shuts the channel. */
	while (send(a->fd, NULL, 0, MSG_NOSIGNAL) == 0 &&
	       vp_frame_write(a->fd, VP_OUTPUT, h.id, b.data, b.len) == 0)
		;
	vp_buf_free(&b);
}

/* M_DEAF reads no frame; it only writes what the test tells it through
 * the release pipe, until a D_READ lets it read again. */
enum { D_READ, D_STARTED, D_EXIT };
struct deaf_cmd {
	uint8_t op;
	uint32_t id;
};

static void deaf_script(struct agent *a)
{
	struct deaf_cmd cmd;
	struct vp_buf b;
	vp_buf_init(&b);
	while (read(a->release[0], &cmd, sizeof cmd) == (ssize_t)sizeof cmd && cmd.op != D_READ) {
		vp_buf_reset(&b);
		if (cmd.op == D_STARTED) {
			vp_enc_exec_started(&b, &(struct vp_exec_started){ 7 });
			AGENT_EXPECT(a, vp_frame_write(a->fd, VP_EXEC_STARTED, cmd.id, b.data, b.len) == 0);
		} else {
			vp_enc_exit(&b, &(struct vp_exit){ .code = 3 });
			AGENT_EXPECT(a, vp_frame_write(a->fd, VP_EXIT, cmd.id, b.data, b.len) == 0);
		}
	}
	vp_buf_free(&b);
}

static void deaf_do(struct agent *a, uint8_t op, uint32_t id)
{
	struct deaf_cmd cmd = { op, id };
	CHECK_EQ(write(a->release[1], &cmd, sizeof cmd), (ssize_t)sizeof cmd);
}

static void *agent_main(void *arg)
{
	struct agent *a = arg;
	handshake(a);
	struct vp_hdr h;
	uint8_t *pl;
	switch (a->mode) {
	case M_HALF_HEADER:
	case M_HALF_PAYLOAD:
		if (agent_read(a, &h, &pl) == 0) {
			send_partial(a, &h, pl, a->mode == M_HALF_HEADER ? 6 : VP_HDR_SIZE);
			free(pl);
		}
		break;
	case M_SILENT: break;
	case M_DEAF: deaf_script(a); break;
	case M_FLOOD: flood_output(a); break;
	}
	/* Keeps its end open (the client must not need our EOF) and reads until
	 * the client closes. */
	drain(a);
	return NULL;
}

static int baseline_threads;

static struct vp_client *start(struct agent *a, enum mode mode)
{
	memset(a, 0, sizeof *a);
	a->mode = mode;
	baseline_threads = count_threads();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || pipe2(a->release, O_CLOEXEC))
		return NULL;
	a->fd = sv[1];
	struct vp_client *c;
	if (vp_client_new(sv[0], &c))
		return NULL;
	pthread_create(&a->thread, NULL, agent_main, a);
	if (vp_client_handshake(c, 5000)) {
		printf("# handshake failed\n");
		vp_client_free(c);
		pthread_join(a->thread, NULL);
		return NULL;
	}
	vp_client_set_timeout(c, TMO_MS);
	return c;
}

/* vp_client_free must return promptly whatever the agent does; then the
 * agent is let go and nothing of the client may be left running. */
static void finish(struct vp_client *c, struct agent *a)
{
	double t0 = now_s();
	vp_client_free(c);
	double took = now_s() - t0;
	CHECKF(took < SLACK_S, "vp_client_free took %.3f s", took);
	deaf_do(a, D_READ, 0);
	pthread_join(a->thread, NULL);
	close(a->fd);
	close(a->release[0]);
	close(a->release[1]);
	CHECK_EQ(atomic_load(&a->errors), 0);
	CHECK_EQ(count_threads(), baseline_threads);
}

/* One call's result and how long it took. */
struct timed {
	int rc;
	double took;
};

static struct timed timed_ping(struct vp_client *c)
{
	double t0 = now_s();
	int rc = vp_ping(c);
	return (struct timed){ rc, now_s() - t0 };
}

static struct timed timed_getattr(struct vp_client *c)
{
	struct vp_attr at;
	double t0 = now_s();
	int rc = vp_fs_getattr(c, 2, &at);
	return (struct timed){ rc, now_s() - t0 };
}

static struct timed timed_read(struct vp_client *c, uint32_t size)
{
	uint8_t *buf = malloc(size);
	uint32_t got = 0;
	double t0 = now_s();
	int rc = vp_fs_read(c, 7, 0, buf, size, &got);
	struct timed t = { rc, now_s() - t0 };
	free(buf);
	return t;
}

/* A call that gave up: -ETIMEDOUT, after its timeout (k periods) and not
 * much later. */
#define CHECK_TIMED_OUT(t, k)                                                                        \
	do {                                                                                         \
		CHECK_EQ((t).rc, -ETIMEDOUT);                                                        \
		CHECKF((t).took >= (k)*TMO_S * 0.9 && (t).took < (k)*TMO_S + SLACK_S, "took %.3f s", \
		       (t).took);                                                                    \
	} while (0)

/* ---- half a frame ------------------------------------------------------------ */

static void wait_requests(struct agent *a, int n)
{
	for (int i = 0; i < 400 && atomic_load(&a->requests) < n; i++)
		sleep_ms(5);
}

/* The reader is stuck inside a reply header: the call it answers and every
 * later one time out; the channel is not known to be broken, so it stays. */
static void test_half_header(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_HALF_HEADER);
	REQUIRE(c);
	struct timed t = timed_ping(c);
	CHECK_TIMED_OUT(t, 1);
	t = timed_getattr(c);
	CHECK_TIMED_OUT(t, 1);
	CHECK(vp_client_alive(c));
	finish(c, &a);
}

static void test_half_payload(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_HALF_PAYLOAD);
	REQUIRE(c);
	struct timed t = timed_getattr(c);
	CHECK_TIMED_OUT(t, 1);
	t = timed_ping(c);
	CHECK_TIMED_OUT(t, 1);
	finish(c, &a);
}

/* A READ's DATA goes straight into the caller's buffer, so the caller
 * cannot leave while the reader fills it: it waits one more period, then
 * the stalled channel is given up. The call still ends as a timeout, and
 * later calls fail at once. */
static void test_half_read(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_HALF_PAYLOAD);
	REQUIRE(c);
	struct timed t = timed_read(c, 64 * 1024);
	CHECK_TIMED_OUT(t, 2);
	CHECK(!vp_client_alive(c));
	t = timed_ping(c);
	CHECK_EQ(t.rc, -ECONNRESET);
	CHECK(t.took < 0.5);
	finish(c, &a);
}

/* ---- requests never answered -------------------------------------------------- */

struct caller {
	struct vp_client *c;
	int kind;
	struct timed t;
};

static void on_output_ignore(void *ctx, int stream, const void *data, size_t len)
{
	(void)ctx;
	(void)stream;
	(void)data;
	(void)len;
}

struct exits {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n, err;
};

static void on_exit_count(void *ctx, const struct vp_exit *ex, int err)
{
	struct exits *e = ctx;
	(void)ex;
	pthread_mutex_lock(&e->mu);
	e->n++;
	e->err = err;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

static const struct vp_exec_cb ignore_cb = { NULL, on_output_ignore, on_exit_count };

static struct vp_exec exec_of(const char *cmd)
{
	struct vp_exec ex;
	memset(&ex, 0, sizeof ex);
	ex.cmd = (struct vp_bytes){ (const uint8_t *)cmd, (uint32_t)strlen(cmd) };
	return ex;
}

static void *caller_main(void *arg)
{
	struct caller *k = arg;
	switch (k->kind) {
	case 0: k->t = timed_ping(k->c); break;
	case 1: k->t = timed_getattr(k->c); break;
	case 2: k->t = timed_read(k->c, 4096); break;
	default: {
		struct vp_exec ex = exec_of("true");
		struct exits e = { .n = 0 };
		uint32_t id;
		double t0 = now_s();
		k->t.rc = vp_exec_start(k->c, &ex, &ignore_cb, &e, &id);
		k->t.took = now_s() - t0;
		break;
	}
	}
	return NULL;
}

/* Calls of every kind at once, none answered: each ends with its own
 * timeout, none waits for another's. */
static void test_silent(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_SILENT);
	REQUIRE(c);
	enum { N = 8 };
	struct caller k[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		k[i] = (struct caller){ .c = c, .kind = i % 4 };
		pthread_create(&t[i], NULL, caller_main, &k[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECK_TIMED_OUT(k[i].t, 1);
	}
	wait_requests(&a, N + 1);
	CHECK_EQ(atomic_load(&a.requests), N + 1); /* + HELLO */
	CHECK(vp_client_alive(c));
	finish(c, &a);
}

/* ---- an agent that does not read ----------------------------------------------- */

struct writer {
	struct vp_client *c;
	uint32_t size;
	struct timed t;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = calloc(1, w->size);
	uint32_t n = 0;
	double t0 = now_s();
	w->t.rc = vp_fs_write(w->c, 3, 0, buf, w->size, &n);
	w->t.took = now_s() - t0;
	free(buf);
	return NULL;
}

/* A frame larger than the socket's buffer cannot go out whole: the send
 * gives up at the call's deadline, and half a frame on the wire costs the
 * channel. Writers queued behind it are bounded too. */
static void test_deaf_big_write(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_DEAF);
	REQUIRE(c);
	enum { N = 4 };
	struct writer w[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct writer){ .c = c, .size = VP_MAX_DATA };
		pthread_create(&t[i], NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECKF(w[i].t.rc == -ETIMEDOUT || w[i].t.rc == -ECONNRESET, "writer %d: %d", i, w[i].t.rc);
		CHECKF(w[i].t.took < TMO_S + SLACK_S, "writer %d took %.3f s", i, w[i].t.took);
	}
	CHECK(!vp_client_alive(c));
	finish(c, &a);
}

struct async_rec {
	pthread_mutex_t mu;
	int done, err_conn, other;
};

static void async_done(void *ctx, int err, uint32_t written)
{
	struct async_rec *r = ctx;
	(void)written;
	pthread_mutex_lock(&r->mu);
	r->done++;
	if (err == -ECONNRESET)
		r->err_conn++;
	else
		r->other++;
	pthread_mutex_unlock(&r->mu);
}

/* Write-behind fills the socket with whole small frames until one does not
 * fit; that send is bounded by the timeout. Whether it got partly out or
 * not, nothing hangs: later calls time out or fail, free is prompt, and
 * every write that went out gets its callback exactly once. */
static void test_deaf_async(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_DEAF);
	REQUIRE(c);
	static struct async_rec r = { .mu = PTHREAD_MUTEX_INITIALIZER };
	static uint8_t buf[4096];
	int sent = 0, rc = 0;
	double t0 = now_s(), took = 0;
	while (sent < 100000) {
		double t1 = now_s();
		rc = vp_fs_write_async(c, 3, 0, buf, sizeof buf, async_done, &r);
		took = now_s() - t1;
		if (rc)
			break;
		sent++;
	}
	CHECKF(rc == -ETIMEDOUT || rc == -ECONNRESET, "write_async: %d after %d", rc, sent);
	CHECKF(took < TMO_S + SLACK_S, "the blocked write took %.3f s", took);
	CHECK(now_s() - t0 < 10.0);
	CHECK(sent > 0);
	/* A small call: the buffer is full, so it cannot leave either. */
	struct timed t = timed_ping(c);
	CHECKF(t.rc == -ETIMEDOUT || t.rc == -ECONNRESET, "ping: %d", t.rc);
	CHECKF(t.took < TMO_S + SLACK_S, "ping took %.3f s", t.took);
	finish(c, &a);
	CHECK_EQ(r.done, sent);
	CHECK_EQ(r.err_conn, sent);
}

/* Fills the socket with write-behind frames until one does not fit at
 * all (a small frame goes whole or not at all). *next_id: the id the next
 * request gets (ids are handed out in order, the refused one included). */
static int fill_socket(struct vp_client *c, struct async_rec *r, uint32_t *next_id)
{
	static uint8_t buf[4096];
	int sent = 0, rc;
	while ((rc = vp_fs_write_async(c, 3, 0, buf, sizeof buf, async_done, r)) == 0)
		sent++;
	*next_id = 2u + (uint32_t)sent + 1u; /* after HELLO (1) and the writes */
	return rc;
}

struct starter {
	struct vp_client *c;
	struct exits *e;
	int rc;
};

static void *starter_main(void *arg)
{
	struct starter *s = arg;
	struct vp_exec ex = exec_of("true");
	uint32_t id;
	s->rc = vp_exec_start(s->c, &ex, &ignore_cb, s->e, &id);
	return NULL;
}

/* The agent answers an EXEC that is still stuck in the host's full
 * socket (it guessed the id), and the send then times out with nothing
 * sent. The exec is registered and will get callbacks, so the start must
 * report success (and on_exit then runs once), never an error that lets
 * the caller free what the callbacks use. */
static void test_deaf_started_before_sent(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_DEAF);
	REQUIRE(c);
	static struct async_rec r = { .mu = PTHREAD_MUTEX_INITIALIZER };
	uint32_t id;
	int rc = fill_socket(c, &r, &id);
	CHECK_EQ(rc, -ETIMEDOUT);
	REQUIRE(vp_client_alive(c));
	struct exits *e = calloc(1, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
	cond_init_monotonic(&e->cv);
	struct starter s = { c, e, 1 };
	pthread_t t;
	pthread_create(&t, NULL, starter_main, &s);
	sleep_ms(TMO_MS / 4);
	deaf_do(&a, D_STARTED, id);
	pthread_join(t, NULL);
	CHECK_EQ(s.rc, 0);
	deaf_do(&a, D_EXIT, id);
	struct timespec dl = deadline_ms(5000);
	pthread_mutex_lock(&e->mu);
	while (e->n == 0 && pthread_cond_timedwait(&e->cv, &e->mu, &dl) == 0)
		;
	pthread_mutex_unlock(&e->mu);
	finish(c, &a);
	CHECK_EQ(e->n, s.rc == 0 ? 1 : 0);
	CHECK_EQ(e->err, 0);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* With no timeout at all a write into a full socket waits; shutting the
 * client down from another thread must end it at once. */
static void test_deaf_no_timeout(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_DEAF);
	REQUIRE(c);
	vp_client_set_timeout(c, -1);
	struct writer w = { .c = c, .size = VP_MAX_DATA };
	pthread_t t;
	pthread_create(&t, NULL, writer_main, &w);
	sleep_ms(300);
	double t0 = now_s();
	vp_client_shutdown(c);
	pthread_join(t, NULL);
	CHECK_EQ(w.t.rc, -ECONNRESET);
	CHECK(now_s() - t0 < SLACK_S);
	finish(c, &a);
}

/* The reader writes too (an OUTPUT_ACK per OUTPUT): when the agent floods
 * output and never reads, the reader's own writes must give up in time, so
 * the exec ends (-ECONNRESET) instead of wedging the reader. */
static void test_flood_unread_acks(void)
{
	struct agent a;
	struct vp_client *c = start(&a, M_FLOOD);
	REQUIRE(c);
	struct exits e = { .mu = PTHREAD_MUTEX_INITIALIZER, .n = 0 };
	cond_init_monotonic(&e.cv);
	struct vp_exec ex = exec_of("yes");
	uint32_t id;
	CHECK_EQ(vp_exec_start(c, &ex, &ignore_cb, &e, &id), 0);
	struct timespec dl = deadline_ms(TMO_MS + 5000);
	pthread_mutex_lock(&e.mu);
	while (e.n == 0 && pthread_cond_timedwait(&e.cv, &e.mu, &dl) == 0)
		;
	int n = e.n, err = e.err;
	pthread_mutex_unlock(&e.mu);
	CHECK_EQ(n, 1);
	CHECK_EQ(err, -ECONNRESET);
	CHECK(!vp_client_alive(c));
	finish(c, &a);
	CHECK_EQ(e.n, 1);
	pthread_cond_destroy(&e.cv);
}

static void *nothing(void *arg)
{
	return arg;
}

int main(void)
{
	alarm(100); /* a hang is a failure */
	/* Sanitizer runtimes start a helper thread of their own with the
	 * first thread: let that happen before any baseline is taken. */
	pthread_t warm;
	pthread_create(&warm, NULL, nothing, NULL);
	pthread_join(warm, NULL);
	static const struct tap_test tests[] = {
		{ "half a header, then silence: calls time out", test_half_header },
		{ "header and half a payload: calls time out", test_half_payload },
		{ "half of a READ's data: the read times out, the channel goes", test_half_read },
		{ "requests never answered: each call times out", test_silent },
		{ "agent stops reading: big writes are bounded", test_deaf_big_write },
		{ "agent stops reading: write-behind fills the socket", test_deaf_async },
		{ "agent starts an exec whose EXEC never left the host", test_deaf_started_before_sent },
		{ "agent stops reading, no timeout: shutdown ends the writer", test_deaf_no_timeout },
		{ "agent floods output, reads no acks: the exec ends", test_flood_unread_acks },
	};
	return tap_main(tests, sizeof tests / sizeof tests[0]);
}
