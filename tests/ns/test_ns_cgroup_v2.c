/* ns-cgroup-fake tests of the pure cgroup v2 path: parent placement,
 * subtree_control, limits (cpu.max too), the CLONE_INTO_CGROUP fd, oom_kill,
 * cleanup, refusal without memory/pids, stale-parent removal. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/ns/test_ns_cgroup_fake.h"

/* Our own cgroup, and where the backend's parent must go: beside it (v2
 * cannot give controllers to a cgroup with processes), or under the root. */
static const struct v2case {
	const char *self, *host; /* host: in the fake, "" the root */
	const char *pre[2];	 /* cgroups there before */
} v2cases[] = {
	{ "0::/a/b\n", "/a", { "/a", "/a/b" } },
	{ "0::/\n", "", { NULL, NULL } },
};

static void v2_lifecycle(const struct v2case *t)
{
	struct env e;
	struct ns_cgroups *cg = NULL;
	if (!env_open(&e, "cpu io memory pids", t->self, false))
		goto out;
	CHECK_EQ(fk_set(&e.fk, "/cgroup.subtree_control", "+memory +pids +cpu\n"), 0);
	for (int i = 0; i < 2 && t->pre[i]; i++)
		CHECK_EQ(fk_mkdir(&e.fk, t->pre[i]), 0);
	if (!CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0))
		goto out;
	CHECK_EQ(ns_cgroups_version(cg), 2);
	const char *dirs[NS_CG_MAX_DIRS] = { 0 };
	CHECK_EQ(ns_cgroups_dirs(cg, dirs, NS_CG_MAX_DIRS), 1);
	char want[256], path[512];
	snprintf(want, sizeof want, "%s/vmpoolfs.%d.0", t->host, (int)getpid());
	const char *parent = in_fake(&e, dirs[0]);
	CHECKF(strcmp(parent, want) == 0, "parent %s, expected %s", parent, want);
	CHECK(fk_is_dir(&e.fk, want));
	CHECK_EQ(fk_count_dirs(&e.fk, "vmpoolfs"), 1);
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", t->host);
	CHECK_VAL(&e.fk, path, "+memory +pids +cpu");
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", want);
	CHECK_VAL(&e.fk, path, "+memory +pids +cpu");
	if (t->pre[1]) /* our own cgroup is left as it was */
		CHECK_VAL(&e.fk, "/a/b/cgroup.subtree_control", "");
	CHECK(ns_cgroups_has_cpu(cg));

	struct ns_cg c;
	const struct ns_cg_limits lim = { .mem_bytes = 64u << 20, .pids_max = 100, .cpu_milli = 1500 };
	if (!CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), 0))
		goto out;
	CHECK_EQ(c.version, 2);
	CHECK_EQ(c.ndirs, 1);
	char leaf[300];
	snprintf(leaf, sizeof leaf, "%s/m1", want);
	CHECKF(strcmp(in_fake(&e, c.dirs[0]), leaf) == 0, "leaf %s", c.dirs[0]);
	snprintf(path, sizeof path, "%s/memory.max", leaf);
	CHECK_VAL(&e.fk, path, "67108864");
	snprintf(path, sizeof path, "%s/pids.max", leaf);
	CHECK_VAL(&e.fk, path, "100");
	snprintf(path, sizeof path, "%s/memory.swap.max", leaf);
	CHECK_VAL(&e.fk, path, "0");
	snprintf(path, sizeof path, "%s/cpu.max", leaf);
	CHECK_VAL(&e.fk, path, "150000 100000");

	struct ns_cg_clone st;
	struct stat a, b;
	if (CHECK_EQ(ns_cg_clone_begin(cg, &c, &st), 0) && CHECK(st.cgroup_fd >= 0)) {
		CHECK(fstat(st.cgroup_fd, &a) == 0 && stat(c.dirs[0], &b) == 0 && a.st_ino == b.st_ino &&
		      a.st_dev == b.st_dev);
		CHECK_EQ(ns_cg_clone_end(&st), 0);
		CHECK_EQ(st.cgroup_fd, -1);
	}

	uint64_t kills = 99;
	CHECK_EQ(ns_cg_oom_kills(&c, &kills), 0);
	CHECK_EQ(kills, 0);
	snprintf(path, sizeof path, "%s/memory.events", leaf);
	CHECK_EQ(fk_set(&e.fk, path, "low 0\nhigh 0\nmax 2\noom 1\noom_kill 3\n"), 0);
	CHECK_EQ(ns_cg_oom_kills(&c, &kills), 0);
	CHECK_EQ(kills, 3);

	CHECK_EQ(ns_cg_remove(&c), 0);
	CHECK(!fk_is_dir(&e.fk, leaf));
	CHECK(fk_is_dir(&e.fk, want));
	ns_cgroups_close(cg);
	cg = NULL;
	CHECK_EQ(fk_count_dirs(&e.fk, "vmpoolfs"), 0);
	for (int i = 0; i < 2 && t->pre[i]; i++)
		CHECK(fk_is_dir(&e.fk, t->pre[i]));
out:
	ns_cgroups_close(cg);
	env_close(&e);
}

static void test_v2_beside_own(void)
{
	v2_lifecycle(&v2cases[0]);
}

static void test_v2_at_root(void)
{
	v2_lifecycle(&v2cases[1]);
}

