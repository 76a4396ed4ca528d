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

static void get_name(struct vp_reader *r, struct vp_bytes *b)
{
	get_bytes(r, b, VP_MAX_NAME);
	check(r, r->err || name_ok(b));
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
	case VP_HELLO: return "HELLO";
	case VP_READY: return "READY";
	case VP_PING: return "PING";
	case VP_PONG: return "PONG";
	case VP_ERROR: return "ERROR";
	case VP_OK: return "OK";
	case VP_EXEC: return "EXEC";
	case VP_EXEC_STARTED: return "EXEC_STARTED";
	case VP_OUTPUT: return "OUTPUT";
	case VP_EXIT: return "EXIT";
	case VP_OUTPUT_ACK: return "OUTPUT_ACK";
	case VP_STDIN: return "STDIN";
	case VP_SIGNAL: return "SIGNAL";
	case VP_FS_LOOKUP: return "FS_LOOKUP";
	case VP_FS_FORGET: return "FS_FORGET";
	case VP_FS_GETATTR: return "FS_GETATTR";
	case VP_FS_SETATTR: return "FS_SETATTR";
	case VP_FS_READLINK: return "FS_READLINK";
	case VP_FS_MKNOD: return "FS_MKNOD";
	case VP_FS_MKDIR: return "FS_MKDIR";
	case VP_FS_UNLINK: return "FS_UNLINK";
	case VP_FS_RMDIR: return "FS_RMDIR";
	case VP_FS_SYMLINK: return "FS_SYMLINK";
	case VP_FS_RENAME: return "FS_RENAME";
	case VP_FS_LINK: return "FS_LINK";
	case VP_FS_OPEN: return "FS_OPEN";
	case VP_FS_CREATE: return "FS_CREATE";
	case VP_FS_READ: return "FS_READ";
	case VP_FS_WRITE: return "FS_WRITE";
	case VP_FS_FSYNC: return "FS_FSYNC";
	case VP_FS_CLOSE: return "FS_CLOSE";
	case VP_FS_OPENDIR: return "FS_OPENDIR";
	case VP_FS_READDIR: return "FS_READDIR";
	case VP_FS_STATFS: return "FS_STATFS";
	case VP_FS_ENTRY: return "FS_ENTRY";
	case VP_FS_ATTR: return "FS_ATTR";
	case VP_FS_DATA: return "FS_DATA";
	case VP_FS_HANDLE: return "FS_HANDLE";
	case VP_FS_CREATED: return "FS_CREATED";
	case VP_FS_WRITTEN: return "FS_WRITTEN";
	case VP_FS_DIRENTS: return "FS_DIRENTS";
	case VP_FS_STATFS_REPLY: return "FS_STATFS_REPLY";
	}
	return "?";
}

