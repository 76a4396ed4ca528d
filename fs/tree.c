/* Dispatch and the fixed part of the tree; see tree.h. */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlfiles.h"
#include "fs/root_proxy.h"
#include "session.h"

#define ENTRY_TIMEOUT 1.0
#define DIR_ATTR_TIMEOUT 1.0

static const struct {
	const char *name;
	int file;
	mode_t mode;
} sfiles[] = {
	{"cmd", SF_CMD, S_IFREG | 0644},      {"stdout", SF_STDOUT, S_IFREG | 0444},
	{"stderr", SF_STDERR, S_IFREG | 0444}, {"stat", SF_STAT, S_IFREG | 0444},
	{"exit", SF_EXIT, S_IFREG | 0444},     {"stdin", SF_STDIN, S_IFREG | 0200},
	{"ctl", SF_CTL, S_IFREG | 0644},      {"log", SF_LOG, S_IFREG | 0444},
};
#define NSFILES (sizeof(sfiles) / sizeof(sfiles[0]))

static struct vpfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- root/ routing ------------------------------------------------------ */

/* The session of a root-proxy inode, with a reference and machine use. */
static struct session *rp_enter(struct vpfs *fs, fuse_ino_t ino)
{
	struct session *s = session_by_serial(fs, rp_ino_serial(ino));
	if (!s)
		return NULL;
	if (session_machine_get(s) < 0) {
		session_unref(s);
		return NULL;
	}
	return s;
}

static void rp_leave(struct session *s)
{
	session_machine_put(s);
	session_unref(s);
}

#define RP_ROUTE(ino, call)                                   \
	do {                                                  \
		struct session *s_ = rp_enter(FS(req), (ino)); \
		if (!s_) {                                    \
			fuse_reply_err(req, ESTALE);          \
			return;                               \
		}                                             \
		call;                                         \
		rp_leave(s_);                                 \
	} while (0)
#define RP (s_->rp)

/* ---- attributes ---------------------------------------------------------- */

static void base_attr(struct vpfs *fs, struct stat *st, fuse_ino_t ino, mode_t mode)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = fs->start_time;
}

static void session_attr(struct session *s, int file, struct stat *st)
{
	if (file == SF_DIR) {
		base_attr(s->fs, st, ses_ino(s->serial, SF_DIR), S_IFDIR | 0755);
		st->st_nlink = 3; /* ., .., root/ */
	} else {
		base_attr(s->fs, st, ses_ino(s->serial, file), sfiles[file - 1].mode);
		st->st_size = (off_t)session_file_size(s, file);
		st->st_blocks = (st->st_size + 511) / 512;
	}
	pthread_mutex_lock(&s->lock);
	st->st_ctim = s->ctime;
	if (file == SF_STDOUT || file == SF_STDERR)
		st->st_mtim = s->mtime[file == SF_STDERR];
	else
		st->st_mtim = s->ctime;
	st->st_atim = st->st_mtim;
	pthread_mutex_unlock(&s->lock);
}

static int fixed_attr(struct vpfs *fs, fuse_ino_t ino, struct stat *st)
{
	switch (ino) {
	case INO_ROOT:
		base_attr(fs, st, ino, S_IFDIR | 0755);
		st->st_nlink = 3;
		return 0;
	case INO_POOL:
		base_attr(fs, st, ino, S_IFDIR | 0755);
		pthread_mutex_lock(&fs->lock);
		st->st_nlink = 2 + fs->nlive;
		pthread_mutex_unlock(&fs->lock);
		return 0;
	case INO_STATS:
	case INO_CONFIG:
		base_attr(fs, st, ino, S_IFREG | 0444);
		return 0;
	}
	return -ENOENT;
}

/* Any inode of ours (not root/); -ESTALE for a released session. */
static int get_attr(struct vpfs *fs, fuse_ino_t ino, struct stat *st)
{
	if (!ino_is_session(ino))
		return fixed_attr(fs, ino, st);
	struct session *s = session_by_serial(fs, ino_serial(ino));
	if (!s)
		return -ESTALE;
	session_attr(s, ino_file(ino), st);
	session_unref(s);
	return 0;
}