/* No memory or no pids controller for us: refused, nothing left behind. */
static void test_v2_unsupported(void)
{
	static const struct {
		const char *root_ctls, *root_subtree, *self;
	} cases[] = {
		{ "cpu io pids", "", "0::/\n" },
		{ "cpu io memory", "", "0::/\n" },
		{ "cpu memory pids", "+memory\n", "0::/a/b\n" }, /* pids not delegated to /a */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct env e;
		struct ns_cgroups *cg = NULL;
		bool nested = strcmp(cases[i].self, "0::/\n") != 0;
		if (env_open(&e, cases[i].root_ctls, cases[i].self, false)) {
			CHECK_EQ(fk_set(&e.fk, "/cgroup.subtree_control", cases[i].root_subtree), 0);
			if (nested)
				CHECK(fk_mkdir(&e.fk, "/a") == 0 && fk_mkdir(&e.fk, "/a/b") == 0);
			CHECKF(ns_cgroups_open_at(&e.src, &cg) == -EOPNOTSUPP, "case %zu", i);
			CHECK(cg == NULL);
			CHECK_EQ(fk_count_dirs(&e.fk, "/"), nested ? 3 : 1);
			if (nested)
				CHECK_VAL(&e.fk, "/a/cgroup.subtree_control", "");
			else
				CHECK_VAL(&e.fk, "/cgroup.subtree_control", "");
		}
		ns_cgroups_close(cg);
		env_close(&e);
	}
}

/* cpu.max for a few limits (quota per 100 ms period, at least the kernel's
 * 1 ms); no cpu controller: open works, a CPU limit is refused, none is
 * fine. */
static void test_v2_cpu_max(void)
{
	static const struct {
		uint32_t milli;
		const char *want;
	} cases[] = {
		{ 1000, "100000 100000" },
		{ 250, "25000 100000" },
		{ 4000, "400000 100000" },
		{ 5, "1000 100000" },
	};
	struct env e;
	struct ns_cgroups *cg = NULL;
	if (env_open(&e, "cpu memory pids", "0::/\n", false)) {
		if (CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0)) {
			CHECK(ns_cgroups_has_cpu(cg));
			for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
				struct ns_cg c;
				const struct ns_cg_limits lim = { 64u << 20, 100, cases[i].milli };
				if (!CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), 0))
					continue;
				char path[600];
				snprintf(path, sizeof path, "%s/cpu.max", in_fake(&e, c.dirs[0]));
				CHECK_VAL(&e.fk, path, cases[i].want);
				CHECK_EQ(ns_cg_remove(&c), 0);
			}
		}
		ns_cgroups_close(cg);
		cg = NULL;
	}
	env_close(&e);
	if (env_open(&e, "io memory pids", "0::/\n", false)) {
		if (CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0)) {
			CHECK(!ns_cgroups_has_cpu(cg));
			CHECK_VAL(&e.fk, "/cgroup.subtree_control", "+memory +pids");
			struct ns_cg c;
			struct ns_cg_limits lim = { 64u << 20, 100, 1000 };
			CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), -EOPNOTSUPP);
			CHECK_EQ(fk_count_dirs(&e.fk, "/"), 2); /* the root and our parent: no leaf left */
			lim.cpu_milli = 0;
			if (CHECK_EQ(ns_cg_create(cg, "m1", &lim, &c), 0))
				CHECK_EQ(ns_cg_remove(&c), 0);
		}
		ns_cgroups_close(cg);
	}
	env_close(&e);
}

/* A parent whose daemon died is removed at open; a live one's stays. */
static void test_v2_stale_parents(void)
{
	struct env e;
	struct ns_cgroups *cg = NULL;
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	REQUIRE(dead > 0);
	CHECK_EQ(waitpid(dead, NULL, 0), dead);
	pid_t live = fork();
	if (live == 0) {
		pause();
		_exit(0);
	}
	REQUIRE(live > 0);
	char dparent[64], dleaf[80], lparent[64], lleaf[80];
	snprintf(dparent, sizeof dparent, "/vmpoolfs.%d.0", (int)dead);
	snprintf(dleaf, sizeof dleaf, "%s/m3", dparent);
	snprintf(lparent, sizeof lparent, "/vmpoolfs.%d.0", (int)live);
	snprintf(lleaf, sizeof lleaf, "%s/m3", lparent);
	if (env_open(&e, "memory pids", "0::/\n", false)) {
		CHECK_EQ(fk_set(&e.fk, "/cgroup.subtree_control", "+memory +pids\n"), 0);
		const char *pre[] = { dparent, dleaf, lparent, lleaf, "/user.slice" };
		for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
			CHECK_EQ(fk_mkdir(&e.fk, pre[i]), 0);
		if (CHECK_EQ(ns_cgroups_open_at(&e.src, &cg), 0)) {
			CHECK(!fk_is_dir(&e.fk, dparent));
			CHECK(!fk_is_dir(&e.fk, dleaf));
			CHECK(fk_is_dir(&e.fk, lleaf));
			CHECK(fk_is_dir(&e.fk, "/user.slice"));
			CHECK_EQ(fk_count_dirs(&e.fk, "vmpoolfs"), 3); /* ours, the live one's and its leaf */
		}
		ns_cgroups_close(cg);
		CHECK(fk_is_dir(&e.fk, lleaf));
	}
	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
	env_close(&e);
}

static const struct tap_test tests[] = {
	{ "v2: parent beside our own cgroup, limits, clone fd, oom_kill, cleanup", test_v2_beside_own },
	{ "v2: parent under the root when we are at the root", test_v2_at_root },
	{ "v2: no memory or pids controller: EOPNOTSUPP, nothing left", test_v2_unsupported },
	{ "v2: cpu.max from the CPU limit; none without a cpu controller", test_v2_cpu_max },
	{ "v2: stale parents of dead daemons removed, live ones kept", test_v2_stale_parents },
};

TAP_PART(ns_cgfake_v2_part, tests);
