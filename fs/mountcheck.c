/* Crash-only restart (mountcheck.h). */
#include "lib/vlog.h"
#include "mountcheck.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* How long the probe of a mount may take: a live server answers a stat in
 * microseconds; one that is stopped or stuck never does, and must not hang
 * our start. */
#define PROBE_MS 3000
/* Dead mounts stacked on one path (a daemon killed several times over a
 * mount that never got detached): each pass detaches the topmost. */
#define MAX_PASSES 16

/* The kernel escapes space, tab, newline and backslash in mountinfo paths
 * as \ooo (octal). */
static void unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Fields: id parent dev root point opts [optional...] - fstype source superopts */
int mountcheck_find(const char *mountinfo, const char *path, struct mount_entry *out)
{
	FILE *f = fopen(mountinfo, "re");
	if (!f)
		return -errno;
	char *line = NULL, *point = NULL;
	size_t cap = 0;
	int found = 0;
	while (getline(&line, &cap, f) > 0) {
		free(point);
		point = NULL;
		if (sscanf(line, "%*s %*s %*s %*s %ms", &point) != 1)
			continue;
		unescape(point);
		if (strcmp(point, path) != 0)
			continue;
		const char *dash = strstr(line, " - ");
		struct mount_entry e;
		memset(&e, 0, sizeof e);
		if (!dash || sscanf(dash + 3, "%63s %255s", e.fstype, e.source) < 1)
			continue;
		unescape(e.source);
		*out = e; /* later lines are mounted on top of earlier ones */
		found = 1;
	}
	free(point);
	free(line);
	fclose(f);
	return found;
}

bool mountcheck_is_ours(const struct mount_entry *e)
{
	if (strcmp(e->fstype, "fuse." VPFS_FSNAME) == 0)
		return true;
	return (strcmp(e->fstype, "fuse") == 0 || strncmp(e->fstype, "fuse.", 5) == 0) &&
	       strcmp(e->source, VPFS_FSNAME) == 0;
}

/* statfs(mnt) in a child (not stat: the kernel answers that from its
 * attribute cache without asking the server, for a second after the last
 * look), so a server that is alive but stuck (stopped,
 * deadlocked) cannot hang us: 0 when it answered, -ENOTCONN for a mount
 * with no server, -ETIMEDOUT when it did not answer in time, or the
 * error stat gave. */
static int probe(const char *mnt)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct statfs st;
		_exit(statfs(mnt, &st) == 0 ? 0 : errno > 0 && errno < 255 ? errno : 255);
	}
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int r = -ETIMEDOUT;
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		int n;
		do
			n = poll(&p, 1, PROBE_MS);
		while (n < 0 && errno == EINTR);
		close(pfd);
		if (n <= 0)
			kill(pid, SIGKILL); /* a FUSE request wait ends on a fatal signal */
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st))
		r = WEXITSTATUS(st) == 0 ? 0 : -WEXITSTATUS(st);
	return r;
}

/* A lazy unmount: the dead mount leaves the namespace at once, and anything
 * still holding a file of it (a shell cd'ed into it) keeps an ENOTCONN file
 * until it lets go. Without the privilege for umount2, the setuid
 * fusermount3 does it for the user who mounted it. */
static int detach(const char *mnt)
{
	if (umount2(mnt, MNT_DETACH) == 0)
		return 0;
	int err = -errno;
	if (err != -EPERM)
		return err;
	char *path = strdup(mnt); /* argv is not const */
	if (!path)
		return -ENOMEM;
	char *argv[] = { (char *)"fusermount3", (char *)"-u", (char *)"-z", (char *)"--", path, NULL };
	pid_t pid;
	int r = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
	free(path);
	if (r != 0)
		return err;
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : err;
}

int mountcheck_prepare(const char *mnt)
{
	for (int pass = 0; pass < MAX_PASSES; pass++) {
		struct mount_entry e;
		int r = mountcheck_find("/proc/self/mountinfo", mnt, &e);
		if (r < 0) {
			vlog_err(NULL, "cannot read the mount table: %s", strerror(-r));
			return r;
		}
		if (r == 0)
			return 0;
		bool ours = mountcheck_is_ours(&e);
		int alive = probe(mnt);
		if (ours && alive == -ENOTCONN) {
			r = detach(mnt);
			if (r < 0) {
				vlog_err(NULL,
					 "%s: cannot detach the dead mount of a vmpoolfs that is "
					 "gone: %s "
					 "(try: fusermount3 -u -z %s)",
					 mnt, strerror(-r), mnt);
				return r;
			}
			vlog_warn(NULL, "%s: detached the dead mount of a vmpoolfs that is gone", mnt);
			continue;
		}
		if (ours)
			vlog_err(NULL,
				 "%s is already mounted by a vmpoolfs that %s; not mounting over it "
				 "(unmount it first: fusermount3 -u %s)",
				 mnt, alive == -ETIMEDOUT ? "does not answer" : "is running", mnt);
		else
			vlog_err(NULL,
				 "%s is already a mount point (%s, source %s%s); not mounting over "
				 "it: it is not a vmpoolfs of ours, unmount it by hand if it should go",
				 mnt, e.fstype, e.source, alive == -ENOTCONN ? ", its server is gone" : "");
		return -EBUSY;
	}
	vlog_err(NULL, "%s: still mounted after %d detaches", mnt, MAX_PASSES);
	return -EBUSY;
}
