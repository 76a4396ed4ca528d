/* The FUSE low-level operations of the daemon: the tree of DESIGN §1
 * (MNT, pool/, pool/NAME and its files, stats, config), with every inode
 * of a root/ routed to that session's root proxy. */
#ifndef VPFS_TREE_H
#define VPFS_TREE_H

#include "vpfs.h"

extern const struct fuse_lowlevel_ops vpfs_ops;

#endif
