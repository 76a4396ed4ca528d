/* rp_harness: one root/ proxy mounted on its own, for tests/root_proxy.bats.
 *
 *   rp_harness [--no-readdirplus] [--nested] DIR MOUNTPOINT
 *
 * Spawns the host build of the agent (`vmpool-agent-host --fd N --root DIR`,
 * path from $VMPOOL_AGENT_HOST or the build's own) over a socketpair,
 * connects a vp_client and mounts a proxy with ino_base 0 (the guest's "/"
 * is FUSE_ROOT_ID) on MOUNTPOINT, in the foreground, with the multithreaded
 * loop and the request sizes the daemon uses (1 MiB). Ends on SIGTERM,
 * SIGINT, SIGHUP or unmount: unmounts, frees the proxy and client, reaps the
 * agent. Exit status 0 after a clean end.
 *
 * With --nested the proxy gets ino_base 1 << 40, as in the daemon, and the
 * mount's root is a small read-only directory whose one entry "root" is the
 * guest's "/" (rp_lookup_root), like pool/NAME/root.
 *
 * SIGUSR1 runs rp_invalidate (as the daemon does when a command ends) and
 * then prints "rp_harness: invalidated N" to stderr, N counting from 1, so a
 * test knows when it is done. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/root_proxy.h"
#include "proto/client.h"

#ifndef VMPOOL_AGENT_HOST_PATH
#define VMPOOL_AGENT_HOST_PATH "vmpool-agent-host"
#endif

#define RP_HARNESS_IO (1u << 20)

struct harness {
	struct root_proxy *rp;
	bool readdirplus;
	bool nested;
};

static struct harness *H(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct root_proxy *RP(fuse_req_t req)
{
	return H(req)->rp;
}

/* Nested mode: the mount's root is ours, not the proxy's. */
static bool is_top(fuse_req_t req, fuse_ino_t ino)
{
	return H(req)->nested && ino == FUSE_ROOT_ID;
}

/* For operations that would change the top directory: refuses them. */
static bool refuse_top(fuse_req_t req, fuse_ino_t ino)
{
	if (!is_top(req, ino))
		return false;
	fuse_reply_err(req, EPERM);
	return true;
}

static void top_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 3;
}

/* Lists ".", ".." and "root". For readdirplus every entry goes without an
 * inode (ino 0), so no lookup is counted that the kernel would forget. */
static void top_readdir(fuse_req_t req, size_t size, off_t off, bool plus)
{
	static const char *const names[] = { ".", "..", "root" };
	char buf[1024];
	size_t used = 0;
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (off_t i = off; i >= 0 && i < 3; i++) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = i == 2 ? rp_root_ino(H(req)->rp) : FUSE_ROOT_ID;
		e.attr.st_mode = S_IFDIR;
		size_t n = plus ? fuse_add_direntry_plus(req, buf + used, size - used, names[i], &e, i + 1)
				: fuse_add_direntry(req, buf + used, size - used, names[i], &e.attr, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static void h_init(void *userdata, struct fuse_conn_info *conn)
{
	struct harness *h = userdata;
	/* What the daemon (fs/tree.c) does, so the proxy is tested under the
	 * same kernel behaviour: big requests, async reads, atomic O_TRUNC,
	 * page cache dropped only explicitly (open, rp_invalidate), no
	 * writeback cache (rp_open passes O_WRONLY and O_APPEND through). */
	conn->max_write = RP_HARNESS_IO;
	conn->max_readahead = RP_HARNESS_IO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_AUTO_INVAL_DATA);
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (!h->readdirplus)
		conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
}

static void h_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_top(req, parent)) {
		if (strcmp(name, "root") == 0)
			rp_lookup_root(RP(req), req);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	rp_lookup(RP(req), req, parent, name);
}

static void h_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	rp_forget(RP(req), ino, nlookup);
	fuse_reply_none(req);
}

static void h_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		rp_forget(RP(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void h_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_top(req, ino)) {
		struct stat st;
		top_stat(&st);
		fuse_reply_attr(req, &st, 1.0);
		return;
	}
	rp_getattr(RP(req), req, ino, fi);
}

static void h_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	if (refuse_top(req, ino))
		return;
	rp_setattr(RP(req), req, ino, attr, to_set, fi);
}

