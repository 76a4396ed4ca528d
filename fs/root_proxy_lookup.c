/* root/ proxy: operations that read the guest's tree: lookup, getattr,
 * readlink, statfs and directory listings (readdirplus hands out entries
 * like lookup does). */
#include "fs/root_proxy_int.h"
#include "fs/root_proxy_symlink.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

void rp_lookup_root(struct root_proxy *rp, fuse_req_t req)
{
	/* Answered without the guest: the kernel holds pool/NAME locked
	 * across this lookup, and rmdir of pool/NAME (which holds pool/
	 * itself, for every tenant) waits for that lock. Attributes that
	 * expire at once make the next stat ask the guest by GETATTR, which
	 * holds no directory lock. */
	struct vp_attr a;
	memset(&a, 0, sizeof a);
	a.mode = S_IFDIR | 0755;
	a.nlink = 2;
	a.blksize = 4096;
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = rp_root_ino(rp);
	e.attr_timeout = 0;
	e.entry_timeout = RP_ENTRY_TIMEOUT;
	rpi_attr_to_stat(rp, VP_ROOT_NODE, &a, &e.attr);
	/* Not counted: the root's forgets are ignored (see root_proxy_nodes.c). */
	fuse_reply_entry(req, &e);
}

void rp_lookup(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t p = 0;
	struct vp_entry ve;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_check_name(name);
	if (!err) {
		rpi_as_caller(rp, req);
		rpi_count(&rp->n_lookups);
		err = vp_fs_lookup(rp->client, p, name, &ve);
		vp_fs_clear_caller();
	}
	/* ENOENT goes back as an error, not as a negative entry with a
	 * timeout, so the name is looked up again next time. */
	rpi_reply_entry(rp, req, err, p, name, &ve);
}

void rp_getattr(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi; /* the protocol has no handle-based getattr; the node is enough */
	uint64_t node;
	struct vp_attr a;
	int err = rpi_node_of(rp, ino, &node);
	if (!err) {
		rpi_wb_wait_node(rp, node); /* sizes and mtimes of writes answered already */
		rpi_count(&rp->n_getattrs);
		err = vp_fs_getattr(rp->client, node, &a);
	}
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	struct stat st;
	rpi_attr_to_stat(rp, node, &a, &st);
	fuse_reply_attr(req, &st, RP_ATTR_TIMEOUT);
}

void rp_readlink(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino)
{
	uint64_t node;
	char buf[VP_MAX_PATH + 1];
	/* The kernel reads at most a page less one byte of target. */
	char shown[4096];
	int err = rpi_node_of(rp, ino, &node);
	if (!err)
		err = vp_fs_readlink(rp->client, node, buf, sizeof(buf));
	/* The host kernel resolves what we answer in the host's namespace:
	 * a target that could climb is rewritten to stay inside root/
	 * (root_proxy_symlink.h). The guest keeps its own text. */
	if (!err) {
		unsigned depth = rp_symlink_climbs(buf) ? rpi_link_depth(rp, node) : 0;
		err = rp_symlink_present(depth, buf, shown, sizeof(shown));
	}
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	fuse_reply_readlink(req, shown);
}

void rp_statfs(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino)
{
	uint64_t node;
	struct vp_statfs f;
	int err = rpi_node_of(rp, ino, &node);
	if (!err)
		err = vp_fs_statfs(rp->client, node, &f);
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = f.bsize;
	sv.f_frsize = f.frsize ? f.frsize : f.bsize;
	sv.f_blocks = f.blocks;
	sv.f_bfree = f.bfree;
	sv.f_bavail = f.bavail;
	sv.f_files = f.files;
	sv.f_ffree = f.ffree;
	sv.f_favail = f.ffree;
	sv.f_namemax = f.namemax;
	fuse_reply_statfs(req, &sv);
}

/* ---- directories ------------------------------------------------------ */

void rp_opendir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t node, fh;
	int err = rpi_node_of(rp, ino, &node);
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_opendir(rp->client, node, &fh);
		vp_fs_clear_caller();
	}
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	fi->fh = fh;
	/* Listings change under us (commands); never keep them. */
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0)
		vp_fs_close(rp->client, fh);
}

