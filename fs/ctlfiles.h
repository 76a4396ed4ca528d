/* The control tree's files, described once (Plan 9's Dirtab and gen): a
 * row per file gives its name, inode number, kind and mode, and the
 * functions for open, read, write, close and its size. Lookup, readdir,
 * getattr, setattr (ctltree.h) and open, read, write (handles.h) read the
 * rows and nothing else, so adding a file is one row plus its read
 * function.
 *
 * Three directories have rows: the mount's own (pool/, stats, config,
 * images/; serial 0, so a row's number is its inode), pool/NAME's (a
 * session's files, inode ino_make(serial, number)), whose last row, root/,
 * is the machine's root proxy instead of a file of ours, and images/IMG/'s
 * (pool/, stats, config, manifest; inode ino_img(id, number)). A pool/
 * lists its sessions, images/ the images (images.h). */
#ifndef VPFS_CTLFILES_H
#define VPFS_CTLFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ino.h"
#include "vpfs.h"

/* Numbers of pool/NAME and its files: the low bits of their inodes.
 * SF_ROOT is no inode of ours: root/ has the proxy's. */
enum sfile { SF_DIR = 0, SF_CMD, SF_STDOUT, SF_STDERR, SF_STAT, SF_EXIT, SF_STDIN, SF_CTL, SF_LOG, SF_ROOT };
/* Numbers of images/IMG/ and its files. */
enum ifile { IF_DIR = 0, IF_POOL, IF_STATS, IF_CONFIG, IF_MANIFEST };

enum vf_kind {
	VF_DIR,	   /* a directory of ours (pool/, images/) */
	VF_PROXY,  /* root/: the subtree of the session's root proxy */
	VF_TEXT,   /* reads give read's text, taken at open and again by
	            * every read from offset 0 (a rewind sees it fresh) */
	VF_STREAM, /* stdout, stderr, exit: read as the command makes them, a read
	            * at the end waits while it runs (waiters.h); seekable, like
	            * a log file that grows (st_size is what is there so far) */
	VF_PIPE,   /* stdin: writes go to the running command; not seekable */
};

/* Which output stream a file shows (its mtime moves with the output). */
enum vf_out { VF_OUT_NONE = 0, VF_OUT_STDOUT, VF_OUT_STDERR };

enum {
	/* Only the notify thread may open it for writing, to raise
	 * IN_CLOSE_WRITE (notify.h); the content never changes by it. */
	VF_NOTIFY_WRITE = 1u << 0,
	/* A read from offset 0 keeps the text of the open: the handle's
	 * buffer also collects what is written (cmd). */
	VF_TEXT_AT_OPEN = 1u << 1,
};

struct session;
struct image;
struct vfh;

struct vfile {
	const char *name;
	unsigned file; /* its number in its directory (enum sfile, INO_*) */
	enum vf_kind kind;
	mode_t mode;	/* type and permissions shown; an open for what the
	                      * owner bits deny fails with EACCES */
	unsigned flags; /* VF_NOTIFY_WRITE, VF_TEXT_AT_OPEN */
	enum vf_out out;
	/* Called on a new handle after the mode check (its access in fh);
	 * 0 or -errno refuses the open. NULL: nothing more to check. */
	int (*open)(struct vfh *fh);
	/* VF_TEXT: the text a reader gets, malloc'ed; s is NULL for the
	 * mount's and images/IMG/'s files, img NULL but for images/IMG/'s. */
	int (*read)(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len);
	/* One write(2), under fh->io; 0 or -errno. NULL: not writable. */
	int (*write)(struct vfh *fh, const char *buf, size_t len);
	/* Every close(2) of the handle (`pid` closes it), under fh->io; its
	 * error is close's. NULL: nothing to do. */
	int (*flush)(struct vfh *fh, pid_t pid);
	/* The last close, under fh->io. NULL: nothing to do. */
	void (*release)(struct vfh *fh);
	/* st_size now; NULL: the length of read's text (VF_TEXT), else 0. */
	uint64_t (*size)(struct session *s);
};

struct vf_dir {
	const struct vfile *rows; /* in readdir order */
	size_t n;
};

extern const struct vf_dir vf_mnt_dir; /* MNT */
extern const struct vf_dir vf_ses_dir; /* pool/NAME */
extern const struct vf_dir vf_img_dir; /* images/IMG */

/* The row called name, or with number file; NULL when there is none. */
const struct vfile *vf_lookup(const struct vf_dir *d, const char *name);
const struct vfile *vf_at(const struct vf_dir *d, unsigned file);
/* The row of a control-tree inode that is a file of ours (not a
 * directory, not root/); NULL for anything else. */
const struct vfile *vf_of_ino(fuse_ino_t ino);
/* st_size of the file vf of s (NULL for the mount's files) or of img
 * (images/IMG/'s): `ls -l` and stat(1) show what a read would give now. */
uint64_t vf_size(const struct vfile *vf, struct vpfs *fs, struct session *s, struct image *img);

#endif
