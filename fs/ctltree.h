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

void ct_lookup(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void ct_getattr(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino);
void ct_setattr(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, const struct stat *attr, int to_set);
void ct_mkdir(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void ct_rmdir(struct vpfs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void ct_opendir(struct vpfs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ct_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus);
void ct_releasedir(fuse_req_t req, struct fuse_file_info *fi);

#endif
