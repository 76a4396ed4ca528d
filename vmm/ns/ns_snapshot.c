/* A machine's writable layer copied into an image while the machine is
 * frozen; see ns.h (ns_snapshot_take).
 *
 * Freezing: v2 writes the machine cgroup's cgroup.freeze. v1 machines sit
 * in memory, pids (and cpu) hierarchies only, so their processes are moved
 * into a freezer cgroup of their own for the copy (a process forked while
 * they move is caught by the next pass: once the cgroup is frozen, anything
 * moved in freezes at once), then moved back and the cgroup removed.
 *
 * Copying: cp -a (GNU coreutils) from the upper dir, reached through the
 * daemon's O_PATH fd to it (passed to cp as fd 3): it keeps owners, modes,
 * times, hard links, the whiteouts (character devices 0/0) and the
 * user.overlay.* xattrs (opaque directories) that make the copy a valid
 * overlay layer. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "vmm/ns/ns.h"
#include "lib/smallfile.h"
#include "lib/vlog.h"

#define FREEZE_TIMEOUT_MS 3000


static void nap_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- v2 ------------------------------------------------------------------ */

static int freeze_v2(const char *dir, bool on)
{
	char path[PATH_MAX], ev[512];
	snprintf(path, sizeof path, "%s/cgroup.freeze", dir);
	int err = vp_write_small_file(path, on ? "1" : "0");
	if (err || !on)
		return err;
	snprintf(path, sizeof path, "%s/cgroup.events", dir);
	uint64_t deadline = deadline_after_ms(FREEZE_TIMEOUT_MS);
	while (vp_read_small_file(path, ev, sizeof ev) == 0 && !strstr(ev, "frozen 1")) {
		if (deadline_left_ms(deadline) <= 0)
			return -EBUSY;
		nap_ms(1);
	}
	return 0;
}

/* ---- v1 ------------------------------------------------------------------ */

struct v1_freezer {
	char home[PATH_MAX / 2];       /* the daemon's own freezer cgroup */
	char mine[PATH_MAX / 2 + 128]; /* the one made for this snapshot */
};

/* Where the freezer hierarchy is mounted, and the daemon's place in it. */
static int v1_home(char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char line[4096], mnt[PATH_MAX] = "";
	while (fgets(line, sizeof line, f)) {
		char *sep = strstr(line, " - cgroup ");
		if (!sep || !strstr(sep, "freezer"))
			continue;
		/* field 5 is the mount point */
		char *p = line;
		for (int i = 0; i < 4 && p; i++)
			p = strchr(p + 1, ' ');
		if (!p)
			continue;
		char *e = strchr(p + 1, ' ');
		if (e && (size_t)(e - p - 1) < sizeof mnt) {
			memcpy(mnt, p + 1, (size_t)(e - p - 1));
			mnt[e - p - 1] = '\0';
		}
		break;
	}
	fclose(f);
	if (!mnt[0])
		return -EOPNOTSUPP;
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	char rel[PATH_MAX] = "/";
	while (fgets(line, sizeof line, f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b || !strstr(a, "freezer"))
			continue;
		b[strcspn(b, "\n")] = '\0';
		snprintf(rel, sizeof rel, "%s", b + 1);
		break;
	}
	fclose(f);
	return snprintf(out, cap, "%s%s", mnt, strcmp(rel, "/") ? rel : "") >= (int)cap ? -ENAMETOOLONG : 0;
}

