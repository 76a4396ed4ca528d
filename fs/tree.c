/* The FUSE operations: each picks its subtree in plain code, the control
 * tree (ctltree.h, handles.h) or, for an inode with INO_RP_BIT (ino.h), the
 * root proxy of that inode's machine (root_proxy.h). */
#include "lib/vlog.h"
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctltree.h"
#include "fs/root_proxy.h"
#include "handles.h"
#include "ino.h"
#include "session.h"

static struct vpfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The session whose root proxy serves a root/ inode, with a reference,
 * a machine use so that the proxy stays while it serves the request, and
 * one of the machine's calls (session_call_enter) so that one guest holds
 * at most its share of the FUSE workers; rp_leave gives them back. NULL
 * with *err: ESTALE once the machine is released, EAGAIN past its share.
 * err NULL: a request that frees what another took (forget, release,
 * flush) is never refused for the share. */
static struct session *rp_enter(struct vpfs *fs, fuse_ino_t ino, int *err)
{
	struct session *s = session_by_serial(fs, ino_rp_serial(ino));
	if (!s)
		return NULL;
	if (session_machine_get(s) < 0) {
		session_unref(s);
		return NULL;
	}
	int r = session_call_enter(s, err == NULL);
	if (r < 0) {
		*err = -r;
		session_machine_put(s);
		session_unref(s);
		return NULL;
	}
	return s;
}

static void rp_leave(struct session *s)
{
	session_call_leave(s);
	session_machine_put(s);
	session_unref(s);
}

/* -o allow_other: a machine is its owner's (ctltree.h, ct_may_use). Asked
 * before every operation that names an inode of a machine (pool/NAME, its
 * files, root/ and below): without default_permissions the kernel checks
 * nothing itself. Operations on open files are not asked again, as on any
 * file system. Replies EACCES when refused. */
static bool denied(fuse_req_t req, fuse_ino_t ino)
{
	struct vpfs *fs = FS(req);
	if (!fs->opts.allow_other)
		return false;
	uint64_t serial = ino_is_rp(ino) ? ino_rp_serial(ino) : ino_serial(ino);
	if (serial == 0)
		return false; /* the mount's own nodes: everyone's */
	int r = ct_may_use(fs, fuse_req_ctx(req), serial);
	if (r == 0)
		return false;
	fuse_reply_err(req, -r);
	return true;
}

/* ---- init -------------------------------------------------------------------- */

#define RP_READAHEAD (1u << 20)

/* The kernel caps a FUSE mount's readahead at its bdi's read_ahead_kb
 * (128 KiB by default) whatever INIT's max_readahead says, so root/ reads
 * came as 128 KiB requests, and a sequential read through the page cache
 * was a chain of small round trips. Raising it for this mount, before INIT
 * is answered, gives 1 MiB requests with the next one already in flight:
 * about 1.6x on a 256 MiB read (docs/benchmarks.md). Best effort (needs
 * root; without it the default stays). The mount is attached by now;
 * AT_STATX_DONT_SYNC makes the kernel answer from its cache, since a
 * request to us could not be served before INIT is answered. Anonymous
 * device (major 0) check: only a bdi of a mount like ours is touched. */
static void raise_readahead(const struct vpfs *fs)
{
	struct statx stx;
	if (!fs || !fs->mnt ||
	    statx(AT_FDCWD, fs->mnt, AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT, STATX_INO, &stx) < 0 ||
	    stx.stx_dev_major != 0)
		return;
	char path[96], v[16];
	snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", stx.stx_dev_major,
		 stx.stx_dev_minor);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	int n = snprintf(v, sizeof v, "%u", RP_READAHEAD / 1024);
	if (write(fd, v, (size_t)n) != n)
		vlog_warn(&fs->log, "%s: %s (root/ reads stay in 128 KiB requests)", path, strerror(errno));
	close(fd);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Big requests for root/ transfers (docs/design.md: max_write 1 MiB). */
	conn->max_write = 1u << 20;
	conn->max_readahead = RP_READAHEAD;
	raise_readahead(userdata);
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Measured no gain for our buffers; keep the simple copy path. */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* Page cache of root/ is dropped explicitly after every command. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

/* ---- operations ------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		ct_lookup(fs, req, parent, name);
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_lookup(s->rp, req, parent, name);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

/* Our own inodes are computed, not counted; root/ counts its own. A forget
 * for a released machine's root/ has nothing left to drop. */
