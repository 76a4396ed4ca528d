/* Each message's payload layout (proto.h, docs/protocol.md): a field
 * table for the fixed ones, hand-written readers for those with a count or
 * a nested entry, and vp_decode/vp_encode generated from proto_msgs.h. */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

#define NSEC_PER_SEC 1000000000u
#define MAX_INFO VP_MAX_PATH /* READY info, ERROR message */
#define MAX_SIGNO 64

static const struct proto_field hello_fields[] = {
	F_INT(struct vp_hello, min_version),
	F_INT(struct vp_hello, max_version),
	F_END,
};

static bool hello_ok(const void *p)
{
	const struct vp_hello *m = p;
	return m->min_version <= m->max_version;
}

int vp_dec_hello(const void *p, size_t n, struct vp_hello *m)
{
	return proto_dec_msg(p, n, m, hello_fields, hello_ok);
}

void vp_enc_hello(struct vp_buf *b, const struct vp_hello *m)
{
	proto_enc_msg(b, m, hello_fields, hello_ok);
}

static const struct proto_field ready_fields[] = {
	F_INT(struct vp_ready, version),
	F_INT(struct vp_ready, features),
	F_TEXT(struct vp_ready, info, MAX_INFO),
	F_END,
};

int vp_dec_ready(const void *p, size_t n, struct vp_ready *m)
{
	return proto_dec_msg(p, n, m, ready_fields, NULL);
}

void vp_enc_ready(struct vp_buf *b, const struct vp_ready *m)
{
	proto_enc_msg(b, m, ready_fields, NULL);
}

/* Any errno value is accepted here: the client clamps it, and rejecting a
 * bad value would lose the reply. */
static const struct proto_field error_fields[] = {
	F_INT(struct vp_error, err),
	F_TEXT(struct vp_error, message, MAX_INFO),
	F_END,
};

int vp_dec_error(const void *p, size_t n, struct vp_error *m)
{
	return proto_dec_msg(p, n, m, error_fields, NULL);
}

void vp_enc_error(struct vp_buf *b, const struct vp_error *m)
{
	proto_enc_msg(b, m, error_fields, NULL);
}

static const struct proto_field set_time_fields[] = {
	F_INT(struct vp_set_time, sec),
	F_MAX(struct vp_set_time, nsec, NSEC_PER_SEC - 1),
	F_END,
};

int vp_dec_set_time(const void *p, size_t n, struct vp_set_time *m)
{
	return proto_dec_msg(p, n, m, set_time_fields, NULL);
}

void vp_enc_set_time(struct vp_buf *b, const struct vp_set_time *m)
{
	proto_enc_msg(b, m, set_time_fields, NULL);
}

/* EXEC: these fields, then u32 nenv and the env entries. */
static const struct proto_field exec_fields[] = {
	F_INT(struct vp_exec, timeout_ms),
	F_INT(struct vp_exec, flags),
	F_TEXT(struct vp_exec, cmd, VP_MAX_CMD),
	F_TEXT(struct vp_exec, cwd, VP_MAX_PATH),
	F_END,
};

int vp_dec_exec(const void *p, size_t n, struct vp_exec *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	proto_get_fields(&r, m, exec_fields);
	proto_check(&r, (m->flags & ~VP_EXEC_STDIN) == 0);
	m->nenv = vp_get_u32(&r);
	proto_check(&r, m->nenv <= VP_MAX_ENV);
	if (r.err)
		m->nenv = 0;
	for (uint32_t i = 0; i < m->nenv && !r.err; i++) {
		struct vp_bytes *e = &m->env[i];
		proto_get_text(&r, e, VP_MAX_CMD);
		/* "K=V" with a non-empty K. */
		proto_check(&r, r.err || (e->len >= 2 && e->p[0] != '=' && memchr(e->p, '=', e->len)));
	}
	return vp_reader_finish(&r);
}

void vp_enc_exec(struct vp_buf *b, const struct vp_exec *m)
{
	if (m->nenv > VP_MAX_ENV) {
		if (!b->err)
			b->err = -EINVAL;
		return;
	}
	size_t s = b->len;
	proto_put_fields(b, m, exec_fields);
	vp_put_u32(b, m->nenv);
	for (uint32_t i = 0; i < m->nenv; i++)
		vp_put_str(b, m->env[i].p, m->env[i].len);
	PROTO_SELF_CHECK(b, s, vp_dec_exec, struct vp_exec);
}

