/* PID 1 duties: the mounts a shell expects, loopback, hostname; in a VM
 * also the virtio modules and the console port that carries the channel.
 * Nothing here is fatal except having no channel: a guest missing /sys is
 * still useful, a guest that cannot talk is not. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

void agent_std_fds(bool console)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int n = console ? open("/dev/console", O_RDWR | O_NOCTTY) : -1;
		if (n < 0)
			n = open("/dev/null", O_RDWR);
		if (n < 0)
			return;
		if (n != fd) {
			/* The lowest free fd was taken, so n > fd only when
			 * something below it was closed meanwhile: move it. */
			dup2(n, fd);
			close(n);
		}
	}
}

static void mkdir_p1(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		AGENT_LOG("mkdir %s: %s", path, strerror(errno));
}

/* EBUSY: already mounted there (the ns backend may have done it). */
static int do_mount(const char *src, const char *target, const char *type, unsigned long flags,
		    const char *data)
{
	mkdir_p1(target, 0755);
	if (mount(src, target, type, flags, data) == 0 || errno == EBUSY)
		return 0;
	int e = errno;
	if (!(e == EPERM && !strcmp(type, "devtmpfs")))
		AGENT_LOG("mount %s on %s: %s", type, target, strerror(e));
	return -e;
}

static void link_if_absent(const char *target, const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0 && symlink(target, path) < 0)
		AGENT_LOG("symlink %s: %s", path, strerror(errno));
}

static void lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		AGENT_LOG("lo: socket: %s", strerror(errno));
		return;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		AGENT_LOG("lo: SIOCGIFFLAGS: %s", strerror(errno));
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			AGENT_LOG("lo: SIOCSIFFLAGS: %s", strerror(errno));
	}
	close(s);
}

void agent_pid1_setup(bool vm)
{
	const unsigned long nosuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	/* The ns backend mounts proc and sysfs before the agent runs (a user
	 * namespace may mount them only while the host's instances are still
	 * visible: ns_spawn.c, child_kernfs); another sysfs would be refused
	 * here (EPERM) and only add noise to the agent's log. */
	if (vm) {
		do_mount("proc", "/proc", "proc", nosuid, NULL);
		do_mount("sysfs", "/sys", "sysfs", nosuid, NULL);
	}
	/* Only a VM has devices of its own. The ns backend has bind-mounted
	 * the nodes a command needs into /dev already; devtmpfs there would
	 * give EPERM in its user namespace, and without one it would show
	 * the host's devices. */
	if (vm)
		do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	/* A devtmpfs /dev/ptmx node finds the devpts next to it; without one,
	 * this instance's ptmx is the way in. */
	link_if_absent("pts/ptmx", "/dev/ptmx");
	do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	/* In the ns backend /tmp stays a directory of the overlay (1777 in the
	 * image), so what a command writes there counts against -o disk= and
	 * fails with ENOSPC past it: a tmpfs here had no size and took up to
	 * half the host's memory (12 GB seen by `df /tmp` on a 24 GB host).
	 * A VM's root is its initramfs, which has no bound of its own. */
	if (vm)
		do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	do_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	link_if_absent("/proc/self/fd", "/dev/fd");
	link_if_absent("/proc/self/fd/0", "/dev/stdin");
	link_if_absent("/proc/self/fd/1", "/dev/stdout");
	link_if_absent("/proc/self/fd/2", "/dev/stderr");
	lo_up();
	if (sethostname("vmpool", 6) < 0)
		AGENT_LOG("sethostname: %s", strerror(errno));
}

/* ---- VM mode ----------------------------------------------------------- */

/* The module parameters for virtio_mmio: each "virtio_mmio.X" word of the
 * kernel command line becomes "X" (the kernel only applies such words
 * itself to built-in code; for a module, its loader must pass them). */
static void mmio_params(char *out, size_t cap)
{
	out[0] = '\0';
	char line[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		AGENT_LOG("/proc/cmdline: %s", strerror(errno));
		return;
	}
	ssize_t n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n <= 0)
		return;
	line[n] = '\0';
	static const char prefix[] = "virtio_mmio.";
	size_t used = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(w, prefix, sizeof prefix - 1))
			continue;
		w += sizeof prefix - 1;
		size_t wl = strlen(w);
		if (used + wl + 2 > cap) {
			AGENT_LOG("virtio_mmio parameters too long; dropping %s", w);
			continue;
		}
		if (used)
			out[used++] = ' ';
		memcpy(out + used, w, wl + 1);
		used += wl;
	}
}

