/* open/read/write/flush/release/poll of the files of pool/NAME (cmd,
 * stdout, stderr, stat, exit, stdin, ctl) and of MNT/stats, MNT/config,
 * with the semantics of DESIGN §1. */
#ifndef VPFS_CTLFILES_H
#define VPFS_CTLFILES_H

#include "vpfs.h"

void cf_open(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void cf_read(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void cf_write(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void cf_flush(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void cf_release(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void cf_poll(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	     struct fuse_pollhandle *ph);

#endif
