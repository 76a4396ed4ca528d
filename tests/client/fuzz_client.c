/* libFuzzer target for the host client against a hostile agent. Each input
 * is a script for the agent's side of a socketpair to a real vp_client:
 * after a proper handshake, the agent sends frames built from the input
 * with the codec (replies to the requests it saw, to ids never sent,
 * duplicates, the wrong reply type, OUTPUT/EXIT for any id, huge counts
 * and lengths, odd errnos), raw bytes, half frames and pauses, while
 * requester threads keep making real calls with a short timeout.
 *
 * Checked besides what the sanitizers see: every call returns within a
 * bound and with 0 or -errno; counts handed back stay within what the
 * caller asked for; exec and write-behind callbacks run exactly once and
 * never after the start failed; a frame that is malformed whatever the
 * client's state kills the channel, after which every call fails with
 * -ECONNRESET at once; the host only sends well-formed frames; and
 * vp_client_free is prompt. Seeds: tests/client/corpus. */
#include "proto/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TMO_MS 30
#define HANG_S 5.0 /* far beyond any call's bound (2 timeouts), even under ASan */
#define FATAL_ID 0x80000000u /* ids a client never reaches within one input */

#define FAIL(...)                                                  \
	do {                                                       \
		fprintf(stderr, "fuzz_client: " __VA_ARGS__);      \
		fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); \
		abort();                                           \
	} while (0)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- shared state of one input ------------------------------------------------ */

/* The request types the agent may answer, by the last id it saw for each. */
static const uint16_t req_types[] = {
	VP_PING, VP_FS_LOOKUP, VP_FS_GETATTR, VP_FS_READ, VP_FS_READDIR, VP_FS_WRITE, VP_EXEC, VP_STDIN,
	VP_SIGNAL, VP_FS_OPEN, VP_FS_CREATE, VP_FS_READLINK, VP_FS_STATFS, VP_FS_CLOSE, VP_FS_SETATTR,
	VP_SET_TIME, VP_FS_MKDIR, VP_FS_OPENDIR, VP_FS_FSYNC, VP_FS_UNLINK,
};
#define NREQ (sizeof req_types / sizeof req_types[0])

static const uint16_t reply_types[] = {
	VP_READY, VP_PONG, VP_ERROR, VP_OK, VP_EXEC_STARTED, VP_OUTPUT, VP_EXIT, VP_FS_ENTRY,
	VP_FS_ATTR, VP_FS_DATA, VP_FS_HANDLE, VP_FS_CREATED, VP_FS_WRITTEN, VP_FS_DIRENTS, VP_FS_STATFS_REPLY,
};
#define NREPLY (sizeof reply_types / sizeof reply_types[0])

struct fz {
	int afd; /* the agent's end */
	struct vp_client *c;
	pthread_mutex_t mu;
	uint32_t last_id[256]; /* by request type; 0 = none seen */
	unsigned seen;         /* requests seen */
	atomic_bool stop;
	atomic_ullong output_sent; /* OUTPUT data bytes in frames sent whole */
	atomic_ullong acked;       /* OUTPUT_ACK bytes the host sent */
	atomic_bool unsynced;      /* raw bytes or half frames: the stream may hold frames not counted */
	/* write-behind */
	atomic_int async_started, async_done;
};

/* ---- the agent's reader: every host frame must be well-formed --------------------- */

static void *drainer_main(void *arg)
{
	struct fz *f = arg;
	bool hello_done = false;
	for (;;) {
		struct vp_hdr h;
		uint8_t *pl;
		if (vp_frame_read(f->afd, &h, &pl))
			break;
		if (vp_validate(h.type, pl, h.len))
			FAIL("host sent a malformed %s", vp_type_name(h.type));
		enum vp_dir d = vp_msg_dir(h.type);
		if (d == VP_DIR_REPLY || d == VP_DIR_NONE)
			FAIL("host sent %s", vp_type_name(h.type));
		if ((d == VP_DIR_ONEWAY) != (h.id == 0))
			FAIL("host sent %s with id %u", vp_type_name(h.type), h.id);
		if (h.type == VP_OUTPUT_ACK) {
			struct vp_output_ack m;
			vp_dec_output_ack(pl, h.len, &m);
			atomic_fetch_add(&f->acked, m.bytes);
		}
		if (h.type == VP_HELLO && !hello_done) {
			/* The handshake is not what this target fuzzes. */
			hello_done = true;
			struct vp_buf b;
			vp_buf_init(&b);
			vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"fz", 2 } });
			vp_frame_write(f->afd, VP_READY, h.id, b.data, b.len);
			vp_buf_free(&b);
		} else if (d == VP_DIR_REQ) {
			pthread_mutex_lock(&f->mu);
			f->last_id[h.type & 0xff] = h.id;
			f->seen++;
			pthread_mutex_unlock(&f->mu);
		}
		free(pl);
	}
	return NULL;
}

