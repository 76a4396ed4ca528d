/* root/ proxy: open files and their I/O. Writes that may go behind are
 * handed to root_proxy_wb.c; everything else here is synchronous. */
#include "fs/root_proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

/* Open flags the agent gets. Dropped: O_CLOEXEC (the agent's own fds are
 * its business), O_NOCTTY (the agent could otherwise gain a controlling
 * tty), O_DIRECT (the agent's buffers are not aligned for it; direct I/O on
 * the host side is the kernel's), FASYNC (signals would go to the agent),
 * O_LARGEFILE (implied). O_CREAT/O_EXCL only make sense for create. */
static uint32_t open_flags(int flags, bool create)
{
	int keep = O_ACCMODE | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME | O_NOFOLLOW;
	if (create)
		keep |= O_CREAT | O_EXCL;
	return (uint32_t)(flags & keep);
}

/* A write-only open gets direct I/O. Without a writeback cache every
 * write(2) is sent to the guest at once either way, a write-only fd can
 * never be mmapped, and the cache is dropped at the next open anyway: the
 * page cache would only cost the writer a page allocation and a copy per
 * page before each request (a quarter of a 1 MiB write's time, measured)
 * and leave host memory holding a second copy of data that lives in the
 * guest. With direct I/O the daemon reads the data straight from the
 * writer's buffer. The kernel invalidates the written range of the page
 * cache for other opens of the file (checked on 6.18: a reader's cached
 * pages and a shared mapping see the new data at once). */
static bool write_only(int flags)
{
	return (flags & O_ACCMODE) == O_WRONLY;
}

/* A new open file of node, linked into the proxy (NULL: out of memory). */
static struct rp_file *file_new(struct root_proxy *rp, uint64_t fh, uint64_t node, int flags, int regular)
{
	struct rp_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fh = fh;
	f->node = node;
	f->flags = (uint32_t)flags;
	f->regular = (int8_t)regular;
	vp_mutex_lock(&rp->wb_lock);
	list_add_head(&rp->files, &f->link);
	vp_mutex_unlock(&rp->wb_lock);
	return f;
}

/* Unlinks and frees f; no write of it may be in flight. */
static void file_free(struct root_proxy *rp, struct rp_file *f)
{
	vp_mutex_lock(&rp->wb_lock);
	list_del(&f->link);
	vp_mutex_unlock(&rp->wb_lock);
	free(f);
}