struct kmod {
	const char *path; /* under /lib/modules/RELEASE/kernel/drivers/ */
	bool mmio;	  /* gets the virtio_mmio.* parameters */
};

/* 1 when the file is absent (the driver is built in, or not needed). */
static int load_one(const char *dir, const struct kmod *k, const char *mmio)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, k->path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : -errno;
	int r = (int)syscall(SYS_finit_module, fd, k->mmio ? mmio : "", 0);
	int e = errno;
	close(fd);
	if (r < 0 && e != EEXIST)
		return -e;
	return 0;
}

int agent_vm_load_modules(void)
{
	static const struct kmod mods[] = {
		{ "virtio/virtio_ring.ko", false },
		{ "virtio/virtio.ko", false },
		{ "virtio/virtio_mmio.ko", true },
		{ "char/virtio_console.ko", false },
	};
	enum { NMODS = sizeof mods / sizeof mods[0] };
	struct utsname u;
	if (uname(&u) < 0)
		return -errno;
	char dir[300];
	snprintf(dir, sizeof dir, "/lib/modules/%s/kernel/drivers", u.release);
	char mmio[2048];
	mmio_params(mmio, sizeof mmio);

	/* The order above is the dependency order of Debian's kernel, but it
	 * is not relied on: whatever failed (ENOENT for an unknown symbol) is
	 * retried until a pass makes no progress. */
	int res[NMODS];
	bool done[NMODS] = { false };
	for (int pass = 0; pass < NMODS; pass++) {
		bool progress = false, pending = false;
		for (int i = 0; i < NMODS; i++) {
			if (done[i])
				continue;
			res[i] = load_one(dir, &mods[i], mmio);
			if (res[i] >= 0)
				done[i] = progress = true;
			else
				pending = true;
		}
		if (!pending || !progress)
			break;
	}
	int ret = 0;
	for (int i = 0; i < NMODS; i++) {
		if (!done[i]) {
			AGENT_LOG("module %s/%s: %s", dir, mods[i].path, strerror(-res[i]));
			ret = res[i];
		}
	}
	return ret;
}

static int open_port(const char *path, int *out)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (isatty(fd)) {
		/* hvc0 is a tty: without raw mode the line discipline would
		 * translate and echo our binary frames. */
		struct termios t;
		if (tcgetattr(fd, &t) == 0) {
			cfmakeraw(&t);
			tcsetattr(fd, TCSANOW, &t);
		}
	}
	*out = fd;
	return 0;
}

static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return 0;
}

/* The node that carries the channel, from sysfs: port 1 of a multiport
 * console (VIRTIO_CONSOLE_F_MULTIPORT, feature bit 1), else the console
 * port itself, hvc0. Port 0 of a multiport device is hvc0 too and shows up
 * before port 1 does, so "whichever opens first" would pick wrongly. The
 * features file holds the negotiated bits once the driver has probed,
 * which is also before either node exists. */
static int channel_path(char *path, size_t cap)
{
	static const char base[] = "/sys/bus/virtio/devices";
	DIR *d = opendir(base);
	if (!d)
		return -errno;
	int r = -ENOENT;
	struct dirent *de;
	while ((de = readdir(d))) {
		unsigned idx;
		char p[320], buf[160];
		if (sscanf(de->d_name, "virtio%u", &idx) != 1)
			continue;
		snprintf(p, sizeof p, "%s/%s/device", base, de->d_name);
		if (read_small(p, buf, sizeof buf) < 0 || strtoul(buf, NULL, 0) != 3 /* console */)
			continue;
		snprintf(p, sizeof p, "%s/%s/features", base, de->d_name);
		if (read_small(p, buf, sizeof buf) < 0 || strlen(buf) < 2)
			continue;
		if (buf[1] == '1')
			snprintf(path, cap, "/dev/vport%up1", idx);
		else
			snprintf(path, cap, "/dev/hvc0");
		r = 0;
		break;
	}
	closedir(d);
	return r;
}

int agent_vm_open_channel(int *fd)
{
	/* The node appears once the driver probed the device (and, for a
	 * multiport one, once the monitor announced port 1), which under
	 * emulation takes a while after the module loaded: up to 10 s. */
	const struct timespec step = { 0, 10 * 1000 * 1000 };
	int r = -ENOENT;
	char path[64] = "/dev/vport0p1";
	for (int i = 0; i < 1000; i++) {
		if (channel_path(path, sizeof path) == 0) {
			r = open_port(path, fd);
		} else {
			/* No sysfs to ask: take either. */
			snprintf(path, sizeof path, "/dev/vport0p1");
			r = open_port(path, fd);
			if (r < 0)
				r = open_port("/dev/hvc0", fd);
		}
		if (r == 0)
			return 0;
		nanosleep(&step, NULL);
	}
	AGENT_LOG("no virtio console port (%s): %s", path, strerror(-r));
	return r;
}

