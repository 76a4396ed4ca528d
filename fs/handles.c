/* Open files of the control tree; see handles.h. */
#include "handles.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "images.h"
#include "notify.h"
#include "waiters.h"

static struct vfh *fh_of(const struct fuse_file_info *fi)
{
	return (struct vfh *)(uintptr_t)fi->fh;
}

/* The list a handle is on and the lock that guards it. */
static struct list_node *fh_list(struct vpfs *fs, struct session *s, struct vp_mutex **lock)
{
	*lock = s ? &s->lock : &fs->lock;
	return s ? &s->fhs : &fs->misc_fhs;
}

static struct vfh *vfh_new(struct vpfs *fs, struct session *s, const struct vfile *vf)
{
	struct vfh *fh = calloc(1, sizeof(*fh));
	if (!fh)
		return NULL;
	fh->vf = vf;
	fh->s = s;
	vp_mutex_init(&fh->io);
	if (s)
		session_ref(s);
	struct vp_mutex *lock;
	struct list_node *head = fh_list(fs, s, &lock);
	vp_mutex_lock(lock);
	if (s) {
		fh->gen = s->gen;
		fh->for_next = s->pending > 0;
	}
	list_add_head(head, &fh->link);
	vp_mutex_unlock(lock);
	return fh;
}

static void vfh_free(struct vpfs *fs, struct vfh *fh)
{
	struct session *s = fh->s;
	struct image *img = fh->img;
	struct vp_mutex *lock;
	(void)fh_list(fs, s, &lock);
	vp_mutex_lock(lock);
	list_del(&fh->link);
	struct fuse_pollhandle *ph = fh->ph;
	fh->ph = NULL;
	struct outold *old = fh->old;
	fh->old = NULL;
	if (old && --old->refs == 0)
		outbuf_free(&old->o);
	else
		old = NULL;
	vp_mutex_unlock(lock);
	free(old);
	if (ph)
		fuse_pollhandle_destroy(ph);
	vp_mutex_destroy(&fh->io);
	free(fh->buf);
	free(fh);
	if (s)
		session_unref(s);
	image_put(img);
}

int vfh_append(struct vfh *fh, const char *p, size_t n)
{
	if (fh->len + n > fh->cap) {
		size_t cap = fh->cap ? fh->cap : 256;
		while (cap < fh->len + n)
			cap *= 2;
		char *b = realloc(fh->buf, cap);
		if (!b)
			return -ENOMEM;
		fh->buf = b;
		fh->cap = cap;
	}
	memcpy(fh->buf + fh->len, p, n);
	fh->len += n;
	return 0;
}

/* fh->buf = the file's text now (VF_TEXT); other kinds keep no text. */
static int take_text(struct vpfs *fs, struct vfh *fh)
{
	if (fh->vf->kind != VF_TEXT || !fh->vf->read)
		return 0;
	char *txt = NULL;
	size_t len = 0;
	int r = fh->vf->read(fs, fh->s, fh->img, &txt, &len);
	if (r < 0)
		return r;
	free(fh->buf);
	fh->buf = txt;
	fh->len = fh->cap = len;
	return 0;
}

/* 0 when the file's mode lets the owner have this access. */
static int mode_allows(const struct vfile *vf, bool rd, bool wr)
{
	if (S_ISDIR(vf->mode))
		return -EISDIR;
	if ((rd && !(vf->mode & S_IRUSR)) || (wr && !(vf->mode & S_IWUSR)))
		return -EACCES;
	return 0;
}

void vfh_open(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	bool wr = acc != O_RDONLY, rd = acc != O_WRONLY;
	const struct vfile *vf = vf_of_ino(ino);
	if (!vf) {
		fuse_reply_err(req, EISDIR); /* a directory of ours: root/ is the proxy's */
		return;
	}
	struct session *s = NULL;
	struct image *img = NULL;
	uint64_t serial = ino_session(ino), img_id = ino_img_id(ino);
	if ((serial != 0 && !(s = session_by_serial(fs, serial))) ||
	    (img_id != 0 && !(img = images_by_id(fs->images, (uint32_t)img_id)))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	int err = mode_allows(vf, rd, wr);
	if (!err && s && vf->out != VF_OUT_NONE) {
		/* A name cached from before the last command names the output
		 * it replaced: ESTALE makes the kernel look the name up again
		 * (one retry of the open), which finds the new file. */
		vp_mutex_lock(&s->lock);
		if (ino_gen(ino) != (s->gen & INO_GEN_MASK))
			err = -ESTALE;
		vp_mutex_unlock(&s->lock);
	}
	if (err == -EACCES && wr && (vf->flags & VF_NOTIFY_WRITE) &&
	    fuse_req_ctx(req)->pid == notifier_tid(fs->notify))
		err = 0;
	struct vfh *fh = NULL;
	if (!err && !(fh = vfh_new(fs, s, vf)))
		err = -ENOMEM;
	if (s)
		session_unref(s); /* the handle has its own */
	if (fh)
		fh->img = img; /* the handle takes our reference */
	else
		image_put(img);
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	fh->reader = rd;
	fh->writer = wr;
	fh->opener = fuse_req_ctx(req)->pid;
	if ((vf->open && (err = vf->open(fh)) < 0) || (rd && (err = take_text(fs, fh)) < 0)) {
		vfh_free(fs, fh);
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)fh;
	/* Never served from the page cache: the content changes under the
	 * same size, output grows while it is read, and only a read that
	 * reaches us can wait at the end of a running command (through the
	 * cache the kernel would stop at st_size). stdout and stderr stay
	 * seekable, like a log file: tail, head, grep -m1, less and dd skip=
	 * seek (SEEK_END is st_size, the bytes so far). */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (vf->kind == VF_PIPE)
		fi->nonseekable = 1;
	if (fuse_reply_open(req, fi) != 0)
		vfh_free(fs, fh); /* the opener was interrupted: no release will come */
}

void vfh_read(struct vpfs *fs, fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct vfh *fh = fh_of(fi);
	if (fh->vf->kind == VF_STREAM) {
		waiters_read(fh->s, req, fh, (int)fh->vf->file, size, off, (fi->flags & O_NONBLOCK) != 0);
		return;
	}
	if (!fh->reader) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* The reply is sent from a copy: once the kernel has it, the reader may
	 * close the file (freeing fh) or re-read (replacing fh->buf) at once. */
	char *copy = NULL;
	size_t n = 0;
	int r = 0;
	vp_mutex_lock(&fh->io);
	if (off == 0 && !(fh->vf->flags & VF_TEXT_AT_OPEN))
		r = take_text(fs, fh);
	if (r == 0 && off >= 0 && (uint64_t)off < fh->len) {
		n = fh->len - (size_t)off;
		n = n < size ? n : size;
		copy = malloc(n);
		if (copy)
			memcpy(copy, fh->buf + off, n);
		else
			r = -ENOMEM;
	}
	vp_mutex_unlock(&fh->io);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, copy, n);
	free(copy);
}