static const struct proto_field exec_started_fields[] = { F_INT(struct vp_exec_started, pid), F_END };

int vp_dec_exec_started(const void *p, size_t n, struct vp_exec_started *m)
{
	return proto_dec_msg(p, n, m, exec_started_fields, NULL);
}

void vp_enc_exec_started(struct vp_buf *b, const struct vp_exec_started *m)
{
	proto_enc_msg(b, m, exec_started_fields, NULL);
}

static const struct proto_field output_fields[] = {
	F_INT(struct vp_output, stream),
	F_BYTES(struct vp_output, data, VP_MAX_DATA),
	F_END,
};

static bool output_ok(const void *p)
{
	const struct vp_output *m = p;
	/* An empty chunk would carry nothing to acknowledge. */
	return (m->stream == VP_STREAM_STDOUT || m->stream == VP_STREAM_STDERR) && m->data.len > 0;
}

int vp_dec_output(const void *p, size_t n, struct vp_output *m)
{
	return proto_dec_msg(p, n, m, output_fields, output_ok);
}

void vp_enc_output(struct vp_buf *b, const struct vp_output *m)
{
	proto_enc_msg(b, m, output_fields, output_ok);
}

static const struct proto_field exit_fields[] = {
	F_INT(struct vp_exit, code),
	F_INT(struct vp_exit, signal),
	F_MAX(struct vp_exit, timed_out, 1),
	F_INT(struct vp_exit, duration_us),
	F_END,
};

static bool exit_ok(const void *p)
{
	const struct vp_exit *m = p;
	return m->code >= -1 && m->code <= 255 && m->signal >= 0 && m->signal <= MAX_SIGNO;
}

int vp_dec_exit(const void *p, size_t n, struct vp_exit *m)
{
	return proto_dec_msg(p, n, m, exit_fields, exit_ok);
}

void vp_enc_exit(struct vp_buf *b, const struct vp_exit *m)
{
	proto_enc_msg(b, m, exit_fields, exit_ok);
}

static const struct proto_field output_ack_fields[] = {
	F_NONZERO(struct vp_output_ack, exec_id),
	F_MAX(struct vp_output_ack, bytes, VP_OUTPUT_WINDOW),
	F_END,
};

int vp_dec_output_ack(const void *p, size_t n, struct vp_output_ack *m)
{
	return proto_dec_msg(p, n, m, output_ack_fields, NULL);
}

void vp_enc_output_ack(struct vp_buf *b, const struct vp_output_ack *m)
{
	proto_enc_msg(b, m, output_ack_fields, NULL);
}

static const struct proto_field stdin_fields[] = {
	F_NONZERO(struct vp_stdin, exec_id),
	F_MAX(struct vp_stdin, eof, 1),
	F_BYTES(struct vp_stdin, data, VP_MAX_DATA),
	F_END,
};

int vp_dec_stdin(const void *p, size_t n, struct vp_stdin *m)
{
	return proto_dec_msg(p, n, m, stdin_fields, NULL);
}

void vp_enc_stdin(struct vp_buf *b, const struct vp_stdin *m)
{
	proto_enc_msg(b, m, stdin_fields, NULL);
}

static const struct proto_field signal_fields[] = {
	F_NONZERO(struct vp_signal, exec_id),
	F_INT(struct vp_signal, signo),
	F_END,
};

static bool signal_ok(const void *p)
{
	const struct vp_signal *m = p;
	return m->signo >= 1 && m->signo <= MAX_SIGNO;
}

int vp_dec_signal(const void *p, size_t n, struct vp_signal *m)
{
	return proto_dec_msg(p, n, m, signal_fields, signal_ok);
}

void vp_enc_signal(struct vp_buf *b, const struct vp_signal *m)
{
	proto_enc_msg(b, m, signal_fields, signal_ok);
}

