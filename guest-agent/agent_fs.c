/* File requests, after libfuse's example/passthrough_ll.c: every operation
 * works relative to a node's O_PATH fd with *at() calls (or through
 * /proc/self/fd/N where a syscall has no *at form that takes O_PATH fds).
 * No path is ever built from request names, and a name is one component,
 * so in host test mode nothing outside the root can be reached through a
 * name: only through a symlink the agent is asked to follow, and it never
 * follows one for the node itself. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

/* Reply under construction: a frame type and payload. */
struct reply {
	uint16_t type;
	struct vp_buf b;
};

/* A request name as a C string: one path component, never "." or "..".
 * The codec already bounds the length; these rules keep a name from
 * walking anywhere but into its parent. */
/* renameat2 and its flags by number: the agent is built against musl
 * where available (guest-agent/meson.build), and musl 1.2.3 (Debian 12)
 * has neither the wrapper nor the constants. */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1u << 0)
#define RENAME_EXCHANGE (1u << 1)
#define RENAME_WHITEOUT (1u << 2)
#endif

static int rename_at2(int olddir, const char *oldname, int newdir, const char *newname, unsigned flags)
{
	return (int)syscall(SYS_renameat2, olddir, oldname, newdir, newname, flags);
}

static int cname(const struct vp_bytes *s, char out[VP_MAX_NAME + 1])
{
	if (s->len == 0 || s->len > VP_MAX_NAME)
		return -EINVAL;
	if (memchr(s->p, '/', s->len) || memchr(s->p, '\0', s->len))
		return -EINVAL;
	if ((s->len == 1 && s->p[0] == '.') || (s->len == 2 && s->p[0] == '.' && s->p[1] == '.'))
		return -EINVAL;
	memcpy(out, s->p, s->len);
	out[s->len] = '\0';
	return 0;
}

static void proc_path(char out[64], int fd)
{
	snprintf(out, 64, "/proc/self/fd/%d", fd);
}