bool vp_type_known(uint16_t type)
{
	return strcmp(vp_type_name(type), "?") != 0;
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
		{ .iov_base = (void *)payload, .iov_len = len },
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
		size_t done = (size_t)w;
		while (cnt && done >= v->iov_len) {
			done -= v->iov_len;
			v++;
			cnt--;
		}
		if (cnt) {
			v->iov_base = (uint8_t *)v->iov_base + done;
			v->iov_len -= done;
		}
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

/* ---- decoders ---------------------------------------------------------- */

static int finish(struct vp_reader *r)
{
	return vp_reader_finish(r);
}

int vp_dec_hello(const void *p, size_t n, struct vp_hello *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->min_version = vp_get_u32(&r);
	m->max_version = vp_get_u32(&r);
	check(&r, m->min_version <= m->max_version);
	return finish(&r);
}

int vp_dec_ready(const void *p, size_t n, struct vp_ready *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->version = vp_get_u32(&r);
	m->features = vp_get_u32(&r);
	get_text(&r, &m->info, MAX_INFO);
	return finish(&r);
}

/* Any errno value is accepted here: the client clamps it, and rejecting a
 * bad value would lose the reply. */
int vp_dec_error(const void *p, size_t n, struct vp_error *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->err = vp_get_i32(&r);
	get_text(&r, &m->message, MAX_INFO);
	return finish(&r);
}

int vp_dec_exec(const void *p, size_t n, struct vp_exec *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->timeout_ms = vp_get_u32(&r);
	m->flags = vp_get_u32(&r);
	check(&r, (m->flags & ~VP_EXEC_STDIN) == 0);
	get_text(&r, &m->cmd, VP_MAX_CMD);
	get_text(&r, &m->cwd, VP_MAX_PATH);
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

int vp_dec_exec_started(const void *p, size_t n, struct vp_exec_started *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->pid = vp_get_u32(&r);
	return finish(&r);
}

int vp_dec_output(const void *p, size_t n, struct vp_output *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->stream = vp_get_u8(&r);
	check(&r, m->stream == VP_STREAM_STDOUT || m->stream == VP_STREAM_STDERR);
	get_bytes(&r, &m->data, VP_MAX_DATA);
	/* An empty chunk would carry nothing to acknowledge. */
	check(&r, r.err || m->data.len > 0);
	return finish(&r);
}

int vp_dec_exit(const void *p, size_t n, struct vp_exit *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->code = vp_get_i32(&r);
	m->signal = vp_get_i32(&r);
	m->timed_out = vp_get_u8(&r);
	m->duration_us = vp_get_u64(&r);
	check(&r, m->code >= -1 && m->code <= 255);
	check(&r, m->signal >= 0 && m->signal <= MAX_SIGNO);
	check(&r, m->timed_out <= 1);
	return finish(&r);
}

int vp_dec_output_ack(const void *p, size_t n, struct vp_output_ack *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->exec_id = vp_get_u32(&r);
	m->bytes = vp_get_u32(&r);
	check(&r, m->exec_id != 0 && m->bytes <= VP_OUTPUT_WINDOW);
	return finish(&r);
}

int vp_dec_stdin(const void *p, size_t n, struct vp_stdin *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->exec_id = vp_get_u32(&r);
	m->eof = vp_get_u8(&r);
	get_bytes(&r, &m->data, VP_MAX_DATA);
	check(&r, m->exec_id != 0 && m->eof <= 1);
	return finish(&r);
}

int vp_dec_signal(const void *p, size_t n, struct vp_signal *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->exec_id = vp_get_u32(&r);
	m->signo = vp_get_i32(&r);
	check(&r, m->exec_id != 0 && m->signo >= 1 && m->signo <= MAX_SIGNO);
	return finish(&r);
}

void vp_get_attr(struct vp_reader *r, struct vp_attr *m)
{
	m->ino = vp_get_u64(r);
	m->size = vp_get_u64(r);
	m->blocks = vp_get_u64(r);
	m->atime_sec = vp_get_i64(r);
	m->mtime_sec = vp_get_i64(r);
	m->ctime_sec = vp_get_i64(r);
	m->atime_nsec = vp_get_u32(r);
	m->mtime_nsec = vp_get_u32(r);
	m->ctime_nsec = vp_get_u32(r);
	m->mode = vp_get_u32(r);
	m->nlink = vp_get_u32(r);
	m->uid = vp_get_u32(r);
	m->gid = vp_get_u32(r);
	m->rdev = vp_get_u32(r);
	m->blksize = vp_get_u32(r);
	check(r, m->atime_nsec < NSEC_PER_SEC && m->mtime_nsec < NSEC_PER_SEC &&
			 m->ctime_nsec < NSEC_PER_SEC);
}

int vp_dec_attr(const void *p, size_t n, struct vp_attr *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	vp_get_attr(&r, m);
	return finish(&r);
}

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

#define VP_SET_ALL 0xffu

int vp_dec_setattr(const void *p, size_t n, struct vp_setattr *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->node = vp_get_u64(&r);
	m->fh = vp_get_u64(&r);
	m->valid = vp_get_u32(&r);
	m->mode = vp_get_u32(&r);
	m->uid = vp_get_u32(&r);
	m->gid = vp_get_u32(&r);
	m->size = vp_get_u64(&r);
	m->atime_sec = vp_get_i64(&r);
	m->mtime_sec = vp_get_i64(&r);
	m->atime_nsec = vp_get_u32(&r);
	m->mtime_nsec = vp_get_u32(&r);
	check(&r, m->node != 0 && (m->valid & ~VP_SET_ALL) == 0);
	check(&r, m->atime_nsec < NSEC_PER_SEC && m->mtime_nsec < NSEC_PER_SEC);
	return finish(&r);
}

int vp_dec_statfs(const void *p, size_t n, struct vp_statfs *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->blocks = vp_get_u64(&r);
	m->bfree = vp_get_u64(&r);
	m->bavail = vp_get_u64(&r);
	m->files = vp_get_u64(&r);
	m->ffree = vp_get_u64(&r);
	m->bsize = vp_get_u32(&r);
	m->frsize = vp_get_u32(&r);
	m->namemax = vp_get_u32(&r);
	return finish(&r);
}

void vp_get_dirent(struct vp_reader *r, struct vp_dirent *m)
{
	m->ino = vp_get_u64(r);
	m->next_offset = vp_get_u64(r);
	m->type = vp_get_u32(r);
	get_bytes(r, &m->name, VP_MAX_NAME);
	check(r, r->err || (m->type <= 15 && dirent_name_ok(&m->name)));
}

/* Field layout of every request that vp_fs_req carries; the order of the
 * steps is the wire order (the enum comments in proto.h). */
enum fs_field { F_END, F_NODE, F_NODE2, F_FH, F_OFFSET, F_NLOOKUP, F_SIZE, F_FLAGS, F_MODE, F_RDEV,
	F_NAME, F_NEWNAME, F_TARGET, F_DATA };

static const uint8_t *fs_layout(uint16_t type)
{
	static const uint8_t node_only[] = { F_NODE, F_END };
	static const uint8_t node_name[] = { F_NODE, F_NAME, F_END };
	static const uint8_t fh_only[] = { F_FH, F_END };
	static const uint8_t lookup_forget[] = { F_NODE, F_NLOOKUP, F_END };
	static const uint8_t mknod[] = { F_NODE, F_MODE, F_RDEV, F_NAME, F_END };
	static const uint8_t mkdir[] = { F_NODE, F_MODE, F_NAME, F_END };
	static const uint8_t symlink[] = { F_NODE, F_NAME, F_TARGET, F_END };
	static const uint8_t rename[] = { F_NODE, F_NODE2, F_FLAGS, F_NAME, F_NEWNAME, F_END };
	static const uint8_t link[] = { F_NODE, F_NODE2, F_NEWNAME, F_END };
	static const uint8_t open[] = { F_NODE, F_FLAGS, F_END };
	static const uint8_t create[] = { F_NODE, F_FLAGS, F_MODE, F_NAME, F_END };
	static const uint8_t read[] = { F_FH, F_OFFSET, F_SIZE, F_END };
	static const uint8_t write[] = { F_FH, F_OFFSET, F_DATA, F_END };
	static const uint8_t fsync[] = { F_FH, F_FLAGS, F_END };

	switch (type) {
	case VP_FS_LOOKUP: return node_name;
	case VP_FS_FORGET: return lookup_forget;
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
	const uint8_t *f = fs_layout(type);
	if (!f)
		return -EBADMSG;
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	for (; *f != F_END && !r.err; f++) {
		switch (*f) {
		case F_NODE:
			m->node = vp_get_u64(&r);
			check(&r, m->node != 0);
			break;
		case F_NODE2:
			m->node2 = vp_get_u64(&r);
			check(&r, m->node2 != 0);
			break;
		case F_FH: m->fh = vp_get_u64(&r); break;
		case F_OFFSET: m->offset = vp_get_u64(&r); break;
		case F_NLOOKUP: m->nlookup = vp_get_u64(&r); break;
		case F_SIZE:
			m->size = vp_get_u32(&r);
			check(&r, m->size <= VP_MAX_DATA);
			break;
		case F_FLAGS: m->flags = vp_get_u32(&r); break;
		case F_MODE: m->mode = vp_get_u32(&r); break;
		case F_RDEV: m->rdev = vp_get_u32(&r); break;
		case F_NAME: get_name(&r, &m->name); break;
		case F_NEWNAME: get_name(&r, &m->name2); break;
		case F_TARGET: get_text(&r, &m->name2, VP_MAX_PATH); break;
		case F_DATA: get_bytes(&r, &m->data, VP_MAX_DATA); break;
		}
	}
	if (type == VP_FS_FSYNC)
		check(&r, m->flags <= 1);
	return finish(&r);
}

/* ---- encoders ---------------------------------------------------------- */

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

void vp_enc_hello(struct vp_buf *b, const struct vp_hello *m)
{
	size_t s = b->len;
	vp_put_u32(b, m->min_version);
	vp_put_u32(b, m->max_version);
	SELF_CHECK(b, s, vp_dec_hello, struct vp_hello);
}

void vp_enc_ready(struct vp_buf *b, const struct vp_ready *m)
{
	size_t s = b->len;
	vp_put_u32(b, m->version);
	vp_put_u32(b, m->features);
	vp_put_str(b, m->info.p, m->info.len);
	SELF_CHECK(b, s, vp_dec_ready, struct vp_ready);
}

void vp_enc_error(struct vp_buf *b, const struct vp_error *m)
{
	size_t s = b->len;
	vp_put_i32(b, m->err);
	vp_put_str(b, m->message.p, m->message.len);
	SELF_CHECK(b, s, vp_dec_error, struct vp_error);
}

void vp_enc_exec(struct vp_buf *b, const struct vp_exec *m)
{
	if (m->nenv > VP_MAX_ENV) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	size_t s = b->len;
	vp_put_u32(b, m->timeout_ms);
	vp_put_u32(b, m->flags);
	vp_put_str(b, m->cmd.p, m->cmd.len);
	vp_put_str(b, m->cwd.p, m->cwd.len);
	vp_put_u32(b, m->nenv);
	for (uint32_t i = 0; i < m->nenv; i++)
		vp_put_str(b, m->env[i].p, m->env[i].len);
	SELF_CHECK(b, s, vp_dec_exec, struct vp_exec);
}

void vp_enc_exec_started(struct vp_buf *b, const struct vp_exec_started *m)
{
	size_t s = b->len;
	vp_put_u32(b, m->pid);
	SELF_CHECK(b, s, vp_dec_exec_started, struct vp_exec_started);
}

void vp_enc_output(struct vp_buf *b, const struct vp_output *m)
{
	size_t s = b->len;
	vp_put_u8(b, m->stream);
	vp_put_str(b, m->data.p, m->data.len);
	SELF_CHECK(b, s, vp_dec_output, struct vp_output);
}

void vp_enc_exit(struct vp_buf *b, const struct vp_exit *m)
{
	size_t s = b->len;
	vp_put_i32(b, m->code);
	vp_put_i32(b, m->signal);
	vp_put_u8(b, m->timed_out);
	vp_put_u64(b, m->duration_us);
	SELF_CHECK(b, s, vp_dec_exit, struct vp_exit);
}

void vp_enc_output_ack(struct vp_buf *b, const struct vp_output_ack *m)
{
	size_t s = b->len;
	vp_put_u32(b, m->exec_id);
	vp_put_u32(b, m->bytes);
	SELF_CHECK(b, s, vp_dec_output_ack, struct vp_output_ack);
}

void vp_enc_stdin(struct vp_buf *b, const struct vp_stdin *m)
{
	size_t s = b->len;
	vp_put_u32(b, m->exec_id);
	vp_put_u8(b, m->eof);
	vp_put_str(b, m->data.p, m->data.len);
	SELF_CHECK(b, s, vp_dec_stdin, struct vp_stdin);
}

void vp_enc_signal(struct vp_buf *b, const struct vp_signal *m)
{
	size_t s = b->len;
	vp_put_u32(b, m->exec_id);
	vp_put_i32(b, m->signo);
	SELF_CHECK(b, s, vp_dec_signal, struct vp_signal);
}

static void put_attr(struct vp_buf *b, const struct vp_attr *m)
{
	vp_put_u64(b, m->ino);
	vp_put_u64(b, m->size);
	vp_put_u64(b, m->blocks);
	vp_put_i64(b, m->atime_sec);
	vp_put_i64(b, m->mtime_sec);
	vp_put_i64(b, m->ctime_sec);
	vp_put_u32(b, m->atime_nsec);
	vp_put_u32(b, m->mtime_nsec);
	vp_put_u32(b, m->ctime_nsec);
	vp_put_u32(b, m->mode);
	vp_put_u32(b, m->nlink);
	vp_put_u32(b, m->uid);
	vp_put_u32(b, m->gid);
	vp_put_u32(b, m->rdev);
	vp_put_u32(b, m->blksize);
}

void vp_enc_attr(struct vp_buf *b, const struct vp_attr *m)
{
	size_t s = b->len;
	put_attr(b, m);
	SELF_CHECK(b, s, vp_dec_attr, struct vp_attr);
}

void vp_enc_entry(struct vp_buf *b, const struct vp_entry *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->node);
	put_attr(b, &m->attr);
	SELF_CHECK(b, s, vp_dec_entry, struct vp_entry);
}

void vp_enc_setattr(struct vp_buf *b, const struct vp_setattr *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->node);
	vp_put_u64(b, m->fh);
	vp_put_u32(b, m->valid);
	vp_put_u32(b, m->mode);
	vp_put_u32(b, m->uid);
	vp_put_u32(b, m->gid);
	vp_put_u64(b, m->size);
	vp_put_i64(b, m->atime_sec);
	vp_put_i64(b, m->mtime_sec);
	vp_put_u32(b, m->atime_nsec);
	vp_put_u32(b, m->mtime_nsec);
	SELF_CHECK(b, s, vp_dec_setattr, struct vp_setattr);
}

void vp_enc_statfs(struct vp_buf *b, const struct vp_statfs *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->blocks);
	vp_put_u64(b, m->bfree);
	vp_put_u64(b, m->bavail);
	vp_put_u64(b, m->files);
	vp_put_u64(b, m->ffree);
	vp_put_u32(b, m->bsize);
	vp_put_u32(b, m->frsize);
	vp_put_u32(b, m->namemax);
	SELF_CHECK(b, s, vp_dec_statfs, struct vp_statfs);
}

