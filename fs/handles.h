/* Open files of the control tree (fi->fh): open, read, write, flush,
 * release and poll, each done as the file's row says (ctlfiles.h).
 *
 * A handle holds a reference to its session and is linked on its list
 * (s->fhs, under s->lock) or, for the mount's files, on fs->misc_fhs
 * (under fs->lock), so that shutdown can drop what the kernel never
 * releases and output can wake its pollers. */
#ifndef VPFS_HANDLES_H
#define VPFS_HANDLES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "ctlfiles.h"
#include "lib/list.h"
#include "output.h"
#include "session.h"

/* The output of an earlier command, kept for the handles of stdout or
 * stderr that had it open when the next command started (each command's
 * output is a new file: docs/usage.md, stdout). Complete: read to its end,
 * then EOF (EIO when output was lost). Under the session's lock; freed
 * with the last such handle. */
struct outold {
	int refs;
	int stream;   /* 0 stdout, 1 stderr */
	uint64_t gen; /* the command's number (s->gen then) */
	bool err;     /* lost output or a dead guest: EIO at the end */
	struct timespec mtime;
	struct outbuf o;
};

struct vfh {
	/* Constant after open. */
	const struct vfile *vf;
	struct session *s;   /* NULL for the mount's files and images/IMG/'s */
	struct image *img;   /* images/IMG/'s files: a reference; else NULL */
	bool reader, writer; /* the access it was opened for */
	bool self;	     /* stat opened for writing by the notify thread */
	pid_t opener;	     /* thread that opened it: its close starts cmd */
	uint64_t gen;	     /* command generation at open (stdin) */
	/* Under s->lock. */
	uint64_t pos; /* end of the last read: poll readiness */
	/* stdout/stderr: opened while a command was pending (s->pending), so
	 * it is for that command's output, not the one it replaces. */
	bool for_next;
	struct outold *old; /* stdout/stderr: an earlier command's output */
	struct fuse_pollhandle *ph;
	/* Under the lock of the list it is on (see above). */
	struct list_node link;
	/* Under io: one open file may be shared by processes. */
	struct vp_mutex io;
	bool started GUARDED_BY(io); /* cmd: this handle's text was started */
	bool pending GUARDED_BY(io); /* cmd: holds text not started yet (counted in s->pending) */
	/* cmd: a write failed with this -errno. A prefix of a script must not
	 * run: the open runs nothing, and every later write and close says so. */
	int poison GUARDED_BY(io);
	char *buf GUARDED_BY(io); /* text to read, or text being written */
	size_t len GUARDED_BY(io), cap GUARDED_BY(io);
};

void vfh_open(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vfh_read(struct vpfs *fs, fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
void vfh_write(fuse_req_t req, const char *buf, size_t size, struct fuse_file_info *fi);
void vfh_flush(fuse_req_t req, struct fuse_file_info *fi);
void vfh_release(struct vpfs *fs, fuse_req_t req, struct fuse_file_info *fi);
void vfh_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph);

/* Appends to fh->buf (under fh->io); 0 or -ENOMEM. */
int vfh_append(struct vfh *fh, const char *p, size_t n);

/* As a new command starts (session_start, under s->lock, before the
 * state changes): each handle of stdout/stderr open on the ending
 * command's output keeps that output (struct outold); the session's
 * streams start empty either way. */
void vfh_retire_outputs(struct session *s) REQUIRES(&s->lock);
/* The size and times of output stream (0 stdout, 1 stderr) of command gen
 * (its low INO_GEN_BITS) as an open handle keeps it: fstat on a file
 * whose command was followed by another. -ESTALE when no handle does. */
int vfh_old_attr(struct session *s, int stream, uint64_t gen, struct stat *st);

/* Shutdown, after session_release_all: the kernel sends no RELEASE once
 * the connection is gone, so free every handle it still had and answer
 * every parked read with EIO. */
void vfh_drop_all(struct vpfs *fs);

#endif