/* ---- the commands' namespaces (ns guest) ------------------------------ */

/* As guest root, a command holds every capability of the guest's user
 * namespace, CAP_SYS_PTRACE and CAP_KILL included, so credentials cannot
 * keep it from the agent: making the agent non-dumpable does not either
 * (__ptrace_may_access then asks for CAP_SYS_PTRACE in the user namespace
 * of the agent's mm, which is the guest's). What keeps it out is that it cannot name the
 * agent: commands live in a pid namespace below the agent's, where the
 * agent has no pid, and see a /proc of that namespace only, in a mount
 * namespace of their own (the agent keeps its /proc, which agent_fs.c
 * needs for /proc/self/fd). ptrace, kill, pidfd_open, process_vm_*,
 * /proc/N/mem and /proc/N/fd all take a pid or a path, and nothing a
 * command can reach leads to the agent: its fds are CLOEXEC, its pipes
 * and channel are not named, its mount namespace has no fd a command can
 * open. pid 1 of the commands is a child of the agent that holds nothing:
 * no fd, no handler; SIGCHLD ignored, so the kernel reaps orphans itself
 * even while a command keeps that init stopped. If a command kills it
 * (a tracer can), the kernel ends that pid namespace; the next command
 * gets a new one in the same mount namespace. */

#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x1
#endif
#ifndef FSCONFIG_CMD_CREATE
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x1
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x4
#endif

struct agent_cmdns {
	pid_t init;	   /* in the agent's pid namespace; 0 once it ended */
	int own_pidns;	   /* the agent's own: back to it before making another */
	int pidns;	   /* the commands' current pid namespace */
	int mntns;	   /* the commands' mount namespace */
	int ready;	   /* the init's second word (its /proc) is still due */
	bool entered;	   /* the exec loop's children go into pidns */
	rlim_t cmd_nofile; /* commands' RLIMIT_NOFILE (VMPOOL_CMD_NOFILE); 0: the agent's */
	char root[48];
};

/* The init's /proc, in the child of fork (async-signal-safe only). The
 * proc is made detached first (fsmount) because a user namespace may
 * mount proc only while a fully visible one is in its mount namespace:
 * the old one, until it is detached just after. Every proc mounted at
 * /proc goes, so none of the agent's stays below. */
