/* Runtime directories (rundir.h). */
#include "vmm/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* best effort: go on with the rest */
}

void rundir_remove(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* vmpool-KIND-PID.XXXXXX of a daemon that is gone, owned by us. */
static void remove_stale(const char *parent, const char *kind)
{
	char prefix[64];
	int plen = snprintf(prefix, sizeof prefix, "vmpool-%s-", kind);
	DIR *d = opendir(parent);
	if (!d || plen <= 0 || plen >= (int)sizeof prefix) {
		if (d)
			closedir(d);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
			continue;
		char *end;
		long pid = strtol(e->d_name + plen, &end, 10);
		if (pid <= 0 || *end != '.' || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* alive (or not ours to ask): leave it */
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
		    st.st_uid != geteuid())
			continue;
		char path[4096];
		if (snprintf(path, sizeof path, "%s/%s", parent, e->d_name) < (int)sizeof path)
			rundir_remove(path);
	}
	closedir(d);
}

int rundir_make(const char *kind, char *out, size_t cap)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	remove_stale(tmp, kind);
	if (snprintf(out, cap, "%s/vmpool-%s-%ld.XXXXXX", tmp, kind, (long)getpid()) >= (int)cap) {
		out[0] = '\0';
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(out)) {
		int err = -errno;
		out[0] = '\0';
		return err;
	}
	return 0;
}
