/* Crash-only restart: what is already mounted on the mountpoint before we
 * mount. A daemon killed with SIGKILL (or a power cut of a machine whose
 * mount table survived, as in a container) leaves its FUSE mount behind,
 * with no server: every access fails with ENOTCONN and mounting on it again
 * fails the same way. Such a mount of ours is detached; anything else there
 * (a live vmpoolfs, another file system, a dead mount of another FUSE
 * server) is left alone and refused with a message. Functions return 0 or
 * -errno. */
#ifndef VPFS_MOUNTCHECK_H
#define VPFS_MOUNTCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* The fsname and subtype we mount with: the mount table shows them as
 * source "vmpoolfs" and type "fuse.vmpoolfs", which is how a restart knows
 * a dead mount is ours. */
#define VPFS_FSNAME "vmpoolfs"

struct mount_entry {
	char fstype[64];
	char source[256];
};

/* The topmost mount whose mount point is `path` in a mountinfo file:
 * 1 (found, *out set), 0 (none), or -errno. Pure: unit-tested. */
int mountcheck_find(const char *mountinfo, const char *path, struct mount_entry *out);
/* A mount entry made by a vmpoolfs (its type or source says so). */
bool mountcheck_is_ours(const struct mount_entry *e);
/* Before mounting on `mnt` (a realpath): detaches dead mounts of ours,
 * refuses (-EBUSY, with a line on stderr) anything else mounted there. */
int mountcheck_prepare(const char *mnt);

#endif