static void put_attr(struct vp_attr *a, const struct stat *st)
{
	*a = (struct vp_attr){
		.ino = st->st_ino,
		.size = (uint64_t)st->st_size,
		.blocks = (uint64_t)st->st_blocks,
		.atime_sec = st->st_atim.tv_sec,
		.mtime_sec = st->st_mtim.tv_sec,
		.ctime_sec = st->st_ctim.tv_sec,
		.atime_nsec = (uint32_t)st->st_atim.tv_nsec,
		.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec,
		.ctime_nsec = (uint32_t)st->st_ctim.tv_nsec,
		.mode = st->st_mode,
		.nlink = (uint32_t)st->st_nlink,
		.uid = st->st_uid,
		.gid = st->st_gid,
		/* glibc's dev_t keeps the kernel's new_encode_dev() layout in
		 * its low 32 bits, which is what FUSE's rdev field carries. */
		.rdev = (uint32_t)st->st_rdev,
		.blksize = (uint32_t)st->st_blksize,
	};
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Looks `name` up in parent (never following a final symlink), adds a
 * lookup on its node and fills the ENTRY. */
static int do_lookup(struct agent_fs *fs, struct agent_node *parent, const char *name, struct vp_entry *e)
{
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = stat_fd(fd, &st);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = agent_node_add(fs, parent, name, fd, st.st_dev, st.st_ino, st.st_mode & S_IFMT, &e->node);
	if (r < 0)
		return r;
	put_attr(&e->attr, &st);
	return 0;
}

static int reply_entry(struct agent_fs *fs, struct agent_node *parent, const char *name, struct reply *rp)
{
	struct vp_entry e;
	int r = do_lookup(fs, parent, name, &e);
	if (r < 0)
		return r;
	rp->type = VP_FS_ENTRY;
	vp_enc_entry(&rp->b, &e);
	return 0;
}

static int reply_attr(int fd, struct reply *rp)
{
	struct stat st;
	int r = stat_fd(fd, &st);
	if (r < 0)
		return r;
	struct vp_attr a;
	put_attr(&a, &st);
	rp->type = VP_FS_ATTR;
	vp_enc_attr(&rp->b, &a);
	return 0;
}

/* ---- operations on a node ---------------------------------------------- */

static int op_setattr(struct agent_fs *fs, struct agent_node *n, const struct vp_setattr *sa)
{
	struct agent_handle *h = NULL;
	if (sa->fh) {
		h = agent_handle_get(fs, sa->fh);
		if (!h)
			return -EBADF;
	}
	char proc[64];
	proc_path(proc, n->fd);
	int r = 0;
	if (sa->valid & VP_SET_MODE) {
		if (h)
			r = fchmod(h->fd, sa->mode & 07777);
		else if (n->type == S_IFLNK)
			r = (errno = EOPNOTSUPP, -1); /* Linux symlinks have no mode */
		else
			r = chmod(proc, sa->mode & 07777);
		if (r < 0)
			goto fail;
	}
	if (sa->valid & (VP_SET_UID | VP_SET_GID)) {
		uid_t uid = sa->valid & VP_SET_UID ? (uid_t)sa->uid : (uid_t)-1;
		gid_t gid = sa->valid & VP_SET_GID ? (gid_t)sa->gid : (gid_t)-1;
		r = fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (r < 0)
			goto fail;
	}
	if (sa->valid & VP_SET_SIZE) {
		if (sa->size > (uint64_t)INT64_MAX) {
			errno = EFBIG;
			goto fail;
		}
		if (!h && n->type == S_IFLNK) {
			errno = EINVAL; /* never through the link to its target */
			goto fail;
		}
		r = h ? ftruncate(h->fd, (off_t)sa->size) : truncate(proc, (off_t)sa->size);
		if (r < 0)
			goto fail;
	}
	if (sa->valid & (VP_SET_ATIME | VP_SET_MTIME | VP_SET_ATIME_NOW | VP_SET_MTIME_NOW)) {
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		if (sa->valid & VP_SET_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (sa->valid & VP_SET_ATIME)
			ts[0] = (struct timespec){ sa->atime_sec, sa->atime_nsec };
		if (sa->valid & VP_SET_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (sa->valid & VP_SET_MTIME)
			ts[1] = (struct timespec){ sa->mtime_sec, sa->mtime_nsec };
		if (((sa->valid & VP_SET_ATIME) && !(sa->valid & VP_SET_ATIME_NOW) &&
		     sa->atime_nsec >= 1000000000u) ||
		    ((sa->valid & VP_SET_MTIME) && !(sa->valid & VP_SET_MTIME_NOW) &&
		     sa->mtime_nsec >= 1000000000u)) {
			errno = EINVAL; /* would read as UTIME_NOW/OMIT otherwise */
			goto fail;
		}
		if (h)
			r = futimens(h->fd, ts);
		else if (n->type == S_IFLNK)
			r = utimensat(n->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		else
			r = utimensat(AT_FDCWD, proc, ts, 0);
		if (r < 0)
			goto fail;
	}
	agent_handle_put(fs, h);
	return 0;
fail:
	r = -errno;
	agent_handle_put(fs, h);
	return r;
}

static int op_readlink(struct agent_node *n, struct reply *rp)
{
	if (n->type != S_IFLNK)
		return -EINVAL; /* as readlink(2); readlinkat(fd, "") says ENOENT */
	char *buf = malloc(VP_MAX_PATH + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t len = readlinkat(n->fd, "", buf, VP_MAX_PATH + 1);
	int r = 0;
	if (len < 0)
		r = -errno;
	else if (len > (ssize_t)VP_MAX_PATH)
		r = -ENAMETOOLONG;
	else {
		rp->type = VP_FS_DATA;
		vp_put_str(&rp->b, buf, (size_t)len);
	}
	free(buf);
	return r;
}

/* Open flags as the host sent them, made safe for a reopen through
 * /proc/self/fd: creation belongs to CREATE, O_PATH would give a useless fd,
 * a tty must not become PID 1's controlling terminal, and O_NOFOLLOW would
 * refuse the /proc magic link itself (the node is never a followed link). */
static int open_flags(uint32_t f)
{
	int fl = (int)f;
	fl &= ~(O_CREAT | O_EXCL | O_PATH | O_NOFOLLOW | (O_TMPFILE & ~O_DIRECTORY));
	return fl | O_NOCTTY | O_CLOEXEC;
}

/* CREATE keeps O_EXCL: the kernel sends it for exclusive creation. */
static int create_flags(uint32_t f)
{
	return open_flags(f) | ((int)f & O_EXCL) | O_CREAT | O_NOFOLLOW;
}

static int op_open(struct agent_fs *fs, struct agent_node *n, uint32_t flags, struct reply *rp)
{
	if (n->type == S_IFLNK)
		return -ELOOP;
	char proc[64];
	proc_path(proc, n->fd);
	int fd = open(proc, open_flags(flags));
	if (fd < 0)
		return -errno;
	uint64_t fh;
	int r = agent_handle_add(fs, fd, NULL, n->type == S_IFREG, &fh);
	if (r < 0)
		return r;
	rp->type = VP_FS_HANDLE;
	vp_put_u64(&rp->b, fh);
	return 0;
}

static int op_create(struct agent_fs *fs, struct agent_node *parent, const struct vp_fs_req *q,
		     const char *name, struct reply *rp)
{
	/* O_NOFOLLOW: a symlink planted under this name is never followed out
	 * of the tree; the kernel resolves existing names itself before it
	 * ever asks for CREATE. */
	int fd = openat(parent->fd, name, create_flags(q->flags), q->mode & 07777);
	if (fd < 0)
		return -errno;
	struct vp_entry e;
	int r = do_lookup(fs, parent, name, &e);
	if (r < 0) {
		close(fd);
		return r;
	}
	uint64_t fh;
	r = agent_handle_add(fs, fd, NULL, S_ISREG(e.attr.mode), &fh);
	if (r < 0) {
		agent_node_forget(fs, e.node, 1);
		return r;
	}
	rp->type = VP_FS_CREATED;
	vp_put_u64(&rp->b, fh);
	vp_enc_entry(&rp->b, &e);
	return 0;
}

static int op_opendir(struct agent_fs *fs, struct agent_node *n, struct reply *rp)
{
	int fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *dp = fdopendir(fd);
	if (!dp) {
		int e = errno;
		close(fd);
		return -e;
	}
	uint64_t fh;
	int r = agent_handle_add(fs, fd, dp, false, &fh);
	if (r < 0)
		return r;
	rp->type = VP_FS_HANDLE;
	vp_put_u64(&rp->b, fh);
	return 0;
}

static int op_link(struct agent_fs *fs, struct agent_node *n, struct agent_node *np, const char *name,
		   struct reply *rp)
{
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH in the initial namespace;
	 * the /proc link (followed once, to the inode) works without it. */
	if (linkat(n->fd, "", np->fd, name, AT_EMPTY_PATH) < 0) {
		if (errno != ENOENT && errno != EPERM)
			return -errno;
		char proc[64];
		proc_path(proc, n->fd);
		if (linkat(AT_FDCWD, proc, np->fd, name, AT_SYMLINK_FOLLOW) < 0)
			return -errno;
	}
	return reply_entry(fs, np, name, rp);
}

static int op_statfs(struct agent_node *n, struct reply *rp)
{
	struct statfs s;
	if (fstatfs(n->fd, &s) < 0)
		return -errno;
	struct vp_statfs m = {
		.blocks = s.f_blocks,
		.bfree = s.f_bfree,
		.bavail = s.f_bavail,
		.files = s.f_files,
		.ffree = s.f_ffree,
		.bsize = (uint32_t)s.f_bsize,
		.frsize = (uint32_t)s.f_frsize,
		.namemax = (uint32_t)s.f_namelen,
	};
	rp->type = VP_FS_STATFS_REPLY;
	vp_enc_statfs(&rp->b, &m);
	return 0;
}

/* ---- operations on a handle -------------------------------------------- */

/* The reply is built in place: DATA's u32 length, then the bytes, pread
 * straight into the frame buffer (no staging buffer and copy). */
static int op_read(struct agent_handle *h, uint64_t off, uint32_t size, struct reply *rp)
{
	if (size > VP_MAX_DATA || off > (uint64_t)INT64_MAX)
		return -EINVAL;
	uint8_t *frame = malloc(4 + (size_t)size);
	if (!frame)
		return -ENOMEM;
	uint8_t *buf = frame + 4;
	size_t got = 0;
	int r = 0;
	while (got < size) {
		ssize_t n = pread(h->fd, buf + got, size - got, (off_t)(off + got));
		if (n < 0 && errno == ESPIPE)
			n = read(h->fd, buf + got, size - got); /* FIFO, tty, socket */
		if (n < 0) {
			if (errno == EINTR && got == 0 && h->regular)
				continue;
			if (got == 0)
				r = -errno;
			break;
		}
		got += (size_t)n;
		/* Only a regular file is worth asking again: elsewhere a short
		 * read is the answer (a pipe with what it has right now). */
		if (n == 0 || !h->regular)
			break;
	}
	if (r < 0) {
		free(frame);
		return r;
	}
	for (int i = 0; i < 4; i++)
		frame[i] = (uint8_t)(got >> (8 * i));
	rp->type = VP_FS_DATA;
	vp_buf_free(&rp->b);
	rp->b.data = frame;
	rp->b.len = 4 + got;
	rp->b.cap = 4 + (size_t)size;
	return 0;
}

static int op_write(struct agent_handle *h, uint64_t off, const struct vp_bytes *d, struct reply *rp)
{
	if (off > (uint64_t)INT64_MAX)
		return -EINVAL;
	size_t done = 0;
	while (done < d->len) {
		ssize_t n = pwrite(h->fd, d->p + done, d->len - done, (off_t)(off + done));
		if (n < 0 && errno == ESPIPE)
			n = write(h->fd, d->p + done, d->len - done);
		if (n < 0) {
			if (errno == EINTR && h->regular)
				continue;
			if (done == 0)
				return -errno;
			break;
		}
		done += (size_t)n;
		if (!h->regular)
			break;
	}
	rp->type = VP_FS_WRITTEN;
	vp_put_u32(&rp->b, (uint32_t)done);
	return 0;
}

/* READDIRPLUS: also a lookup of each entry but "." and "..", counted like
 * LOOKUP's, so one request lists a batch with attributes (ls -l of 10 000
 * names was 10 000 LOOKUP round trips). The node is made without an fd:
 * a listing of a big directory must not cost an fd per name (it is opened
 * when used). An entry that is gone by now is listed with node 0. */
static void plus_entry(struct agent_fs *fs, struct agent_node *dir, int dfd, const char *name,
		       struct vp_direntplus *d)
{
	memset(&d->e, 0, sizeof d->e);
	if (!dir || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (agent_node_add(fs, dir, name, -1, st.st_dev, st.st_ino, st.st_mode & S_IFMT, &d->e.node) < 0) {
		d->e.node = 0;
		return;
	}
	put_attr(&d->e.attr, &st);
}

/* Bytes an entry takes: for READDIR its encoding, dirent (u64 ino, u64
 * next, u32 type, str name); for READDIRPLUS what it takes in the host's
 * FUSE reply, a struct fuse_direntplus (152 bytes and the name, rounded up
 * to 8), which is more than its encoding (the dirent, u64 node, 84-byte
 * attr): max_bytes is the host's buffer, and a reply fills it exactly. */
static size_t dirent_size(size_t namelen, bool plus)
{
	if (plus)
		return (152 + namelen + 7) & ~(size_t)7;
	return 8 + 8 + 4 + 4 + namelen;
}

/* Each entry's next_offset is the telldir() cookie after it, so the host
 * can continue from any entry; "." and ".." are passed on like any other
 * name, as FUSE expects them from readdir. dir: READDIRPLUS's node. */
static int op_readdir(struct agent_fs *fs, struct agent_node *dir, struct agent_handle *h, uint64_t off,
		      uint32_t max, struct reply *rp)
{
	if (!h->dp)
		return -ENOTDIR;
	if (dir) {
		/* The entries become the node's kids: it must be the
		 * directory the handle lists, or they could not be found
		 * again. */
		struct stat st;
		if (fstat(h->fd, &st) < 0)
			return -errno;
		if (st.st_dev != dir->dev || st.st_ino != dir->ino)
			return -EINVAL;
	}
	if (max > VP_MAX_PAYLOAD)
		max = VP_MAX_PAYLOAD;
	struct vp_buf ents;
	vp_buf_init(&ents);
	uint32_t count = 0;
	/* READDIR: the payload (the count, then the entries); READDIRPLUS:
	 * the host's FUSE reply (dirent_size). */
	size_t used = dir ? 0 : 4;
	int r = 0;
	pthread_mutex_lock(&h->lock);
	if (off != h->dir_off) {
		seekdir(h->dp, (long)off);
		h->dir_off = off;
	}
	for (;;) {
		long here = telldir(h->dp);
		errno = 0;
		struct dirent *de = readdir(h->dp);
		if (!de) {
			if (errno)
				r = -errno;
			break;
		}
		size_t namelen = strlen(de->d_name);
		struct vp_direntplus d = {
			.d = {
				.ino = de->d_ino,
				.next_offset = (uint64_t)telldir(h->dp),
				.type = de->d_type,
				.name = { (const uint8_t *)de->d_name, (uint32_t)namelen },
			},
		};
		/* Checked before the lookup, so an entry left for the next
		 * request was never counted. */
		if (used + dirent_size(namelen, dir != NULL) > max) {
			seekdir(h->dp, here);
			if (count == 0)
				r = -EINVAL; /* as getdents: buffer too small */
			break;
		}
		size_t before = ents.len;
		if (dir) {
			plus_entry(fs, dir, h->fd, de->d_name, &d);
			vp_enc_direntplus(&ents, &d);
		} else {
			vp_enc_dirent(&ents, &d.d);
		}
		if (ents.err) {
			/* A name the protocol cannot carry: fail like getdents
			 * on a broken entry rather than skipping silently. */
			ents.len = before;
			ents.err = 0;
			agent_node_forget(fs, d.e.node, 1);
			seekdir(h->dp, here);
			if (count == 0)
				r = -EIO;
			break;
		}
		count++;
		used += dirent_size(namelen, dir != NULL);
		h->dir_off = d.d.next_offset;
	}
	if (r == 0 || count > 0) {
		/* An error after some entries: report those; the next call
		 * gets the error again. */
		r = 0;
		rp->type = dir ? VP_FS_DIRENTS_PLUS : VP_FS_DIRENTS;
		vp_put_u32(&rp->b, count);
		vp_put_raw(&rp->b, ents.data, ents.len);
	}
	pthread_mutex_unlock(&h->lock);
	vp_buf_free(&ents);
	return r;
}

static int op_fsync(struct agent_handle *h, uint32_t datasync)
{
	int r = datasync ? fdatasync(h->fd) : fsync(h->fd);
	return r < 0 ? -errno : 0;
}

/* ---- dispatch ---------------------------------------------------------- */

static int serve_handle(struct agent_fs *fs, const struct agent_msg *m, struct reply *rp)
{
	const struct vp_fs_req *q = &m->u.fs;
	if (m->h.type == VP_FS_CLOSE) {
		int r = agent_handle_close(fs, q->fh);
		if (r == 0)
			rp->type = VP_OK;
		return r;
	}
	struct agent_handle *h = agent_handle_get(fs, q->fh);
	if (!h)
		return -EBADF;
	int r;
	switch (m->h.type) {
	case VP_FS_READ: r = op_read(h, q->offset, q->size, rp); break;
	case VP_FS_WRITE: r = op_write(h, q->offset, &q->data, rp); break;
	case VP_FS_READDIR: r = op_readdir(fs, NULL, h, q->offset, q->size, rp); break;
	case VP_FS_FSYNC:
		r = op_fsync(h, q->flags);
		rp->type = VP_OK;
		break;
	default: r = -ENOSYS;
	}
	agent_handle_put(fs, h);
	return r;
}

/* Requests that name a child of q->node. */
static int serve_named(struct agent_fs *fs, uint16_t type, const struct vp_fs_req *q, struct agent_node *p,
		       struct reply *rp)
{
	char name[VP_MAX_NAME + 1];
	int r = cname(&q->name, name);
	if (r < 0)
		return r;
	if (p->type != S_IFDIR)
		return -ENOTDIR;
	switch (type) {
	case VP_FS_LOOKUP: return reply_entry(fs, p, name, rp);
	case VP_FS_MKNOD:
		if (mknodat(p->fd, name, q->mode, q->rdev) < 0)
			return -errno;
		return reply_entry(fs, p, name, rp);
	case VP_FS_MKDIR:
		if (mkdirat(p->fd, name, q->mode & 07777) < 0)
			return -errno;
		return reply_entry(fs, p, name, rp);
	case VP_FS_UNLINK:
	case VP_FS_RMDIR:
		if (unlinkat(p->fd, name, type == VP_FS_RMDIR ? AT_REMOVEDIR : 0) < 0)
			return -errno;
		rp->type = VP_OK;
		return 0;
	case VP_FS_SYMLINK: {
		/* The target is stored, never resolved here: any bytes but NUL. */
		if (q->name2.len == 0 || q->name2.len > VP_MAX_PATH || memchr(q->name2.p, '\0', q->name2.len))
			return -EINVAL;
		char *target = strndup((const char *)q->name2.p, q->name2.len);
		if (!target)
			return -ENOMEM;
		r = symlinkat(target, p->fd, name);
		free(target);
		if (r < 0)
			return -errno;
		return reply_entry(fs, p, name, rp);
	}
	case VP_FS_CREATE: return op_create(fs, p, q, name, rp);
	case VP_FS_RENAME: {
		char newname[VP_MAX_NAME + 1];
		r = cname(&q->name2, newname);
		if (r < 0)
			return r;
		if (q->flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
			return -EINVAL;
		struct agent_node *np = agent_node_get(fs, q->node2);
		if (!np)
			return -ESTALE;
		/* Nodes are found again by parent/name once their fd is
		 * closed: the ones renamed here follow their new names. */
		struct stat from, to;
		bool have_from = fstatat(p->fd, name, &from, AT_SYMLINK_NOFOLLOW) == 0;
		bool have_to = (q->flags & RENAME_EXCHANGE) &&
			       fstatat(np->fd, newname, &to, AT_SYMLINK_NOFOLLOW) == 0;
		r = rename_at2(p->fd, name, np->fd, newname, q->flags) < 0 ? -errno : 0;
		if (r == 0 && have_from)
			agent_node_moved(fs, from.st_dev, from.st_ino, np, newname);
		if (r == 0 && have_to)
			agent_node_moved(fs, to.st_dev, to.st_ino, p, name);
		agent_node_put(fs, np);
		if (r == 0)
			rp->type = VP_OK;
		return r;
	}
	}
	return -ENOSYS;
}

static int serve_node(struct agent_fs *fs, const struct agent_msg *m, struct reply *rp)
{
	uint16_t type = m->h.type;
	const struct vp_fs_req *q = &m->u.fs;
	uint64_t id = type == VP_FS_SETATTR ? m->u.setattr.node : q->node;
	struct agent_node *n = agent_node_get(fs, id);
	if (!n)
		return -ESTALE;
	int r;
	switch (type) {
	case VP_FS_GETATTR: r = reply_attr(n->fd, rp); break;
	case VP_FS_SETATTR:
		r = op_setattr(fs, n, &m->u.setattr);
		if (r == 0)
			r = reply_attr(n->fd, rp);
		break;
	case VP_FS_READLINK: r = op_readlink(n, rp); break;
	case VP_FS_OPEN: r = op_open(fs, n, q->flags, rp); break;
	case VP_FS_OPENDIR: r = op_opendir(fs, n, rp); break;
	case VP_FS_STATFS: r = op_statfs(n, rp); break;
	case VP_FS_READDIRPLUS: {
		struct agent_handle *h = agent_handle_get(fs, q->fh);
		if (!h) {
			r = -EBADF;
			break;
		}
		r = n->type == S_IFDIR ? op_readdir(fs, n, h, q->offset, q->size, rp) : -ENOTDIR;
		agent_handle_put(fs, h);
		break;
	}
	case VP_FS_LINK: {
		char name[VP_MAX_NAME + 1];
		r = cname(&q->name2, name);
		if (r < 0)
			break;
		struct agent_node *np = agent_node_get(fs, q->node2);
		if (!np) {
			r = -ESTALE;
			break;
		}
		r = np->type == S_IFDIR ? op_link(fs, n, np, name, rp) : -ENOTDIR;
		agent_node_put(fs, np);
		break;
	}
	default: r = serve_named(fs, type, q, n, rp);
	}
	agent_node_put(fs, n);
	return r;
}

void agent_fs_serve(struct agent_fs *fs, struct agent_chan *c, const struct agent_msg *m)
{
	if (m->h.type == VP_FS_READ && m->u.fs.size >= AGENT_SPLICE_MIN) {
		struct agent_handle *h = agent_handle_get(fs, m->u.fs.fh);
		if (h) {
			int r = agent_read_spliced(c, h, m->h.id, m->u.fs.offset, m->u.fs.size);
			agent_handle_put(fs, h);
			if (r == 0)
				return;
		}
	}

	struct reply rp = { 0 };
	vp_buf_init(&rp.b);
	int r;
	switch (m->h.type) {
	case VP_FS_READ:
	case VP_FS_WRITE:
	case VP_FS_FSYNC:
	case VP_FS_CLOSE:
	case VP_FS_READDIR: r = serve_handle(fs, m, &rp); break;
	default: {
		/* Requests on handles carry no caller (checked at open); those
		 * on nodes run as theirs. */
		int as = agent_cred_enter(fs, m->h.type == VP_FS_SETATTR ? &m->u.setattr.cred : &m->u.fs.cred);
		r = as < 0 ? as : serve_node(fs, m, &rp);
		if (as > 0)
			agent_cred_leave(fs);
	}
	}
	if (r < 0)
		agent_send_error(c, m->h.id, r, vp_type_name(m->h.type));
	else
		agent_send(c, rp.type, m->h.id, &rp.b);
	vp_buf_free(&rp.b);
}
