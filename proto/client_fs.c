/* The typed file calls of client.h. Each builds its request, and
 * fs_call sends it and decodes the reply (client_call); the call only
 * picks its fields out of the decoded message. */
#include "client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


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

/* The calling thread's caller (client.h): a thread-local, since the
 * proxy's FUSE workers each serve their own caller and the typed calls
 * below stay as they were for every other user (tests, guestdir walks). */
static _Thread_local struct {
	uint32_t uid, gid, ngroups;
	uint8_t groups[VP_MAX_GROUPS * 4u]; /* as the wire carries them */
} caller;

void vp_fs_set_caller(uint32_t uid, uint32_t gid, const uint32_t *groups, size_t ngroups)
{
	caller.uid = uid;
	caller.gid = gid;
	caller.ngroups = 0;
	if (uid == 0)
		return; /* guest root: the agent needs no groups */
	for (size_t i = 0; i < ngroups && caller.ngroups < VP_MAX_GROUPS; i++) {
		uint8_t *p = caller.groups + 4u * caller.ngroups++;
		for (unsigned k = 0; k < 4; k++)
			p[k] = (uint8_t)(groups[i] >> (8 * k));
	}
}

void vp_fs_clear_caller(void)
{
	vp_fs_set_caller(0, 0, NULL, 0);
}

static struct vp_cred caller_cred(void)
{
	return (struct vp_cred){
		.uid = caller.uid,
		.gid = caller.gid,
		.groups = { caller.groups, caller.ngroups * 4u },
	};
}

static int fs_call(struct vp_client *c, uint16_t type, const struct vp_fs_req *m, struct client_reply *r)
{
	struct vp_buf b;
	client_frame_begin(&b);
	struct vp_fs_req q = *m;
	q.cred = caller_cred();
	vp_enc_fs_req(&b, type, &q);
	return client_call(c, type, &b, NULL, 0, r);
}

static int fs_call_ok(struct vp_client *c, uint16_t type, const struct vp_fs_req *m)
{
	struct client_reply r;
	int err = fs_call(c, type, m, &r);
	if (!err)
		client_reply_free(&r);
	return err;
}

/* Requests answered with FS_ENTRY (out may be NULL). */
static int fs_call_entry(struct vp_client *c, uint16_t type, const struct vp_fs_req *m, struct vp_entry *out)
{
	struct client_reply r;
	int err = fs_call(c, type, m, &r);
	if (err)
		return err;
	if (out)
		*out = r.m.entry;
	client_reply_free(&r);
	return 0;
}

/* Requests answered with FS_ATTR (out may be NULL). */
static int attr_reply(int err, struct client_reply *r, struct vp_attr *out)
{
	if (err)
		return err;
	if (out)
		*out = r->m.attr;
	client_reply_free(r);
	return 0;
}

/* Requests answered with FS_HANDLE. */
static int fs_call_handle(struct vp_client *c, uint16_t type, const struct vp_fs_req *m, uint64_t *fh)
{
	struct client_reply r;
	int err = fs_call(c, type, m, &r);
	if (err)
		return err;
	*fh = r.m.handle.fh;
	client_reply_free(&r);
	return 0;
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
	client_frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_FORGET, &(struct vp_fs_req){ .node = node, .nlookup = nlookup });
	vp_mutex_lock(&c->lock);
	client_enter_locked(c);
	vp_mutex_unlock(&c->lock);
	client_send_oneway(c, &b, VP_FS_FORGET); /* a dead channel forgets everything anyway */
	client_leave(c);
	vp_buf_free(&b);
}

int vp_fs_getattr(struct vp_client *c, uint64_t node, struct vp_attr *out)
{
	struct client_reply r;
	return attr_reply(fs_call(c, VP_FS_GETATTR, &(struct vp_fs_req){ .node = node }, &r), &r, out);
}

int vp_fs_setattr(struct vp_client *c, const struct vp_setattr *req, struct vp_attr *out)
{
	struct vp_buf b;
	client_frame_begin(&b);
	struct vp_setattr q = *req;
	q.cred = caller_cred();
	vp_enc_setattr(&b, &q);
	struct client_reply r;
	return attr_reply(client_call(c, VP_FS_SETATTR, &b, NULL, 0, &r), &r, out);
}