void vp_enc_dirent(struct vp_buf *b, const struct vp_dirent *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->ino);
	vp_put_u64(b, m->next_offset);
	vp_put_u32(b, m->type);
	vp_put_str(b, m->name.p, m->name.len);
	if (!b->err) {
		struct vp_reader r;
		struct vp_dirent tmp;
		vp_reader_init(&r, b->data + s, b->len - s);
		vp_get_dirent(&r, &tmp);
		self_check(b, vp_reader_finish(&r));
	}
}

void vp_enc_fs_req(struct vp_buf *b, uint16_t type, const struct vp_fs_req *m)
{
	const uint8_t *f = fs_layout(type);
	if (!f) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	size_t s = b->len;
	for (; *f != F_END; f++) {
		switch (*f) {
		case F_NODE: vp_put_u64(b, m->node); break;
		case F_NODE2: vp_put_u64(b, m->node2); break;
		case F_FH: vp_put_u64(b, m->fh); break;
		case F_OFFSET: vp_put_u64(b, m->offset); break;
		case F_NLOOKUP: vp_put_u64(b, m->nlookup); break;
		case F_SIZE: vp_put_u32(b, m->size); break;
		case F_FLAGS: vp_put_u32(b, m->flags); break;
		case F_MODE: vp_put_u32(b, m->mode); break;
		case F_RDEV: vp_put_u32(b, m->rdev); break;
		case F_NAME: vp_put_str(b, m->name.p, m->name.len); break;
		case F_NEWNAME:
		case F_TARGET: vp_put_str(b, m->name2.p, m->name2.len); break;
		case F_DATA: vp_put_str(b, m->data.p, m->data.len); break;
		}
	}
	if (!b->err) {
		struct vp_fs_req tmp;
		self_check(b, vp_dec_fs_req(b->data + s, b->len - s, type, &tmp));
	}
}