void rp_open(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t node, fh;
	int err = rpi_node_of(rp, ino, &node);
	if (!err) {
		/* An O_TRUNC open must not be overtaken by writes answered
		 * before it, and any open should see them (close-to-open). */
		rpi_wb_wait_node(rp, node);
		rpi_as_caller(rp, req);
		err = vp_fs_open(rp->client, node, open_flags(fi->flags, false), &fh);
		vp_fs_clear_caller();
	}
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	/* Asked after opening, so an O_TRUNC open sees the truncated size;
	 * if it fails, direct I/O is the choice that is always correct. */
	struct vp_attr a;
	bool asked = !write_only(fi->flags);
	bool got = asked && vp_fs_getattr(rp->client, node, &a) == 0;
	bool direct = !got || (S_ISREG(a.mode) && a.size == 0);
	struct rp_file *f = file_new(rp, fh, node, fi->flags, got ? S_ISREG(a.mode) : -1);
	if (!f) {
		vp_fs_close(rp->client, fh);
		rpi_reply_err(req, -ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = direct;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0) {
		vp_fs_close(rp->client, fh); /* no release will come for it */
		file_free(rp, f);
	}
}

void rp_create(struct root_proxy *rp, fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	uint64_t p, fh = 0;
	struct vp_entry ve;
	struct fuse_entry_param e;
	int err = rpi_node_of(rp, parent, &p);
	if (!err)
		err = rpi_check_name(name);
	if (!err) {
		rpi_as_caller(rp, req);
		err = vp_fs_create(rp->client, p, name, open_flags(fi->flags, true), mode, &fh, &ve);
		vp_fs_clear_caller();
	}
	if (err) {
		rpi_reply_err(req, err);
		return;
	}
	err = rpi_adopt_entry(rp, p, name, &ve, &e);
	struct rp_file *f = NULL;
	if (!err) {
		f = file_new(rp, fh, ve.node, fi->flags, S_ISREG(ve.attr.mode));
		if (!f) {
			rpi_unlookup(rp, ve.node);
			err = -ENOMEM;
		}
	}
	if (err) {
		vp_fs_close(rp->client, fh);
		rpi_reply_err(req, err);
		return;
	}
	/* A file we just created is an ordinary file: cache it normally even
	 * though its size is 0 now (unless it is opened write-only). */
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->direct_io = write_only(fi->flags);
	fi->keep_cache = 0;
	if (fuse_reply_create(req, &e, fi) != 0) {
		vp_fs_close(rp->client, fh);
		file_free(rp, f);
		rpi_unlookup(rp, ve.node);
	}
}

void rp_read(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = rpi_file_of(fi);
	if (off < 0) {
		rpi_reply_err(req, -EINVAL);
		return;
	}
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		rpi_reply_err(req, -ENOMEM);
		return;
	}
	/* Reads see every write answered before them, through any handle. */
	rpi_wb_wait_node(rp, f->node);
	/* The daemon caps requests at 1 MiB (= VP_MAX_DATA); the loop only
	 * matters if it ever allows more. A short chunk is EOF. */
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint32_t want = size - done > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(size - done);
		uint32_t got = 0;
		err = vp_fs_read(rp->client, f->fh, (uint64_t)off + done, buf + done, want, &got);
		if (err)
			break;
		if (got > want) {
			err = -EIO; /* the client's contract; never trust past it */
			break;
		}
		done += got;
		if (got < want)
			break;
	}
	/* Data already read counts: report it as a short read. */
	if (err && done == 0)
		rpi_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, done);
	free(buf);
}

void rp_write(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = rpi_file_of(fi);
	if (off < 0) {
		rpi_reply_err(req, -EINVAL);
		return;
	}
	if (rpi_wb_usable(rp, f)) {
		rpi_wb_write(rp, req, f, buf, size, (uint64_t)off);
		return;
	}
	/* Synchronous, but still after what other handles of the node have
	 * in flight over the same range. */
	rpi_wb_wait_range(rp, f->node, (uint64_t)off, (uint64_t)off + size);
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint32_t want = size - done > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(size - done);
		uint32_t n = 0;
		err = vp_fs_write(rp->client, f->fh, (uint64_t)off + done, buf + done, want, &n);
		if (err)
			break;
		if (n == 0 || n > want) {
			/* No progress (or nonsense) would loop forever. */
			err = -EIO;
			break;
		}
		done += n;
	}
	if (err && done == 0)
		rpi_reply_err(req, err);
	else
		fuse_reply_write(req, done);
}

void rp_flush(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Nothing is buffered here, but writes may be in flight: a close
	 * returns once the guest has them all, with the first error any of
	 * them met. The guest handle lives until release because the file
	 * may have other fds (dup). */
	(void)ino;
	rpi_reply_err(req, rpi_wb_wait_file(rp, rpi_file_of(fi)));
}

void rp_release(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = rpi_file_of(fi);
	/* Its callbacks refer to f. The kernel ignores release errors; a dead
	 * guest has no handle left. */
	rpi_wb_wait_file(rp, f);
	vp_fs_close(rp->client, f->fh);
	file_free(rp, f);
	fuse_reply_err(req, 0);
}

void rp_fsync(struct root_proxy *rp, fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	struct rp_file *f = rpi_file_of(fi);
	int err = rpi_wb_wait_file(rp, f);
	if (!err)
		err = vp_fs_fsync(rp->client, f->fh, datasync != 0);
	rpi_reply_err(req, err);
}