int vp_fs_readlink(struct vp_client *c, uint64_t node, char *buf, size_t cap)
{
	if (!buf || cap == 0)
		return -EINVAL;
	struct client_reply r;
	int err = fs_call(c, VP_FS_READLINK, &(struct vp_fs_req){ .node = node }, &r);
	if (err)
		return err;
	const struct vp_bytes *t = &r.m.data.data;
	if (t->len > VP_MAX_PATH || (t->len && memchr(t->p, 0, t->len)))
		err = -EPROTO;
	else if (t->len >= cap)
		err = -ENAMETOOLONG;
	else {
		memcpy(buf, t->p, t->len);
		buf[t->len] = '\0';
	}
	client_reply_free(&r);
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

int vp_fs_open(struct vp_client *c, uint64_t node, uint32_t flags, uint64_t *fh)
{
	return fs_call_handle(c, VP_FS_OPEN, &(struct vp_fs_req){ .node = node, .flags = flags }, fh);
}

int vp_fs_opendir(struct vp_client *c, uint64_t node, uint64_t *fh)
{
	return fs_call_handle(c, VP_FS_OPENDIR, &(struct vp_fs_req){ .node = node }, fh);
}

int vp_fs_create(struct vp_client *c, uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
		 uint64_t *fh, struct vp_entry *out)
{
	struct vp_fs_req m = { .node = parent, .flags = flags, .mode = mode };
	int err = name_arg(name, &m.name);
	if (err)
		return err;
	struct client_reply r;
	err = fs_call(c, VP_FS_CREATE, &m, &r);
	if (err)
		return err;
	*fh = r.m.created.fh;
	if (out)
		*out = r.m.created.entry;
	client_reply_free(&r);
	return 0;
}

/* FS_READ's DATA lands straight in buf (the reader's direct read), so it
 * is the one call that does not go through client_call. */
int vp_fs_read(struct vp_client *c, uint64_t fh, uint64_t offset, void *buf, uint32_t size, uint32_t *got)
{
	if (size > VP_MAX_DATA || (size && !buf))
		return -EINVAL;
	struct vp_buf b;
	client_frame_begin(&b);
	vp_enc_fs_req(&b, VP_FS_READ, &(struct vp_fs_req){ .fh = fh, .offset = offset, .size = size });
	struct waiter w;
	memset(&w, 0, sizeof w);
	w.direct = true;
	w.rbuf = buf;
	w.rcap = size;
	int err = client_do_call(c, client_pend_new(VP_FS_READ), &b, NULL, 0, &w, INT32_MIN, NULL);
	vp_buf_free(&b);
	if (err)
		return err;
	if (w.rtype == VP_ERROR) {
		err = client_map_error(w.payload, w.plen);
		free(w.payload);
		return err;
	}
	*got = w.rgot;
	return 0;
}

/* The layout of FS_WRITE up to its data, which is sent from the caller's
 * buffer without a copy. */
static void write_prefix(struct vp_buf *b, uint64_t fh, uint64_t offset, uint32_t size)
{
	client_frame_begin(b);
	vp_put_u64(b, fh);
	vp_put_u64(b, offset);
	vp_put_u32(b, size);
}

int vp_fs_write(struct vp_client *c, uint64_t fh, uint64_t offset, const void *buf, uint32_t size,
		uint32_t *written)
{
	if (size > VP_MAX_DATA || (size && !buf))
		return -EINVAL;
	struct vp_buf b;
	write_prefix(&b, fh, offset, size);
	struct client_reply r;
	int err = client_call(c, VP_FS_WRITE, &b, buf, size, &r);
	if (err)
		return err;
	uint32_t n = r.m.written.count;
	client_reply_free(&r);
	if (n > size)
		return -EPROTO;
	*written = n;
	return 0;
}

int vp_fs_write_async(struct vp_client *c, uint64_t fh, uint64_t offset, const void *buf, uint32_t size,
		      void (*done)(void *ctx, int err, uint32_t written), void *ctx)
{
	if (size > VP_MAX_DATA || (size && !buf) || !done)
		return -EINVAL;
	if (pthread_equal(pthread_self(), c->reader))
		return -EDEADLK; /* it could block on a full channel only the reader drains */
	struct pend *p = client_pend_new(VP_FS_WRITE);
	if (!p)
		return -ENOMEM;
	p->kind = PK_ASYNC;
	p->done = done;
	p->ctx = ctx;
	p->size = size;
	p->refs = 2;
	p->in_tab = true;
	struct vp_buf b;
	write_prefix(&b, fh, offset, size);
	if (b.err) {
		int err = b.err;
		vp_buf_free(&b);
		free(p);
		return err;
	}
	uint64_t dl = client_call_deadline(c);
	vp_mutex_lock(&c->lock);
	/* Checked under the lock that client_kill sets it under: a pend
	 * inserted before is in the table the dying reader sweeps. */
	if (atomic_load(&c->dead)) {
		vp_mutex_unlock(&c->lock);
		vp_buf_free(&b);
		free(p);
		return -ECONNRESET;
	}
	client_enter_locked(c);
	client_tab_insert_new(c, p);
	uint32_t id = pend_id(p);
	vp_mutex_unlock(&c->lock);

	int err = client_send_frame(c, &b, VP_FS_WRITE, id, buf, size, dl);
	vp_buf_free(&b);

	vp_mutex_lock(&c->lock);
	if (err && p->in_tab) {
		/* Still ours: done has not run and now never will. */
		client_tab_remove(c, p);
		p->in_tab = false;
		p->refs--;
	} else {
		/* Sent, or the reader already took it (a reply to half a frame,
		 * or the channel's death): either way done runs or ran. */
		err = 0;
	}
	bool free_it = client_async_put_locked(p);
	vp_mutex_unlock(&c->lock);
	if (free_it)
		free(p);
	client_leave(c);
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
	struct client_reply r;
	int err = fs_call(c, VP_FS_READDIR,
			  &(struct vp_fs_req){ .fh = fh, .offset = offset, .size = max_bytes }, &r);
	if (err)
		return err;
	/* The agent fills at most max_bytes; more would hand the caller
	 * entries beyond what it sized its buffer for. */
	if (4u + (uint64_t)r.m.dirents.entries.len > max_bytes) {
		client_reply_free(&r);
		return -EPROTO;
	}
	struct vp_reader rd;
	vp_reader_init(&rd, r.m.dirents.entries.p, r.m.dirents.entries.len);
	uint32_t done = 0;
	/* The reply was validated whole, so this walk cannot fail midway. */
	for (uint32_t i = 0; i < r.m.dirents.count && !rd.err; i++) {
		struct vp_dirent d;
		vp_get_dirent(&rd, &d);
		if (rd.err || fn(ctx, &d))
			break;
		done++;
	}
	if (rd.err)
		err = -EPROTO;
	client_reply_free(&r);
	if (count)
		*count = done;
	return err;
}

int vp_fs_readdirplus(struct vp_client *c, uint64_t node, uint64_t fh, uint64_t offset, uint32_t max_bytes,
		      int (*fn)(void *ctx, const struct vp_direntplus *d), void *ctx, uint32_t *count)
{
	if (!fn || max_bytes > VP_MAX_DATA)
		return -EINVAL;
	struct client_reply r;
	int err = fs_call(c, VP_FS_READDIRPLUS,
			  &(struct vp_fs_req){ .node = node, .fh = fh, .offset = offset, .size = max_bytes },
			  &r);
	if (err)
		return err;
	/* Entries beyond max_bytes are refused (the caller sized for it),
	 * but their lookups were counted: every one is forgotten below. */
	bool oversize = 4u + (uint64_t)r.m.direntsplus.entries.len > max_bytes;
	struct vp_reader rd;
	vp_reader_init(&rd, r.m.direntsplus.entries.p, r.m.direntsplus.entries.len);
	uint32_t done = 0;
	bool stopped = oversize;
	for (uint32_t i = 0; i < r.m.direntsplus.count && !rd.err; i++) {
		struct vp_direntplus d;
		vp_get_direntplus(&rd, &d);
		if (rd.err)
			break;
		if (!stopped && fn(ctx, &d) == 0) {
			done++;
			continue;
		}
		stopped = true;
		vp_fs_forget(c, d.e.node, 1);
	}
	if (rd.err || oversize)
		err = -EPROTO;
	client_reply_free(&r);
	if (count)
		*count = done;
	return err;
}

int vp_fs_statfs(struct vp_client *c, uint64_t node, struct vp_statfs *out)
{
	struct client_reply r;
	int err = fs_call(c, VP_FS_STATFS, &(struct vp_fs_req){ .node = node }, &r);
	if (err)
		return err;
	if (out)
		*out = r.m.statfs;
	client_reply_free(&r);
	return 0;
}
