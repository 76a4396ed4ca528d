/* The control tree's namespace, read from the rows of ctlfiles.h; see
 * ctltree.h. */
#include "lib/vlog.h"
#include "ctltree.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctlfiles.h"
#include "handles.h"
#include "fs/root_proxy.h"
#include "images.h"
#include "ino.h"
#include "proto/proto.h"
#include "session.h"

#define ENTRY_TIMEOUT 1.0
#define DIR_ATTR_TIMEOUT 1.0
#define DIR_MODE (S_IFDIR | 0755)
/* Under allow_other: a machine's directory is its owner's alone, and
 * pool/ is like /tmp (anyone makes one, only its owner removes it). */
#define OWNED_DIR_MODE (S_IFDIR | 0700)
#define SHARED_POOL_MODE (S_IFDIR | S_ISVTX | 0777)

/* ---- owners ------------------------------------------------------------------ */

/* Who may use a machine besides its owner: root, and the daemon's own
 * user (it can read the daemon's memory anyway; its notify thread opens
 * and touches the files). */
static bool may_use(uid_t caller, uid_t owner)
{
	return caller == 0 || caller == getuid() || caller == owner;
}

int ct_may_use(struct vpfs *fs, const struct fuse_ctx *ctx, uint64_t serial)
{
	if (!fs->opts.allow_other)
		return 0;
	struct session *s = session_by_serial_any(fs, serial);
	if (!s)
		return 0; /* gone: the operation itself says ESTALE */
	vp_mutex_lock(&s->lock);
	uid_t owner = s->uid;
	vp_mutex_unlock(&s->lock);
	session_unref(s);
	return may_use(ctx->uid, owner) ? 0 : -EACCES;
}

/* ---- attributes ------------------------------------------------------------ */

static void base_attr(const struct vpfs *fs, struct stat *st, fuse_ino_t ino, mode_t mode)
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

/* pool/NAME (vf NULL) or one of its files. */
static void session_attr(struct session *s, const struct vfile *vf, struct stat *st)
{
	bool owned = s->fs->opts.allow_other;
	if (!vf) {
		base_attr(s->fs, st, ino_make(s->serial, SF_DIR), owned ? OWNED_DIR_MODE : DIR_MODE);
		st->st_nlink = 3; /* ., .., root/ */
	} else {
		base_attr(s->fs, st, ino_make(s->serial, vf->file), vf->mode);
		st->st_size = (off_t)vf_size(vf, s->fs, s, NULL);
		st->st_blocks = (st->st_size + 511) / 512;
	}
	vp_mutex_lock(&s->lock);
	if (owned) {
		st->st_uid = s->uid;
		st->st_gid = s->gid;
	}
	st->st_ctim = s->ctime;
	if (vf && vf->out != VF_OUT_NONE) /* a new file per command */
		st->st_ino = ino_make_gen(s->serial, vf->file, s->gen);
	st->st_mtim = vf && vf->out != VF_OUT_NONE ? s->mtime[vf->out - VF_OUT_STDOUT] : s->ctime;
	st->st_atim = st->st_mtim;
	vp_mutex_unlock(&s->lock);
}

/* The mount's own nodes (serial 0). */
static int mnt_attr(struct vpfs *fs, fuse_ino_t ino, struct stat *st)
{
	if (ino == INO_ROOT) {
		base_attr(fs, st, ino, DIR_MODE);
		st->st_nlink = 3; /* ., .., pool/ */
		return 0;
	}
	const struct vfile *vf = vf_at(&vf_mnt_dir, ino_file(ino));
	if (!vf)
		return -ENOENT;
	base_attr(fs, st, ino, ino == INO_POOL && fs->opts.allow_other ? SHARED_POOL_MODE : vf->mode);
	if (ino == INO_POOL) { /* one link per machine (of every pool/: an upper bound) */
		vp_mutex_lock(&fs->lock);
		st->st_nlink = 2 + fs->nlive;
		vp_mutex_unlock(&fs->lock);
	} else if (vf->kind != VF_DIR) {
		st->st_size = (off_t)vf_size(vf, fs, NULL, NULL);
		st->st_blocks = (st->st_size + 511) / 512;
	}
	return 0;
}

