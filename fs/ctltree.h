/* The control tree's namespace: MNT, pool/, pool/NAME and the files the
 * rows of ctlfiles.h describe. Lookup, attributes, mkdir/rmdir of
 * pool/NAME, and readdir of our directories; root/ inodes never come here
 * (tree.h routes them to the proxy), except the lookup of root/ itself.
 * Each function replies to req exactly once. */
#ifndef VPFS_CTLTREE_H
#define VPFS_CTLTREE_H

#include <stdbool.h>
#include <sys/stat.h>

#include "vpfs.h"

/* -o allow_other: 0 when the caller (ctx) may use machine `serial` (its
 * owner, root or the daemon's user), else -EACCES; always 0 without it
 * (only the mounter reaches the tree). tree.c asks before every operation
 * that names a machine's inode; open files are checked at open, as on any
 * file system. */
int ct_may_use(struct vpfs *fs, const struct fuse_ctx *ctx, uint64_t serial);

void ct_lookup(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void ct_getattr(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino);
void ct_setattr(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, const struct stat *attr, int to_set);
void ct_mkdir(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void ct_rmdir(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void ct_opendir(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ct_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus);
void ct_releasedir(fuse_req_t req, struct fuse_file_info *fi);

#endif
