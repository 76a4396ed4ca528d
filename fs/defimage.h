/* The guest image the daemon uses when no -o image is given, and its
 * first-start build.
 *
 * Chosen in this order: $VMPOOL_IMAGE; the build tree's image/ when this
 * binary is the one meson built in the build tree (/proc/self/exe is the
 * compiled-in build path: `build/fs/vmpoolfs` works as it always has);
 * else the installed default, STATEDIR/images/default (STATEDIR is meson's
 * `statedir` option, /var/lib/vmpoolfs by default).
 *
 * Only that installed default is built when it is missing: the daemon runs
 * `BINDIR/vmpoolfs-image --images STATEDIR/images build default --packages
 * bash,coreutils,make,python3` before it mounts, its output on the
 * daemon's stderr (the console, or the journal under systemd), and serves
 * the image once it exists. */
#ifndef VPFS_DEFIMAGE_H
#define VPFS_DEFIMAGE_H

#include <stdbool.h>

#include "lib/vlog.h"

/* The default image directory (malloc'ed) or NULL without memory;
 * *buildable says whether defimage_ensure may build it. */
char *defimage_choose(bool *buildable);
/* The path shown in --help for the installed binary. */
const char *defimage_installed(void);
/* Where it is absent (no rootfs/), builds it as above. 0, or -errno with
 * the reason logged (the builder's status included). */
int defimage_ensure(struct vlog *log, const char *image);

#endif
