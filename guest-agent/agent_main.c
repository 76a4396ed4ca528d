/* vmpool-agent: mode selection, the frame-reading main loop and teardown.
 *
 *   vmpool-agent --fd N [--root DIR]   host test mode: serve on fd N, file
 *                                      operations rooted at DIR, no mounts
 *   VMPOOL_CHANNEL_FD=N (PID 1)        namespace guest: the ns backend hands
 *                                      over one end of a socketpair
 *   PID 1, neither                     VM guest: load the virtio modules and
 *                                      serve on the virtio console port
 *
 * Exit status: 0 at channel EOF, 2 on a protocol violation (a header that
 * cannot be framed) or a setup failure. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#ifndef VMPOOLFS_VERSION
#define VMPOOLFS_VERSION "?"
#endif

enum agent_mode { MODE_HOST, MODE_NS, MODE_VM };

struct agent {
	enum agent_mode mode;
	int chan_fd;
	const char *root;
	struct agent_chan chan;
	struct agent_fs *fs;
	struct agent_exec *exec;
	struct agent_pool *pool;
	struct agent_cmdns *cmdns; /* ns guest: the commands' namespaces */
};

static int parse_fd(const char *s, int *fd)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 65535)
		return -EINVAL;
	*fd = (int)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct agent *a)
{
	a->chan_fd = -1;
	a->root = "/";
	bool have_fd = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--fd") && i + 1 < argc) {
			if (parse_fd(argv[++i], &a->chan_fd) < 0)
				return -EINVAL;
			have_fd = true;
		} else if (!strcmp(argv[i], "--root") && i + 1 < argc) {
			a->root = argv[++i];
		} else if (getpid() != 1) {
			/* As init, arguments are whatever words of the kernel
			 * command line the kernel did not know: ignore them. */
			return -EINVAL;
		}
	}
	if (have_fd) {
		a->mode = MODE_HOST;
		return 0;
	}
	if (a->root[1] != '\0') /* --root only makes sense with --fd */
		return -EINVAL;
	const char *env = getenv("VMPOOL_CHANNEL_FD");
	if (env) {
		a->mode = MODE_NS;
		return parse_fd(env, &a->chan_fd);
	}
	if (getpid() != 1)
		return -EINVAL;
	a->mode = MODE_VM;
	return 0;
}

/* SIGCHLD is consumed by the exec loop's signalfd and SIGUSR1 only
 * interrupts pool workers, so both stay blocked in every other thread
 * (threads inherit this mask). A dead peer must give EPIPE, not kill us. */
static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r)
		return -r;
	/* An inherited SIG_IGN for SIGCHLD would make the kernel reap
	 * children itself and their exit statuses would be lost. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || signal(SIGCHLD, SIG_DFL) == SIG_ERR)
		return -errno;
	return agent_pool_install_signal();
}

/* Each node and handle is an fd: let the host's limit, not a default soft
 * limit of 1024, decide how many files a guest can keep open. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int send_ready(struct agent *a, uint32_t id)
{
	static const char info[] = "vmpool-agent " VMPOOLFS_VERSION;
	struct vp_ready m = {
		.version = VP_PROTO_VERSION,
		.features = 0,
		.info = { (const uint8_t *)info, sizeof info - 1 },
	};
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_ready(&b, &m);
	int r = agent_send(&a->chan, VP_READY, id, &b);
	vp_buf_free(&b);
	return r;
}

static void on_hello(struct agent *a, const struct agent_msg *m)
{
	const struct vp_hello *h = &m->u.hello;
	if (h->min_version > VP_PROTO_VERSION || h->max_version < VP_PROTO_VERSION)
		agent_send_error(&a->chan, m->h.id, EPROTONOSUPPORT, "no common protocol version");
	else
		send_ready(a, m->h.id);
}

/* The clock is set only where it is the guest's own: in a VM. The ns
 * guest shares the host's clock, and host mode runs on the host itself
 * (tests, as root): there the request is refused without going near
 * clock_settime, rather than leaving it to the kernel to say no. */