/* images/IMG/ and its files; -ESTALE once the image is removed. */
static int img_attr(struct vpfs *fs, fuse_ino_t ino, struct stat *st)
{
	struct image *img = images_by_id(fs->images, (uint32_t)ino_img_id(ino));
	if (!img)
		return -ESTALE;
	int r = 0;
	if (ino_file(ino) == IF_DIR) {
		base_attr(fs, st, ino, DIR_MODE);
		st->st_nlink = 3; /* ., .., pool/ */
	} else {
		const struct vfile *vf = vf_at(&vf_img_dir, ino_file(ino));
		if (!vf) {
			r = -ENOENT;
		} else if (vf->kind == VF_DIR) {
			base_attr(fs, st, ino, fs->opts.allow_other ? SHARED_POOL_MODE : DIR_MODE);
		} else {
			base_attr(fs, st, ino, vf->mode);
			st->st_size = (off_t)vf_size(vf, fs, NULL, img);
			st->st_blocks = (st->st_size + 511) / 512;
		}
	}
	image_put(img);
	return r;
}

/* Any inode of ours; `any`: also a file of a released session that open
 * handles still keep (fstat on an open file works after rmdir, like on an
 * unlinked one). -ESTALE for a released session otherwise. */
static int get_attr(struct vpfs *fs, fuse_ino_t ino, bool any, struct stat *st)
{
	uint64_t serial = ino_serial(ino);
	if (serial == 0)
		return mnt_attr(fs, ino, st);
	if (ino_img_id(ino))
		return img_attr(fs, ino, st);
	const struct vfile *vf = NULL;
	if (ino_file(ino) != SF_DIR && !(vf = vf_of_ino(ino)))
		return -ENOENT;
	struct session *s = vf && any ? session_by_serial_any(fs, serial) : session_by_serial(fs, serial);
	if (!s)
		return -ESTALE;
	session_attr(s, vf, st);
	int r = 0;
	if (vf && vf->out != VF_OUT_NONE && st->st_ino != ino) {
		/* An earlier command's output, which open files still read. */
		st->st_ino = ino;
		r = vfh_old_attr(s, vf->out - VF_OUT_STDOUT, ino_gen(ino), st);
	}
	session_unref(s);
	return r;
}

static void reply_entry_for(fuse_req_t req, const struct stat *st, double entry_timeout)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = st->st_ino;
	e.attr = *st;
	e.entry_timeout = entry_timeout;
	e.attr_timeout = S_ISDIR(st->st_mode) ? DIR_ATTR_TIMEOUT : 0.0; /* sizes and times move */
	fuse_reply_entry(req, &e);
}

static void reply_entry(fuse_req_t req, const struct stat *st)
{
	reply_entry_for(req, st, ENTRY_TIMEOUT);
}

/* pool/NAME under allow_other: not cached, so that every path walk into a
 * machine asks its LOOKUP, which only the owner passes (ct_may_use). The
 * kernel checks no modes without default_permissions: a dentry cached
 * below it for the owner would otherwise let another user's walk stat
 * root/ files from the kernel's attribute cache. */
static void reply_machine_entry(const struct vpfs *fs, fuse_req_t req, const struct stat *st)
{
	reply_entry_for(req, st, fs->opts.allow_other ? 0.0 : ENTRY_TIMEOUT);
}

void ct_getattr(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;
	int r = get_attr(fs, ino, true, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, S_ISDIR(st.st_mode) ? DIR_ATTR_TIMEOUT : 0.0);
}

void ct_setattr(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, const struct stat *attr, int to_set)
{
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	const struct vfile *vf = ino_serial(ino) ? vf_of_ino(ino) : NULL;
	/* O_TRUNC on the writable files is meaningless and harmless; nothing
	 * else may be truncated. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && !(vf && vf->write)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) && vf && vf->out != VF_OUT_NONE) {
		/* The notify thread's touch (IN_MODIFY); times only. */
		struct session *s = session_by_serial(fs, ino_serial(ino));
		if (s) {
			struct timespec *t = &s->mtime[vf->out - VF_OUT_STDOUT];
			vp_mutex_lock(&s->lock);
			if (to_set & FUSE_SET_ATTR_MTIME_NOW)
				clock_gettime(CLOCK_REALTIME, t);
			else
				*t = attr->st_mtim;
			vp_mutex_unlock(&s->lock);
			session_unref(s);
		}
	}
	struct stat st;
	int r = get_attr(fs, ino, false, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0.0);
}

/* ---- names ------------------------------------------------------------------- */

static void lookup_in_session(struct vpfs *fs, fuse_req_t req, uint64_t serial, const char *name)
{
	struct session *s = session_by_serial(fs, serial);
	if (!s) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	const struct vfile *vf = vf_lookup(&vf_ses_dir, name);
	struct stat st;
	if (!vf) {
		fuse_reply_err(req, ENOENT);
	} else if (vf->kind != VF_PROXY) {
		session_attr(s, vf, &st);
		/* stdout/stderr: each lookup finds the current command's file */
		reply_entry_for(req, &st, vf->out != VF_OUT_NONE ? 0.0 : ENTRY_TIMEOUT);
	} else if (session_machine_get(s) == 0) {
		rp_lookup_root(s->rp, req);
		session_machine_put(s);
	} else {
		fuse_reply_err(req, ENOENT); /* released under us */
	}
	session_unref(s);
}

