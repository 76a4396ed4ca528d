/* Shared by the ns-cgroup-fake tests (tests/ns/test_ns_cgroup_*.c): the
 * fake cgroup2 filesystem of fake_cgroupfs.c, the environment a test runs
 * in (test_ns_cgroup_fake.c), and the parts of tests run in order. */
#ifndef VMPOOL_TESTS_NS_TEST_NS_CGROUP_FAKE_H
#define VMPOOL_TESTS_NS_TEST_NS_CGROUP_FAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "vmm/ns/ns.h"
#include "tests/common/tap.h"

/* ---- the fake cgroupfs (fake_cgroupfs.c) ---- */

/* A node is a cgroup (dir) or one of its control files, by its path below
 * the mount ("/" the root, "/a/memory.max"). */
struct node {
	char *path;
	bool dir;
	char *val; /* files: the last value written, or the initial one */
};

struct fake {
	pthread_mutex_t mu;
	struct node *n;
	size_t nn, cap;
	const char *root_ctls; /* the root's cgroup.controllers */
	char mnt[256];
	struct fuse *fuse;
	pthread_t thr;
};

/* Mounts a fake with only its root cgroup on mnt; fake_stop unmounts it
 * and frees it (checking the unmount). */
int fake_start(struct fake *fk, const char *mnt, const char *root_ctls);
void fake_stop(struct fake *fk);

/* Test side: mkdir, set and get a value (get: "<missing>" when there is no
 * such file), whether a dir is there, how many dirs have `part` in their
 * path; under the fake's lock, behind the kernel's back. */
int fk_mkdir(struct fake *fk, const char *path);
int fk_set(struct fake *fk, const char *path, const char *val);
void fk_get(struct fake *fk, const char *path, char *buf, size_t cap);
bool fk_is_dir(struct fake *fk, const char *path);
int fk_count_dirs(struct fake *fk, const char *part);

#define CHECK_VAL(fk, path, want)                                                          \
	do {                                                                               \
		char v_[256];                                                              \
		fk_get(fk, path, v_, sizeof v_);                                           \
		CHECKF(strcmp(v_, want) == 0, "%s is \"%s\", not \"%s\"", path, v_, want); \
	} while (0)

/* ---- a test's environment ------------------------------------------------- */

/* A temp dir with the fake mounted on mnt/ and the files standing for
 * /proc/self/mountinfo, /proc/self/cgroup and /proc/thread-self/cgroup. */
struct env {
	char tmp[64], mnt[128], info[128], self[128], thread[128];
	struct ns_cgroup_sources src;
	struct fake fk;
};

/* Mounts a fake whose root has root_ctls; self_cgroup is the text of both
 * cgroup files; v1_too: mountinfo has v1 memory, pids and cpu hierarchies
 * in tmp/memory, tmp/pids, tmp/cpu too. False on a failed check. */
bool env_open(struct env *e, const char *root_ctls, const char *self_cgroup, bool v1_too);
void env_close(struct env *e);
/* The path below the mount of a dir the code under test made. */
const char *in_fake(const struct env *e, const char *dir);

/* ---- parts ---- */

/* The files of tests, each a part (tests/common/tap.h, TAP_PART). */
extern const struct tap_part ns_cgfake_v2_part, ns_cgfake_hybrid_part;

#endif
