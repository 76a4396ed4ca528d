/* ns-cgroup-fake test of the choice of version on a hybrid layout. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/ns/test_ns_cgroup_fake.h"

/* v1 memory, pids and cpu hierarchies next to a cgroup2 mount (hybrid):
 * v1 is used. The v1 mounts are plain dirs, enough for open and close (the
 * parent is only made there; limits need a v1 fake). */
static void test_hybrid_picks_v1(void)
{
	struct env e;
	struct ns_cgroups *cg = NULL;
	if (!env_open(&e, "cpu memory pids", "12:pids:/\n4:memory:/user.slice\n1:cpu,cpuacct:/\n0::/\n", true))
		goto out;
	char mem[200], pids[200], cpu[200], want[3][300];
	snprintf(mem, sizeof mem, "%s/memory", e.tmp);
	snprintf(pids, sizeof pids, "%s/pids", e.tmp);
	snprintf(cpu, sizeof cpu, "%s/cpu", e.tmp);
	CHECK(mkdir(mem, 0755) == 0 && mkdir(pids, 0755) == 0 && mkdir(cpu, 0755) == 0);
	strcat(mem, "/user.slice");
	CHECK(mkdir(mem, 0755) == 0);
	snprintf(want[0], sizeof want[0], "%s/vmpoolfs.%d.0", mem, (int)getpid());
	snprintf(want[1], sizeof want[1], "%s/vmpoolfs.%d.0", pids, (int)getpid());
	snprintf(want[2], sizeof want[2], "%s/vmpoolfs.%d.0", cpu, (int)getpid());
	if (!CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0))
		goto out;
	CHECK_EQ(ns_cgroups_version(cg), 1);
	const char *dirs[NS_CG_MAX_DIRS] = { 0 };
	CHECK(ns_cgroups_has_cpu(cg));
	if (CHECK_EQ(ns_cgroups_dirs(cg, dirs, NS_CG_MAX_DIRS), 3)) {
		struct stat st;
		for (int i = 0; i < 3; i++)
			CHECKF(strcmp(dirs[i], want[i]) == 0 && stat(dirs[i], &st) == 0 && S_ISDIR(st.st_mode),
			       "dir %d is %s", i, dirs[i]);
	}
	CHECK_EQ(fk_count_dirs(&e.fk, "/"), 1);
	CHECK_VAL(&e.fk, "/cgroup.subtree_control", "");
	ns_cgroups_close(cg);
	cg = NULL;
	CHECK(access(want[0], F_OK) != 0 && access(want[1], F_OK) != 0 && access(want[2], F_OK) != 0);
out:
	ns_cgroups_close(cg);
	env_close(&e);
}

static const struct tap_test tests[] = {
	{ "hybrid v1 + cgroup2: v1 is picked, with its cpu hierarchy", test_hybrid_picks_v1 },
};

TAP_PART(ns_cgfake_hybrid_part, tests);
