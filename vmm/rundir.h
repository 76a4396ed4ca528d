/* Private runtime directories of the machine backends: the ns agents' logs,
 * the kvm backend's template snapshot and serial logs. Each lives at
 * $TMPDIR/vmpool-KIND-PID.XXXXXX (mkdtemp, 0700) and is removed whole at
 * close. A daemon that was killed cannot remove its own, and a kvm snapshot
 * can be hundreds of MiB: so making one first removes the directories of
 * the same kind whose daemon pid no longer exists (ours only: same owner,
 * no symlinks followed). Functions return 0 or -errno. */
#ifndef VMPOOL_VMM_RUNDIR_H
#define VMPOOL_VMM_RUNDIR_H

#include <stddef.h>

/* kind: a short word ("ns", "kvm"); out gets the new directory. */
int rundir_make(const char *kind, char *out, size_t cap);
/* Removes dir and everything below it (no symlink is followed). */
void rundir_remove(const char *dir);

#endif
