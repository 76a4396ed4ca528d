/* The default image; see defimage.h. */
#include "defimage.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* From fs/meson.build. */
#ifndef VMPOOL_STATEDIR
#define VMPOOL_STATEDIR "/var/lib/vmpoolfs"
#endif
#ifndef VMPOOL_BINDIR
#define VMPOOL_BINDIR "/usr/bin"
#endif
#define IMAGES_DIR VMPOOL_STATEDIR "/images"
#define DEFAULT_NAME "default"
#define DEFAULT_PACKAGES "bash,coreutils,make,python3"

const char *defimage_installed(void)
{
	return IMAGES_DIR "/" DEFAULT_NAME;
}

static bool running_from_build_tree(void)
{
#if defined(VMPOOL_BUILD_EXE) && defined(VMPOOL_BUILD_IMAGE)
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return false;
	self[n] = '\0';
	return strcmp(self, VMPOOL_BUILD_EXE) == 0;
#else
	return false;
#endif
}

char *defimage_choose(bool *buildable)
{
	const char *env = getenv("VMPOOL_IMAGE");
	*buildable = false;
	if (env && *env)
		return strdup(env);
#if defined(VMPOOL_BUILD_IMAGE)
	if (running_from_build_tree())
		return strdup(VMPOOL_BUILD_IMAGE);
#endif
	*buildable = true;
	return strdup(defimage_installed());
}

int defimage_ensure(struct vlog *log, const char *image)
{
	char rootfs[PATH_MAX];
	struct stat st;
	if (snprintf(rootfs, sizeof rootfs, "%s/rootfs", image) >= (int)sizeof rootfs)
		return -ENAMETOOLONG;
	if (stat(rootfs, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	const char *tool = VMPOOL_BINDIR "/vmpoolfs-image";
	if (access(tool, X_OK) != 0) {
		int e = errno;
		vlog_err(log, "no image at %s, and no %s to build it: %s", image, tool, strerror(e));
		return -e;
	}
	vlog_info(log,
		  "first start: building the default image %s (Debian packages " DEFAULT_PACKAGES
		  "; this takes a few minutes): %s --images %s build " DEFAULT_NAME
		  " --packages " DEFAULT_PACKAGES,
		  image, tool, IMAGES_DIR);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Its progress where ours goes before we detach: the console,
		 * or the journal under systemd. */
		dup2(2, 1);
		execl(tool, "vmpoolfs-image", "--images", IMAGES_DIR, "build", DEFAULT_NAME, "--packages",
		      DEFAULT_PACKAGES, (char *)NULL);
		_exit(127);
	}
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		vlog_err(log, "building the default image failed (%s %d); see the lines above",
			 WIFEXITED(ws) ? "status" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
		return -EIO;
	}
	if (stat(rootfs, &st) != 0 || !S_ISDIR(st.st_mode)) {
		vlog_err(log, "%s built, but %s is not there", DEFAULT_NAME, rootfs);
		return -ENOENT;
	}
	vlog_info(log, "default image built: %s", image);
	return 0;
}
