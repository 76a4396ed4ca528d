/* The control files; see ctlfiles.h and DESIGN §1. */
#include "ctlfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "ctlparse.h"
#include "proto/proto.h"
#include "info.h"
#include "notify.h"
#include "session.h"
#include "waiters.h"

static struct vfh *fh_of(struct fuse_file_info *fi)
{
	return (struct vfh *)(uintptr_t)fi->fh;
}

static int buf_append(struct vfh *fh, const char *p, size_t n)
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

static void set_snapshot(struct vfh *fh, char *txt, size_t len)
{
	free(fh->buf);
	fh->buf = txt;
	fh->len = fh->cap = len;
}

static int snapshot(struct vpfs *fs, struct vfh *fh)
{
	char *txt = NULL;
	size_t len = 0;
	int r;
	switch (fh->kind) {
	case FH_STATS:
		r = info_format_stats(fs, &txt, &len);
		break;
	case FH_CONFIG:
		r = info_format_config(fs, &txt, &len);
		break;
	case SF_STAT:
		r = session_format_stat(fh->s, &txt, &len);
		break;
	case SF_LOG:
		r = session_read_log(fh->s, &txt, &len);
		break;
	case SF_CTL:
		pthread_mutex_lock(&fh->s->lock);
		r = settings_format(&fh->s->settings, &txt, &len);
		pthread_mutex_unlock(&fh->s->lock);
		break;
	case SF_CMD:
		pthread_mutex_lock(&fh->s->lock);
		len = fh->s->cmd_len;
		txt = malloc(len ? len : 1);
		if (txt && len)
			memcpy(txt, fh->s->cmd, len);
		pthread_mutex_unlock(&fh->s->lock);
		r = txt ? 0 : -ENOMEM;
		break;
	default:
		return 0;
	}
	if (r == 0)
		set_snapshot(fh, txt, len);
	return r;
}

void cf_open(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	bool wr = acc != O_RDONLY, rd = acc != O_WRONLY;
	struct session *s = NULL;
	int kind, err = 0;

	if (ino == INO_STATS || ino == INO_CONFIG) {
		if (wr) {
			fuse_reply_err(req, EACCES);
			return;
		}
		kind = ino == INO_STATS ? FH_STATS : FH_CONFIG;
	} else {
		s = session_by_serial(fs, ino_serial(ino));
		if (!s) {
			fuse_reply_err(req, ESTALE);
			return;
		}
		kind = ino_file(ino);
		bool self = false;
		switch (kind) {
		case SF_CMD:
			if (wr)
				err = session_can_start(s);
			break;
		case SF_STDOUT:
		case SF_STDERR:
		case SF_EXIT:
			if (wr)
				err = -EACCES;
			break;
		case SF_STAT:
			/* Only the notify thread opens stat for writing (for
			 * IN_CLOSE_WRITE); nobody can change it. */
			if (wr) {
				self = fuse_req_ctx(req)->pid == notifier_tid(fs->notify);
				if (!self)
					err = -EACCES;
			}
			break;
		case SF_STDIN:
			if (rd)
				err = -EACCES;
			break;
		case SF_LOG:
			if (wr)
				err = -EACCES;
			break;
		case SF_CTL:
			break;
		default:
			err = -EISDIR;
		}
		if (err) {
			session_unref(s);
			fuse_reply_err(req, -err);
			return;
		}
		struct vfh *fh = vfh_new(fs, s, kind);
		session_unref(s);
		if (!fh) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fh->writer = wr;
		fh->self = self;
		fh->opener = fuse_req_ctx(req)->pid;
		if (rd && (err = snapshot(fs, fh)) < 0) {
			vfh_free(fs, fh);
			fuse_reply_err(req, -err);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)fh;
		/* Never served from the page cache: the content changes under
		 * the same size, and output grows while it is read. */
		fi->direct_io = 1;
		fi->keep_cache = 0;
		if (kind == SF_STDOUT || kind == SF_STDERR || kind == SF_EXIT || kind == SF_STDIN)
			fi->nonseekable = 1;
		if (fuse_reply_open(req, fi) != 0)
			vfh_free(fs, fh); /* the opener was interrupted: no release will come */
		return;
	}
	struct vfh *fh = vfh_new(fs, NULL, kind);
	if (!fh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if ((err = snapshot(fs, fh)) < 0) {
		vfh_free(fs, fh);
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0)
		vfh_free(fs, fh);
}

void cf_read(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	(void)ino;
	struct vfh *fh = fh_of(fi);
	if (fh->kind == SF_STDOUT || fh->kind == SF_STDERR || fh->kind == SF_EXIT) {
		waiters_read(fh->s, req, fh, fh->kind, size, off, (fi->flags & O_NONBLOCK) != 0);
		return;
	}
	if (fh->writer && !(fh->kind == SF_CMD || fh->kind == SF_CTL)) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* The reply is sent from a copy: once the kernel has it, the reader may
	 * close the file (freeing fh) or re-read (replacing fh->buf) at once. */
	char *copy = NULL;
	size_t n = 0;
	int r = 0;
	pthread_mutex_lock(&fh->io);
	/* A re-read from the start (pread at 0, or rewind) gets fresh text. */
	if (off == 0 && fh->kind != SF_CMD && fh->kind != SF_STDIN)
		r = snapshot(fs, fh);
	if (r == 0 && off >= 0 && (uint64_t)off < fh->len) {
		n = fh->len - (size_t)off;
		n = n < size ? n : size;
		copy = malloc(n);
		if (copy)
			memcpy(copy, fh->buf + off, n);
		else
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&fh->io);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, copy, n);
	free(copy);
}

