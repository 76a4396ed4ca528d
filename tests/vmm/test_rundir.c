/* Runtime directories (vmm/rundir.h): made as $TMPDIR/vmpool-KIND-PID.XXXXXX
 * (0700); removed whole; making one removes the leftovers of daemons that
 * are gone (same kind, pid dead, ours), and only those: a live daemon's
 * directory, another kind's, a name that does not parse, a symlink and a
 * directory owned by someone else all stay. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "vmm/rundir.h"

static char tmp[] = "/tmp/vmpool-rundir-test.XXXXXX";

static bool exists(const char *name)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", tmp, name);
	struct stat st;
	return lstat(p, &st) == 0;
}

static void make_dir(const char *name, bool with_content)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", tmp, name);
	REQUIRE_EQ(mkdir(p, 0700), 0);
	if (with_content) {
		char f[600];
		snprintf(f, sizeof f, "%s/sub", p);
		REQUIRE_EQ(mkdir(f, 0700), 0);
		snprintf(f, sizeof f, "%s/sub/memory", p);
		int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		REQUIRE(fd >= 0);
		close(fd);
	}
}

/* A pid that no process has: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

static void test_make_remove(void)
{
	char dir[512];
	REQUIRE_EQ(rundir_make("kvm", dir, sizeof dir), 0);
	char want[128];
	snprintf(want, sizeof want, "%s/vmpool-kvm-%ld.", tmp, (long)getpid());
	CHECKF(strncmp(dir, want, strlen(want)) == 0 && strlen(dir) == strlen(want) + 6, "dir: %s", dir);
	struct stat st;
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	char f[600];
	snprintf(f, sizeof f, "%s/a", dir);
	REQUIRE_EQ(mkdir(f, 0700), 0);
	snprintf(f, sizeof f, "%s/a/b", dir);
	int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	/* a symlink inside pointing out: removed, its target untouched */
	char outside[512];
	snprintf(outside, sizeof outside, "%s/outside", tmp);
	fd = open(outside, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	snprintf(f, sizeof f, "%s/link", dir);
	REQUIRE_EQ(symlink(outside, f), 0);
	rundir_remove(dir);
	CHECK(access(dir, F_OK) < 0 && errno == ENOENT);
	CHECK(access(outside, F_OK) == 0);
	unlink(outside);
	CHECK_EQ(rundir_make("a-kind-name-far-too-long-for-any-buffer", dir, 20), -ENAMETOOLONG);
}

static void test_stale(void)
{
	char dead[64], live[64], other_kind[64], odd[64], link_name[64], theirs[64], target[512];
	pid_t gone = dead_pid();
	snprintf(dead, sizeof dead, "vmpool-kvm-%ld.aaaaaa", (long)gone);
	snprintf(live, sizeof live, "vmpool-kvm-%ld.bbbbbb", (long)getppid());
	snprintf(other_kind, sizeof other_kind, "vmpool-ns-%ld.cccccc", (long)gone);
	snprintf(odd, sizeof odd, "vmpool-kvm-x%ld.dddddd", (long)gone);
	snprintf(link_name, sizeof link_name, "vmpool-kvm-%ld.eeeeee", (long)gone);
	snprintf(theirs, sizeof theirs, "vmpool-kvm-%ld.ffffff", (long)gone);
	make_dir(dead, true);
	make_dir(live, true);
	make_dir(other_kind, false);
	make_dir(odd, false);
	make_dir(theirs, false);
	char p[600];
	snprintf(p, sizeof p, "%s/%s", tmp, theirs);
	REQUIRE_EQ(chown(p, 12345, 12345), 0);
	snprintf(target, sizeof target, "%s/target", tmp);
	REQUIRE_EQ(mkdir(target, 0700), 0);
	snprintf(p, sizeof p, "%s/%s", tmp, link_name);
	REQUIRE_EQ(symlink(target, p), 0);

	char dir[512];
	REQUIRE_EQ(rundir_make("kvm", dir, sizeof dir), 0);
	CHECKF(!exists(dead), "a dead daemon's directory is removed");
	CHECK(exists(live));
	CHECK(exists(other_kind));
	CHECK(exists(odd));
	CHECK(exists(theirs));
	CHECK(exists(link_name) && exists("target"));
	/* our own (this pid) is never taken for stale */
	char again[512];
	REQUIRE_EQ(rundir_make("kvm", again, sizeof again), 0);
	CHECK(access(dir, F_OK) == 0 && strcmp(dir, again) != 0);
	rundir_remove(dir);
	rundir_remove(again);
}

int main(void)
{
	if (!mkdtemp(tmp)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	setenv("TMPDIR", tmp, 1);
	static const struct tap_test tests[] = {
		{ "make: vmpool-KIND-PID.XXXXXX, 0700; remove: whole, symlinks not followed",
		  test_make_remove },
		{ "leftovers of dead daemons go; live, other kind, odd names, links, others' stay",
		  test_stale },
	};
	int rc = tap_main(tests, sizeof tests / sizeof tests[0]);
	rundir_remove(tmp);
	return rc;
}
