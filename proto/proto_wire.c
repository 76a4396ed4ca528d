/* The codec's wire layer (proto.h): growable buffers, the bounds-checked
 * reader, the 12-byte header and the type table it validates against,
 * and blocking frame I/O. Byte-by-byte little-endian so the agent and the
 * host agree on any host ABI. The helpers that proto_fields.c and
 * proto_codec.c build on are declared in proto_internal.h. */
#include "proto_internal.h"

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

void proto_put_le(struct vp_buf *b, uint64_t v, unsigned n)
{
	uint8_t *p = buf_grow(b, n);
	if (p)
		le_store(p, v, n);
}

void vp_put_u8(struct vp_buf *b, uint8_t v)
{
	proto_put_le(b, v, 1);
}
void vp_put_u16(struct vp_buf *b, uint16_t v)
{
	proto_put_le(b, v, 2);
}
void vp_put_u32(struct vp_buf *b, uint32_t v)
{
	proto_put_le(b, v, 4);
}
void vp_put_u64(struct vp_buf *b, uint64_t v)
{
	proto_put_le(b, v, 8);
}
void vp_put_i32(struct vp_buf *b, int32_t v)
{
	proto_put_le(b, (uint32_t)v, 4);
}
void vp_put_i64(struct vp_buf *b, int64_t v)
{
	proto_put_le(b, (uint64_t)v, 8);
}

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

uint64_t proto_get_le(struct vp_reader *r, unsigned n)
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

uint8_t vp_get_u8(struct vp_reader *r)
{
	return (uint8_t)proto_get_le(r, 1);
}
uint16_t vp_get_u16(struct vp_reader *r)
{
	return (uint16_t)proto_get_le(r, 2);
}
uint32_t vp_get_u32(struct vp_reader *r)
{
	return (uint32_t)proto_get_le(r, 4);
}
uint64_t vp_get_u64(struct vp_reader *r)
{
	return proto_get_le(r, 8);
}
int32_t vp_get_i32(struct vp_reader *r)
{
	return (int32_t)(uint32_t)proto_get_le(r, 4);
}
int64_t vp_get_i64(struct vp_reader *r)
{
	return (int64_t)proto_get_le(r, 8);
}

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

void proto_get_bytes(struct vp_reader *r, struct vp_bytes *b, uint32_t max)
{
	vp_get_str(r, &b->p, &b->len, max);
}

void proto_check(struct vp_reader *r, bool ok)
{
	if (!ok)
		reader_fail(r);
}

bool proto_has_nul(const struct vp_bytes *b)
{
	return b->len && memchr(b->p, 0, b->len);
}

void proto_get_text(struct vp_reader *r, struct vp_bytes *b, uint32_t max)
{
	proto_get_bytes(r, b, max);
	proto_check(r, r->err || !proto_has_nul(b));
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
#define NAME_CASE(NAME, value, codec, dir, reply) \
	case VP_##NAME: return #NAME;
		VP_MESSAGES(NAME_CASE)
#undef NAME_CASE
	}
	return "?";
}

enum vp_dir vp_msg_dir(uint16_t type)
{
	switch (type) {
#define DIR_CASE(NAME, value, codec, dir, reply) \
	case VP_##NAME: return VP_DIR_##dir;
		VP_MESSAGES(DIR_CASE)
#undef DIR_CASE
	}
	return VP_DIR_NONE;
}

uint16_t vp_msg_reply(uint16_t type)
{
	switch (type) {
#define REPLY_CASE(NAME, value, codec, dir, reply) \
	case VP_##NAME: return reply;
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
