/* File requests as the caller (docs/protocol.md, "Credentials"): the
 * serving thread takes the caller's fsuid, fsgid and groups for one
 * request, so the guest kernel itself checks permissions, owns new
 * objects, applies sticky directories and the setgid rules, then the
 * thread goes back to the agent's own ids.
 *
 * All three by raw syscall: on Linux they are per-thread, but the libc
 * setgroups wrapper (glibc's and musl's) broadcasts to every thread of
 * the process, which would change the ids of requests other workers are
 * serving. setfsuid/setfsgid cannot report failure, so each is read back
 * (an id of -1 changes nothing and returns the current one). */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

static long fsuid_set(uint32_t id)
{
	return syscall(SYS_setfsuid, id);
}

static long fsgid_set(uint32_t id)
{
	return syscall(SYS_setfsgid, id);
}

void agent_cred_init(struct agent_fs *fs)
{
	fs->own_uid = (uint32_t)geteuid();
	fs->own_gid = (uint32_t)getegid();
	long n = syscall(SYS_getgroups, AGENT_MAX_OWN_GROUPS, fs->own_groups);
	fs->own_ngroups = n < 0 ? 0 : (unsigned)n;
}

void agent_cred_leave(const struct agent_fs *fs)
{
	/* fsuid first: going back to 0 gives back the capabilities (CAP_SETGID
	 * is not one that fsuid drops, but the order costs nothing). */
	fsuid_set(fs->own_uid);
	fsgid_set(fs->own_gid);
	syscall(SYS_setgroups, fs->own_ngroups, fs->own_groups);
}

int agent_cred_enter(const struct agent_fs *fs, const struct vp_cred *c)
{
	if (c->uid == 0)
		return 0; /* guest root: served as the agent itself, as before */
	gid_t groups[VP_MAX_GROUPS];
	size_t n = c->groups.len / 4u;
	if (n > VP_MAX_GROUPS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = c->groups.p + 4u * i;
		groups[i] = (gid_t)p[0] | (gid_t)p[1] << 8 | (gid_t)p[2] << 16 | (gid_t)p[3] << 24;
	}
	/* Groups and fsgid while fsuid is still ours: an fsuid that is not
	 * root drops the filesystem capabilities for the rest. */
	if (syscall(SYS_setgroups, n, groups) < 0) {
		int e = errno;
		agent_cred_leave(fs);
		return e == EINVAL ? -EPERM : -e; /* EINVAL: a gid the guest does not map */
	}
	fsgid_set(c->gid);
	fsuid_set(c->uid);
	if ((uint32_t)fsgid_set((uint32_t)-1) != c->gid || (uint32_t)fsuid_set((uint32_t)-1) != c->uid) {
		/* Never serve a caller as someone else: an id the guest does
		 * not map, or an agent without CAP_SETUID (host tests). */
		agent_cred_leave(fs);
		return -EPERM;
	}
	return 1;
}
