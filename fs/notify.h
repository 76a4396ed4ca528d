/* The notify thread: inotify events and cache invalidation for the tree
 * (docs/usage.md: inotify, root/).
 *
 * No notify call of the kernel raises an inotify event; an operation that
 * the daemon makes on its own mount path does. So this thread, which never
 * serves a FUSE request and holds no lock while it acts, opens
 * MNT/pool/NAME/stat for writing and closes it when a command ends
 * (IN_CLOSE_WRITE), and touches stdout/stderr with utimensat(UTIME_OMIT,
 * UTIME_NOW) when output arrives (IN_MODIFY, at most every NOTIFY_TOUCH_MS
 * per file). When a command replaces the previous output (a new inode
 * for stdout and stderr), it tells the kernel the old names are gone
 * (fuse_lowlevel_notify_delete: a watcher of the old file gets
 * IN_DELETE_SELF once nothing holds it). Before the stat event it drops the root/ caches of the machine
 * (rp_invalidate), so a watcher that reacts to the event sees fresh files. */
#ifndef VPFS_NOTIFY_H
#define VPFS_NOTIFY_H

#include <sys/types.h>

#include "vpfs.h"

#define NOTIFY_TOUCH_MS 100

struct session;

enum { NQ_TOUCH_OUT = 1u, NQ_TOUCH_ERR = 2u, NQ_EXIT = 4u, NQ_REPLACED = 8u };

int notifier_start(struct vpfs *fs, struct notifier **out);
/* Stops taking work and joins the thread; the mount must be gone or still
 * served (a self-operation on a mount nobody serves would never return). */
void notifier_stop(struct notifier *n);
void notifier_free(struct notifier *n);
/* Any thread, any lock but the notifier's; ignored once stopped. */
void notifier_post(struct notifier *n, struct session *s, unsigned what);
/* Thread id of the notify thread: its self-opens of stat are allowed. */
pid_t notifier_tid(const struct notifier *n);

#endif