void vfh_write(fuse_req_t req, const char *buf, size_t size, struct fuse_file_info *fi)
{
	struct vfh *fh = fh_of(fi);
	if (!fh->writer || !fh->s || !fh->vf->write) {
		fuse_reply_err(req, EBADF);
		return;
	}
	vp_mutex_lock(&fh->io);
	int r = fh->vf->write(fh, buf, size);
	vp_mutex_unlock(&fh->io);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

void vfh_flush(fuse_req_t req, struct fuse_file_info *fi)
{
	struct vfh *fh = fh_of(fi);
	int r = 0;
	if (fh->vf->flush) {
		vp_mutex_lock(&fh->io);
		r = fh->vf->flush(fh, fuse_req_ctx(req)->pid);
		vp_mutex_unlock(&fh->io);
	}
	fuse_reply_err(req, r < 0 ? -r : 0);
}

void vfh_release(struct vpfs *fs, fuse_req_t req, struct fuse_file_info *fi)
{
	struct vfh *fh = fh_of(fi);
	if (fh->vf->release) {
		vp_mutex_lock(&fh->io);
		fh->vf->release(fh);
		vp_mutex_unlock(&fh->io);
	}
	vfh_free(fs, fh);
	fuse_reply_err(req, 0);
}

void vfh_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct vfh *fh = fh_of(fi);
	if (fh->s && (fh->vf->kind == VF_STREAM || fh->vf->kind == VF_PIPE)) {
		waiters_poll(fh->s, req, fh, ph);
		return;
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, fh->writer ? (POLLIN | POLLOUT) : POLLIN);
}

void vfh_retire_outputs(struct session *s)
{
	for (int i = 0; i < 2; i++) {
		struct outold *old = NULL;
		list_for_each (&s->fhs, it) {
			struct vfh *fh = container_of(it, struct vfh, link);
			if (fh->vf->out != (i ? VF_OUT_STDERR : VF_OUT_STDOUT) || fh->old)
				continue; /* another file, or already on an older output */
			if (fh->for_next) {
				fh->for_next = false; /* the command it waited for */
				continue;
			}
			if (!old) {
				old = calloc(1, sizeof(*old));
				if (!old)
					break; /* reads the new output: better than none */
				old->stream = i;
				old->gen = s->gen;
				old->err = s->out_err[i] != 0 || s->state == ST_ERROR;
				old->mtime = s->mtime[i];
				outbuf_move(&old->o, &s->out[i]);
			}
			old->refs++;
			fh->old = old;
		}
		if (!old)
			outbuf_reset(&s->out[i]);
	}
}

int vfh_old_attr(struct session *s, int stream, uint64_t gen, struct stat *st)
{
	int r = -ESTALE;
	vp_mutex_lock(&s->lock);
	list_for_each (&s->fhs, it) {
		struct vfh *fh = container_of(it, struct vfh, link);
		struct outold *old = fh->old;
		if (old && old->stream == stream && (old->gen & INO_GEN_MASK) == gen) {
			st->st_size = (off_t)outbuf_len(&old->o);
			st->st_blocks = (st->st_size + 511) / 512;
			st->st_mtim = st->st_atim = old->mtime;
			r = 0;
			break;
		}
	}
	vp_mutex_unlock(&s->lock);
	return r;
}

void vfh_drop_all(struct vpfs *fs)
{
	for (;;) {
		struct session *s = NULL;
		struct vfh *fh = NULL;
		vp_mutex_lock(&fs->lock);
		if (!list_empty(&fs->misc_fhs)) {
			fh = container_of(list_first(&fs->misc_fhs), struct vfh, link);
		} else {
			u64map_for_each_safe(&fs->sessions, it, tmp)
			{
				if (s)
					break; /* (out of the bucket: the macro is two loops) */
				struct session *c = container_of(it, struct session, by_serial);
				vp_mutex_lock(&c->lock);
				bool busy = !list_empty(&c->fhs) || !list_empty(&c->waiters);
				vp_mutex_unlock(&c->lock);
				if (busy) {
					s = c;
					session_ref(s);
				}
			}
		}
		vp_mutex_unlock(&fs->lock);
		if (!fh && !s)
			return;
		if (!s) {
			vfh_free(fs, fh);
			continue;
		}
		waiters_fail_all(s, EIO);
		vp_mutex_lock(&s->lock);
		struct list_node *first = list_first(&s->fhs);
		vp_mutex_unlock(&s->lock);
		if (first)
			vfh_free(fs, container_of(first, struct vfh, link));
		session_unref(s);
	}
}