static int init_proc(void)
{
	int fc = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
	if (fc < 0)
		return -errno;
	int mnt = -1;
	if (syscall(SYS_fsconfig, fc, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		mnt = (int)syscall(SYS_fsmount, fc, FSMOUNT_CLOEXEC,
				   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	int e = errno;
	close(fc);
	if (mnt < 0)
		return -e;
	while (umount2("/proc", MNT_DETACH) == 0)
		;
	if (errno != EINVAL)
		return -errno; /* a proc of the agent could still be there */
	if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return -errno;
	close(mnt);
	return 0;
}

static __attribute__((noreturn)) void init_main(int mntns, int ready)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		sa.sa_handler = sig == SIGCHLD ? SIG_IGN : SIG_DFL;
		sigaction(sig, &sa, NULL);
	}
	/* Two words: the mount namespace is ours (the agent may open it), then
	 * /proc is. The second is awaited only by the first command: the
	 * unmount costs an RCU grace period, measured 0.1-11 ms here, which
	 * would otherwise lengthen every create. */
	int r = (mntns < 0 ? unshare(CLONE_NEWNS) : setns(mntns, CLONE_NEWNS)) < 0 ? -errno : 0;
	if (write(ready, &r, sizeof r) < 0 || r < 0)
		_exit(1);
	r = init_proc();
	if (write(ready, &r, sizeof r) < 0 || r < 0)
		_exit(1);
	/* Nothing for a command to take: no channel, no log pipe, no ns fd. */
	syscall(SYS_close_range, 0u, ~0u, 0u);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (;;)
		pause();
}

static int open_ns(pid_t pid, const char *which)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, which);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int read_word(int fd)
{
	int r = -EIO;
	ssize_t n;
	do
		n = read(fd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof r ? r : -EIO;
}

/* The init's /proc is in place (0), or could not be (the init is gone). */
static int await_proc(struct agent_cmdns *ns)
{
	if (ns->ready < 0)
		return 0;
	int r = read_word(ns->ready);
	close(ns->ready);
	ns->ready = -1;
	if (r < 0 && ns->init > 0) {
		/* Its mount namespace may still show our /proc: no command may
		 * run there before a new init has replaced it. */
		kill(ns->init, SIGKILL); /* the exec loop reaps it */
		ns->init = 0;
	}
	return r;
}

/* A new pid namespace and its init, for the calling thread's children.
 * Only the thread that forks commands may call it (it reaps), and it is
 * left with pid_for_children in the new namespace: such a thread cannot
 * start threads (clone refuses CLONE_THREAD then). */
static int make_init(struct agent_cmdns *ns)
{
	if (ns->ready >= 0) {
		close(ns->ready);
		ns->ready = -1;
	}
	if (setns(ns->own_pidns, CLONE_NEWPID) < 0 || unshare(CLONE_NEWPID) < 0)
		return -errno;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0)
		init_main(ns->mntns, p[1]);
	close(p[1]);
	int r = read_word(p[0]);
	if (r < 0)
		close(p[0]);
	int pidns = r < 0 ? r : open_ns(pid, "pid");
	int mntns = r < 0 || ns->mntns >= 0 ? ns->mntns : open_ns(pid, "mnt");
	if (r < 0 || pidns < 0 || mntns < 0) {
		if (r >= 0)
			close(p[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (pidns >= 0)
			close(pidns);
		return r < 0 ? r : pidns < 0 ? pidns : mntns;
	}
	if (ns->pidns >= 0)
		close(ns->pidns);
	ns->pidns = pidns;
	ns->mntns = mntns;
	ns->init = pid;
	ns->ready = p[0];
	return 0;
}

int agent_cmdns_new(struct agent_cmdns **out)
{
	struct agent_cmdns *ns = calloc(1, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	ns->pidns = ns->mntns = ns->ready = -1;
	/* The host gives the agent more open files than its commands (its
	 * root/ nodes are fds): the commands' own limit comes in this variable
	 * and is set, soft and hard, in each command before execve. */
	const char *nofile = getenv("VMPOOL_CMD_NOFILE");
	if (nofile)
		ns->cmd_nofile = (rlim_t)strtoul(nofile, NULL, 10);
	ns->own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	int r = ns->own_pidns < 0 ? -errno : make_init(ns);
	/* The main thread goes on making threads: back to our namespace. The
	 * exec loop enters the commands' at its first command. */
	if (r == 0 && setns(ns->own_pidns, CLONE_NEWPID) < 0)
		r = -errno;
	if (r < 0) {
		agent_cmdns_free(ns);
		return r;
	}
	snprintf(ns->root, sizeof ns->root, "/proc/%d/root", (int)ns->init);
	*out = ns;
	return 0;
}

void agent_cmdns_free(struct agent_cmdns *ns)
{
	if (!ns)
		return;
	if (ns->own_pidns >= 0)
		close(ns->own_pidns);
	if (ns->pidns >= 0)
		close(ns->pidns);
	if (ns->mntns >= 0)
		close(ns->mntns);
	if (ns->ready >= 0)
		close(ns->ready);
	free(ns);
}

const char *agent_cmdns_root(const struct agent_cmdns *ns)
{
	return ns->root;
}

int agent_cmdns_prepare(struct agent_cmdns *ns)
{
	int r = 0;
	if (ns->init == 0) {
		r = make_init(ns);
		if (r == 0)
			ns->entered = true;
	}
	if (r == 0 && !ns->entered) {
		if (setns(ns->pidns, CLONE_NEWPID) < 0)
			r = -errno;
		else
			ns->entered = true;
	}
	if (r == 0)
		r = await_proc(ns);
	if (r < 0)
		AGENT_LOG("commands' namespaces: %s", strerror(-r));
	return r;
}

int agent_cmdns_join(const struct agent_cmdns *ns)
{
	if (setns(ns->mntns, CLONE_NEWNS) < 0)
		return -errno;
	/* Lowering a hard limit needs no privilege, raising it again needs
	 * CAP_SYS_RESOURCE of the host: guest root cannot undo this. */
	struct rlimit rl = { ns->cmd_nofile, ns->cmd_nofile };
	if (ns->cmd_nofile && setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	return 0;
}

bool agent_cmdns_reaped(struct agent_cmdns *ns, pid_t pid, int status)
{
	if (!ns || pid != ns->init)
		return false;
	ns->init = 0;
	AGENT_LOG("the commands' init ended (status 0x%x); a new one comes with the next command", status);
	return true;
}