/* ---- any message --------------------------------------------------------- */

static int dec_bytes_only(const void *p, size_t n, uint32_t max)
{
	struct vp_reader r;
	struct vp_bytes b;
	vp_reader_init(&r, p, n);
	get_bytes(&r, &b, max);
	return finish(&r);
}

static int dec_created(const void *p, size_t n)
{
	struct vp_reader r;
	struct vp_entry e;
	vp_reader_init(&r, p, n);
	uint64_t fh = vp_get_u64(&r);
	get_entry(&r, &e);
	check(&r, fh != 0);
	return finish(&r);
}

static int dec_dirents(const void *p, size_t n)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	uint32_t count = vp_get_u32(&r);
	/* Stops at the first error: a huge count on a short payload must not spin. */
	for (uint32_t i = 0; i < count && !r.err; i++) {
		struct vp_dirent d;
		vp_get_dirent(&r, &d);
	}
	return finish(&r);
}

int vp_validate(uint16_t type, const void *payload, size_t len)
{
	union {
		struct vp_hello hello;
		struct vp_exec exec;
		struct vp_ready ready;
		struct vp_error error;
		struct vp_exec_started started;
		struct vp_output output;
		struct vp_exit exit;
		struct vp_output_ack ack;
		struct vp_stdin in;
		struct vp_signal sig;
		struct vp_attr attr;
		struct vp_entry entry;
		struct vp_setattr setattr;
		struct vp_statfs statfs;
		struct vp_fs_req fs;
	} u;
	struct vp_reader r;

	if (len > VP_MAX_PAYLOAD)
		return -EBADMSG;
	switch (type) {
	case VP_HELLO: return vp_dec_hello(payload, len, &u.hello);
	case VP_READY: return vp_dec_ready(payload, len, &u.ready);
	case VP_PING:
	case VP_PONG: return dec_bytes_only(payload, len, VP_MAX_DATA);
	case VP_ERROR: return vp_dec_error(payload, len, &u.error);
	case VP_OK: return len ? -EBADMSG : 0;
	case VP_EXEC: return vp_dec_exec(payload, len, &u.exec);
	case VP_EXEC_STARTED: return vp_dec_exec_started(payload, len, &u.started);
	case VP_OUTPUT: return vp_dec_output(payload, len, &u.output);
	case VP_EXIT: return vp_dec_exit(payload, len, &u.exit);
	case VP_OUTPUT_ACK: return vp_dec_output_ack(payload, len, &u.ack);
	case VP_STDIN: return vp_dec_stdin(payload, len, &u.in);
	case VP_SIGNAL: return vp_dec_signal(payload, len, &u.sig);
	case VP_FS_SETATTR: return vp_dec_setattr(payload, len, &u.setattr);
	case VP_FS_LOOKUP:
	case VP_FS_FORGET:
	case VP_FS_GETATTR:
	case VP_FS_READLINK:
	case VP_FS_MKNOD:
	case VP_FS_MKDIR:
	case VP_FS_UNLINK:
	case VP_FS_RMDIR:
	case VP_FS_SYMLINK:
	case VP_FS_RENAME:
	case VP_FS_LINK:
	case VP_FS_OPEN:
	case VP_FS_CREATE:
	case VP_FS_READ:
	case VP_FS_WRITE:
	case VP_FS_FSYNC:
	case VP_FS_CLOSE:
	case VP_FS_OPENDIR:
	case VP_FS_READDIR:
	case VP_FS_STATFS: return vp_dec_fs_req(payload, len, type, &u.fs);
	case VP_FS_ENTRY: return vp_dec_entry(payload, len, &u.entry);
	case VP_FS_ATTR: return vp_dec_attr(payload, len, &u.attr);
	case VP_FS_DATA: return dec_bytes_only(payload, len, VP_MAX_DATA);
	case VP_FS_HANDLE:
		vp_reader_init(&r, payload, len);
		check(&r, vp_get_u64(&r) != 0);
		return finish(&r);
	case VP_FS_CREATED: return dec_created(payload, len);
	case VP_FS_WRITTEN:
		vp_reader_init(&r, payload, len);
		check(&r, vp_get_u32(&r) <= VP_MAX_DATA);
		return finish(&r);
	case VP_FS_DIRENTS: return dec_dirents(payload, len);
	case VP_FS_STATFS_REPLY: return vp_dec_statfs(payload, len, &u.statfs);
	}
	return -EPROTO;
}
