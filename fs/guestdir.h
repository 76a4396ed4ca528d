/* Whether a path names a directory in a guest, asked through the agent's
 * file calls (proto/client.h): `cwd PATH` in ctl is checked when it is
 * written, so a bad one fails there (ENOENT, ENOTDIR) instead of failing
 * every later command. */
#ifndef VPFS_GUESTDIR_H
#define VPFS_GUESTDIR_H

#include <stddef.h>

struct vp_client;

/* path: absolute, len bytes, no NUL. Symlinks are followed as chdir would
 * (at most 40). 0 when it is a directory; -ENOENT, -ENOTDIR, -ELOOP,
 * -ENAMETOOLONG, or the client's error (-ECONNRESET for a dead guest). */
int guest_dir_check(struct vp_client *c, const char *path, size_t len);

#endif