/* Is pid (a line of cgroup.procs) listed in procs? */
static bool listed(const char *procs, const char *pid)
{
	size_t n = strlen(pid);
	for (const char *p = procs; (p = strstr(p, pid)); p += n)
		if ((p == procs || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* Every process of from_dir's cgroup.procs that is not in `to` yet moves
 * there; *moved counts them. (The machine's own cgroup is in another
 * hierarchy, so it keeps listing those already moved.) */
static int v1_move_all(const char *from_dir, const char *to, int *moved)
{
	char path[PATH_MAX], dst[PATH_MAX], buf[16384], there[16384];
	snprintf(path, sizeof path, "%s/cgroup.procs", from_dir);
	snprintf(dst, sizeof dst, "%s/cgroup.procs", to);
	int err = vp_read_small_file(path, buf, sizeof buf);
	if (err || (err = vp_read_small_file(dst, there, sizeof there)))
		return err;
	*moved = 0;
	for (char *save = NULL, *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		if (listed(there, tok))
			continue;
		int r = vp_write_small_file(dst, tok);
		if (r == 0)
			(*moved)++;
		else if (r != -ESRCH)
			return r;
	}
	return 0;
}

static int v1_state_is(const char *dir, const char *want)
{
	char path[PATH_MAX], st[64];
	snprintf(path, sizeof path, "%s/freezer.state", dir);
	return vp_read_small_file(path, st, sizeof st) == 0 && strncmp(st, want, strlen(want)) == 0;
}

static void v1_thaw(struct v1_freezer *fz, const char *machine_dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/freezer.state", fz->mine);
	(void)vp_write_small_file(path, "THAWED");
	/* back home, so the cgroup can go; a process that exits meanwhile is fine */
	char buf[16384];
	snprintf(path, sizeof path, "%s/cgroup.procs", fz->mine);
	for (int pass = 0; pass < 100; pass++) {
		if (vp_read_small_file(path, buf, sizeof buf) < 0 || !buf[0])
			break;
		int moved = 0;
		(void)v1_move_all(fz->mine, fz->home, &moved);
		if (!moved)
			nap_ms(1);
	}
	(void)machine_dir;
	rmdir(fz->mine);
}

static int v1_freeze(struct v1_freezer *fz, const char *machine_dir)
{
	int err = v1_home(fz->home, sizeof fz->home);
	if (err)
		return err;
	/* unique: one snapshot per thread at a time */
	snprintf(fz->mine, sizeof fz->mine, "%s/vmpool-snap.%d.%d.%llu", fz->home, (int)getpid(),
		 (int)gettid(), (unsigned long long)clock_mono_us());
	if (mkdir(fz->mine, 0755) < 0)
		return -errno;
	int moved = 0;
	if ((err = v1_move_all(machine_dir, fz->mine, &moved)))
		goto fail;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/freezer.state", fz->mine);
	if ((err = vp_write_small_file(path, "FROZEN")))
		goto fail;
	uint64_t deadline = deadline_after_ms(FREEZE_TIMEOUT_MS);
	for (;;) {
		/* late forks: moved into the frozen cgroup, they freeze there */
		if ((err = v1_move_all(machine_dir, fz->mine, &moved)))
			goto fail;
		if (!moved && v1_state_is(fz->mine, "FROZEN"))
			return 0;
		if (deadline_left_ms(deadline) <= 0) {
			err = -EBUSY;
			goto fail;
		}
		nap_ms(1);
	}
fail:
	v1_thaw(fz, machine_dir);
	return err;
}

/* ---- copy ---------------------------------------------------------------- */

extern char **environ;

static int copy_tree(int upper_fd, const char *dest)
{
	char dst[PATH_MAX], cp[] = "cp", a[] = "-a", dd[] = "--", src[] = "/proc/self/fd/3/";
	if (snprintf(dst, sizeof dst, "%s", dest) >= (int)sizeof dst)
		return -ENAMETOOLONG;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, upper_fd, 3); /* dup2 clears close-on-exec */
	char *const argv[] = { cp, a, dd, src, dst, NULL };
	pid_t pid;
	int r = posix_spawn(&pid, "/bin/cp", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		vlog_err(NULL, "ns: snapshot: cp -a of the writable layer failed (status %d)", st);
		return -EIO;
	}
	return 0;
}

int ns_snapshot_take(const struct ns_cg *c, int upper_fd, const char *dest)
{
	if (c->ndirs < 1 || upper_fd < 0)
		return -ENOTCONN;
	struct v1_freezer fz;
	int err = c->version == 2 ? freeze_v2(c->dirs[0], true) : v1_freeze(&fz, c->dirs[0]);
	if (err) {
		if (c->version == 2)
			(void)freeze_v2(c->dirs[0], false);
		vlog_err(NULL, "ns: snapshot: cannot freeze the machine: %s", strerror(-err));
		return err;
	}
	err = copy_tree(upper_fd, dest);
	if (c->version == 2)
		(void)freeze_v2(c->dirs[0], false);
	else
		v1_thaw(&fz, c->dirs[0]);
	return err;
}