#define ATTR(m) F_INT(struct vp_attr, m)
static const struct proto_field attr_fields[] = {
	ATTR(ino),	  ATTR(size),	   ATTR(blocks),     ATTR(atime_sec),
	ATTR(mtime_sec),  ATTR(ctime_sec), ATTR(atime_nsec), ATTR(mtime_nsec),
	ATTR(ctime_nsec), ATTR(mode),	   ATTR(nlink),	     ATTR(uid),
	ATTR(gid),	  ATTR(rdev),	   ATTR(blksize),    F_END,
};
#undef ATTR

static bool attr_ok(const void *p)
{
	const struct vp_attr *m = p;
	return m->atime_nsec < NSEC_PER_SEC && m->mtime_nsec < NSEC_PER_SEC && m->ctime_nsec < NSEC_PER_SEC;
}

void vp_get_attr(struct vp_reader *r, struct vp_attr *m)
{
	proto_get_msg(r, m, attr_fields, attr_ok);
}

int vp_dec_attr(const void *p, size_t n, struct vp_attr *m)
{
	return proto_dec_msg(p, n, m, attr_fields, attr_ok);
}

void vp_enc_attr(struct vp_buf *b, const struct vp_attr *m)
{
	proto_enc_msg(b, m, attr_fields, attr_ok);
}

/* ENTRY: u64 node, then the attr fields. */
static void get_entry(struct vp_reader *r, struct vp_entry *m)
{
	m->node = vp_get_u64(r);
	vp_get_attr(r, &m->attr);
	proto_check(r, m->node != 0);
}

int vp_dec_entry(const void *p, size_t n, struct vp_entry *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	get_entry(&r, m);
	return vp_reader_finish(&r);
}

void vp_enc_entry(struct vp_buf *b, const struct vp_entry *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->node);
	proto_put_fields(b, &m->attr, attr_fields);
	PROTO_SELF_CHECK(b, s, vp_dec_entry, struct vp_entry);
}

/* The caller's ids go last, on every request the guest kernel checks
 * permissions or sets owners for: those on a node or a name. Handle
 * requests (READ, WRITE, ...) were checked when the handle was opened,
 * as POSIX does, so the data path carries nothing more. */
#define CRED_FIELDS(T) F_INT(T, cred.uid), F_INT(T, cred.gid), F_U32S(T, cred.groups, VP_MAX_GROUPS)

#define VP_SET_ALL 0xffu

#define SETATTR(m) F_INT(struct vp_setattr, m)
static const struct proto_field setattr_fields[] = {
	F_NONZERO(struct vp_setattr, node),
	SETATTR(fh),
	SETATTR(valid),
	SETATTR(mode),
	SETATTR(uid),
	SETATTR(gid),
	SETATTR(size),
	SETATTR(atime_sec),
	SETATTR(mtime_sec),
	SETATTR(atime_nsec),
	SETATTR(mtime_nsec),
	CRED_FIELDS(struct vp_setattr),
	F_END,
};
#undef SETATTR

static bool setattr_ok(const void *p)
{
	const struct vp_setattr *m = p;
	return (m->valid & ~VP_SET_ALL) == 0 && m->atime_nsec < NSEC_PER_SEC && m->mtime_nsec < NSEC_PER_SEC;
}

int vp_dec_setattr(const void *p, size_t n, struct vp_setattr *m)
{
	return proto_dec_msg(p, n, m, setattr_fields, setattr_ok);
}

void vp_enc_setattr(struct vp_buf *b, const struct vp_setattr *m)
{
	proto_enc_msg(b, m, setattr_fields, setattr_ok);
}

#define STATFS(m) F_INT(struct vp_statfs, m)
static const struct proto_field statfs_fields[] = {
	STATFS(blocks), STATFS(bfree),	STATFS(bavail),	 STATFS(files), STATFS(ffree),
	STATFS(bsize),	STATFS(frsize), STATFS(namemax), F_END,
};
#undef STATFS

int vp_dec_statfs(const void *p, size_t n, struct vp_statfs *m)
{
	return proto_dec_msg(p, n, m, statfs_fields, NULL);
}

void vp_enc_statfs(struct vp_buf *b, const struct vp_statfs *m)
{
	proto_enc_msg(b, m, statfs_fields, NULL);
}

/* Directory listings legitimately contain "." and "..". */
static bool dirent_name_ok(const struct vp_bytes *b)
{
	return b->len > 0 && b->len <= VP_MAX_NAME && !proto_has_nul(b) && !memchr(b->p, '/', b->len);
}

