/* ns_cgroup.c against a fake cgroup2 filesystem: these hosts have no v2
 * memory/pids controllers, so the pure v2 path runs only here. The fake is
 * a FUSE filesystem served from a thread of this process and mounted on a
 * temp dir; fake mountinfo and cgroup files point the code at it through
 * ns_cgroups_open_at. The fake does what cgroupfs v2 does where the code
 * relies on it: mkdir makes a cgroup with its control files (memory.* and
 * pids.* only when the parent enables those controllers), control files
 * cannot be created or removed, a write replaces a file's value, rmdir
 * fails EBUSY while a child cgroup exists (fake_cgroupfs.c). The tests
 * (test_ns_cgroup_v2.c, test_ns_cgroup_hybrid.c) run in order; this file
 * sets up their environment. Needs root (mount) and /dev/fuse; prints
 * "SKIP: reason" and exits 77 without them. */
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/ns/test_ns_cgroup_fake.h"

/* ---- a test's environment ------------------------------------------------- */

static bool write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	bool ok = f && fputs(text, f) >= 0;
	if (f)
		ok = fclose(f) == 0 && ok;
	return CHECKF(ok, "writing %s", path);
}

/* Mountinfo like a host's: optional fields, the cgroup2 mount on the fake,
 * and (v1_too) v1 memory and pids hierarchies in tmp/memory, tmp/pids. */
static bool write_mountinfo(const struct env *e, bool v1_too)
{
	char text[2048];
	int n = snprintf(
		text, sizeof text,
		"22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw,discard\n"
		"23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
		"31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
		"41 31 0:38 / %s rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n",
		e->mnt);
	if (v1_too)
		snprintf(text + n, sizeof text - (size_t)n,
			 "32 31 0:29 / %s/cpu rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup "
			 "rw,cpu,cpuacct\n"
			 "35 31 0:32 / %s/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup "
			 "rw,memory\n"
			 "39 31 0:36 / %s/pids rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup "
			 "rw,pids\n",
			 e->tmp, e->tmp, e->tmp);
	return write_text(e->info, text);
}

/* Mounts a fake whose root has root_ctls; self_cgroup is the text of both
 * cgroup files. */
bool env_open(struct env *e, const char *root_ctls, const char *self_cgroup, bool v1_too)
{
	memset(e, 0, sizeof *e);
	snprintf(e->tmp, sizeof e->tmp, "/tmp/ns-cgroup-fake.XXXXXX");
	if (!CHECK(mkdtemp(e->tmp)))
		return false;
	snprintf(e->mnt, sizeof e->mnt, "%s/mnt", e->tmp);
	snprintf(e->info, sizeof e->info, "%s/mountinfo", e->tmp);
	snprintf(e->self, sizeof e->self, "%s/self-cgroup", e->tmp);
	snprintf(e->thread, sizeof e->thread, "%s/thread-cgroup", e->tmp);
	e->src = (struct ns_cgroup_sources){ e->info, e->self, e->thread };
	if (!CHECK(mkdir(e->mnt, 0755) == 0) || !write_mountinfo(e, v1_too) ||
	    !write_text(e->self, self_cgroup) || !write_text(e->thread, self_cgroup))
		return false;
	return CHECK_EQ(fake_start(&e->fk, e->mnt, root_ctls), 0);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

void env_close(struct env *e)
{
	fake_stop(&e->fk);
	if (e->tmp[0])
		CHECK(nftw(e->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0);
}

/* The path below the mount of a dir the code under test made. */
const char *in_fake(const struct env *e, const char *dir)
{
	size_t n = strlen(e->mnt);
	return strncmp(dir, e->mnt, n) == 0 && dir[n] == '/' ? dir + n : "<outside the fake>";
}

/* ---- the run -------------------------------------------------------------- */

int main(void)
{
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("SKIP: mounting the fake cgroupfs needs root and /dev/fuse\n");
		return 77;
	}
	static const struct tap_part *const parts[] = {
		&ns_cgfake_v2_part,
		&ns_cgfake_hybrid_part,
	};
	return tap_main_parts(parts, sizeof parts / sizeof parts[0]);
}