static void reply_entry(fuse_req_t req, const struct stat *st, bool dir)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = st->st_ino;
	e.attr = *st;
	e.entry_timeout = ENTRY_TIMEOUT;
	e.attr_timeout = dir ? DIR_ATTR_TIMEOUT : 0.0; /* sizes and times move */
	fuse_reply_entry(req, &e);
}

/* ---- operations ----------------------------------------------------------- */

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
	snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", stx.stx_dev_major, stx.stx_dev_minor);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	int n = snprintf(v, sizeof v, "%u", RP_READAHEAD / 1024);
	if (write(fd, v, (size_t)n) != n)
		fprintf(stderr, "vmpoolfs: %s: %s (root/ reads stay in 128 KiB requests)\n", path, strerror(errno));
	close(fd);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Big requests for root/ transfers (DESIGN §1: max_write 1 MiB). */
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

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vpfs *fs = FS(req);
	struct stat st;
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_lookup(RP, req, parent, name));
		return;
	}
	if (parent == INO_ROOT) {
		fuse_ino_t ino = !strcmp(name, "pool")	 ? INO_POOL
				 : !strcmp(name, "stats")  ? INO_STATS
				 : !strcmp(name, "config") ? INO_CONFIG
							   : 0;
		if (!ino) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		fixed_attr(fs, ino, &st);
		reply_entry(req, &st, ino == INO_POOL);
		return;
	}
	if (parent == INO_POOL) {
		if (strlen(name) > NAME_MAX) {
			fuse_reply_err(req, ENAMETOOLONG);
			return;
		}
		struct session *s = session_by_name(fs, name);
		if (!s) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		session_attr(s, SF_DIR, &st);
		session_unref(s);
		reply_entry(req, &st, true);
		return;
	}
	if (ino_is_session(parent) && ino_file(parent) == SF_DIR) {
		struct session *s = session_by_serial(fs, ino_serial(parent));
		if (!s) {
			fuse_reply_err(req, ESTALE);
			return;
		}
		if (!strcmp(name, "root")) {
			if (session_machine_get(s) == 0) {
				rp_lookup_root(s->rp, req);
				session_machine_put(s);
			} else {
				fuse_reply_err(req, ENOENT);
			}
			session_unref(s);
			return;
		}
		for (size_t i = 0; i < NSFILES; i++) {
			if (!strcmp(name, sfiles[i].name)) {
				session_attr(s, sfiles[i].file, &st);
				session_unref(s);
				reply_entry(req, &st, false);
				return;
			}
		}
		session_unref(s);
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_err(req, ENOTDIR);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Our own inodes are computed, not counted; root/ counts its own. A
	 * forget for a released machine's root/ has nothing left to drop. */
	if (ino_is_rp(ino)) {
		struct session *s = rp_enter(FS(req), ino);
		if (s) {
			rp_forget(s->rp, ino, nlookup);
			rp_leave(s);
		}
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_getattr(RP, req, ino, fi));
		return;
	}
	struct stat st;
	int r;
	struct session *s = NULL;
	if (ino_is_session(ino) && ino_file(ino) != SF_DIR &&
	    (s = session_by_serial_any(FS(req), ino_serial(ino)))) {
		/* fstat on an open file of a released machine still works */
		session_attr(s, ino_file(ino), &st);
		session_unref(s);
		r = 0;
	} else {
		r = get_attr(FS(req), ino, &st);
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, S_ISDIR(st.st_mode) ? DIR_ATTR_TIMEOUT : 0.0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_setattr(RP, req, ino, attr, to_set, fi));
		return;
	}
	struct vpfs *fs = FS(req);
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int file = ino_is_session(ino) ? ino_file(ino) : -1;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		/* O_TRUNC on the writable files is meaningless and harmless;
		 * nothing else may be truncated. */
		if (!(file == SF_CMD || file == SF_STDIN || file == SF_CTL)) {
			fuse_reply_err(req, EPERM);
			return;
		}
	}
	if ((to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) &&
	    (file == SF_STDOUT || file == SF_STDERR)) {
		/* The notify thread's touch (IN_MODIFY); times only. */
		struct session *s = session_by_serial(fs, ino_serial(ino));
		if (s) {
			pthread_mutex_lock(&s->lock);
			if (to_set & FUSE_SET_ATTR_MTIME_NOW)
				clock_gettime(CLOCK_REALTIME, &s->mtime[file == SF_STDERR]);
			else
				s->mtime[file == SF_STDERR] = attr->st_mtim;
			pthread_mutex_unlock(&s->lock);
			session_unref(s);
		}
	}
	struct stat st;
	int r = get_attr(fs, ino, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0.0);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_readlink(RP, req, ino));
		return;
	}
	fuse_reply_err(req, EINVAL);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_mknod(RP, req, parent, name, mode, rdev));
		return;
	}
	fuse_reply_err(req, EPERM); /* only directories, and only under pool/ */
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_mkdir(RP, req, parent, name, mode));
		return;
	}
	if (parent != INO_POOL) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct vpfs *fs = FS(req);
	struct session *s;
	int r = session_create(fs, name, &s);
	if (r < 0) {
		if (r == -EAGAIN)
			fprintf(stderr, "vmpoolfs: mkdir pool/%s: no machine can be made now (max_machines=%u)\n",
				name, fs->opts.pool.max_machines);
		else if (r != -EEXIST)
			fprintf(stderr, "vmpoolfs: mkdir pool/%s: %s\n", name, strerror(-r));
		fuse_reply_err(req, -r);
		return;
	}
	struct stat st;
	session_attr(s, SF_DIR, &st);
	session_unref(s);
	reply_entry(req, &st, true);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_unlink(RP, req, parent, name));
		return;
	}
	fuse_reply_err(req, EPERM);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_rmdir(RP, req, parent, name));
		return;
	}
	if (parent != INO_POOL) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int r = session_remove(FS(req), name);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_symlink(RP, req, link, parent, name));
		return;
	}
	fuse_reply_err(req, EPERM);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	if (ino_is_rp(parent) && ino_is_rp(newparent)) {
		if (rp_ino_serial(parent) != rp_ino_serial(newparent)) {
			fuse_reply_err(req, EXDEV); /* two machines: mv copies */
			return;
		}
		RP_ROUTE(parent, rp_rename(RP, req, parent, name, newparent, newname, flags));
		return;
	}
	fuse_reply_err(req, ino_is_rp(parent) || ino_is_rp(newparent) ? EXDEV : EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	if (ino_is_rp(ino) && ino_is_rp(newparent)) {
		if (rp_ino_serial(ino) != rp_ino_serial(newparent)) {
			fuse_reply_err(req, EXDEV);
			return;
		}
		RP_ROUTE(ino, rp_link(RP, req, ino, newparent, newname));
		return;
	}
	fuse_reply_err(req, ino_is_rp(ino) || ino_is_rp(newparent) ? EXDEV : EPERM);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_open(RP, req, ino, fi));
		return;
	}
	if (ino == INO_ROOT || ino == INO_POOL || (ino_is_session(ino) && ino_file(ino) == SF_DIR)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	cf_open(FS(req), req, ino, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	if (ino_is_rp(parent)) {
		RP_ROUTE(parent, rp_create(RP, req, parent, name, mode, fi));
		return;
	}
	/* Creating a file under pool/ or pool/NAME: only mkdir is meaningful
	 * there; existing names never reach create. */
	fuse_reply_err(req, EPERM);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_read(RP, req, ino, size, off, fi));
		return;
	}
	cf_read(FS(req), req, ino, size, off, fi);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_write(RP, req, ino, buf, size, off, fi));
		return;
	}
	cf_write(FS(req), req, ino, buf, size, off, fi);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		struct session *s = rp_enter(FS(req), ino);
		if (!s) {
			fuse_reply_err(req, 0); /* the guest is gone, and its handles */
			return;
		}
		rp_flush(s->rp, req, ino, fi);
		rp_leave(s);
		return;
	}
	cf_flush(FS(req), req, ino, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		struct session *s = rp_enter(FS(req), ino);
		if (!s) {
			fuse_reply_err(req, 0);
			return;
		}
		rp_release(s->rp, req, ino, fi);
		rp_leave(s);
		return;
	}
	cf_release(FS(req), req, ino, fi);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_fsync(RP, req, ino, datasync, fi));
		return;
	}
	fuse_reply_err(req, 0);
}

