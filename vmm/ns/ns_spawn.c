/* Spawning one ns sandbox: clone into fresh namespaces (and, already, into
 * the machine's cgroup), let the parent write the id maps and the OOM
 * protection while the child waits, then the child
 * builds its root (tmpfs + overlayfs + /dev), pivots into it, drops what it
 * must not keep and execs the agent as PID 1.
 *
 * The daemon is multithreaded and the child is a fork-like copy of it, so
 * the child (child_main and everything it calls) only makes raw system calls
 * on memory prepared before clone: no malloc, no stdio, no locks, and no
 * glibc set*id wrappers (they signal the parent's other threads, which do
 * not exist in the child). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>
#include <linux/seccomp.h>

#include "lib/clock.h"
#include "lib/vlog.h"
#include "vmm/ns/ns.h"

#define CHANNEL_FD 3 /* where the agent finds the channel (VMPOOL_CHANNEL_FD) */
#define ERR_FD 4     /* error pipe until execve (close-on-exec) */
#define HIGH_FD 64   /* parking place while 0..4 are rearranged */

struct ns_plan {
	char lowers[NS_MAX_LAYERS][PATH_MAX]; /* topmost first */
	int nlowers;
	char scratch[PATH_MAX];
	char upper[PATH_MAX], work[PATH_MAX], merged[PATH_MAX], dev[PATH_MAX], proc[PATH_MAX], sys[PATH_MAX];
	char tmpfs_opts[96];
	char ovl_tail[2 * PATH_MAX + 64]; /* overlay options after "lowerdir=/proc/self/fd/N:..." */
	const struct sock_fprog *seccomp;
	char *argv[2];
	char *envp[4];
	char env_nofile[40];
	uint32_t cmd_nofile;
};

/* Device nodes bind-mounted from the host: guest root cannot mknod (nodes
 * on a user-namespace mount do not open anyway), and these are harmless. */
static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
static const char *const dev_host[] = { "/dev/null",   "/dev/zero",    "/dev/full",
					"/dev/random", "/dev/urandom", "/dev/tty" };
