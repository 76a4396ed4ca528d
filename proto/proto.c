/* Protocol codec: see proto.h and docs/protocol.md. Byte-by-byte
 * little-endian so the agent and the host agree on any host ABI. */
#include "proto.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A whole frame (header + largest payload) must fit, so that
 * vp_frame_encode can build one in a vp_buf. */
#define VP_BUF_MAX ((size_t)VP_HDR_SIZE + VP_MAX_PAYLOAD)
#define NSEC_PER_SEC 1000000000u
#define MAX_INFO VP_MAX_PATH /* READY info, ERROR message */
#define MAX_SIGNO 64

/* ---- vp_buf ------------------------------------------------------------ */

void vp_buf_init(struct vp_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void vp_buf_free(struct vp_buf *b)
{
	free(b->data);
	vp_buf_init(b);
}

void vp_buf_reset(struct vp_buf *b)
{
	b->len = 0;
	b->err = 0;
}

/* Returns where n bytes may be written, or NULL (and sets the sticky error). */
static uint8_t *buf_grow(struct vp_buf *b, size_t n)
{
	if (b->err)
		return NULL;
	if (n > VP_BUF_MAX - b->len) {
		b->err = -EMSGSIZE;
		return NULL;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		if (cap > VP_BUF_MAX)
			cap = VP_BUF_MAX;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

static void le_store(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_load(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(struct vp_buf *b, uint64_t v, unsigned n)
{
	uint8_t *p = buf_grow(b, n);
	if (p)
		le_store(p, v, n);
}

void vp_put_u8(struct vp_buf *b, uint8_t v) { put_le(b, v, 1); }
void vp_put_u16(struct vp_buf *b, uint16_t v) { put_le(b, v, 2); }
void vp_put_u32(struct vp_buf *b, uint32_t v) { put_le(b, v, 4); }
void vp_put_u64(struct vp_buf *b, uint64_t v) { put_le(b, v, 8); }
void vp_put_i32(struct vp_buf *b, int32_t v) { put_le(b, (uint32_t)v, 4); }
void vp_put_i64(struct vp_buf *b, int64_t v) { put_le(b, (uint64_t)v, 8); }

void vp_put_raw(struct vp_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	uint8_t *d = buf_grow(b, n);
	if (d)
		memcpy(d, p, n);
}

void vp_put_str(struct vp_buf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		if (!b->err)
			b->err = -EMSGSIZE;
		return;
	}
	vp_put_u32(b, (uint32_t)n);
	vp_put_raw(b, p, n);
}

void vp_put_cstr(struct vp_buf *b, const char *s)
{
	vp_put_str(b, s, s ? strlen(s) : 0);
}

/* ---- vp_reader --------------------------------------------------------- */

static const uint8_t empty_bytes[1];

void vp_reader_init(struct vp_reader *r, const void *payload, size_t len)
{
	r->p = len ? payload : empty_bytes;
	r->left = len;
	r->err = 0;
}

static void reader_fail(struct vp_reader *r)
{
	r->err = -EBADMSG;
	r->left = 0;
}

static uint64_t get_le(struct vp_reader *r, unsigned n)
{
	if (r->err || r->left < n) {
		reader_fail(r);
		return 0;
	}
	uint64_t v = le_load(r->p, n);
	r->p += n;
	r->left -= n;
	return v;
}

uint8_t vp_get_u8(struct vp_reader *r) { return (uint8_t)get_le(r, 1); }
uint16_t vp_get_u16(struct vp_reader *r) { return (uint16_t)get_le(r, 2); }
uint32_t vp_get_u32(struct vp_reader *r) { return (uint32_t)get_le(r, 4); }
uint64_t vp_get_u64(struct vp_reader *r) { return get_le(r, 8); }
int32_t vp_get_i32(struct vp_reader *r) { return (int32_t)(uint32_t)get_le(r, 4); }
int64_t vp_get_i64(struct vp_reader *r) { return (int64_t)get_le(r, 8); }

void vp_get_str(struct vp_reader *r, const uint8_t **p, uint32_t *len, uint32_t max)
{
	*p = empty_bytes;
	*len = 0;
	uint32_t n = vp_get_u32(r);
	if (r->err)
		return;
	if (n > max || n > r->left) {
		reader_fail(r);
		return;
	}
	*p = r->p;
	*len = n;
	r->p += n;
	r->left -= n;
}

int vp_reader_finish(const struct vp_reader *r)
{
	return r->err || r->left ? -EBADMSG : 0;
}

static void get_bytes(struct vp_reader *r, struct vp_bytes *b, uint32_t max)
{
	vp_get_str(r, &b->p, &b->len, max);
}

static void check(struct vp_reader *r, bool ok)
{
	if (!ok)
		reader_fail(r);
}

static bool has_nul(const struct vp_bytes *b)
{
	return b->len && memchr(b->p, 0, b->len);
}

/* One path component the guest may create or look up: "." and ".." would
 * escape the node the host named, '/' would make it a path. */
static bool name_ok(const struct vp_bytes *b)
{
	if (b->len == 0 || b->len > VP_MAX_NAME || has_nul(b) || memchr(b->p, '/', b->len))
		return false;
	if (b->p[0] == '.' && (b->len == 1 || (b->len == 2 && b->p[1] == '.')))
		return false;
	return true;
}

/* Directory listings legitimately contain "." and "..". */
static bool dirent_name_ok(const struct vp_bytes *b)
{
	return b->len > 0 && b->len <= VP_MAX_NAME && !has_nul(b) && !memchr(b->p, '/', b->len);
}

static void get_text(struct vp_reader *r, struct vp_bytes *b, uint32_t max)
{
	get_bytes(r, b, max);
	check(r, r->err || !has_nul(b));
}

/* ---- header ------------------------------------------------------------ */

void vp_hdr_encode(uint8_t out[VP_HDR_SIZE], const struct vp_hdr *h)
{
	le_store(out, h->len, 4);
	le_store(out + 4, h->type, 2);
	le_store(out + 6, h->flags, 2);
	le_store(out + 8, h->id, 4);
}

int vp_hdr_decode(const uint8_t in[VP_HDR_SIZE], struct vp_hdr *h)
{
	h->len = (uint32_t)le_load(in, 4);
	h->type = (uint16_t)le_load(in + 4, 2);
	h->flags = (uint16_t)le_load(in + 6, 2);
	h->id = (uint32_t)le_load(in + 8, 4);
	if (h->len > VP_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (!vp_type_known(h->type) || h->flags != 0)
		return -EPROTO;
	return 0;
}

const char *vp_type_name(uint16_t type)
{
	switch (type) {
#define NAME_CASE(NAME, value, codec, dir, reply) case VP_##NAME: return #NAME;
	VP_MESSAGES(NAME_CASE)
#undef NAME_CASE
	}
	return "?";
}

enum vp_dir vp_msg_dir(uint16_t type)
{
	switch (type) {
#define DIR_CASE(NAME, value, codec, dir, reply) case VP_##NAME: return VP_DIR_##dir;
	VP_MESSAGES(DIR_CASE)
#undef DIR_CASE
	}
	return VP_DIR_NONE;
}

uint16_t vp_msg_reply(uint16_t type)
{
	switch (type) {
#define REPLY_CASE(NAME, value, codec, dir, reply) case VP_##NAME: return reply;
	VP_MESSAGES(REPLY_CASE)
#undef REPLY_CASE
	}
	return 0;
}

bool vp_type_known(uint16_t type)
{
	return vp_msg_dir(type) != VP_DIR_NONE;
}

/* ---- frame I/O --------------------------------------------------------- */

static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		int r = poll(&p, 1, -1);
		if (r >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* Reads exactly n bytes; any EOF is -ECONNRESET (at a frame boundary too:
 * the channel is gone either way). */
static int read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
		} else if (r == 0) {
			return -ECONNRESET;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int e = wait_fd(fd, POLLIN);
			if (e)
				return e;
		} else if (errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

int vp_frame_read(int fd, struct vp_hdr *h, uint8_t **payload)
{
	uint8_t raw[VP_HDR_SIZE];
	*payload = NULL;
	int e = read_full(fd, raw, sizeof raw);
	if (e)
		return e;
	/* Nothing past a bad header is read: its length cannot be trusted. */
	e = vp_hdr_decode(raw, h);
	if (e)
		return e;
	if (h->len == 0)
		return 0;
	uint8_t *p = malloc(h->len);
	if (!p)
		return -ENOMEM;
	e = read_full(fd, p, h->len);
	if (e) {
		free(p);
		return e;
	}
	*payload = p;
	return 0;
}

void vp_iov_advance(struct iovec **v, int *cnt, size_t n)
{
	while (*cnt && n >= (*v)->iov_len) {
		n -= (*v)->iov_len;
		(*v)++;
		(*cnt)--;
	}
	if (*cnt) {
		(*v)->iov_base = (uint8_t *)(*v)->iov_base + n;
		(*v)->iov_len -= n;
	}
}

int vp_frame_write(int fd, uint16_t type, uint32_t id, const void *payload, size_t len)
{
	if (len > VP_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (!vp_type_known(type) || (len && !payload))
		return -EINVAL;
	uint8_t hdr[VP_HDR_SIZE];
	struct vp_hdr h = { .len = (uint32_t)len, .type = type, .flags = 0, .id = id };
	vp_hdr_encode(hdr, &h);
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof hdr },
		{ .iov_base = (void *)(uintptr_t)payload, .iov_len = len },
	};
	struct iovec *v = iov;
	int cnt = len ? 2 : 1;
	bool sock = true;
	while (cnt) {
		ssize_t w;
		if (sock) {
			/* MSG_NOSIGNAL: a dead peer must be an error, not a SIGPIPE. */
			struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)cnt };
			w = sendmsg(fd, &m, MSG_NOSIGNAL);
			if (w < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			w = writev(fd, v, cnt);
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int e = wait_fd(fd, POLLOUT);
				if (e)
					return e;
				continue;
			}
			return -errno;
		}
		if (w == 0)
			return -EIO;
		vp_iov_advance(&v, &cnt, (size_t)w);
	}
	return 0;
}

int vp_frame_encode(struct vp_buf *out, uint16_t type, uint32_t id, const void *payload, size_t len)
{
	vp_buf_reset(out);
	if (len > VP_MAX_PAYLOAD)
		return out->err = -EMSGSIZE;
	if (!vp_type_known(type) || (len && !payload))
		return out->err = -EINVAL;
	struct vp_hdr h = { .len = (uint32_t)len, .type = type, .flags = 0, .id = id };
	uint8_t *p = buf_grow(out, VP_HDR_SIZE);
	if (p)
		vp_hdr_encode(p, &h);
	vp_put_raw(out, payload, len);
	return out->err;
}

/* ---- messages ---------------------------------------------------------- */

static int finish(struct vp_reader *r)
{
	return vp_reader_finish(r);
}

/* Most payloads are a fixed list of fields. One table per message drives
 * both its decoder and its encoder, so the two cannot disagree on the wire
 * order; the table carries each field's own limit, and a message's `ok`
 * function the rules that tie its fields together. */
enum field_kind {
	K_END,
	K_INT,     /* integer member (signed ones as their bits), ≤ max */
	K_NONZERO, /* likewise, and not 0 */
	K_BYTES,   /* struct vp_bytes: u32 length ≤ max, then the bytes */
	K_TEXT,    /* likewise, with no NUL byte */
	K_NAME,    /* one path component (name_ok) */
};

struct field {
	uint16_t off;   /* offsetof the member */
	uint8_t kind;   /* enum field_kind */
	uint8_t size;   /* sizeof an integer member: its width on the wire */
	uint64_t max;
};

typedef bool fields_ok_fn(const void *m);

#define FIELD(T, m, kind, max) { offsetof(T, m), kind, sizeof(((T *)0)->m), max }
#define F_INT(T, m) FIELD(T, m, K_INT, UINT64_MAX)
#define F_MAX(T, m, max) FIELD(T, m, K_INT, max)
#define F_NONZERO(T, m) FIELD(T, m, K_NONZERO, UINT64_MAX)
#define F_BYTES(T, m, max) FIELD(T, m, K_BYTES, max)
#define F_TEXT(T, m, max) FIELD(T, m, K_TEXT, max)
#define F_NAME(T, m) FIELD(T, m, K_NAME, VP_MAX_NAME)
#define F_END { 0, K_END, 0, 0 }

/* An integer member as a wire value and back; all union members start at
 * offset 0, so the first `size` bytes are the member of that width. */
union member {
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
};

static uint64_t member_load(const uint8_t *p, unsigned size)
{
	union member v;
	memcpy(&v, p, size);
	return size == 1 ? v.u8 : size == 2 ? v.u16 : size == 4 ? v.u32 : v.u64;
}

static void member_store(uint8_t *p, uint64_t x, unsigned size)
{
	union member v;
	if (size == 1)
		v.u8 = (uint8_t)x;
	else if (size == 2)
		v.u16 = (uint16_t)x;
	else if (size == 4)
		v.u32 = (uint32_t)x;
	else
		v.u64 = x;
	memcpy(p, &v, size);
}

static bool is_int(const struct field *f)
{
	return f->kind == K_INT || f->kind == K_NONZERO;
}

static void get_fields(struct vp_reader *r, void *m, const struct field *f)
{
	for (; f->kind != K_END; f++) {
		uint8_t *p = (uint8_t *)m + f->off;
		if (is_int(f)) {
			uint64_t v = get_le(r, f->size);
			member_store(p, v, f->size);
			check(r, v <= f->max && (v != 0 || f->kind == K_INT));
			continue;
		}
		struct vp_bytes *b = (struct vp_bytes *)p;
		get_bytes(r, b, (uint32_t)f->max);
		if (f->kind == K_TEXT)
			check(r, r->err || !has_nul(b));
		else if (f->kind == K_NAME)
			check(r, r->err || name_ok(b));
	}
}

static void put_fields(struct vp_buf *b, const void *m, const struct field *f)
{
	for (; f->kind != K_END; f++) {
		const uint8_t *p = (const uint8_t *)m + f->off;
		if (is_int(f)) {
			put_le(b, member_load(p, f->size), f->size);
		} else {
			const struct vp_bytes *s = (const struct vp_bytes *)p;
			vp_put_str(b, s->p, s->len);
		}
	}
}

static void get_msg(struct vp_reader *r, void *m, const struct field *f, fields_ok_fn *ok)
{
	get_fields(r, m, f);
	check(r, r->err || !ok || ok(m));
}

static int dec_msg(const void *p, size_t n, void *m, const struct field *f, fields_ok_fn *ok)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	get_msg(&r, m, f, ok);
	return finish(&r);
}

/* Every encoder re-reads what it appended with the matching decoder, so a
 * message that the peer would reject never leaves this side (err -EINVAL,
 * or -EMSGSIZE/-ENOMEM from the buffer). */
static void self_check(struct vp_buf *b, int dec)
{
	if (!b->err && dec)
		b->err = -EINVAL;
}

#define SELF_CHECK(b, start, decoder, type)                                         \
	do {                                                                        \
		if (!(b)->err) {                                                    \
			type tmp_;                                                  \
			self_check(b, decoder((b)->data + (start), (b)->len - (start), &tmp_)); \
		}                                                                   \
	} while (0)


static void enc_msg(struct vp_buf *b, const void *m, const struct field *f, fields_ok_fn *ok)
{
	size_t s = b->len;
	put_fields(b, m, f);
	if (!b->err) {
		union vp_msg tmp; /* room for any message */
		self_check(b, dec_msg(b->data + s, b->len - s, &tmp, f, ok));
	}
}

static const struct field hello_fields[] = {
	F_INT(struct vp_hello, min_version), F_INT(struct vp_hello, max_version), F_END,
};

static bool hello_ok(const void *p)
{
	const struct vp_hello *m = p;
	return m->min_version <= m->max_version;
}

int vp_dec_hello(const void *p, size_t n, struct vp_hello *m)
{
	return dec_msg(p, n, m, hello_fields, hello_ok);
}

void vp_enc_hello(struct vp_buf *b, const struct vp_hello *m)
{
	enc_msg(b, m, hello_fields, hello_ok);
}

static const struct field ready_fields[] = {
	F_INT(struct vp_ready, version), F_INT(struct vp_ready, features),
	F_TEXT(struct vp_ready, info, MAX_INFO), F_END,
};

int vp_dec_ready(const void *p, size_t n, struct vp_ready *m)
{
	return dec_msg(p, n, m, ready_fields, NULL);
}

void vp_enc_ready(struct vp_buf *b, const struct vp_ready *m)
{
	enc_msg(b, m, ready_fields, NULL);
}

/* Any errno value is accepted here: the client clamps it, and rejecting a
 * bad value would lose the reply. */
static const struct field error_fields[] = {
	F_INT(struct vp_error, err), F_TEXT(struct vp_error, message, MAX_INFO), F_END,
};

int vp_dec_error(const void *p, size_t n, struct vp_error *m)
{
	return dec_msg(p, n, m, error_fields, NULL);
}

void vp_enc_error(struct vp_buf *b, const struct vp_error *m)
{
	enc_msg(b, m, error_fields, NULL);
}

static const struct field set_time_fields[] = {
	F_INT(struct vp_set_time, sec), F_MAX(struct vp_set_time, nsec, NSEC_PER_SEC - 1), F_END,
};

int vp_dec_set_time(const void *p, size_t n, struct vp_set_time *m)
{
	return dec_msg(p, n, m, set_time_fields, NULL);
}

void vp_enc_set_time(struct vp_buf *b, const struct vp_set_time *m)
{
	enc_msg(b, m, set_time_fields, NULL);
}

/* EXEC: these fields, then u32 nenv and the env entries. */
static const struct field exec_fields[] = {
	F_INT(struct vp_exec, timeout_ms), F_INT(struct vp_exec, flags),
	F_TEXT(struct vp_exec, cmd, VP_MAX_CMD), F_TEXT(struct vp_exec, cwd, VP_MAX_PATH), F_END,
};

int vp_dec_exec(const void *p, size_t n, struct vp_exec *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	get_fields(&r, m, exec_fields);
	check(&r, (m->flags & ~VP_EXEC_STDIN) == 0);
	m->nenv = vp_get_u32(&r);
	check(&r, m->nenv <= VP_MAX_ENV);
	if (r.err)
		m->nenv = 0;
	for (uint32_t i = 0; i < m->nenv && !r.err; i++) {
		struct vp_bytes *e = &m->env[i];
		get_text(&r, e, VP_MAX_CMD);
		/* "K=V" with a non-empty K. */
		check(&r, r.err || (e->len >= 2 && e->p[0] != '=' && memchr(e->p, '=', e->len)));
	}
	return finish(&r);
}

void vp_enc_exec(struct vp_buf *b, const struct vp_exec *m)
{
	if (m->nenv > VP_MAX_ENV) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	size_t s = b->len;
	put_fields(b, m, exec_fields);
	vp_put_u32(b, m->nenv);
	for (uint32_t i = 0; i < m->nenv; i++)
		vp_put_str(b, m->env[i].p, m->env[i].len);
	SELF_CHECK(b, s, vp_dec_exec, struct vp_exec);
}

static const struct field exec_started_fields[] = { F_INT(struct vp_exec_started, pid), F_END };

int vp_dec_exec_started(const void *p, size_t n, struct vp_exec_started *m)
{
	return dec_msg(p, n, m, exec_started_fields, NULL);
}

void vp_enc_exec_started(struct vp_buf *b, const struct vp_exec_started *m)
{
	enc_msg(b, m, exec_started_fields, NULL);
}

static const struct field output_fields[] = {
	F_INT(struct vp_output, stream), F_BYTES(struct vp_output, data, VP_MAX_DATA), F_END,
};

static bool output_ok(const void *p)
{
	const struct vp_output *m = p;
	/* An empty chunk would carry nothing to acknowledge. */
	return (m->stream == VP_STREAM_STDOUT || m->stream == VP_STREAM_STDERR) && m->data.len > 0;
}

int vp_dec_output(const void *p, size_t n, struct vp_output *m)
{
	return dec_msg(p, n, m, output_fields, output_ok);
}

void vp_enc_output(struct vp_buf *b, const struct vp_output *m)
{
	enc_msg(b, m, output_fields, output_ok);
}

static const struct field exit_fields[] = {
	F_INT(struct vp_exit, code), F_INT(struct vp_exit, signal), F_MAX(struct vp_exit, timed_out, 1),
	F_INT(struct vp_exit, duration_us), F_END,
};

static bool exit_ok(const void *p)
{
	const struct vp_exit *m = p;
	return m->code >= -1 && m->code <= 255 && m->signal >= 0 && m->signal <= MAX_SIGNO;
}

int vp_dec_exit(const void *p, size_t n, struct vp_exit *m)
{
	return dec_msg(p, n, m, exit_fields, exit_ok);
}

void vp_enc_exit(struct vp_buf *b, const struct vp_exit *m)
{
	enc_msg(b, m, exit_fields, exit_ok);
}

static const struct field output_ack_fields[] = {
	F_NONZERO(struct vp_output_ack, exec_id), F_MAX(struct vp_output_ack, bytes, VP_OUTPUT_WINDOW), F_END,
};

int vp_dec_output_ack(const void *p, size_t n, struct vp_output_ack *m)
{
	return dec_msg(p, n, m, output_ack_fields, NULL);
}

void vp_enc_output_ack(struct vp_buf *b, const struct vp_output_ack *m)
{
	enc_msg(b, m, output_ack_fields, NULL);
}

static const struct field stdin_fields[] = {
	F_NONZERO(struct vp_stdin, exec_id), F_MAX(struct vp_stdin, eof, 1),
	F_BYTES(struct vp_stdin, data, VP_MAX_DATA), F_END,
};

int vp_dec_stdin(const void *p, size_t n, struct vp_stdin *m)
{
	return dec_msg(p, n, m, stdin_fields, NULL);
}

void vp_enc_stdin(struct vp_buf *b, const struct vp_stdin *m)
{
	enc_msg(b, m, stdin_fields, NULL);
}

static const struct field signal_fields[] = {
	F_NONZERO(struct vp_signal, exec_id), F_INT(struct vp_signal, signo), F_END,
};

static bool signal_ok(const void *p)
{
	const struct vp_signal *m = p;
	return m->signo >= 1 && m->signo <= MAX_SIGNO;
}

int vp_dec_signal(const void *p, size_t n, struct vp_signal *m)
{
	return dec_msg(p, n, m, signal_fields, signal_ok);
}

void vp_enc_signal(struct vp_buf *b, const struct vp_signal *m)
{
	enc_msg(b, m, signal_fields, signal_ok);
}

#define ATTR(m) F_INT(struct vp_attr, m)
static const struct field attr_fields[] = {
	ATTR(ino), ATTR(size), ATTR(blocks), ATTR(atime_sec), ATTR(mtime_sec), ATTR(ctime_sec),
	ATTR(atime_nsec), ATTR(mtime_nsec), ATTR(ctime_nsec), ATTR(mode), ATTR(nlink), ATTR(uid),
	ATTR(gid), ATTR(rdev), ATTR(blksize), F_END,
};
#undef ATTR

static bool attr_ok(const void *p)
{
	const struct vp_attr *m = p;
	return m->atime_nsec < NSEC_PER_SEC && m->mtime_nsec < NSEC_PER_SEC && m->ctime_nsec < NSEC_PER_SEC;
}

void vp_get_attr(struct vp_reader *r, struct vp_attr *m)
{
	get_msg(r, m, attr_fields, attr_ok);
}

int vp_dec_attr(const void *p, size_t n, struct vp_attr *m)
{
	return dec_msg(p, n, m, attr_fields, attr_ok);
}

void vp_enc_attr(struct vp_buf *b, const struct vp_attr *m)
{
	enc_msg(b, m, attr_fields, attr_ok);
}

/* ENTRY: u64 node, then the attr fields. */
static void get_entry(struct vp_reader *r, struct vp_entry *m)
{
	m->node = vp_get_u64(r);
	vp_get_attr(r, &m->attr);
	check(r, m->node != 0);
}

int vp_dec_entry(const void *p, size_t n, struct vp_entry *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	get_entry(&r, m);
	return finish(&r);
}

void vp_enc_entry(struct vp_buf *b, const struct vp_entry *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->node);
	put_fields(b, &m->attr, attr_fields);
	SELF_CHECK(b, s, vp_dec_entry, struct vp_entry);
}

#define VP_SET_ALL 0xffu

#define SETATTR(m) F_INT(struct vp_setattr, m)
static const struct field setattr_fields[] = {
	F_NONZERO(struct vp_setattr, node), SETATTR(fh), SETATTR(valid), SETATTR(mode), SETATTR(uid),
	SETATTR(gid), SETATTR(size), SETATTR(atime_sec), SETATTR(mtime_sec), SETATTR(atime_nsec),
	SETATTR(mtime_nsec), F_END,
};
#undef SETATTR

static bool setattr_ok(const void *p)
{
	const struct vp_setattr *m = p;
	return (m->valid & ~VP_SET_ALL) == 0 && m->atime_nsec < NSEC_PER_SEC && m->mtime_nsec < NSEC_PER_SEC;
}

int vp_dec_setattr(const void *p, size_t n, struct vp_setattr *m)
{
	return dec_msg(p, n, m, setattr_fields, setattr_ok);
}

void vp_enc_setattr(struct vp_buf *b, const struct vp_setattr *m)
{
	enc_msg(b, m, setattr_fields, setattr_ok);
}

#define STATFS(m) F_INT(struct vp_statfs, m)
static const struct field statfs_fields[] = {
	STATFS(blocks), STATFS(bfree), STATFS(bavail), STATFS(files), STATFS(ffree),
	STATFS(bsize), STATFS(frsize), STATFS(namemax), F_END,
};
#undef STATFS

int vp_dec_statfs(const void *p, size_t n, struct vp_statfs *m)
{
	return dec_msg(p, n, m, statfs_fields, NULL);
}

void vp_enc_statfs(struct vp_buf *b, const struct vp_statfs *m)
{
	enc_msg(b, m, statfs_fields, NULL);
}

static const struct field dirent_fields[] = {
	F_INT(struct vp_dirent, ino), F_INT(struct vp_dirent, next_offset), F_MAX(struct vp_dirent, type, 15),
	F_BYTES(struct vp_dirent, name, VP_MAX_NAME), F_END,
};

static bool dirent_ok(const void *p)
{
	const struct vp_dirent *m = p;
	return dirent_name_ok(&m->name);
}

void vp_get_dirent(struct vp_reader *r, struct vp_dirent *m)
{
	get_msg(r, m, dirent_fields, dirent_ok);
}

void vp_enc_dirent(struct vp_buf *b, const struct vp_dirent *m)
{
	enc_msg(b, m, dirent_fields, dirent_ok);
}

/* Requests that vp_fs_req carries, in wire order (the enum comments in
 * proto.h). */
#define R_NODE F_NONZERO(struct vp_fs_req, node)
#define R_NODE2 F_NONZERO(struct vp_fs_req, node2)
#define R_FH F_INT(struct vp_fs_req, fh)
#define R_OFFSET F_INT(struct vp_fs_req, offset)
#define R_NLOOKUP F_INT(struct vp_fs_req, nlookup)
#define R_SIZE F_MAX(struct vp_fs_req, size, VP_MAX_DATA)
#define R_FLAGS F_INT(struct vp_fs_req, flags)
#define R_DATASYNC F_MAX(struct vp_fs_req, flags, 1)
#define R_MODE F_INT(struct vp_fs_req, mode)
#define R_RDEV F_INT(struct vp_fs_req, rdev)
#define R_NAME F_NAME(struct vp_fs_req, name)
#define R_NEWNAME F_NAME(struct vp_fs_req, name2)
#define R_TARGET F_TEXT(struct vp_fs_req, name2, VP_MAX_PATH)
#define R_DATA F_BYTES(struct vp_fs_req, data, VP_MAX_DATA)

static const struct field *fs_layout(uint16_t type)
{
	static const struct field node_only[] = { R_NODE, F_END };
	static const struct field node_name[] = { R_NODE, R_NAME, F_END };
	static const struct field fh_only[] = { R_FH, F_END };
	static const struct field forget[] = { R_NODE, R_NLOOKUP, F_END };
	static const struct field mknod[] = { R_NODE, R_MODE, R_RDEV, R_NAME, F_END };
	static const struct field mkdir[] = { R_NODE, R_MODE, R_NAME, F_END };
	static const struct field symlink[] = { R_NODE, R_NAME, R_TARGET, F_END };
	static const struct field rename[] = { R_NODE, R_NODE2, R_FLAGS, R_NAME, R_NEWNAME, F_END };
	static const struct field link[] = { R_NODE, R_NODE2, R_NEWNAME, F_END };
	static const struct field open[] = { R_NODE, R_FLAGS, F_END };
	static const struct field create[] = { R_NODE, R_FLAGS, R_MODE, R_NAME, F_END };
	static const struct field read[] = { R_FH, R_OFFSET, R_SIZE, F_END };
	static const struct field write[] = { R_FH, R_OFFSET, R_DATA, F_END };
	static const struct field fsync[] = { R_FH, R_DATASYNC, F_END };

	switch (type) {
	case VP_FS_LOOKUP: return node_name;
	case VP_FS_FORGET: return forget;
	case VP_FS_GETATTR: return node_only;
	case VP_FS_READLINK: return node_only;
	case VP_FS_MKNOD: return mknod;
	case VP_FS_MKDIR: return mkdir;
	case VP_FS_UNLINK: return node_name;
	case VP_FS_RMDIR: return node_name;
	case VP_FS_SYMLINK: return symlink;
	case VP_FS_RENAME: return rename;
	case VP_FS_LINK: return link;
	case VP_FS_OPEN: return open;
	case VP_FS_CREATE: return create;
	case VP_FS_READ: return read;
	case VP_FS_WRITE: return write;
	case VP_FS_FSYNC: return fsync;
	case VP_FS_CLOSE: return fh_only;
	case VP_FS_OPENDIR: return node_only;
	case VP_FS_READDIR: return read;
	case VP_FS_STATFS: return node_only;
	}
	return NULL; /* SETATTR has its own struct */
}

int vp_dec_fs_req(const void *p, size_t n, uint16_t type, struct vp_fs_req *m)
{
	memset(m, 0, sizeof *m);
	const struct field *f = fs_layout(type);
	return f ? dec_msg(p, n, m, f, NULL) : -EBADMSG;
}

void vp_enc_fs_req(struct vp_buf *b, uint16_t type, const struct vp_fs_req *m)
{
	const struct field *f = fs_layout(type);
	if (f)
		enc_msg(b, m, f, NULL);
	else if (!b->err)
		b->err = -EINVAL;
}


/* ---- one-field payloads and composite replies ---------------------------- */

static const struct field data_fields[] = { F_BYTES(struct vp_data, data, VP_MAX_DATA), F_END };

int vp_dec_data(const void *p, size_t n, struct vp_data *m)
{
	return dec_msg(p, n, m, data_fields, NULL);
}

void vp_enc_data(struct vp_buf *b, const struct vp_data *m)
{
	enc_msg(b, m, data_fields, NULL);
}

static const struct field empty_fields[] = { F_END };

int vp_dec_empty(const void *p, size_t n, struct vp_empty *m)
{
	m->unused = 0;
	return dec_msg(p, n, m, empty_fields, NULL);
}

void vp_enc_empty(struct vp_buf *b, const struct vp_empty *m)
{
	(void)b, (void)m;
}

static const struct field handle_fields[] = { F_NONZERO(struct vp_handle, fh), F_END };

int vp_dec_handle(const void *p, size_t n, struct vp_handle *m)
{
	return dec_msg(p, n, m, handle_fields, NULL);
}

void vp_enc_handle(struct vp_buf *b, const struct vp_handle *m)
{
	enc_msg(b, m, handle_fields, NULL);
}

static const struct field written_fields[] = { F_MAX(struct vp_written, count, VP_MAX_DATA), F_END };

int vp_dec_written(const void *p, size_t n, struct vp_written *m)
{
	return dec_msg(p, n, m, written_fields, NULL);
}

void vp_enc_written(struct vp_buf *b, const struct vp_written *m)
{
	enc_msg(b, m, written_fields, NULL);
}

/* CREATED: u64 fh (non-zero), then an entry. */
int vp_dec_created(const void *p, size_t n, struct vp_created *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->fh = vp_get_u64(&r);
	get_entry(&r, &m->entry);
	check(&r, m->fh != 0);
	return finish(&r);
}

void vp_enc_created(struct vp_buf *b, const struct vp_created *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->fh);
	vp_put_u64(b, m->entry.node);
	put_fields(b, &m->entry.attr, attr_fields);
	SELF_CHECK(b, s, vp_dec_created, struct vp_created);
}