/* ---- our directories -------------------------------------------------------- */

struct dent {
	fuse_ino_t ino;
	mode_t mode;
	char name[];
};

struct dirsnap {
	size_t n;
	struct dent **e;
};

static int snap_add(struct dirsnap *d, const char *name, fuse_ino_t ino, mode_t mode)
{
	struct dent **ne = realloc(d->e, (d->n + 1) * sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	d->e = ne;
	size_t l = strlen(name);
	struct dent *x = malloc(sizeof(*x) + l + 1);
	if (!x)
		return -ENOMEM;
	x->ino = ino;
	x->mode = mode;
	memcpy(x->name, name, l + 1);
	d->e[d->n++] = x;
	return 0;
}

static void snap_free(struct dirsnap *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i]);
	free(d->e);
	free(d);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_opendir(RP, req, ino, fi));
		return;
	}
	struct vpfs *fs = FS(req);
	struct dirsnap *d = calloc(1, sizeof(*d));
	int r = d ? 0 : -ENOMEM;
	if (!r)
		r = snap_add(d, ".", ino, S_IFDIR);
	if (ino == INO_ROOT) {
		if (!r)
			r = snap_add(d, "..", INO_ROOT, S_IFDIR);
		if (!r)
			r = snap_add(d, "pool", INO_POOL, S_IFDIR);
		if (!r)
			r = snap_add(d, "stats", INO_STATS, S_IFREG);
		if (!r)
			r = snap_add(d, "config", INO_CONFIG, S_IFREG);
	} else if (ino == INO_POOL) {
		if (!r)
			r = snap_add(d, "..", INO_ROOT, S_IFDIR);
		pthread_mutex_lock(&fs->lock);
		for (struct session *s = fs->live; s && !r; s = s->next_live)
			if (s->ready)
				r = snap_add(d, s->name, ses_ino(s->serial, SF_DIR), S_IFDIR);
		pthread_mutex_unlock(&fs->lock);
	} else if (ino_is_session(ino) && ino_file(ino) == SF_DIR) {
		struct session *s = session_by_serial(fs, ino_serial(ino));
		if (!s) {
			r = -ESTALE;
		} else {
			if (!r)
				r = snap_add(d, "..", INO_POOL, S_IFDIR);
			for (size_t i = 0; i < NSFILES && !r; i++)
				r = snap_add(d, sfiles[i].name, ses_ino(s->serial, sfiles[i].file), S_IFREG);
			if (!r) /* its inode is the proxy's; readdir shows a placeholder number */
				r = snap_add(d, "root", INO_RP_BIT | (s->serial << RP_NODE_BITS) | 1u, S_IFDIR);
			session_unref(s);
		}
	} else {
		r = -ENOTDIR;
	}
	if (r < 0) {
		snap_free(d);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		snap_free(d);
}