static void on_set_time(struct agent *a, const struct agent_msg *m)
{
	if (a->mode != MODE_VM) {
		agent_send_error(&a->chan, m->h.id, EPERM, "the clock is the host's");
		return;
	}
	struct timespec ts = { .tv_sec = (time_t)m->u.set_time.sec, .tv_nsec = (long)m->u.set_time.nsec };
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		agent_send_error(&a->chan, m->h.id, errno, "clock_settime");
	else
		agent_send_ok(&a->chan, m->h.id);
}

/* Pool worker: everything that answers on the channel, so the frame
 * reader itself never blocks in a write. */
static void serve_msg(void *ctx, struct agent_msg *m)
{
	struct agent *a = ctx;
	if (m->err) {
		agent_send_error(&a->chan, m->h.id, m->err, vp_type_name(m->h.type));
		return;
	}
	switch (m->h.type) {
	case VP_HELLO: on_hello(a, m); break;
	case VP_SET_TIME: on_set_time(a, m); break;
	case VP_PING: {
		/* PONG has PING's layout: echo the payload as it came. */
		struct vp_buf b = { .data = m->payload, .len = m->h.len, .cap = m->h.len };
		agent_send(&a->chan, VP_PONG, m->h.id, &b);
		break;
	}
	default: agent_fs_serve(a->fs, &a->chan, m);
	}
}

static bool is_exec_type(uint16_t t)
{
	return t == VP_EXEC || t == VP_STDIN || t == VP_SIGNAL || t == VP_OUTPUT_ACK;
}

/* What the agent serves comes from the message list (proto_msgs.h):
 * host→guest types, answered or one-way. */
static bool is_request(uint16_t t)
{
	enum vp_dir d = vp_msg_dir(t);
	return d == VP_DIR_REQ || d == VP_DIR_ONEWAY;
}

/* One frame whose header was sound; takes ownership of p (NULL and
 * err = ENOSYS for an unknown type, whose payload was skipped). Returns
 * -EPROTO when the frame cannot be answered and the channel must close. */
static int dispatch(struct agent *a, const struct vp_hdr *h, uint8_t *p, int err)
{
	bool oneway = vp_msg_dir(h->type) == VP_DIR_ONEWAY;
	if (!err && !is_request(h->type))
		err = ENOSYS; /* a type only the agent sends */
	/* A request with id 0 could not be answered, and a one-way frame with
	 * an id or a bad payload is not what the host meant to send. */
	if ((h->id == 0) != (oneway && !err)) {
		free(p);
		AGENT_LOG("%s frame with id %u; closing", vp_type_name(h->type), h->id);
		return -EPROTO;
	}
	struct agent_msg *m = calloc(1, sizeof *m);
	if (!m) {
		free(p);
		return oneway ? -ENOMEM : 0; /* the host's timeout answers it */
	}
	m->h = *h;
	m->payload = p;
	m->err = err;
	if (!err && vp_decode(h->type, m->payload, h->len, &m->u) < 0) {
		if (oneway) {
			agent_msg_free(m);
			AGENT_LOG("malformed %s; closing", vp_type_name(h->type));
			return -EPROTO;
		}
		m->err = EBADMSG;
	}
	if (m->err) {
		agent_pool_submit(a->pool, m);
	} else if (h->type == VP_FS_FORGET) {
		/* Cheap and never blocks: done here, in arrival order. */
		agent_node_forget(a->fs, m->u.fs.node, m->u.fs.nlookup);
		agent_msg_free(m);
	} else if (is_exec_type(h->type)) {
		agent_exec_submit(a->exec, m);
	} else {
		agent_pool_submit(a->pool, m);
	}
	return 0;
}

/* The brief for this agent asks unknown types to get ERROR(ENOSYS) (the
 * reader skips their payload, the length being sound); only a header that
 * cannot be framed (length, flags) closes the channel. */