/* A machine's directory in the pool/ directory `dir`. */
static void lookup_machine(struct vpfs *fs, fuse_req_t req, fuse_ino_t dir, const char *name)
{
	struct stat st;
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	struct session *s = session_by_name(fs, dir, name);
	if (!s) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	int r = ct_may_use(fs, fuse_req_ctx(req), s->serial);
	if (r == 0)
		session_attr(s, NULL, &st);
	session_unref(s);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_machine_entry(fs, req, &st);
}

static void reply_attr_entry(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;
	int r = get_attr(fs, ino, false, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, &st);
}

void ct_lookup(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t img_id = ino_img_id(parent);
	if (parent == INO_ROOT) {
		const struct vfile *vf = vf_lookup(&vf_mnt_dir, name);
		if (!vf)
			fuse_reply_err(req, ENOENT);
		else
			reply_attr_entry(fs, req, ino_make(0, vf->file));
	} else if (parent == INO_POOL || (img_id && ino_file(parent) == IF_POOL)) {
		lookup_machine(fs, req, parent, name);
	} else if (parent == INO_IMAGES) {
		struct image *img = images_get(fs->images, name);
		if (!img) {
			fuse_reply_err(req, strlen(name) > NAME_MAX ? ENAMETOOLONG : ENOENT);
			return;
		}
		fuse_ino_t ino = ino_img(image_id(img), IF_DIR);
		image_put(img);
		reply_attr_entry(fs, req, ino);
	} else if (img_id && ino_file(parent) == IF_DIR) {
		const struct vfile *vf = vf_lookup(&vf_img_dir, name);
		if (!vf)
			fuse_reply_err(req, ENOENT);
		else
			reply_attr_entry(fs, req, ino_img(img_id, vf->file));
	} else if (ino_session(parent) != 0 && ino_file(parent) == SF_DIR) {
		lookup_in_session(fs, req, ino_serial(parent), name);
	} else {
		fuse_reply_err(req, ENOTDIR);
	}
}

/* The image whose pool/ directory `dir` is (a reference); NULL when dir
 * is none (*err: EPERM) or the image is gone (ESTALE). */
static struct image *pool_dir_image(struct vpfs *fs, fuse_ino_t dir, int *err)
{
	struct image *img = NULL;
	*err = EPERM;
	if (dir == INO_POOL) {
		img = images_default(fs->images);
		image_ref(img);
	} else if (ino_img_id(dir) && ino_file(dir) == IF_POOL) {
		*err = ESTALE;
		img = images_by_id(fs->images, (uint32_t)ino_img_id(dir));
	}
	return img;
}

void ct_mkdir(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int e;
	struct image *img = pool_dir_image(fs, parent, &e);
	if (!img) {
		fuse_reply_err(req, e); /* only a pool/'s NAME can be made */
		return;
	}
	struct session *s;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int r = session_create(fs, img, parent, name, &s);
	const char *iname = parent == INO_POOL ? "" : image_name(img);
	image_put(img);
	if (r < 0) {
		if (r == -EAGAIN)
			vlog_warn(&fs->log, "mkdir %s%spool/%s: no machine can be made now (max_machines=%u)",
				  iname[0] ? "images/" : "", iname[0] ? iname : "", name,
				  fs->opts.pool.max_machines);
		else if (r != -EEXIST)
			vlog_warn(&fs->log, "mkdir %s%s%spool/%s: %s", iname[0] ? "images/" : "", iname,
				  iname[0] ? "/" : "", name, strerror(-r));
		fuse_reply_err(req, -r);
		return;
	}
	vp_mutex_lock(&s->lock);
	s->uid = ctx->uid;
	s->gid = ctx->gid;
	vp_mutex_unlock(&s->lock);
	struct stat st;
	session_attr(s, NULL, &st);
	session_unref(s);
	reply_machine_entry(fs, req, &st);
}

