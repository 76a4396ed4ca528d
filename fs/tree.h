/* The FUSE low-level operations of the daemon: the tree of docs/usage.md
 * (MNT, pool/, pool/NAME and its files, stats, config), each operation
 * routed to the control tree or, for the inodes of a root/, to that
 * session's root proxy. */
#ifndef VPFS_TREE_H
#define VPFS_TREE_H

#include "vpfs.h"

extern const struct fuse_lowlevel_ops vpfs_ops;

#endif