static void h_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (refuse_top(req, ino))
		return;
	rp_readlink(RP(req), req, ino);
}

static void h_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (refuse_top(req, parent))
		return;
	rp_mknod(RP(req), req, parent, name, mode, rdev);
}

static void h_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (refuse_top(req, parent))
		return;
	rp_mkdir(RP(req), req, parent, name, mode);
}

static void h_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (refuse_top(req, parent))
		return;
	rp_unlink(RP(req), req, parent, name);
}

static void h_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (refuse_top(req, parent))
		return;
	rp_rmdir(RP(req), req, parent, name);
}

static void h_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (refuse_top(req, parent))
		return;
	rp_symlink(RP(req), req, link, parent, name);
}

static void h_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	if (refuse_top(req, parent) || refuse_top(req, newparent))
		return;
	rp_rename(RP(req), req, parent, name, newparent, newname, flags);
}

static void h_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	if (refuse_top(req, newparent))
		return;
	rp_link(RP(req), req, ino, newparent, newname);
}

static void h_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (refuse_top(req, ino))
		return;
	rp_open(RP(req), req, ino, fi);
}

static void h_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	if (refuse_top(req, parent))
		return;
	rp_create(RP(req), req, parent, name, mode, fi);
}

static void h_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	rp_read(RP(req), req, ino, size, off, fi);
}

static void h_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	rp_write(RP(req), req, ino, buf, size, off, fi);
}

static void h_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	rp_flush(RP(req), req, ino, fi);
}

static void h_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	rp_release(RP(req), req, ino, fi);
}

static void h_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	rp_fsync(RP(req), req, ino, datasync, fi);
}

static void h_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_top(req, ino)) {
		fi->fh = 0;
		fuse_reply_open(req, fi);
		return;
	}
	rp_opendir(RP(req), req, ino, fi);
}

static void h_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (is_top(req, ino)) {
		top_readdir(req, size, off, false);
		return;
	}
	rp_readdir(RP(req), req, ino, size, off, fi);
}

static void h_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (is_top(req, ino)) {
		top_readdir(req, size, off, true);
		return;
	}
	rp_readdirplus(RP(req), req, ino, size, off, fi);
}

static void h_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_top(req, ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	rp_releasedir(RP(req), req, ino, fi);
}

static void h_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (refuse_top(req, ino))
		return;
	rp_fsyncdir(RP(req), req, ino, datasync, fi);
}

static void h_statfs(fuse_req_t req, fuse_ino_t ino)
{
	rp_statfs(RP(req), req, is_top(req, ino) ? rp_root_ino(RP(req)) : ino);
}

struct inval_thread {
	struct root_proxy *rp;
	struct fuse_session *se;
	pthread_t tid;
};

/* Waits for SIGUSR1 (invalidate) or SIGUSR2 (stop; sent by main). The two
 * are blocked in every thread, so only this sigwait sees them; and
 * rp_invalidate runs here, never on a thread serving a request. */
static void *inval_main(void *arg)
{
	struct inval_thread *t = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	unsigned long n = 0;
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0 || sig == SIGUSR2)
			return NULL;
		rp_invalidate(t->rp, t->se);
		fprintf(stderr, "rp_harness: invalidated %lu\n", ++n);
	}
}

static const struct fuse_lowlevel_ops harness_ops = {
	.init = h_init,
	.lookup = h_lookup,
	.forget = h_forget,
	.forget_multi = h_forget_multi,
	.getattr = h_getattr,
	.setattr = h_setattr,
	.readlink = h_readlink,
	.mknod = h_mknod,
	.mkdir = h_mkdir,
	.unlink = h_unlink,
	.rmdir = h_rmdir,
	.symlink = h_symlink,
	.rename = h_rename,
	.link = h_link,
	.open = h_open,
	.create = h_create,
	.read = h_read,
	.write = h_write,
	.flush = h_flush,
	.release = h_release,
	.fsync = h_fsync,
	.opendir = h_opendir,
	.readdir = h_readdir,
	.readdirplus = h_readdirplus,
	.releasedir = h_releasedir,
	.fsyncdir = h_fsyncdir,
	.statfs = h_statfs,
};