static const struct proto_field dirent_fields[] = {
	F_INT(struct vp_dirent, ino),
	F_INT(struct vp_dirent, next_offset),
	F_MAX(struct vp_dirent, type, 15),
	F_BYTES(struct vp_dirent, name, VP_MAX_NAME),
	F_END,
};

static bool dirent_ok(const void *p)
{
	const struct vp_dirent *m = p;
	return dirent_name_ok(&m->name);
}

void vp_get_dirent(struct vp_reader *r, struct vp_dirent *m)
{
	proto_get_msg(r, m, dirent_fields, dirent_ok);
}

void vp_enc_dirent(struct vp_buf *b, const struct vp_dirent *m)
{
	proto_enc_msg(b, m, dirent_fields, dirent_ok);
}

/* DIRENTS_PLUS entry: a dirent, u64 node, attr. Node 0 is an entry the
 * agent counted no lookup for, and "." and ".." are never counted: the
 * host must not link them as children. */
void vp_get_direntplus(struct vp_reader *r, struct vp_direntplus *m)
{
	vp_get_dirent(r, &m->d);
	m->e.node = vp_get_u64(r);
	vp_get_attr(r, &m->e.attr);
	bool dot = (m->d.name.len == 1 && m->d.name.p[0] == '.') ||
		   (m->d.name.len == 2 && m->d.name.p[0] == '.' && m->d.name.p[1] == '.');
	proto_check(r, !dot || m->e.node == 0);
}

void vp_enc_direntplus(struct vp_buf *b, const struct vp_direntplus *m)
{
	size_t s = b->len;
	vp_enc_dirent(b, &m->d);
	vp_put_u64(b, m->e.node);
	proto_put_fields(b, &m->e.attr, attr_fields);
	if (b->err)
		return;
	struct vp_reader r;
	struct vp_direntplus back;
	vp_reader_init(&r, b->data + s, b->len - s);
	vp_get_direntplus(&r, &back);
	if (vp_reader_finish(&r))
		b->err = -EINVAL;
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
#define R_CRED CRED_FIELDS(struct vp_fs_req)
static const struct proto_field *fs_layout(uint16_t type)
{
	static const struct proto_field node_only[] = { R_NODE, R_CRED, F_END };
	static const struct proto_field node_name[] = { R_NODE, R_NAME, R_CRED, F_END };
	static const struct proto_field fh_only[] = { R_FH, F_END };
	static const struct proto_field forget[] = { R_NODE, R_NLOOKUP, F_END };
	static const struct proto_field mknod[] = { R_NODE, R_MODE, R_RDEV, R_NAME, R_CRED, F_END };
	static const struct proto_field mkdir[] = { R_NODE, R_MODE, R_NAME, R_CRED, F_END };
	static const struct proto_field symlink[] = { R_NODE, R_NAME, R_TARGET, R_CRED, F_END };
	static const struct proto_field rename[] = { R_NODE,	R_NODE2, R_FLAGS, R_NAME,
						     R_NEWNAME, R_CRED,	 F_END };
	static const struct proto_field link[] = { R_NODE, R_NODE2, R_NEWNAME, R_CRED, F_END };
	static const struct proto_field open[] = { R_NODE, R_FLAGS, R_CRED, F_END };
	static const struct proto_field create[] = { R_NODE, R_FLAGS, R_MODE, R_NAME, R_CRED, F_END };
	static const struct proto_field read[] = { R_FH, R_OFFSET, R_SIZE, F_END };
	static const struct proto_field write[] = { R_FH, R_OFFSET, R_DATA, F_END };
	static const struct proto_field fsync[] = { R_FH, R_DATASYNC, F_END };
	static const struct proto_field readdirplus[] = { R_NODE, R_FH, R_OFFSET, R_SIZE, F_END };

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
	case VP_FS_READDIRPLUS: return readdirplus;
	}
	return NULL; /* SETATTR has its own struct */
}

int vp_dec_fs_req(const void *p, size_t n, uint16_t type, struct vp_fs_req *m)
{
	memset(m, 0, sizeof *m);
	const struct proto_field *f = fs_layout(type);
	return f ? proto_dec_msg(p, n, m, f, NULL) : -EBADMSG;
}