/* ---- requesters: real calls, checked ------------------------------------------- */

struct req {
	struct fz *f;
	int kind;
	pthread_t t;
};

/* Runs one call's result through the common checks; true to go on. */
static bool check_call(struct fz *f, const char *what, bool was_dead, int rc, double t0)
{
	double took = now_s() - t0;
	if (took > HANG_S)
		FAIL("%s took %.3f s", what, took);
	if (rc > 0 || rc < -4095)
		FAIL("%s returned %d", what, rc);
	if (was_dead && rc != -ECONNRESET)
		FAIL("%s on a dead channel returned %d", what, rc);
	return !was_dead && !atomic_load(&f->stop);
}

static int dir_fn(void *ctx, const struct vp_dirent *d)
{
	unsigned *n = ctx;
	if (d->name.len == 0 || d->name.len > VP_MAX_NAME || memchr(d->name.p, '/', d->name.len) || d->type > 15)
		FAIL("bad dirent handed to the caller");
	(*n)++;
	return 0;
}

struct async_ctx {
	struct fz *f;
	uint32_t size;
};

static void async_done(void *ctx, int err, uint32_t written)
{
	struct async_ctx *a = ctx;
	if (err == 0 && written > a->size)
		FAIL("write-behind: %u written of %u", written, a->size);
	if (err > 0 || err < -4095)
		FAIL("write-behind: err %d", err);
	atomic_fetch_add(&a->f->async_done, 1);
	free(a);
}

/* One exec's callbacks; lives until its on_exit. */
struct exec_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int exits;
	bool started;
};

static void ex_started(void *ctx, uint32_t pid)
{
	struct exec_ctx *e = ctx;
	(void)pid;
	pthread_mutex_lock(&e->mu);
	if (e->exits || e->started)
		FAIL("on_started out of turn");
	e->started = true;
	pthread_mutex_unlock(&e->mu);
}

static void ex_output(void *ctx, int stream, const void *data, size_t len)
{
	struct exec_ctx *e = ctx;
	(void)data;
	pthread_mutex_lock(&e->mu);
	if (e->exits)
		FAIL("on_output after on_exit");
	if ((stream != 1 && stream != 2) || len == 0 || len > VP_MAX_DATA)
		FAIL("on_output stream %d len %zu", stream, len);
	pthread_mutex_unlock(&e->mu);
}