void ct_rmdir(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent == INO_IMAGES) { /* an image: refused while in use */
		int r = images_remove(fs->images, name);
		fuse_reply_err(req, r < 0 ? -r : 0);
		return;
	}
	if (parent != INO_POOL && !(ino_img_id(parent) && ino_file(parent) == IF_POOL)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* The sticky rule of pool/ under allow_other: EPERM, as for /tmp.
	 * Another user's rmdir is refused at its LOOKUP already; this holds
	 * the rule where the removal is decided, whatever the kernel cached. */
	struct session *s;
	if (fs->opts.allow_other && (s = session_by_name(fs, parent, name))) {
		vp_mutex_lock(&s->lock);
		uid_t owner = s->uid;
		vp_mutex_unlock(&s->lock);
		session_unref(s);
		if (!may_use(fuse_req_ctx(req)->uid, owner)) {
			fuse_reply_err(req, EPERM);
			return;
		}
	}
	int r = session_remove(fs, parent, name);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

/* ---- directories --------------------------------------------------------------- */

/* A directory's entries as they were at opendir (fi->fh), so that offsets
 * stay valid while machines come and go. */
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
	x->mode = mode & S_IFMT;
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

static int snap_session(void *ctx, const struct session *s)
{
	return snap_add(ctx, s->name, ino_make(s->serial, SF_DIR), S_IFDIR);
}

/* The rows of a directory; serial 0 for the mount's. */
static int snap_rows(struct dirsnap *d, const struct vf_dir *dir, uint64_t serial)
{
	int r = 0;
	for (size_t i = 0; i < dir->n && !r; i++) {
		const struct vfile *vf = &dir->rows[i];
		/* root/'s inode is the proxy's; readdir shows a placeholder number */
		fuse_ino_t ino = vf->kind == VF_PROXY ? ino_rp_base(serial) | VP_ROOT_NODE
						      : ino_make(serial, vf->file);
		r = snap_add(d, vf->name, ino, vf->mode);
	}
	return r;
}

static int snap_image(void *ctx, const char *name, uint32_t id)
{
	return snap_add(ctx, name, ino_img(id, IF_DIR), S_IFDIR);
}

/* images/IMG/ (file IF_DIR) or its pool/. */
static int snap_img_dir(struct vpfs *fs, fuse_ino_t ino, struct dirsnap *d)
{
	uint64_t id = ino_img_id(ino);
	struct image *img = images_by_id(fs->images, (uint32_t)id);
	if (!img)
		return -ESTALE;
	image_put(img);
	int r;
	if (ino_file(ino) == IF_DIR) {
		r = snap_add(d, "..", INO_IMAGES, S_IFDIR);
		for (size_t i = 0; i < vf_img_dir.n && !r; i++)
			r = snap_add(d, vf_img_dir.rows[i].name, ino_img(id, vf_img_dir.rows[i].file),
				     vf_img_dir.rows[i].mode);
		return r;
	}
	if (ino_file(ino) != IF_POOL)
		return -ENOTDIR;
	r = snap_add(d, "..", ino_img(id, IF_DIR), S_IFDIR);
	return r ? r : session_each_named(fs, ino, snap_session, d);
}

static int snap_dir(struct vpfs *fs, fuse_ino_t ino, struct dirsnap *d)
{
	int r = snap_add(d, ".", ino, S_IFDIR);
	if (r)
		return r;
	if (ino == INO_ROOT) {
		r = snap_add(d, "..", INO_ROOT, S_IFDIR);
		return r ? r : snap_rows(d, &vf_mnt_dir, 0);
	}
	if (ino == INO_POOL) {
		r = snap_add(d, "..", INO_ROOT, S_IFDIR);
		return r ? r : session_each_named(fs, INO_POOL, snap_session, d);
	}
	if (ino == INO_IMAGES) {
		r = snap_add(d, "..", INO_ROOT, S_IFDIR);
		return r ? r : images_each(fs->images, snap_image, d);
	}
	if (ino_img_id(ino))
		return snap_img_dir(fs, ino, d);
	if (ino_serial(ino) == 0 || ino_file(ino) != SF_DIR)
		return -ENOTDIR;
	struct session *s = session_by_serial(fs, ino_serial(ino));
	if (!s)
		return -ESTALE;
	r = snap_add(d, "..", s->dir, S_IFDIR);
	if (!r)
		r = snap_rows(d, &vf_ses_dir, s->serial);
	session_unref(s);
	return r;
}

void ct_opendir(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirsnap *d = calloc(1, sizeof(*d));
	int r = d ? snap_dir(fs, ino, d) : -ENOMEM;
	if (r < 0) {
		snap_free(d);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		snap_free(d);
}

void ct_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
	const struct dirsnap *d = (const struct dirsnap *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
		const struct dent *x = d->e[i];
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

void ct_releasedir(fuse_req_t req, struct fuse_file_info *fi)
{
	snap_free((struct dirsnap *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