static void fill_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		     bool plus)
{
	(void)ino;
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
		struct dent *x = d->e[i];
		size_t n;
		if (plus) {
			/* ino 0: no lookup is counted for these entries; the
			 * kernel looks them up when used. */
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = x->ino;
			e.attr.st_mode = x->mode;
			n = fuse_add_direntry_plus(req, buf + used, size - used, x->name, &e, (off_t)(i + 1));
		} else {
			struct stat st;
			memset(&st, 0, sizeof(st));
			st.st_ino = x->ino;
			st.st_mode = x->mode;
			n = fuse_add_direntry(req, buf + used, size - used, x->name, &st, (off_t)(i + 1));
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_readdir(RP, req, ino, size, off, fi));
		return;
	}
	fill_dir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_readdirplus(RP, req, ino, size, off, fi));
		return;
	}
	fill_dir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		struct session *s = rp_enter(FS(req), ino);
		if (!s) {
			fuse_reply_err(req, 0);
			return;
		}
		rp_releasedir(s->rp, req, ino, fi);
		rp_leave(s);
		return;
	}
	snap_free((struct dirsnap *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_fsyncdir(RP, req, ino, datasync, fi));
		return;
	}
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	if (ino_is_rp(ino)) {
		RP_ROUTE(ino, rp_statfs(RP, req, ino));
		return;
	}
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	if (ino_is_rp(ino)) {
		/* Guest files are always ready, like regular files. */
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLOUT);
		return;
	}
	cf_poll(FS(req), req, ino, fi, ph);
}

const struct fuse_lowlevel_ops vpfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
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