/* ctl: run each complete line; the rest waits for more data or flush. */
static int ctl_lines(struct session *s, struct vfh *fh, bool all)
{
	int err = 0;
	size_t start = 0;
	while (start < fh->len) {
		char *nl = memchr(fh->buf + start, '\n', fh->len - start);
		if (!nl && !all)
			break;
		size_t end = nl ? (size_t)(nl - fh->buf) : fh->len;
		struct ctl_cmd c;
		err = ctl_parse_line(fh->buf + start, end - start, &c);
		start = nl ? end + 1 : fh->len;
		if (err < 0)
			break;
		if (c.kind == CTL_KILL) {
			err = session_kill(s, c.signo);
		} else if (c.kind != CTL_NONE) {
			pthread_mutex_lock(&s->lock);
			err = settings_apply(&s->settings, &c);
			pthread_mutex_unlock(&s->lock);
		}
		if (err < 0)
			break;
	}
	if (err < 0)
		start = fh->len; /* a bad line drops what came with it */
	memmove(fh->buf, fh->buf + start, fh->len - start);
	fh->len -= start;
	return err;
}

void cf_write(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	(void)fs, (void)ino, (void)off;
	struct vfh *fh = fh_of(fi);
	struct session *s = fh->s;
	int r = 0;
	if (!fh->writer || !s) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&fh->io);
	switch (fh->kind) {
	case SF_CMD:
		if (memchr(buf, '\0', size)) {
			r = -EINVAL; /* sh -c takes a C string */
			break;
		}
		pthread_mutex_lock(&s->lock);
		if (s->state == ST_RUNNING)
			r = -EBUSY;
		pthread_mutex_unlock(&s->lock);
		if (r < 0)
			break;
		if (fh->started) { /* text after a started one is a new command */
			pthread_mutex_lock(&s->lock);
			fh->started = false;
			pthread_mutex_unlock(&s->lock);
			fh->len = 0;
		}
		if (fh->len + size > VP_MAX_CMD)
			r = -E2BIG;
		else
			r = buf_append(fh, buf, size);
		if (r == 0 && !fh->pending && size > 0) {
			fh->pending = true;
			session_pending(s, 1);
		}
		break;
	case SF_STDIN:
		r = session_stdin(s, fh->gen, buf, size, false);
		break;
	case SF_CTL:
		if (fh->len + size > VP_MAX_PATH + 64 + 32 * 1024)
			r = -E2BIG;
		else if (memchr(buf, '\0', size))
			r = -EINVAL;
		else if ((r = buf_append(fh, buf, size)) == 0)
			r = ctl_lines(s, fh, false);
		break;
	default:
		r = -EBADF;
	}
	pthread_mutex_unlock(&fh->io);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

static int start_pending(struct vfh *fh)
{
	if (fh->kind != SF_CMD || !fh->writer)
		return 0;
	/* Taken out first: a dup closed at the same time starts nothing. */
	pthread_mutex_lock(&fh->s->lock);
	bool mine = fh->pending && !fh->started;
	fh->started = true;
	fh->pending = false;
	pthread_mutex_unlock(&fh->s->lock);
	if (!mine)
		return 0;
	int r = session_start(fh->s, fh->buf, fh->len);
	fh->len = 0;
	session_pending(fh->s, -1); /* after the start: readers never see a gap */
	return r;
}

void cf_flush(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fs, (void)ino;
	struct vfh *fh = fh_of(fi);
	int r = 0;
	/* The command runs when the process that opened cmd closes it after
	 * writing: close() waits for flush, not for release, so
	 * `echo x > cmd; cat stdout` finds it running, and errors reach close.
	 * A close before any write (the shell's dup2 of a redirection) has no
	 * text; a close by another process that inherited the descriptor
	 * (`{ printf a; sleep 1; printf b; } > cmd`: sleep exits first) is not
	 * the end of the text. Anything else starts at release. */
	pthread_mutex_lock(&fh->io);
	if (fh->kind == SF_CMD && fuse_req_ctx(req)->pid == fh->opener)
		r = start_pending(fh);
	else if (fh->kind == SF_CTL && fh->writer && fh->len > 0)
		r = ctl_lines(fh->s, fh, true);
	pthread_mutex_unlock(&fh->io);
	fuse_reply_err(req, r < 0 ? -r : 0);
}

void cf_release(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct vfh *fh = fh_of(fi);
	if (fh->kind == SF_CMD) {
		pthread_mutex_lock(&fh->io);
		(void)start_pending(fh); /* no flush came (it cannot fail now) */
		pthread_mutex_unlock(&fh->io);
	} else if (fh->kind == SF_STDIN && fh->writer) {
		/* Closing the file is EOF for the command it was opened for. */
		(void)session_stdin(fh->s, fh->gen, NULL, 0, true);
	}
	vfh_free(fs, fh);
	fuse_reply_err(req, 0);
}

void cf_poll(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	     struct fuse_pollhandle *ph)
{
	(void)fs, (void)ino;
	struct vfh *fh = fh_of(fi);
	if (fh->s && (fh->kind == SF_STDOUT || fh->kind == SF_STDERR || fh->kind == SF_EXIT ||
		      fh->kind == SF_STDIN)) {
		waiters_poll(fh->s, req, fh, ph);
		return;
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, fh->writer ? (POLLIN | POLLOUT) : POLLIN);
}
