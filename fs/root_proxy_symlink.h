/* How root/ presents a guest symlink's target to the host (pure functions,
 * no state).
 *
 * The host kernel resolves a link met under MNT/pool/NAME/root/ in the
 * host's namespace: an absolute target would name a host file, and enough
 * ".." would climb out of root/ (into the mount, then the host). So the
 * proxy never hands the guest's text to the kernel when it could climb:
 * the target is normalised lexically against the link's directory inside
 * the guest, ".." stops at the guest's "/" (as a chroot's "/.." is "/"),
 * and the result is written relative to the link's directory. Only the
 * depth of that directory below the guest's "/" is needed: the walk keeps
 * the part of the directory's path the target does not climb out of, and
 * climbing is written as that many "..". A depth smaller than the true one
 * (the proxy is unsure) clamps harder: the result stays inside root/, it
 * may only name the wrong guest file. */
#ifndef VMPOOL_ROOT_PROXY_SYMLINK_H
#define VMPOOL_ROOT_PROXY_SYMLINK_H

#include <stdbool.h>
#include <stddef.h>

/* Whether target could leave the link's directory upwards: absolute, or a
 * ".." component anywhere. Other targets are given to the host as they are
 * (they only descend; each link they pass through is presented by the same
 * rule on its own). */
bool rp_symlink_climbs(const char *target);

/* Writes into out (cap bytes, NUL included) the target to present for a
 * link whose directory is depth levels below the guest's "/": at most
 * depth leading "..", then only downward names. 0, or -ENAMETOOLONG when it
 * does not fit. */
int rp_symlink_present(unsigned depth, const char *target, char *out, size_t cap);

#endif
