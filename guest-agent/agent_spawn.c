/* Starting one command: /bin/sh -c CMD in a session of its own, with a
 * clean environment, stdin from a pipe or /dev/null, stdout and stderr to
 * pipes; in an ns guest inside the commands' pid and mount namespaces
 * (agent_init.c), out of reach of the agent. The parent learns through a
 * CLOEXEC pipe the child's pid as the commands see it (4 bytes), then
 * whether chdir/execve worked: EOF means the exec happened, 4 more bytes
 * are the child's errno. Called only from the exec loop, the agent's only
 * caller of wait*(). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "lib/clock.h"

/* What the child needs, all prepared before the fork. */
struct spawn {
	char *argv[4];
	char **envp;
	char *cwd;
	const struct agent_cmdns *ns; /* NULL: no namespaces of their own */
	int in, out, err, errpipe;    /* the child's ends */
};

static const char *const base_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=dumb",
};
#define NBASE (sizeof base_env / sizeof base_env[0])

static bool has_nul(const struct vp_bytes *b)
{
	return b->len && memchr(b->p, '\0', b->len);
}

/* An empty field may come with a NULL pointer. */
static char *dup_bytes(const struct vp_bytes *b)
{
	return b->len ? strndup((const char *)b->p, b->len) : strdup("");
}

static bool env_ok(const struct vp_bytes *b)
{
	const uint8_t *eq = b->len ? memchr(b->p, '=', b->len) : NULL;
	return eq && eq != b->p && !has_nul(b);
}

static bool same_key(const char *a, const char *b)
{
	size_t ka = strcspn(a, "="), kb = strcspn(b, "=");
	return ka == kb && !memcmp(a, b, ka);
}

/* PATH, HOME, TERM=dumb, then the request's K=V; a later entry replaces an
 * earlier one with the same key. */
static int build_env(const struct vp_exec *q, char ***out)
{
	char **env = calloc(NBASE + q->nenv + 1, sizeof *env);
	if (!env)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < NBASE; i++) {
		env[n] = strdup(base_env[i]);
		if (!env[n])
			goto nomem;
		n++;
	}
	for (uint32_t i = 0; i < q->nenv; i++) {
		char *kv = dup_bytes(&q->env[i]);
		if (!kv)
			goto nomem;
		size_t j = 0;
		while (j < n && !same_key(env[j], kv))
			j++;
		if (j < n)
			free(env[j]);
		else
			n++;
		env[j] = kv;
	}
	*out = env;
	return 0;
nomem:
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(env);
	return -ENOMEM;
}

static void free_env(char **env)
{
	if (!env)
		return;
	for (char **p = env; *p; p++)
		free(*p);
	free(env);
}

/* Between fork and execve only async-signal-safe calls: other threads may
 * have held locks (malloc's) at the fork. */
static __attribute__((noreturn)) void child(const struct spawn *s)
{
	/* Our pid in our own namespace: what `echo $$` prints, so what stat's
	 * pid= shows. The parent waits for these 4 bytes. */
	pid_t me = getpid();
	if (write(s->errpipe, &me, sizeof me) < 0)
		_exit(127);
	/* A session of its own: its own process group (kill and timeout reach
	 * the whole tree) and no controlling terminal of PID 1's. */
	if (setsid() < 0)
		setpgid(0, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* SIG_IGN (SIGPIPE) survives execve */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(022); /* the agent runs with 0 for the file requests */
	/* Before anything looks at a path: this sets / and the cwd, and its
	 * /proc is the commands'. No command may run without it. */
	if (s->ns && agent_cmdns_join(s->ns) < 0)
		goto fail;
	/* The agent is shielded from the OOM killer; its commands are not. */
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "0", 1) < 0) {
			/* not fatal */
		}
		close(fd);
	}
	if (dup2(s->in, 0) < 0 || dup2(s->out, 1) < 0 || dup2(s->err, 2) < 0)
		goto fail;
	if (chdir(s->cwd) < 0)
		goto fail;
	execve("/bin/sh", s->argv, s->envp);
fail:;
	int e = errno;
	if (write(s->errpipe, &e, sizeof e) < 0) {
		/* the parent then sees EOF and reports the exit status */
	}
	_exit(127);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Forks the command; c gets its pid and our pipe ends. */
static int fork_child(const struct vp_exec *q, struct spawn *s, struct agent_child *c)
{
	/* [0,1] stdin, [2,3] stdout, [4,5] stderr, [6,7] exec errno; -1 unused */
	int p[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
	int r = 0;
	if (q->flags & VP_EXEC_STDIN) {
		if (pipe2(p, O_CLOEXEC) < 0)
			goto err;
	} else {
		p[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (p[0] < 0)
			goto err;
	}
	if (pipe2(p + 2, O_CLOEXEC) < 0 || pipe2(p + 4, O_CLOEXEC) < 0 || pipe2(p + 6, O_CLOEXEC) < 0)
		goto err;
	if ((p[1] >= 0 && set_nonblock(p[1]) < 0) || set_nonblock(p[2]) < 0 || set_nonblock(p[4]) < 0)
		goto err;
	s->in = p[0];
	s->out = p[3];
	s->err = p[5];
	s->errpipe = p[7];
	c->start_ns = clock_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		goto err;
	if (pid == 0)
		child(s);
	/* No setpgid(pid, pid) here: it would make setsid() fail in the
	 * child. Waiting for the exec below orders setsid before EXEC_STARTED,
	 * so a SIGNAL always finds the group. */
	close(p[0]);
	close(p[3]);
	close(p[5]);
	close(p[7]);
	p[0] = p[3] = p[5] = p[7] = -1;
	pid_t ns_pid = 0;
	int child_err = 0;
	ssize_t n;
	do
		n = read(p[6], &ns_pid, sizeof ns_pid);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof ns_pid) {
		do
			n = read(p[6], &child_err, sizeof child_err);
		while (n < 0 && errno == EINTR);
	} else {
		n = (ssize_t)sizeof child_err; /* died before a word: failed */
		child_err = EIO;
	}
	close(p[6]);
	p[6] = -1;
	if (n == (ssize_t)sizeof child_err) {
		/* chdir or execve failed: no command ran. This thread is the only
		 * reaper, so collecting this one status here steals nothing. */
		waitpid(pid, NULL, 0);
		close_fds(p, 8);
		return -(child_err ? child_err : EIO);
	}
	c->pid = pid;
	c->ns_pid = ns_pid;
	c->in = p[1];
	c->out = p[2];
	c->err = p[4];
	return 0;
err:
	r = -errno;
	close_fds(p, 8);
	return r;
}

int agent_spawn(const struct vp_exec *q, struct agent_cmdns *ns, struct agent_child *c)
{
	if (has_nul(&q->cmd) || has_nul(&q->cwd))
		return -EBADMSG; /* the codec's business, checked again */
	for (uint32_t i = 0; i < q->nenv; i++)
		if (!env_ok(&q->env[i]))
			return -EINVAL;
	struct spawn s = { .argv = { "sh", "-c", NULL, NULL }, .ns = ns };
	int r = ns ? agent_cmdns_prepare(ns) : 0;
	if (r < 0)
		return r;
	r = -ENOMEM;
	s.argv[2] = dup_bytes(&q->cmd);
	s.cwd = q->cwd.len ? dup_bytes(&q->cwd) : strdup("/");
	if (s.argv[2] && s.cwd) {
		r = build_env(q, &s.envp);
		if (r == 0)
			r = fork_child(q, &s, c);
	}
	free(s.argv[2]);
	free(s.cwd);
	free_env(s.envp);
	return r;
}
