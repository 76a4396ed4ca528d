/* What the ns backend needs from the host, checked at open (ns.h): root,
 * user namespaces, overlayfs, an image rootfs/ owned by a mapped id range,
 * the capability to protect agents from the OOM killer, and the empty
 * scratch directory each machine mounts its tmpfs on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/vlog.h"
#include "vmm/ns/ns.h"

/* Guest ids 0..65535 map to [base, base + 65536): the base must leave the
 * host's own ordinary ids (0..65535) unmapped. */
#define ID_RANGE 65536u

void ns_host_complain(const char *what, int err)
{
	vlog_err(NULL, "ns backend unavailable: %s (%s)", what, strerror(-err));
}

/* The sysctls say little (Debian's knob only binds unprivileged users, LSMs
 * and container runtimes forbid it in other ways): try one. */
static int check_userns(void)
{
	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_NEWUSER | CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno == ENOMEM ? -ENOMEM : -EOPNOTSUPP;
	siginfo_t si;
	while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL) < 0 && errno == EINTR)
		;
	close(pidfd);
	return 0;
}

static int check_overlay(void)
{
	FILE *f = fopen("/proc/filesystems", "re");
	if (!f)
		return -errno;
	char line[128];
	int found = 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "\toverlay\n"))
			found = 1;
	fclose(f);
	/* Not listed can also mean "module not loaded yet"; see if it exists. */
	if (!found && access("/sys/module/overlay", F_OK) == 0)
		found = 1;
	return found ? 0 : -ENODEV;
}

static int check_image(const char *rootfs, struct ns_spawn_opts *ids)
{
	struct stat st;
	if (stat(rootfs, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* The image's owner is the host id guest root maps to (the image build
	 * chowns the tree); anything below ID_RANGE would map host users. */
	if (st.st_uid < ID_RANGE || st.st_gid < ID_RANGE || st.st_uid > UINT32_MAX - ID_RANGE ||
	    st.st_gid > UINT32_MAX - ID_RANGE)
		return -EINVAL;
	ids->uid_base = st.st_uid;
	ids->gid_base = st.st_gid;
	char init[4200];
	snprintf(init, sizeof init, "%s/init", rootfs);
	if (stat(init, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
		return -ENOEXEC;
	return 0;
}

/* Lowering oom_score_adj below what a process inherited needs
 * CAP_SYS_RESOURCE, which some container hosts drop from the bounding set. */
static bool have_cap(int cap)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	char line[256];
	unsigned long long eff = 0;
	bool found = false;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = true;
			break;
		}
	fclose(f);
	return found && (eff >> cap) & 1u;
}

/* Scratch dirs of daemons that died: empty (nothing is ever mounted on
 * them on the host), named after their pid. */
static void remove_stale_scratch(const char *base)
{
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		int pid;
		if (sscanf(de->d_name, "vmpoolfs-ns.%d.", &pid) != 1 || pid <= 0 || pid == getpid())
			continue;
		if (kill(pid, 0) < 0 && errno == ESRCH)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

int ns_host_make_scratch(char **out)
{
	static const char *const bases[] = { "/run", "/tmp" };
	for (size_t i = 0; i < 2; i++) {
		char *p;
		remove_stale_scratch(bases[i]);
		if (asprintf(&p, "%s/vmpoolfs-ns.%d.XXXXXX", bases[i], (int)getpid()) < 0)
			return -ENOMEM;
		/* 0700 is enough: the child mounts on it before any guest id
		 * looks inside, and no host user should. */
		if (mkdtemp(p)) {
			*out = p;
			return 0;
		}
		free(p);
	}
	return -errno;
}

int ns_host_check(void)
{
	if (geteuid() != 0) {
		ns_host_complain("needs root (id maps, cgroups)", -EPERM);
		return -EPERM;
	}
	int err = check_userns();
	if (err) {
		ns_host_complain("user namespaces are disabled", err);
		return err;
	}
	if ((err = check_overlay())) {
		ns_host_complain("overlayfs is not available", err);
		return err;
	}
	return 0;
}

int ns_host_ids(const char *rootfs, struct ns_spawn_opts *ids)
{
	int err = check_image(rootfs, ids);
	if (err) {
		ns_host_complain(err == -EINVAL ? "image rootfs/ is not owned by a mapped id range (uid/gid "
						  ">= 65536)"
						: "image rootfs/ with an executable /init not found",
				 err);
		return err;
	}
	ids->oom_protect = have_cap(CAP_SYS_RESOURCE);
	if (!ids->oom_protect)
		vlog_warn(NULL, "ns: no CAP_SYS_RESOURCE here: agents keep oom_score_adj 0 "
				"(the OOM killer still prefers the largest process, a command)");
	return 0;
}