void vp_enc_fs_req(struct vp_buf *b, uint16_t type, const struct vp_fs_req *m)
{
	const struct proto_field *f = fs_layout(type);
	if (f)
		proto_enc_msg(b, m, f, NULL);
	else if (!b->err)
		b->err = -EINVAL;
}


/* ---- one-field payloads and composite replies ---------------------------- */

static const struct proto_field data_fields[] = { F_BYTES(struct vp_data, data, VP_MAX_DATA), F_END };

int vp_dec_data(const void *p, size_t n, struct vp_data *m)
{
	return proto_dec_msg(p, n, m, data_fields, NULL);
}

void vp_enc_data(struct vp_buf *b, const struct vp_data *m)
{
	proto_enc_msg(b, m, data_fields, NULL);
}

static const struct proto_field empty_fields[] = { F_END };

int vp_dec_empty(const void *p, size_t n, struct vp_empty *m)
{
	m->unused = 0;
	return proto_dec_msg(p, n, m, empty_fields, NULL);
}

void vp_enc_empty(struct vp_buf *b, const struct vp_empty *m)
{
	(void)b, (void)m;
}

static const struct proto_field handle_fields[] = { F_NONZERO(struct vp_handle, fh), F_END };

int vp_dec_handle(const void *p, size_t n, struct vp_handle *m)
{
	return proto_dec_msg(p, n, m, handle_fields, NULL);
}

void vp_enc_handle(struct vp_buf *b, const struct vp_handle *m)
{
	proto_enc_msg(b, m, handle_fields, NULL);
}

static const struct proto_field written_fields[] = { F_MAX(struct vp_written, count, VP_MAX_DATA), F_END };

int vp_dec_written(const void *p, size_t n, struct vp_written *m)
{
	return proto_dec_msg(p, n, m, written_fields, NULL);
}

void vp_enc_written(struct vp_buf *b, const struct vp_written *m)
{
	proto_enc_msg(b, m, written_fields, NULL);
}

/* CREATED: u64 fh (non-zero), then an entry. */
int vp_dec_created(const void *p, size_t n, struct vp_created *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->fh = vp_get_u64(&r);
	get_entry(&r, &m->entry);
	proto_check(&r, m->fh != 0);
	return vp_reader_finish(&r);
}

void vp_enc_created(struct vp_buf *b, const struct vp_created *m)
{
	size_t s = b->len;
	vp_put_u64(b, m->fh);
	vp_put_u64(b, m->entry.node);
	proto_put_fields(b, &m->entry.attr, attr_fields);
	PROTO_SELF_CHECK(b, s, vp_dec_created, struct vp_created);
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
	return vp_reader_finish(&r);
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

int vp_dec_direntsplus(const void *p, size_t n, struct vp_dirents *m)
{
	struct vp_reader r;
	vp_reader_init(&r, p, n);
	m->count = vp_get_u32(&r);
	m->entries.p = r.p;
	for (uint32_t i = 0; i < m->count && !r.err; i++) {
		struct vp_direntplus d;
		vp_get_direntplus(&r, &d);
	}
	m->entries.len = r.err ? 0 : (uint32_t)(r.p - m->entries.p);
	return vp_reader_finish(&r);
}

void vp_enc_direntsplus(struct vp_buf *b, const struct vp_dirents *m)
{
	struct vp_reader r;
	vp_reader_init(&r, m->entries.p, m->entries.len);
	vp_put_u32(b, m->count);
	for (uint32_t i = 0; i < m->count && !r.err; i++) {
		struct vp_direntplus d;
		vp_get_direntplus(&r, &d);
		if (!r.err)
			vp_enc_direntplus(b, &d);
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
#define CODEC_FNS(codec, member, T, args)                                                   \
	static int dec_any_##codec(uint16_t type, const void *p, size_t n, union vp_msg *m) \
	{                                                                                   \
		(void)type;                                                                 \
		return ARGS_##args(codec, member);                                          \
	}                                                                                   \
	static void enc_any_##codec(struct vp_buf *b, uint16_t type, const union vp_msg *m) \
	{                                                                                   \
		(void)type;                                                                 \
		EARGS_##args(codec, member);                                                \
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