void rp_releasedir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	vp_fs_close(rp->client, fi->fh);
	fuse_reply_err(req, 0);
}

void rp_fsyncdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	(void)ino;
	rpi_reply_err(req, vp_fs_fsync(rp->client, fi->fh, datasync != 0));
}

/* Entries of one agent READDIR reply, copied out of it (the names point
 * into the reply, which is gone when vp_fs_readdir returns, and lookups for
 * readdirplus must not run inside the callback). */
struct rp_dent {
	uint64_t ino, next_offset;
	uint32_t type;
	char name[VP_MAX_NAME + 1];
};

struct dir_batch {
	struct rp_dent *ents;
	size_t n, cap;
	size_t room;	    /* bytes of the FUSE reply still free */
	bool skipped;	    /* an entry was dropped ... */
	uint64_t skip_next; /* ... and the listing goes on from here */
	int err;
};

static bool is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static int collect_dent(void *ctx, const struct vp_dirent *d)
{
	struct dir_batch *b = ctx;
	/* The kernel fails a whole listing (EIO) on a name with '/' or one
	 * that is empty or too long; a name with a NUL cannot be given to
	 * fuse_add_direntry. Skip such entries from a misbehaving guest. */
	if (d->name.len == 0 || d->name.len > VP_MAX_NAME || memchr(d->name.p, '/', d->name.len) ||
	    memchr(d->name.p, '\0', d->name.len)) {
		b->skipped = true;
		b->skip_next = d->next_offset;
		return 0;
	}
	char name[VP_MAX_NAME + 1];
	memcpy(name, d->name.p, d->name.len);
	name[d->name.len] = '\0';
	size_t need = fuse_add_direntry(NULL, NULL, 0, name, NULL, 0);
	if (need > b->room)
		return 1; /* full: the next READDIR resumes at this entry */
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		struct rp_dent *e = realloc(b->ents, cap * sizeof(*e));
		if (!e) {
			b->err = -ENOMEM;
			return 1;
		}
		b->ents = e;
		b->cap = cap;
	}
	struct rp_dent *e = &b->ents[b->n++];
	e->ino = d->ino;
	e->next_offset = d->next_offset;
	e->type = d->type;
	memcpy(e->name, name, d->name.len + 1);
	b->room -= need;
	return 0;
}

void rp_readdir(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	uint64_t dir;
	int err = rpi_node_of(rp, ino, &dir);
	if (!err && off < 0)
		err = -EINVAL;
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	struct dir_batch b = { .room = size };
	/* The agent's entry encoding is no larger than a FUSE dirent, so
	 * asking for `size` bytes never gives fewer entries than fit. */
	uint32_t max_bytes = size > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)size;
	uint32_t count = 0;
	uint64_t pos = (uint64_t)off;
	/* A batch of nothing but dropped names must not read as the end of
	 * the directory: go on after them (a bounded number of times, as a
	 * guest could repeat an offset forever). */
	for (int tries = 0;; tries++) {
		b.skipped = false;
		rpi_count(&rp->n_readdirs);
		err = vp_fs_readdir(rp->client, fi->fh, pos, max_bytes, collect_dent, &b, &count);
		if (!err)
			err = b.err;
		if (err || b.n > 0 || !b.skipped || count == 0)
			break;
		if (tries == 64 || b.skip_next == pos) {
			err = -EIO;
			break;
		}
		pos = b.skip_next;
	}
	char *buf = NULL;
	if (!err || b.n) {
		buf = malloc(size ? size : 1);
		if (!buf)
			err = -ENOMEM;
		else
			err = 0; /* entries already read are worth replying with */
	}
	if (err) {
		free(buf);
		free(b.ents);
		rpi_reply_err(req, err);
		return;
	}
	size_t used = 0;
	for (size_t i = 0; i < b.n; i++) {
		struct rp_dent *d = &b.ents[i];
		off_t next = d->next_offset > (uint64_t)INT64_MAX ? INT64_MAX : (off_t)d->next_offset;
		struct stat st;
		memset(&st, 0, sizeof(st));
		/* The guest's inode number: the kernel only passes it on as
		 * d_ino; stat gives the FUSE inode. */
		st.st_ino = d->ino;
		st.st_mode = (d->type & 0xf) << 12;
		size_t n = fuse_add_direntry(req, buf + used, size - used, d->name, &st, next);
		if (n > size - used)
			break; /* cannot happen: room was reserved */
		used += n;
	}
	free(b.ents);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* readdirplus: one FS_READDIRPLUS per kernel request, whose entries come
 * with their attributes and counted lookups (it was one LOOKUP round trip
 * per entry: 10 000 for ls -l of 10 000 names). */