/* Starts the agent on one end of a socketpair; *chan gets the other. */
static int spawn_agent(const char *dir, pid_t *pid, int *chan)
{
	const char *agent = getenv("VMPOOL_AGENT_HOST");
	if (!agent || !*agent)
		agent = VMPOOL_AGENT_HOST_PATH;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t p = fork();
	if (p < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (p == 0) {
		/* The agent must not outlive a harness that is killed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* main blocked SIGUSR1/2 for its own use; the agent uses
		 * SIGUSR1 to interrupt its workers. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (fcntl(sv[1], F_SETFD, 0) < 0)
			_exit(127);
		char fdarg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
		execl(agent, agent, "--fd", fdarg, "--root", dir, (char *)NULL);
		fprintf(stderr, "rp_harness: exec %s: %s\n", agent, strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	*pid = p;
	*chan = sv[0];
	return 0;
}

/* Reaps the agent: it exits when its channel closes; give it 5 s, then kill. */
static int reap_agent(pid_t pid)
{
	int status = 0;
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	fprintf(stderr, "rp_harness: agent did not exit; killing it\n");
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

int main(int argc, char **argv)
{
	struct harness h = { .readdirplus = true };
	int ai = 1;
	for (; ai < argc && strncmp(argv[ai], "--", 2) == 0; ai++) {
		if (strcmp(argv[ai], "--no-readdirplus") == 0)
			h.readdirplus = false;
		else if (strcmp(argv[ai], "--nested") == 0)
			h.nested = true;
		else
			break;
	}
	if (argc - ai != 2) {
		fprintf(stderr, "usage: rp_harness [--no-readdirplus] [--nested] DIR MOUNTPOINT\n");
		return 2;
	}
	const char *dir = argv[ai], *mnt = argv[ai + 1];

	/* Blocked before any thread starts, so every thread inherits it. */
	sigset_t usr;
	sigemptyset(&usr);
	sigaddset(&usr, SIGUSR1);
	sigaddset(&usr, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr, NULL);

	pid_t agent_pid = -1;
	int chan = -1, rc = 1;
	struct vp_client *client = NULL;
	struct fuse_session *se = NULL;
	bool mounted = false, handlers = false;

	int err = spawn_agent(dir, &agent_pid, &chan);
	if (err) {
		fprintf(stderr, "rp_harness: spawn agent: %s\n", strerror(-err));
		return 1;
	}
	err = vp_client_new(chan, &client);
	if (err) {
		close(chan);
		fprintf(stderr, "rp_harness: client: %s\n", strerror(-err));
		goto out;
	}
	err = vp_client_handshake(client, 10000);
	if (err) {
		fprintf(stderr, "rp_harness: handshake: %s\n", strerror(-err));
		goto out;
	}
	err = rp_new(client, h.nested ? UINT64_C(1) << RP_NODE_BITS : 0, &h.rp);
	if (err) {
		fprintf(stderr, "rp_harness: rp_new: %s\n", strerror(-err));
		goto out;
	}

	char *fargv[] = { argv[0], "-o", "fsname=rp_harness,subtype=rp_harness", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	se = fuse_session_new(&args, &harness_ops, sizeof(harness_ops), &h);
	fuse_opt_free_args(&args);
	if (!se) {
		fprintf(stderr, "rp_harness: fuse_session_new failed\n");
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "rp_harness: mount %s failed\n", mnt);
		goto out;
	}
	mounted = true;

	struct inval_thread inval = { .rp = h.rp, .se = se };
	err = pthread_create(&inval.tid, NULL, inval_main, &inval);
	if (err) {
		fprintf(stderr, "rp_harness: thread: %s\n", strerror(err));
		goto out;
	}
	struct fuse_loop_config cfg = { .clone_fd = 0, .max_idle_threads = 10 };
	err = fuse_session_loop_mt(se, &cfg);
	pthread_kill(inval.tid, SIGUSR2);
	pthread_join(inval.tid, NULL);
	/* A signal's number or 0: both are a requested, clean end. */
	rc = err < 0 ? 1 : 0;
	if (err < 0)
		fprintf(stderr, "rp_harness: loop: %s\n", strerror(-err));

out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	/* The proxy forgets what the kernel still held, then the channel
	 * closes, which is the agent's cue to exit. */
	rp_free(h.rp);
	vp_client_free(client);
	int status = reap_agent(agent_pid);
	if (rc == 0 && !(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "rp_harness: agent ended with status %#x\n", (unsigned)status);
		rc = 1;
	}
	return rc;
}