static int serve(struct agent *a)
{
	for (;;) {
		struct vp_hdr h;
		uint8_t *p;
		int r = agent_read_frame(a->chan.fd, &h, &p);
		if (r == -EPIPE || r == -ECONNRESET)
			return 0;
		if (r < 0 && r != -ENOSYS) {
			AGENT_LOG("channel: %s; closing", strerror(-r));
			return r;
		}
		r = dispatch(a, &h, p, r == -ENOSYS ? ENOSYS : 0);
		if (r < 0)
			return r;
	}
}

static int open_channel(struct agent *a)
{
	if (a->mode == MODE_VM) {
		agent_vm_load_modules();
		int r = agent_vm_open_channel(&a->chan_fd);
		if (r < 0)
			return r;
	}
	/* Commands must not inherit the channel: a background process holding
	 * it would keep the host from ever seeing EOF. */
	int fl = fcntl(a->chan_fd, F_GETFD);
	if (fl < 0 || fcntl(a->chan_fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static int run(struct agent *a)
{
	int r = open_channel(a);
	if (r < 0) {
		AGENT_LOG("no channel: %s", strerror(-r));
		return r;
	}
	agent_chan_init(&a->chan, a->chan_fd);
	r = agent_fs_new(a->root, &a->fs);
	if (r < 0) {
		AGENT_LOG("root %s: %s", a->root, strerror(-r));
		goto out_chan;
	}
	r = agent_exec_new(&a->chan, a->cmdns, &a->exec);
	if (r < 0)
		goto out_fs;
	r = agent_pool_new(serve_msg, a, &a->pool);
	if (r < 0)
		goto out_exec;
	send_ready(a, 0);
	r = serve(a);
	/* Close the channel first: replies still being written by workers or
	 * the exec loop then fail fast instead of blocking on a dead peer. */
	shutdown(a->chan.fd, SHUT_RDWR);
	if (agent_pool_free(a->pool) < 0) {
		agent_exec_free(a->exec);
		return r; /* a worker may still use fs and chan: leave them */
	}
out_exec:
	agent_exec_free(a->exec);
out_fs:
	agent_fs_free(a->fs);
out_chan:
	agent_chan_destroy(&a->chan);
	return r;
}

int main(int argc, char **argv)
{
	struct agent a = { 0 };
	if (parse_args(argc, argv, &a) < 0) {
		fprintf(stderr, "usage: vmpool-agent --fd N [--root DIR]\n"
				"   or: as PID 1, with VMPOOL_CHANNEL_FD=N (namespace guest) or without (VM "
				"guest)\n");
		return 2;
	}
	int r = setup_signals();
	if (r < 0) {
		AGENT_LOG("signals: %s", strerror(-r));
		return 2;
	}
	/* Modes in file requests come with the caller's umask applied by the
	 * host kernel already; commands get the usual 022 back (agent_exec.c). */
	umask(0);
	bool pid1 = a.mode != MODE_HOST && getpid() == 1;
	if (pid1)
		agent_pid1_setup(a.mode == MODE_VM);
	agent_std_fds(pid1);
	raise_nofile();
	/* In an ns guest, commands run in namespaces of their own where they
	 * cannot name the agent (agent_init.c); root/ is their view of /.
	 * Without them a command could stop the agent or take its channel,
	 * so the guest does not start. A VM's guest root owns the kernel:
	 * nothing in the guest can be kept from it. */
	if (pid1 && a.mode == MODE_NS) {
		r = agent_cmdns_new(&a.cmdns);
		if (r < 0) {
			AGENT_LOG("commands' namespaces: %s", strerror(-r));
			return 2;
		}
		a.root = agent_cmdns_root(a.cmdns);
	}
	r = run(&a);
	agent_cmdns_free(a.cmdns);
	if (a.mode == MODE_VM) {
		/* init exiting would panic the kernel; a reboot is a clean guest
		 * end the monitor sees (i8042 reset or triple fault → exit). */
		sync();
		reboot(RB_AUTOBOOT);
	}
	return r < 0 ? 2 : 0;
}