struct plus_batch {
	struct root_proxy *rp;
	fuse_req_t req;
	uint64_t dir;
	char *buf;
	size_t size, used;
	uint64_t *counted; /* lookups handed to the kernel, if the reply fails */
	size_t ncounted, most;
	int err;
};

static int add_plus(void *ctx, const struct vp_direntplus *d)
{
	struct plus_batch *b = ctx;
	char name[VP_MAX_NAME + 1];
	if (d->d.name.len == 0 || d->d.name.len > VP_MAX_NAME || memchr(d->d.name.p, '/', d->d.name.len) ||
	    memchr(d->d.name.p, '\0', d->d.name.len)) {
		/* The codec refuses these; a name the kernel would fail the
		 * whole listing for is dropped all the same. */
		vp_fs_forget(b->rp->client, d->e.node, 1);
		return 0;
	}
	memcpy(name, d->d.name.p, d->d.name.len);
	name[d->d.name.len] = '\0';
	if (fuse_add_direntry_plus(NULL, NULL, 0, name, NULL, 0) > b->size - b->used || b->ncounted == b->most)
		return 1; /* full: the client forgets this one and the rest */
	off_t next = d->d.next_offset > (uint64_t)INT64_MAX ? INT64_MAX : (off_t)d->d.next_offset;
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.attr.st_ino = d->d.ino;
	e.attr.st_mode = (d->d.type & 0xf) << 12;
	/* node 0 ("." and "..", a name gone since the listing) is listed
	 * with e.ino 0: the kernel links no inode and counts no lookup. */
	if (d->e.node != 0 && !is_dot(name)) {
		int err = rpi_adopt_entry(b->rp, b->dir, name, &d->e, &e);
		if (err) {
			b->err = err; /* the lookup was given back */
			return 1;
		}
		if (d->e.node != VP_ROOT_NODE)
			b->counted[b->ncounted++] = d->e.node;
	} else {
		vp_fs_forget(b->rp->client, d->e.node, 1);
	}
	b->used += fuse_add_direntry_plus(b->req, b->buf + b->used, b->size - b->used, name, &e, next);
	return 0;
}

void rp_readdirplus(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct plus_batch b = { .rp = rp, .req = req, .size = size };
	int err = rpi_node_of(rp, ino, &b.dir);
	if (!err && off < 0)
		err = -EINVAL;
	/* The agent counts max_bytes in FUSE direntplus bytes (152 + name
	 * rounded up to 8), as fuse_add_direntry_plus does: one round trip
	 * brings just what fills the kernel's buffer, and no lookup is made
	 * only to be given back. */
	uint32_t max_bytes = size > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)size;
	/* At most one entry per 160 bytes (an entry with a 1-byte name). */
	b.most = max_bytes / 160 + 1;
	if (!err) {
		b.buf = malloc(size ? size : 1);
		b.counted = malloc(b.most * sizeof(*b.counted));
		if (!b.buf || !b.counted)
			err = -ENOMEM;
	}
	if (!err) {
		rpi_count(&rp->n_readdirplus);
		err = vp_fs_readdirplus(rp->client, b.dir, fi->fh, (uint64_t)off, max_bytes, add_plus, &b,
					NULL);
	}
	if (!err)
		err = b.err;
	/* An error after some entries ends the batch short; the kernel asks
	 * again from the last offset and then sees the error itself. */
	if (err && b.used == 0)
		rpi_reply_err(req, err);
	else if (fuse_reply_buf(req, b.buf, b.used) != 0)
		for (size_t i = 0; i < b.ncounted; i++)
			rpi_unlookup(rp, b.counted[i]);
	free(b.buf);
	free(b.counted);
}