static const struct {
	const char *target, *name;
} dev_links[] = {
	{ "/proc/self/fd", "fd" },	 { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
	{ "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
};

/* Where the child failed, for the parent's message. */
enum step {
	ST_IDS = 1,
	ST_CGROUPNS,
	ST_PRIVATE,
	ST_SCRATCH,
	ST_LAYERS,
	ST_OVERLAY,
	ST_PROC,
	ST_SYS,
	ST_DEV,
	ST_DEVNODE,
	ST_LOOPBACK,
	ST_HOSTNAME,
	ST_PIVOT,
	ST_FDS,
	ST_RLIMIT,
	ST_NNP,
	ST_SECCOMP,
	ST_EXEC,
};
static const char *const step_names[] = {
	[ST_IDS] = "setresuid/setgroups",
	[ST_CGROUPNS] = "cgroup namespace",
	[ST_PRIVATE] = "make / private",
	[ST_SCRATCH] = "tmpfs for the writable layer",
	[ST_LAYERS] = "upper/work dirs",
	[ST_OVERLAY] = "overlayfs mount",
	[ST_PROC] = "/proc",
	[ST_SYS] = "/sys",
	[ST_DEV] = "/dev tmpfs",
	[ST_DEVNODE] = "/dev nodes",
	[ST_LOOPBACK] = "loopback up",
	[ST_HOSTNAME] = "hostname",
	[ST_PIVOT] = "pivot_root",
	[ST_FDS] = "file descriptors",
	[ST_RLIMIT] = "RLIMIT_NOFILE",
	[ST_NNP] = "no_new_privs",
	[ST_SECCOMP] = "seccomp filter",
	[ST_EXEC] = "execve /init",
};

struct child_err {
	int step, err;
};

int ns_plan_new(const char (*lowers)[PATH_MAX], int nlowers, const char *scratch, uint64_t disk_bytes,
		uint32_t cmd_nofile, const struct ns_seccomp *sc, struct ns_plan **out)
{
	if (nlowers < 1 || nlowers > NS_MAX_LAYERS)
		return -EINVAL;
	struct ns_plan *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	int bad = 0;
	for (int i = 0; i < nlowers; i++)
		memcpy(p->lowers[i], lowers[i], PATH_MAX);
	p->nlowers = nlowers;
	bad |= snprintf(p->scratch, sizeof p->scratch, "%s", scratch) >= (int)sizeof p->scratch;
	bad |= snprintf(p->upper, sizeof p->upper, "%s/upper", scratch) >= (int)sizeof p->upper;
	bad |= snprintf(p->work, sizeof p->work, "%s/work", scratch) >= (int)sizeof p->work;
	bad |= snprintf(p->merged, sizeof p->merged, "%s/root", scratch) >= (int)sizeof p->merged;
	bad |= snprintf(p->dev, sizeof p->dev, "%s/root/dev", scratch) >= (int)sizeof p->dev;
	bad |= snprintf(p->proc, sizeof p->proc, "%s/root/proc", scratch) >= (int)sizeof p->proc;
	bad |= snprintf(p->sys, sizeof p->sys, "%s/root/sys", scratch) >= (int)sizeof p->sys;
	/* The tmpfs holds the guest's writes: its size is the guest's disk. */
	snprintf(p->tmpfs_opts, sizeof p->tmpfs_opts, "size=%llu,mode=0755", (unsigned long long)disk_bytes);
	/* userxattr: overlay metadata in user.overlay.* — trusted.* xattrs need
	 * host privileges a user-namespace mount does not have. */
	bad |= snprintf(p->ovl_tail, sizeof p->ovl_tail, ",upperdir=%s,workdir=%s,userxattr", p->upper,
			p->work) >= (int)sizeof p->ovl_tail;
	if (bad) {
		ns_plan_free(p);
		return -ENAMETOOLONG;
	}
	p->seccomp = &sc->prog;
	p->argv[0] = (char *)"/init";
	p->envp[0] = (char *)"VMPOOL_CHANNEL_FD=3";
	p->envp[1] = (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	p->cmd_nofile = cmd_nofile;
	if (cmd_nofile) {
		snprintf(p->env_nofile, sizeof p->env_nofile, "VMPOOL_CMD_NOFILE=%u", cmd_nofile);
		p->envp[2] = p->env_nofile;
	}
	*out = p;
	return 0;
}

void ns_plan_free(struct ns_plan *p)
{
	free(p);
}

/* ---- child (async-signal-safe only) ------------------------------------ */

struct child_args {
	const struct ns_plan *plan;
	int chan, release_rd, err_wr;
	int log; /* the agent's stderr, or -1 */
};

static _Noreturn void child_fail(int err_wr, int step, int err)
{
	struct child_err e = { step, err };
	ssize_t w = write(err_wr, &e, sizeof e);
	(void)w;
	_exit(127);
}

#define TRY(step, expr)                                       \
	do {                                                  \
		if ((expr) < 0)                               \
			child_fail(a->err_wr, (step), errno); \
	} while (0)

/* "lowerdir=/proc/self/fd/N:/proc/self/fd/M..." + tail, without stdio. */
static void build_ovl_opts(char *out, const int *fds, int nfds, const char *tail)
{
	static const char head[] = "lowerdir=", fdp[] = "/proc/self/fd/";
	size_t o = sizeof head - 1;
	memcpy(out, head, o);
	for (int i = 0; i < nfds; i++) {
		if (i)
			out[o++] = ':';
		memcpy(out + o, fdp, sizeof fdp - 1);
		o += sizeof fdp - 1;
		char digits[12];
		int n = 0;
		unsigned v = (unsigned)fds[i];
		do {
			digits[n++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		while (n)
			out[o++] = digits[--n];
	}
	size_t tl = strlen(tail);
	memcpy(out + o, tail, tl + 1);
}

static void child_signals(void)
{
	/* Handlers of the daemon make no sense here, and an ignored signal
	 * would stay ignored across execve into the guest. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL); /* EINVAL for libc-reserved ones: fine */
}

/* proc and sysfs are mounted here, not by the agent: the kernel lets a
 * user namespace mount them only while an unobscured instance is visible
 * in its mount namespace, i.e. before the host's tree is detached. This
 * proc is our pid namespace's, this sysfs shows our net namespace. */
static void child_kernfs(const struct child_args *a)
{
	const struct ns_plan *p = a->plan;
	const unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mkdir(p->proc, 0555) < 0 && errno != EEXIST)
		child_fail(a->err_wr, ST_PROC, errno);
	TRY(ST_PROC, mount("proc", p->proc, "proc", fl, NULL));
	if (mkdir(p->sys, 0555) < 0 && errno != EEXIST)
		child_fail(a->err_wr, ST_SYS, errno);
	TRY(ST_SYS, mount("sysfs", p->sys, "sysfs", fl | MS_RDONLY, NULL));
}

static void child_dev(const struct child_args *a)
{
	const struct ns_plan *p = a->plan;
	if (mkdir(p->dev, 0755) < 0 && errno != EEXIST)
		child_fail(a->err_wr, ST_DEV, errno);
	TRY(ST_DEV, mount("tmpfs", p->dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"));
	TRY(ST_DEV, chdir(p->dev));
	for (size_t i = 0; i < sizeof dev_nodes / sizeof dev_nodes[0]; i++) {
		int fd = open(dev_nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0)
			child_fail(a->err_wr, ST_DEVNODE, errno);
		close(fd);
		TRY(ST_DEVNODE, mount(dev_host[i], dev_nodes[i], NULL, MS_BIND, NULL));
	}
	TRY(ST_DEV, mkdir("pts", 0755));
	TRY(ST_DEV, mkdir("shm", 01777));
	TRY(ST_DEV, chmod("shm", 01777)); /* umask */
	for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++)
		TRY(ST_DEV, symlink(dev_links[i].target, dev_links[i].name));
}

static void child_loopback(const struct child_args *a)
{
	/* A new net namespace has only lo, and it starts down. */
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		child_fail(a->err_wr, ST_LOOPBACK, errno);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	TRY(ST_LOOPBACK, ioctl(s, SIOCGIFFLAGS, &ifr));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	TRY(ST_LOOPBACK, ioctl(s, SIOCSIFFLAGS, &ifr));
	close(s);
}

static void child_fds(struct child_args *a)
{
	/* Park the fds we keep above 0..4, then lay out 0-1 = /dev/null,
	 * 2 = the log pipe (or /dev/null), 3 = channel (inheritable),
	 * 4 = error pipe (close-on-exec). */
	int chan = fcntl(a->chan, F_DUPFD, HIGH_FD);
	if (chan < 0)
		child_fail(a->err_wr, ST_FDS, errno);
	int ew = fcntl(a->err_wr, F_DUPFD_CLOEXEC, HIGH_FD);
	if (ew < 0)
		child_fail(a->err_wr, ST_FDS, errno);
	a->err_wr = ew;
	int log = a->log >= 0 ? fcntl(a->log, F_DUPFD_CLOEXEC, HIGH_FD) : -1;
	if (a->log >= 0 && log < 0)
		child_fail(a->err_wr, ST_FDS, errno);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		child_fail(a->err_wr, ST_FDS, errno);
	for (int fd = 0; fd < 3; fd++) {
		int from = fd == 2 && log >= 0 ? log : nul;
		if (fd != from)
			TRY(ST_FDS, dup2(from, fd)); /* dup2 clears close-on-exec */
		else
			TRY(ST_FDS, fcntl(fd, F_SETFD, 0));
	}
	TRY(ST_FDS, dup2(chan, CHANNEL_FD));
	TRY(ST_FDS, dup3(ew, ERR_FD, O_CLOEXEC));
	a->err_wr = ERR_FD;
	TRY(ST_FDS, syscall(SYS_close_range, ERR_FD + 1, ~0U, 0));
}

static _Noreturn void child_main(struct child_args *a)
{
	const struct ns_plan *p = a->plan;
	child_signals();
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Wait until the parent has written our id maps and put us in our
	 * cgroup: nothing of ours may run before the limits apply. */
	char c;
	ssize_t r;
	while ((r = read(a->release_rd, &c, 1)) < 0 && errno == EINTR)
		;
	if (r != 1)
		_exit(126); /* the parent gave up on us */
	close(a->release_rd);

	/* The image may sit below directories only host root can search. We
	 * still act as host uid 0 (owner permissions, no capabilities) until
	 * setresuid, so open it now; the overlay then takes it by fd. The fd
	 * must be opened here, in our own mount namespace: overlayfs refuses
	 * a layer on a mount of another namespace (the parent's fd would be). */
	int lower[NS_MAX_LAYERS];
	for (int i = 0; i < p->nlowers; i++)
		if ((lower[i] = open(p->lowers[i], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			child_fail(a->err_wr, ST_OVERLAY, errno);
	char ovl_opts[sizeof p->ovl_tail + 32 * NS_MAX_LAYERS];
	build_ovl_opts(ovl_opts, lower, p->nlowers, p->ovl_tail);

	/* Become the namespace's root (host uid/gid base), and drop the host's
	 * supplementary groups: gid 0 among them would still grant root's group
	 * access to whatever host file stays reachable. */
	TRY(ST_IDS, syscall(SYS_setgroups, 0, NULL));
	TRY(ST_IDS, syscall(SYS_setresgid, 0, 0, 0));
	TRY(ST_IDS, syscall(SYS_setresuid, 0, 0, 0));
	/* Now that we sit in our own cgroup, make it the root of our cgroup
	 * view so other machines' cgroups are invisible. */
	TRY(ST_CGROUPNS, unshare(CLONE_NEWCGROUP));

	/* Nothing we mount may propagate back to the host. */
	TRY(ST_PRIVATE, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	TRY(ST_SCRATCH, mount("tmpfs", p->scratch, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts));
	TRY(ST_LAYERS, mkdir(p->upper, 0755));
	TRY(ST_LAYERS, mkdir(p->work, 0755));
	TRY(ST_LAYERS, mkdir(p->merged, 0755));
	TRY(ST_OVERLAY, mount("overlay", p->merged, "overlay", 0, ovl_opts));
	for (int i = 0; i < p->nlowers; i++)
		close(lower[i]);
	/* The upper dir to the daemon (snapshots), before it is detached. */
	int up = open(p->upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (up < 0 || ns_layers_send_fd(a->chan, up) < 0)
		child_fail(a->err_wr, ST_LAYERS, errno);
	close(up);
	child_kernfs(a);
	child_dev(a);
	child_loopback(a);
	TRY(ST_HOSTNAME, sethostname("vmpool", 6));

	/* pivot_root(".", ".") stacks the old root on the new one; detaching it
	 * leaves the host's tree unreachable (bubblewrap does the same). */
	TRY(ST_PIVOT, chdir(p->merged));
	TRY(ST_PIVOT, syscall(SYS_pivot_root, ".", "."));
	TRY(ST_PIVOT, umount2(".", MNT_DETACH));
	TRY(ST_PIVOT, chdir("/"));

	child_fds(a);
	/* Soft and hard before any guest code runs: guest root cannot raise a
	 * hard limit (that takes CAP_SYS_RESOURCE of the host). The agent
	 * lowers its commands' to p->cmd_nofile. */
	if (p->cmd_nofile) {
		struct rlimit rl = { MACHINE_AGENT_NOFILE, MACHINE_AGENT_NOFILE };
		TRY(ST_RLIMIT, setrlimit(RLIMIT_NOFILE, &rl));
	}
	TRY(ST_NNP, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	TRY(ST_SECCOMP, syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, p->seccomp));
	execve(p->argv[0], p->argv, p->envp);
	child_fail(a->err_wr, ST_EXEC, errno);
}

/* ---- parent ------------------------------------------------------------ */

static int write_proc(pid_t pid, const char *name, const char *val)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(val);
	ssize_t w = write(fd, val, n); /* id maps must be written in one call */
	int err = w < 0 ? -errno : (size_t)w != n ? -EIO : 0;
	close(fd);
	return err;
}

/* Waits for the child's verdict: EOF on the error pipe = execve succeeded. */
static int wait_exec(int err_rd, int timeout_ms)
{
	uint64_t deadline = deadline_after_ms(timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
	for (;;) {
		int left = deadline_left_ms(deadline);
		struct pollfd pfd = { .fd = err_rd, .events = POLLIN };
		int n = poll(&pfd, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		struct child_err e;
		ssize_t r = read(err_rd, &e, sizeof e);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return 0;
		if (r != (ssize_t)sizeof e)
			return -EIO;
		const char *what = e.step > 0 && e.step < (int)(sizeof step_names / sizeof step_names[0])
					   ? step_names[e.step]
					   : "?";
		vlog_err(NULL, "ns: machine setup failed at %s: %s", what, strerror(e.err));
		return e.err > 0 ? -e.err : -EIO;
	}
}

static void reap(int pidfd)
{
	siginfo_t si;
	while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL) < 0 && errno == EINTR)
		;
}

void ns_spawn_kill(struct ns_spawned *s)
{
	if (s->pidfd < 0)
		return;
	/* SIGKILL to PID 1 of the pid namespace: the kernel kills every other
	 * process in it, and PID 1 is only reapable once they are all gone. */
	syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
	reap(s->pidfd);
	close(s->pidfd);
	s->pidfd = -1;
	s->pid = 0;
	if (s->upper_fd >= 0)
		close(s->upper_fd);
	s->upper_fd = -1;
}

bool ns_spawn_exited(const struct ns_spawned *s)
{
	if (s->pidfd < 0)
		return true;
	struct pollfd pfd = { .fd = s->pidfd, .events = POLLIN };
	return poll(&pfd, 1, 0) != 0; /* readable (or error) once it exited */
}

/* A unix stream socket caps each skb at ~32 KiB and blocks its sender once
 * sk_sndbuf (208 KiB by default) is queued, so a 1 MiB READ or WRITE frame
 * crossed the channel as a ping-pong of wakeups between daemon and agent.
 * Room for a few whole frames in flight lets each side write a frame in
 * one call and the other read it in one. Unix sockets ignore SO_RCVBUF
 * (the sender's buffer is the queue), so both ends get SO_SNDBUF: FORCE
 * as root, else whatever wmem_max allows. Best effort: the defaults work,
 * only slower. */
#define CHAN_SNDBUF (4 << 20)
static void chan_bufs(const int sv[2])
{
	for (int i = 0; i < 2; i++) {
		int v = CHAN_SNDBUF / 2; /* the kernel doubles it */
		if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
			(void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	}
}

int ns_spawn(const struct ns_plan *p, const struct ns_spawn_opts *o, const struct ns_cgroups *cgs,
	     const struct ns_cg *cg, int stderr_fd, int timeout_ms, struct ns_spawned *out)
{
	int sv[2] = { -1, -1 }, rel[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int err = 0;
	out->pid = 0;
	out->pidfd = -1;
	out->chan_fd = -1;
	out->upper_fd = -1;
	/* Both ends close-on-exec in the daemon; the child re-creates fd 3
	 * without the flag, so only the agent inherits the guest end. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	chan_bufs(sv);
	/* The release channel is a socket so that releasing a child that has
	 * died meanwhile gives EPIPE (MSG_NOSIGNAL), not a SIGPIPE to the daemon. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rel) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		err = -errno;
		goto out_fds;
	}

	struct ns_cg_clone cgc;
	if ((err = ns_cg_clone_begin(cgs, cg, &cgc)))
		goto out_fds;
	/* Block signals across clone so no daemon handler runs in the child
	 * before it resets them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int pidfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	/* The cgroup namespace is entered by the child after it has been moved
	 * to its cgroup (see child_main). exit_signal 0: no SIGCHLD, and a
	 * stray waitpid(-1) elsewhere in the daemon does not reap our agents
	 * (only __WALL waits see them). */
	ca.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
		   CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = 0;
	if (cgc.cgroup_fd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cgc.cgroup_fd;
	}
	long pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0) {
		struct child_args a = { .plan = p,
					.chan = sv[1],
					.release_rd = rel[0],
					.err_wr = errp[1],
					.log = stderr_fd };
		child_main(&a);
	}
	int clone_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	int cg_err = ns_cg_clone_end(&cgc);
	close(sv[1]);
	close(rel[0]);
	close(errp[1]);
	sv[1] = rel[0] = errp[1] = -1;
	if (pid < 0) {
		err = -clone_errno;
		goto out_fds;
	}
	out->pid = (pid_t)pid;
	out->pidfd = pidfd;
	if (cg_err) { /* this thread is stuck in the machine's cgroup: it could never be removed */
		err = cg_err;
		goto fail;
	}

	char map[64];
	snprintf(map, sizeof map, "0 %u 65536\n", o->uid_base);
	if ((err = write_proc(out->pid, "uid_map", map)))
		goto fail;
	snprintf(map, sizeof map, "0 %u 65536\n", o->gid_base);
	if ((err = write_proc(out->pid, "gid_map", map)))
		goto fail;
	/* The agent must outlive the OOM killer: the memory limit then kills
	 * the command that overran it, not the machine. Children of the agent
	 * go back to 0 (the agent does that). */
	if (o->oom_protect && (err = write_proc(out->pid, "oom_score_adj", "-1000")))
		goto fail;
	if (send(rel[1], "x", 1, MSG_NOSIGNAL) != 1) {
		err = -errno;
		goto fail;
	}
	close(rel[1]);
	rel[1] = -1;
	if ((err = wait_exec(errp[0], timeout_ms)))
		goto fail;
	if ((err = ns_layers_recv_fd(sv[0], &out->upper_fd)))
		goto fail;
	close(errp[0]);
	out->chan_fd = sv[0];
	return 0;

fail:
	ns_spawn_kill(out);
out_fds:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (rel[i] >= 0)
			close(rel[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	out->chan_fd = -1;
	return err;
}