static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct session *s;
	if (ino_is_rp(ino) && (s = rp_enter(FS(req), ino, NULL))) {
		rp_forget(s->rp, ino, nlookup);
		rp_leave(s);
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (denied(req, ino))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		ct_getattr(fs, req, ino);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_getattr(s->rp, req, ino, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	if (denied(req, ino))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		ct_setattr(fs, req, ino, attr, to_set);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_setattr(s->rp, req, ino, attr, to_set, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (denied(req, ino))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		fuse_reply_err(req, EINVAL); /* no links of ours */
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_readlink(s->rp, req, ino);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		fuse_reply_err(req, EPERM); /* only directories, and only under pool/ */
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_mknod(s->rp, req, parent, name, mode, rdev);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		ct_mkdir(fs, req, parent, name);
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_mkdir(s->rp, req, parent, name, mode);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		fuse_reply_err(req, EPERM);
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_unlink(s->rp, req, parent, name);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		ct_rmdir(fs, req, parent, name);
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_rmdir(s->rp, req, parent, name);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		fuse_reply_err(req, EPERM);
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_symlink(s->rp, req, link, parent, name);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

/* Two inodes: both must be in the same machine's root/. Across machines
 * EXDEV makes mv copy; within the control tree nothing moves. */
static int two_inodes(fuse_ino_t a, fuse_ino_t b)
{
	if (ino_is_rp(a) && ino_is_rp(b))
		return ino_rp_serial(a) == ino_rp_serial(b) ? 0 : -EXDEV;
	return ino_is_rp(a) || ino_is_rp(b) ? -EXDEV : -EPERM;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	if (denied(req, parent) || denied(req, newparent))
		return;
	struct session *s;
	int e = ESTALE;
	int r = two_inodes(parent, newparent);
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if ((s = rp_enter(FS(req), parent, &e))) {
		rp_rename(s->rp, req, parent, name, newparent, newname, flags);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	if (denied(req, ino) || denied(req, newparent))
		return;
	struct session *s;
	int e = ESTALE;
	int r = two_inodes(ino, newparent);
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if ((s = rp_enter(FS(req), ino, &e))) {
		rp_link(s->rp, req, ino, newparent, newname);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (denied(req, ino))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		vfh_open(fs, req, ino, fi);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_open(s->rp, req, ino, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	if (denied(req, parent))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(parent)) {
		/* Under pool/ or pool/NAME only mkdir is meaningful; existing
		 * names never reach create. */
		fuse_reply_err(req, EPERM);
	} else if ((s = rp_enter(fs, parent, &e))) {
		rp_create(s->rp, req, parent, name, mode, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		vfh_read(fs, req, size, off, fi);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_read(s->rp, req, ino, size, off, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		(void)off; /* ours are written in order */
		vfh_write(req, buf, size, fi);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_write(s->rp, req, ino, buf, size, off, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	if (!ino_is_rp(ino)) {
		vfh_flush(req, fi);
	} else if ((s = rp_enter(fs, ino, NULL))) {
		rp_flush(s->rp, req, ino, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, 0); /* the guest is gone, and its handles */
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	if (!ino_is_rp(ino)) {
		vfh_release(fs, req, fi);
	} else if ((s = rp_enter(fs, ino, NULL))) {
		rp_release(s->rp, req, ino, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, 0);
	}
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		fuse_reply_err(req, 0);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_fsync(s->rp, req, ino, datasync, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (denied(req, ino))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		ct_opendir(fs, req, ino, fi);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_opendir(s->rp, req, ino, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		ct_readdir(req, size, off, fi, false);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_readdir(s->rp, req, ino, size, off, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		ct_readdir(req, size, off, fi, true);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_readdirplus(s->rp, req, ino, size, off, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	if (!ino_is_rp(ino)) {
		ct_releasedir(req, fi);
	} else if ((s = rp_enter(fs, ino, NULL))) {
		rp_releasedir(s->rp, req, ino, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, 0);
	}
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		fuse_reply_err(req, 0);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_fsyncdir(s->rp, req, ino, datasync, fi);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void statfs_ours(fuse_req_t req)
{
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	if (denied(req, ino))
		return;
	struct vpfs *fs = FS(req);
	struct session *s;
	int e = ESTALE;
	if (!ino_is_rp(ino)) {
		statfs_ours(req);
	} else if ((s = rp_enter(fs, ino, &e))) {
		rp_statfs(s->rp, req, ino);
		rp_leave(s);
	} else {
		fuse_reply_err(req, e);
	}
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	if (!ino_is_rp(ino)) {
		vfh_poll(req, fi, ph);
		return;
	}
	/* Guest files are always ready, like regular files. */
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLOUT);
}

/* access(2) and chdir: the kernel asks only for these without
 * default_permissions. Without allow_other, ENOSYS: the kernel stops
 * asking and allows, as before. With it, a machine's inodes are refused
 * to other users; what the owner may do is the operations' own business
 * (the mode bits of root/ are the guest's, for guest users). */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	if (!FS(req)->opts.allow_other) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	(void)mask;
	if (!denied(req, ino))
		fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops vpfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.access = op_access,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.create = op_create,
	.poll = op_poll,
	.readdirplus = op_readdirplus,
};