int vp_dec_dirents(const void *p, size_t n, struct vp_dirents *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->count = vp_get_u32(&r);
	m->entries.p = r.p;
	/* Stops at the first error: a huge count on a short payload must not spin. */
	for (uint32_t i = 0; i < m->count && !r.err; i++) {
		struct vp_dirent d;
		vp_get_dirent(&r, &d);
	}
	m->entries.len = r.err ? 0 : (uint32_t)(r.p - m->entries.p);
	return finish(&r);
}

void vp_enc_dirents(struct vp_buf *b, const struct vp_dirents *m)
{
	struct vp_reader r;
	vp_reader_init(&r, m->entries.p, m->entries.len);
	vp_put_u32(b, m->count);
	for (uint32_t i = 0; i < m->count && !r.err; i++) {
		struct vp_dirent d;
		vp_get_dirent(&r, &d);
		if (!r.err)
			vp_enc_dirent(b, &d);
	}
	if (vp_reader_finish(&r) && !b->err)
		b->err = -EINVAL;
}

/* ---- any message ----------------------------------------------------------- */

/* Each VP_CODECS layout behind one signature, so VP_MESSAGES can name
 * them by codec alone. */
#define ARGS_PLAIN(codec, member) vp_dec_##codec(p, n, &m->member)
#define ARGS_TYPED(codec, member) vp_dec_##codec(p, n, type, &m->member)
#define EARGS_PLAIN(codec, member) vp_enc_##codec(b, &m->member)
#define EARGS_TYPED(codec, member) vp_enc_##codec(b, type, &m->member)
#define CODEC_FNS(codec, member, T, args)                                                             \
	static int dec_any_##codec(uint16_t type, const void *p, size_t n, union vp_msg *m)           \
	{                                                                                             \
		(void)type;                                                                           \
		return ARGS_##args(codec, member);                                                    \
	}                                                                                             \
	static void enc_any_##codec(struct vp_buf *b, uint16_t type, const union vp_msg *m)           \
	{                                                                                             \
		(void)type;                                                                           \
		EARGS_##args(codec, member);                                                          \
	}
VP_CODECS(CODEC_FNS)
#undef CODEC_FNS

int vp_decode(uint16_t type, const void *payload, size_t len, union vp_msg *m)
{
	if (len > VP_MAX_PAYLOAD)
		return -EBADMSG;
	switch (type) {
#define DEC_CASE(NAME, value, codec, dir, reply) \
	case VP_##NAME: return dec_any_##codec(type, payload, len, m);
	VP_MESSAGES(DEC_CASE)
#undef DEC_CASE
	}
	return -EPROTO;
}

void vp_encode(struct vp_buf *b, uint16_t type, const union vp_msg *m)
{
	switch (type) {
#define ENC_CASE(NAME, value, codec, dir, reply) \
	case VP_##NAME: enc_any_##codec(b, type, m); return;
	VP_MESSAGES(ENC_CASE)
#undef ENC_CASE
	}
	if (!b->err)
		b->err = -EINVAL;
}

int vp_validate(uint16_t type, const void *payload, size_t len)
{
	union vp_msg m;
	return vp_decode(type, payload, len, &m);
}