static void ex_exit(void *ctx, const struct vp_exit *ex, int err)
{
	struct exec_ctx *e = ctx;
	pthread_mutex_lock(&e->mu);
	if (e->exits++)
		FAIL("on_exit twice");
	if ((err == 0) != (ex != NULL) || err > 0)
		FAIL("on_exit err %d ex %p", err, (const void *)ex);
	if (ex && (ex->code < -1 || ex->code > 255 || ex->signal < 0 || ex->signal > 64 || ex->timed_out > 1))
		FAIL("on_exit with an out-of-range status");
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

static const struct vp_exec_cb ex_cb = { ex_started, ex_output, ex_exit };

/* Starts an exec, pokes it while it runs, and waits for its on_exit, which
 * must come: at EXIT, or when the channel dies at the end of the input. */
static bool exec_once(struct fz *f, unsigned i)
{
	struct vp_exec ex;
	memset(&ex, 0, sizeof ex);
	ex.cmd = (struct vp_bytes){ (const uint8_t *)"cat", 3 };
	ex.flags = VP_EXEC_STDIN;
	struct exec_ctx *e = calloc(1, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	bool dead = !vp_client_alive(f->c);
	uint32_t id = 0;
	double t0 = now_s();
	int rc = vp_exec_start(f->c, &ex, &ex_cb, e, &id);
	bool go = check_call(f, "exec_start", dead, rc, t0);
	if (rc == 0) {
		dead = !vp_client_alive(f->c);
		t0 = now_s();
		int r2 = i & 1 ? vp_exec_stdin(f->c, id, "hi", 2, i & 2) : vp_exec_signal(f->c, id, 15);
		check_call(f, "stdin/signal", dead, r2, t0);
		double until = 0;
		pthread_mutex_lock(&e->mu);
		while (!e->exits) {
			pthread_mutex_unlock(&e->mu);
			if (until == 0 && (atomic_load(&f->stop) || !vp_client_alive(f->c)))
				until = now_s() + HANG_S;
			if (until && now_s() > until)
				FAIL("no on_exit %.1f s after the end", HANG_S);
			sleep_ms(1);
			pthread_mutex_lock(&e->mu);
		}
		pthread_mutex_unlock(&e->mu);
	}
	/* On an error no callback may ever run: ASan sees one on freed memory. */
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return go;
}

static bool call_once(struct fz *f, int kind, unsigned i)
{
	struct vp_client *c = f->c;
	static const uint32_t read_sizes[] = { 100, 0, 4096, 70000, 1 };
	static const uint32_t dir_sizes[] = { 4096, 100, 30, 1u << 20 };
	static const uint8_t wbuf[5000];
	bool dead = !vp_client_alive(c);
	double t0 = now_s();
	int rc = 0;
	switch (kind) {
	case 0:
		rc = vp_ping(c);
		break;
	case 1: {
		struct vp_entry en;
		uint64_t fh;
		char lb[64];
		switch (i % 8) {
		case 0: rc = vp_fs_lookup(c, 1, "etc", &en); break;
		case 1: rc = vp_fs_getattr(c, 5, &en.attr); break;
		case 2: rc = vp_fs_open(c, 5, 0, &fh); break;
		case 3: rc = vp_fs_opendir(c, 1, &fh); break;
		case 4:
			rc = vp_fs_readlink(c, 5, lb, sizeof lb);
			if (rc == 0 && strnlen(lb, sizeof lb) >= sizeof lb)
				FAIL("readlink overran its buffer");
			break;
		case 5: {
			struct vp_statfs st;
			rc = vp_fs_statfs(c, 1, &st);
			break;
		}
		case 6: rc = vp_fs_create(c, 1, "new", 0101, 0644, &fh, &en); break;
		default: rc = vp_fs_mkdir(c, 1, "dir", 0755, &en); break;
		}
		break;
	}
	case 2: {
		uint32_t size = read_sizes[i % 5], got = 0;
		uint8_t *buf = malloc(size ? size : 1);
		rc = vp_fs_read(c, 9, 0, buf, size, &got);
		if (rc == 0 && got > size)
			FAIL("read: got %u of %u", got, size);
		free(buf);
		break;
	}
	case 3: {
		uint32_t max = dir_sizes[i % 4], count = 0;
		unsigned calls = 0;
		rc = vp_fs_readdir(c, 9, i, max, dir_fn, &calls, &count);
		/* An entry is at least 25 bytes and the reply at most max. */
		if (rc == 0 && (count != calls || count > max / 25))
			FAIL("readdir: %u entries (%u seen) in %u bytes", count, calls, max);
		break;
	}
	case 4: {
		uint32_t size = i & 2 ? sizeof wbuf : 10, n = 0;
		if (i & 1) {
			struct async_ctx *a = malloc(sizeof *a);
			*a = (struct async_ctx){ f, size };
			rc = vp_fs_write_async(c, 9, 0, wbuf, size, async_done, a);
			if (rc)
				free(a);
			else
				atomic_fetch_add(&f->async_started, 1);
		} else {
			rc = vp_fs_write(c, 9, 0, wbuf, size, &n);
			if (rc == 0 && n > size)
				FAIL("write: %u written of %u", n, size);
		}
		break;
	}
	case 5:
		return exec_once(f, i);
	default: {
		struct vp_entry en;
		switch (i % 8) {
		case 0: {
			struct vp_setattr sa = { .node = 5, .valid = VP_SET_SIZE, .size = 1 };
			rc = vp_fs_setattr(c, &sa, &en.attr);
			break;
		}
		case 1: rc = vp_fs_fsync(c, 9, true); break;
		case 2: rc = vp_fs_close(c, 9); break;
		case 3: rc = vp_fs_unlink(c, 1, "x"); break;
		case 4: {
			struct timespec ts = { 1700000000, 5 };
			rc = vp_set_time(c, &ts);
			break;
		}
		case 5: rc = vp_fs_symlink(c, 1, "l", "target", &en); break;
		case 6: rc = vp_fs_rename(c, 1, "a", 1, "b", 0); break;
		default:
			vp_fs_forget(c, 5, 1); /* one-way: no result to check */
			rc = dead ? -ECONNRESET : 0;
			break;
		}
		break;
	}
	}
	return check_call(f, "call", dead, rc, t0);
}

#define NKINDS 7

static void *req_main(void *arg)
{
	struct req *r = arg;
	for (unsigned i = 0; call_once(r->f, r->kind, i); i++)
		;
	return NULL;
}

/* ---- the agent's frames, from the input ---------------------------------------- */

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t in_u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint32_t in_u32(struct in *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | in_u8(in);
	return v;
}

/* A value for an integer field: mostly sane (< lim), sometimes extreme. */
static uint32_t val32(struct in *in, bool wild, uint32_t lim)
{
	static const uint32_t odd[] = { 0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu, VP_MAX_DATA,
					VP_MAX_DATA + 1, 4095, 4096, 1000000000u };
	if (wild) {
		uint8_t s = in_u8(in);
		return s < 10 ? odd[s] : in_u32(in);
	}
	return lim ? in_u32(in) % lim : in_u32(in);
}

static uint64_t val64(struct in *in, bool wild)
{
	uint64_t hi = val32(in, wild, 0);
	return hi << 32 | val32(in, wild, 0);
}

/* A str/bytes field: short ones from the input, big ones a pattern. */
static void put_bytes(struct vp_buf *b, struct in *in, bool wild, bool name)
{
	static const uint32_t big[] = { VP_MAX_DATA, 70000, 4097, 65536, 256, VP_MAX_DATA + 1 };
	uint8_t s = in_u8(in);
	uint32_t n = s & 0x7f;
	if (s & 0x80 && wild) {
		n = big[n % 6];
		vp_put_u32(b, n);
		for (uint32_t i = 0; i < n && !b->err; i++)
			vp_put_u8(b, (uint8_t)('a' + i % 26));
		return;
	}
	if (name && !wild && n == 0)
		n = 1;
	vp_put_u32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t ch = in_u8(in);
		if (!wild)
			ch = (uint8_t)('a' + ch % 26); /* no NUL, no '/', never "." */
		vp_put_u8(b, ch);
	}
}

static void put_attr(struct vp_buf *b, struct in *in, bool wild)
{
	for (int i = 0; i < 6; i++)
		vp_put_u64(b, val64(in, wild));
	for (int i = 0; i < 3; i++)
		vp_put_u32(b, val32(in, wild, 1000000000u));
	for (int i = 0; i < 6; i++)
		vp_put_u32(b, val32(in, wild, 0));
}

/* A payload laid out as `type` wants, its values from the input: wild ones
 * may break the value rules (vp_validate then fails). */
static void gen_payload(struct vp_buf *b, uint16_t type, struct in *in, bool wild)
{
	static const int32_t errnos[] = { 0, -1, EIO, ENOENT, ETIMEDOUT, ECONNRESET, 4095, 4096, INT32_MAX,
					  INT32_MIN, EAGAIN, ESTALE };
	switch (type) {
	case VP_READY:
		vp_put_u32(b, wild ? val32(in, true, 0) : 1);
		vp_put_u32(b, val32(in, wild, 1));
		put_bytes(b, in, wild, false);
		break;
	case VP_PONG:
	case VP_FS_DATA:
		put_bytes(b, in, wild, false);
		break;
	case VP_ERROR: {
		uint8_t s = in_u8(in);
		vp_put_i32(b, s < 12 ? errnos[s] : (int32_t)val32(in, wild, 200));
		put_bytes(b, in, false, false);
		break;
	}
	case VP_OK:
		break;
	case VP_EXEC_STARTED:
	case VP_FS_WRITTEN:
		vp_put_u32(b, val32(in, wild, 6000));
		break;
	case VP_OUTPUT:
		vp_put_u8(b, (uint8_t)(wild ? in_u8(in) : 1 + in_u8(in) % 2));
		put_bytes(b, in, wild, true);
		break;
	case VP_EXIT:
		vp_put_i32(b, (int32_t)val32(in, wild, 257) - 1);
		vp_put_i32(b, (int32_t)val32(in, wild, 65));
		vp_put_u8(b, (uint8_t)val32(in, wild, 2));
		vp_put_u64(b, val64(in, wild));
		break;
	case VP_FS_ENTRY:
		vp_put_u64(b, wild ? val64(in, true) : 2 + val32(in, false, 100));
		put_attr(b, in, wild);
		break;
	case VP_FS_ATTR:
		put_attr(b, in, wild);
		break;
	case VP_FS_HANDLE:
		vp_put_u64(b, wild ? val64(in, true) : 1 + val32(in, false, 100));
		break;
	case VP_FS_CREATED:
		vp_put_u64(b, wild ? val64(in, true) : 1 + val32(in, false, 100));
		vp_put_u64(b, wild ? val64(in, true) : 2 + val32(in, false, 100));
		put_attr(b, in, wild);
		break;
	case VP_FS_DIRENTS: {
		/* The count may disagree with the entries that follow. */
		uint32_t n = in_u8(in) % 64;
		vp_put_u32(b, wild ? val32(in, true, 0) : n);
		for (uint32_t i = 0; i < n; i++) {
			vp_put_u64(b, val64(in, false));
			vp_put_u64(b, val64(in, false));
			vp_put_u32(b, val32(in, wild, 16));
			put_bytes(b, in, wild, true);
		}
		break;
	}
	case VP_FS_STATFS_REPLY:
		for (int i = 0; i < 5; i++)
			vp_put_u64(b, val64(in, wild));
		for (int i = 0; i < 3; i++)
			vp_put_u32(b, val32(in, wild, 0));
		break;
	default: /* a request type as a reply: any bytes */
		put_bytes(b, in, false, false);
		break;
	}
}

static bool send_all(struct fz *f, const void *p, size_t n)
{
	const uint8_t *d = p;
	while (n) {
		ssize_t w = send(f->afd, d, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false; /* the client closed the channel */
		d += w;
		n -= (size_t)w;
	}
	return true;
}

/* The natural answers to a request, and the frames of a running exec. */
static uint16_t natural_reply(uint16_t req, uint8_t sel)
{
	if (req == VP_EXEC) {
		static const uint16_t t[] = { VP_EXEC_STARTED, VP_OUTPUT, VP_EXIT, VP_ERROR };
		return t[sel % 4];
	}
	return sel % 4 == 0 ? VP_ERROR : vp_msg_reply(req);
}

/* Waits for the client to notice a frame that is malformed whatever its
 * state, then checks that calls fail at once. */
static void expect_dead(struct fz *f, const char *why)
{
	double until = now_s() + HANG_S;
	while (vp_client_alive(f->c)) {
		if (now_s() > until)
			FAIL("channel still alive after %s", why);
		sleep_ms(1);
	}
	double t0 = now_s();
	int rc = vp_ping(f->c);
	if (rc != -ECONNRESET || now_s() - t0 > 1.0)
		FAIL("ping on a dead channel: %d", rc);
}

/* One op of the script; false once the channel is gone. */
static bool agent_op(struct fz *f, struct in *in, bool *sync)
{
	uint8_t op = in_u8(in);
	uint8_t sel = in_u8(in);
	uint16_t target = req_types[sel % NREQ];
	pthread_mutex_lock(&f->mu);
	uint32_t last = f->last_id[target & 0xff];
	pthread_mutex_unlock(&f->mu);

	switch (op & 7) {
	case 3: { /* raw bytes */
		uint8_t raw[256];
		uint8_t n = in_u8(in);
		for (unsigned i = 0; i < n; i++)
			raw[i] = in_u8(in);
		*sync = false;
		atomic_store(&f->unsynced, true);
		return send_all(f, raw, n);
	}
	case 4: /* a pause: calls time out, late replies follow */
		sleep_ms(sel % 64);
		return true;
	default:
		break;
	}

	/* A frame: its id, type and payload. */
	bool fatal = false;
	uint32_t id;
	switch ((op >> 3) & 7) {
	case 4:
		id = FATAL_ID | in_u32(in);
		fatal = true;
		break;
	case 5:
		id = 0; /* READY was seen: any frame with id 0 is fatal */
		fatal = true;
		break;
	case 6:
		id = in_u32(in);
		break;
	case 7:
		id = last + 1;
		break;
	default:
		id = last ? last : FATAL_ID | sel;
		fatal = !last;
		break;
	}
	uint8_t tsel = in_u8(in);
	uint16_t type;
	if (tsel < 160)
		type = natural_reply(target, tsel);
	else if (tsel < 250)
		type = reply_types[tsel % NREPLY];
	else if (tsel < 254)
		type = req_types[tsel % NREQ];
	else
		type = (uint16_t)in_u32(in);
	bool wild = (op & 0x40) != 0;
	struct vp_buf b;
	vp_buf_init(&b);
	if (op & 0x80 && wild) {
		put_bytes(&b, in, false, false); /* any bytes at all */
	} else {
		gen_payload(&b, type, in, wild);
	}
	if (b.err) {
		vp_buf_free(&b);
		return true;
	}
	uint16_t flags = (op & 7) == 2 && (sel & 0x80) ? 1 : 0;
	uint8_t hdr[VP_HDR_SIZE];
	vp_hdr_encode(hdr, &(struct vp_hdr){ .len = (uint32_t)b.len, .type = type, .flags = flags, .id = id });
	fatal = fatal || flags || vp_msg_dir(type) != VP_DIR_REPLY || vp_validate(type, b.data, b.len);
	bool half = (op & 7) == 1 && b.len > 1;
	bool ok = send_all(f, hdr, sizeof hdr) && send_all(f, b.data, half ? b.len / 2 : b.len);
	if (ok && !half && type == VP_OUTPUT && !fatal) {
		struct vp_output m;
		if (vp_dec_output(b.data, b.len, &m) == 0)
			atomic_fetch_add(&f->output_sent, m.data.len);
	}
	vp_buf_free(&b);
	if (half) {
		/* The reader now waits for the rest of a frame: calls time out. */
		*sync = false;
		atomic_store(&f->unsynced, true);
		return ok;
	}
	if (ok && fatal && *sync) {
		expect_dead(f, vp_type_name(type));
		return false;
	}
	return ok;
}

/* ---- one input ------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz f;
	memset(&f, 0, sizeof f);
	pthread_mutex_init(&f.mu, NULL);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		FAIL("socketpair");
	f.afd = sv[1];
	if (vp_client_new(sv[0], &f.c))
		FAIL("vp_client_new");
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_ready(&b, &(struct vp_ready){ 1, 0, { (const uint8_t *)"fz", 2 } });
	vp_frame_write(f.afd, VP_READY, 0, b.data, b.len);
	vp_buf_free(&b);
	pthread_t drainer;
	pthread_create(&drainer, NULL, drainer_main, &f);
	if (vp_client_handshake(f.c, 5000))
		FAIL("handshake");
	vp_client_set_timeout(f.c, TMO_MS);

	struct req r[NKINDS];
	for (int i = 0; i < NKINDS; i++) {
		r[i] = (struct req){ .f = &f, .kind = i };
		pthread_create(&r[i].t, NULL, req_main, &r[i]);
	}
	/* Let the first requests arrive, so replies have ids to go to. */
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&f.mu);
		unsigned seen = f.seen;
		pthread_mutex_unlock(&f.mu);
		if (seen >= NKINDS)
			break;
		sleep_ms(1);
	}

	struct in in = { data, size };
	bool sync = true;
	while (in.n && agent_op(&f, &in, &sync))
		;

	/* The end: the agent hangs up, every call must fail promptly. */
	atomic_store(&f.stop, true);
	shutdown(f.afd, SHUT_WR);
	double t0 = now_s();
	for (int i = 0; i < NKINDS; i++) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += (time_t)HANG_S * 2;
		if (pthread_timedjoin_np(r[i].t, NULL, &dl))
			FAIL("requester %d hangs", i);
	}
	while (vp_client_alive(f.c)) {
		if (now_s() - t0 > 3 * HANG_S)
			FAIL("channel alive after EOF");
		sleep_ms(1);
	}
	double t1 = now_s();
	vp_client_free(f.c);
	if (now_s() - t1 > HANG_S || now_s() - t0 > 3 * HANG_S)
		FAIL("shutdown took too long");
	pthread_join(drainer, NULL);
	close(f.afd);
	if (atomic_load(&f.async_done) != atomic_load(&f.async_started))
		FAIL("write-behind: %d callbacks for %d writes", atomic_load(&f.async_done),
		     atomic_load(&f.async_started));
	if (!atomic_load(&f.unsynced) && atomic_load(&f.acked) > atomic_load(&f.output_sent))
		FAIL("acked %llu of %llu output bytes", atomic_load(&f.acked), atomic_load(&f.output_sent));
	pthread_mutex_destroy(&f.mu);
	return 0;
}
