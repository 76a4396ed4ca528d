/* Commands: one event-loop thread owns every running command.
 *
 * It epolls each command's stdout/stderr pipes (read in chunks, sent as
 * OUTPUT, paused while VP_OUTPUT_WINDOW bytes are unacknowledged), its
 * stdin pipe (only while STDIN data waits; the OK goes out once the data is
 * in the pipe, which is the host's backpressure), a timerfd (timeout, then
 * the 100 ms grace for pipes held by background processes), a signalfd for
 * SIGCHLD and an eventfd for requests from the reader thread.
 *
 * This thread is the only caller of wait*(): as PID 1 it reaps every
 * orphan with waitpid(-1) and recognises its own commands by pid, so no
 * command's status is ever lost to the reaper. In an ns guest the
 * commands' orphans go to the commands' init instead (agent_init.c),
 * whose own end is seen here too.
 *
 * After the shell exits, background processes it left are not killed;
 * their pipes are read for 100 ms more (LINGER_MS), then EXIT is sent.
 *
 * A command line with a NUL byte or over VP_MAX_CMD never gets here: the
 * codec refuses the EXEC payload and the reader answers ERROR(EBADMSG). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "lib/clock.h"
#include "lib/list.h"

#define OUT_CHUNK (64u * 1024u)
#define LINGER_MS 100
#define MAX_SIGNO 64

enum wkind { W_WAKE, W_SIGCHLD, W_STDIN, W_STDOUT, W_STDERR, W_TIMER };

struct exec;
struct watch {
	enum wkind kind;
	struct exec *e;
};

struct exec {
	struct list_node link; /* in agent_exec's execs, then dead once finished */
	uint32_t id;
	pid_t pid;    /* also the process group */
	pid_t ns_pid; /* pid in the commands' namespace: EXEC_STARTED's */
	int fd[3];    /* our ends: stdin (write), stdout, stderr (read); -1 closed */
	int tfd;
	struct watch w[3], wt;
	bool has_stdin, in_polled;
	bool in_eof;	 /* the host closed stdin (an eof was applied) */
	bool out_paused; /* output pipes out of epoll: window full */
	uint32_t unacked;
	bool reaped, timed_out, lingering, linger_due, finished;
	int status;
	uint64_t start_ns, duration_us;
	struct list_node in; /* STDIN requests not yet written, oldest first */
	size_t in_off;	     /* bytes of the first one already written */
};

struct agent_exec {
	struct agent_chan *chan;
	struct agent_cmdns *ns; /* NULL: commands share our namespaces */
	pthread_t thr;
	int ep, wakefd, sigfd;
	struct watch w_wake, w_sig;
	pthread_mutex_t lock;	/* queue and stop */
	struct list_node queue; /* submitted messages, oldest first */
	bool stop;
	struct list_node execs;
	struct list_node dead; /* finished in this epoll batch, freed after it */
	uint8_t *buf;
	struct vp_buf out;
};

static int ep_add(struct agent_exec *x, int fd, uint32_t events, struct watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(x->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void ep_del(struct agent_exec *x, int fd)
{
	epoll_ctl(x->ep, EPOLL_CTL_DEL, fd, NULL);
}

static void arm_timer(int tfd, uint64_t ms)
{
	struct itimerspec it = { .it_value = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L } };
	timerfd_settime(tfd, 0, &it, NULL);
}

static struct exec *exec_of(struct list_node *n)
{
	return container_of(n, struct exec, link);
}

static struct agent_msg *msg_of(struct list_node *n)
{
	return container_of(n, struct agent_msg, link);
}

static struct exec *find_id(struct agent_exec *x, uint32_t id)
{
	list_for_each (&x->execs, it)
		if (exec_of(it)->id == id)
			return exec_of(it);
	return NULL;
}

static struct exec *find_pid(struct agent_exec *x, pid_t pid)
{
	list_for_each (&x->execs, it)
		if (exec_of(it)->pid == pid && !exec_of(it)->reaped)
			return exec_of(it);
	return NULL;
}

/* ---- output ------------------------------------------------------------ */

static void close_out(struct agent_exec *x, struct exec *e, int s)
{
	if (e->fd[s] < 0)
		return;
	if (!e->out_paused)
		ep_del(x, e->fd[s]);
	close(e->fd[s]);
	e->fd[s] = -1;
}

/* In and out of epoll rather than EPOLL_CTL_MOD to no events: a pipe whose
 * writers are gone reports EPOLLHUP even then, which would spin. */
static void pause_output(struct agent_exec *x, struct exec *e)
{
	for (int s = 1; s <= 2; s++)
		if (e->fd[s] >= 0)
			ep_del(x, e->fd[s]);
	e->out_paused = true;
}

static void resume_output(struct agent_exec *x, struct exec *e)
{
	e->out_paused = false;
	for (int s = 1; s <= 2; s++)
		if (e->fd[s] >= 0 && ep_add(x, e->fd[s], EPOLLIN, &e->w[s]) < 0)
			close_out(x, e, s); /* cannot watch it: treat as EOF */
}

static void finish(struct agent_exec *x, struct exec *e);

static void maybe_finish(struct agent_exec *x, struct exec *e)
{
	if (e->reaped && e->fd[1] < 0 && e->fd[2] < 0)
		finish(x, e);
}

static void read_output(struct agent_exec *x, struct exec *e, int s)
{
	if (e->fd[s] < 0 || e->out_paused)
		return; /* stale event from this batch */
	size_t room = VP_OUTPUT_WINDOW - e->unacked;
	ssize_t n = read(e->fd[s], x->buf, room < OUT_CHUNK ? room : OUT_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_out(x, e, s);
		maybe_finish(x, e);
		return;
	}
	struct vp_output o = { .stream = (uint8_t)s, .data = { x->buf, (uint32_t)n } };
	vp_buf_reset(&x->out);
	vp_enc_output(&x->out, &o);
	agent_send(x->chan, VP_OUTPUT, e->id, &x->out);
	e->unacked += (uint32_t)n;
	if (e->unacked >= VP_OUTPUT_WINDOW)
		pause_output(x, e);
}

static void on_ack(struct agent_exec *x, const struct vp_output_ack *a)
{
	struct exec *e = find_id(x, a->exec_id);
	if (!e)
		return; /* acks may trail the EXIT */
	e->unacked -= a->bytes < e->unacked ? a->bytes : e->unacked;
	if (e->out_paused && e->unacked < VP_OUTPUT_WINDOW) {
		resume_output(x, e);
		if (e->linger_due) {
			/* The grace period ran out while the host was still
			 * consuming: it counts only once output flows again. */
			e->linger_due = false;
			arm_timer(e->tfd, LINGER_MS);
		}
		maybe_finish(x, e);
	}
}

/* ---- stdin ------------------------------------------------------------- */

static void close_stdin(struct agent_exec *x, struct exec *e)
{
	if (e->fd[0] < 0)
		return;
	if (e->in_polled)
		ep_del(x, e->fd[0]);
	e->in_polled = false;
	close(e->fd[0]);
	e->fd[0] = -1;
}

/* Every STDIN still queued gets err; the pipe is closed. */
static void fail_stdin(struct agent_exec *x, struct exec *e, int err)
{
	close_stdin(x, e);
	for (struct list_node *ln; (ln = list_pop_head(&e->in));) {
		agent_send_error(x->chan, msg_of(ln)->h.id, err, "STDIN");
		agent_msg_free(msg_of(ln));
	}
	e->in_off = 0;
}

static void pump_stdin(struct agent_exec *x, struct exec *e)
{
	for (struct list_node *ln; (ln = list_first(&e->in)) && e->fd[0] >= 0;) {
		struct agent_msg *m = msg_of(ln);
		const struct vp_stdin *in = &m->u.in;
		while (e->in_off < in->data.len) {
			ssize_t n = write(e->fd[0], in->data.p + e->in_off, in->data.len - e->in_off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				if (!e->in_polled && ep_add(x, e->fd[0], EPOLLOUT, &e->w[0]) == 0)
					e->in_polled = true;
				else if (!e->in_polled)
					fail_stdin(x, e, EIO);
				return;
			}
			if (n < 0) {
				fail_stdin(x, e, errno); /* EPIPE: the command closed it */
				return;
			}
			e->in_off += (size_t)n;
		}
		list_del(&m->link);
		e->in_off = 0;
		if (in->eof) {
			close_stdin(x, e);
			e->in_eof = true;
		}
		agent_send_ok(x->chan, m->h.id);
		agent_msg_free(m);
	}
	if (e->fd[0] < 0 && !list_empty(&e->in))
		fail_stdin(x, e, EBADF); /* queued behind an eof */
	if (e->in_polled && list_empty(&e->in)) {
		ep_del(x, e->fd[0]);
		e->in_polled = false;
	}
}

static void on_stdin(struct agent_exec *x, struct agent_msg *m)
{
	const struct vp_stdin *in = &m->u.in;
	struct exec *e = find_id(x, in->exec_id);
	int err = 0;
	if (!e)
		err = ESRCH;
	else if (!e->has_stdin || e->in_eof)
		err = EBADF; /* no pipe, or the host closed it already */
	else if (e->fd[0] < 0)
		err = EPIPE; /* the command closed it */
	if (err) {
		agent_send_error(x->chan, m->h.id, err, "STDIN");
		agent_msg_free(m);
		return;
	}
	list_add_tail(&e->in, &m->link);
	if (!e->in_polled)
		pump_stdin(x, e);
}

/* ---- lifetime ---------------------------------------------------------- */

static void exec_free(struct exec *e)
{
	for (int s = 0; s < 3; s++)
		if (e->fd[s] >= 0)
			close(e->fd[s]);
	if (e->tfd >= 0)
		close(e->tfd);
	for (struct list_node *ln; (ln = list_pop_head(&e->in));)
		agent_msg_free(msg_of(ln));
	free(e);
}

/* EXIT is the exec's last frame: pending stdin is answered first. */
static void finish(struct agent_exec *x, struct exec *e)
{
	fail_stdin(x, e, EPIPE);
	close_out(x, e, 1);
	close_out(x, e, 2);
	ep_del(x, e->tfd);
	struct vp_exit ex = {
		.code = WIFEXITED(e->status) ? WEXITSTATUS(e->status) : -1,
		.signal = WIFSIGNALED(e->status) ? WTERMSIG(e->status) : 0,
		.timed_out = e->timed_out,
		.duration_us = e->duration_us,
	};
	vp_buf_reset(&x->out);
	vp_enc_exit(&x->out, &ex);
	agent_send(x->chan, VP_EXIT, e->id, &x->out);
	e->finished = true;
	list_del(&e->link);
	list_add_head(&x->dead, &e->link);
}

static void on_reaped(struct agent_exec *x, struct exec *e, int status)
{
	e->reaped = true;
	e->status = status;
	e->duration_us = (clock_mono_ns() - e->start_ns) / 1000u;
	arm_timer(e->tfd, 0); /* disarm the timeout */
	if (e->fd[1] < 0 && e->fd[2] < 0) {
		finish(x, e);
		return;
	}
	/* Background processes may hold the pipes for ever: give them a
	 * moment to flush, then stop reading. */
	e->lingering = true;
	arm_timer(e->tfd, LINGER_MS);
}

static void reap(struct agent_exec *x)
{
	struct signalfd_siginfo si;
	while (read(x->sigfd, &si, sizeof si) == sizeof si)
		;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		struct exec *e = find_pid(x, pid);
		if (e)
			on_reaped(x, e, st);
		else /* the commands' init, or an orphan reparented to PID 1 */
			agent_cmdns_reaped(x->ns, pid, st);
	}
}

static void on_timer(struct agent_exec *x, struct exec *e)
{
	uint64_t n;
	if (read(e->tfd, &n, sizeof n) != sizeof n)
		return; /* disarmed or re-armed since */
	if (!e->reaped) {
		/* Exited on its own but not reaped yet (its SIGCHLD is later in
		 * this batch): not a timeout. */
		siginfo_t si = { 0 };
		if (waitid(P_PID, (id_t)e->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == e->pid)
			return;
		e->timed_out = true;
		if (kill(-e->pid, SIGKILL) < 0)
			kill(e->pid, SIGKILL);
		return;
	}
	if (!e->lingering)
		return;
	if (e->out_paused) {
		e->linger_due = true;
		return;
	}
	close_out(x, e, 1);
	close_out(x, e, 2);
	finish(x, e);
}

/* ---- EXEC -------------------------------------------------------------- */

static int start(struct agent_exec *x, const struct agent_msg *m, struct exec *e)
{
	if (m->h.id == 0)
		return -EINVAL; /* the id names the exec: it must be a request */
	if (find_id(x, m->h.id))
		return -EEXIST;
	e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (e->tfd < 0)
		return -errno;
	struct agent_child c;
	int r = agent_spawn(&m->u.exec, x->ns, &c);
	if (r < 0)
		return r;
	e->pid = c.pid;
	e->ns_pid = c.ns_pid;
	e->start_ns = c.start_ns;
	e->fd[0] = c.in;
	e->fd[1] = c.out;
	e->fd[2] = c.err;
	return 0;
}

static void on_exec(struct agent_exec *x, struct agent_msg *m)
{
	struct exec *e = calloc(1, sizeof *e);
	if (!e) {
		agent_send_error(x->chan, m->h.id, ENOMEM, "EXEC");
		return;
	}
	list_init(&e->link);
	list_init(&e->in);
	e->id = m->h.id;
	e->fd[0] = e->fd[1] = e->fd[2] = e->tfd = -1;
	e->has_stdin = m->u.exec.flags & VP_EXEC_STDIN;
	for (int s = 0; s < 3; s++)
		e->w[s] = (struct watch){ s == 0 ? W_STDIN : s == 1 ? W_STDOUT : W_STDERR, e };
	e->wt = (struct watch){ W_TIMER, e };
	int r = start(x, m, e);
	if (r < 0) {
		agent_send_error(x->chan, m->h.id, r, "EXEC");
		exec_free(e);
		return;
	}
	list_add_head(&x->execs, &e->link);
	struct vp_exec_started st = { .pid = (uint32_t)e->ns_pid };
	vp_buf_reset(&x->out);
	vp_enc_exec_started(&x->out, &st);
	agent_send(x->chan, VP_EXEC_STARTED, e->id, &x->out);
	if (ep_add(x, e->tfd, EPOLLIN, &e->wt) < 0 || ep_add(x, e->fd[1], EPOLLIN, &e->w[1]) < 0 ||
	    ep_add(x, e->fd[2], EPOLLIN, &e->w[2]) < 0) {
		/* Cannot watch it: do not let it run unobserved. */
		AGENT_LOG("exec %u: epoll: %s", e->id, strerror(errno));
		kill(-e->pid, SIGKILL);
		close_out(x, e, 1);
		close_out(x, e, 2);
		return; /* EXIT follows when it is reaped */
	}
	if (m->u.exec.timeout_ms)
		arm_timer(e->tfd, m->u.exec.timeout_ms);
}

static void on_signal(struct agent_exec *x, const struct agent_msg *m)
{
	const struct vp_signal *q = &m->u.sig;
	int err = 0;
	struct exec *e = find_id(x, q->exec_id);
	if (q->signo < 1 || q->signo > MAX_SIGNO)
		err = EINVAL;
	else if (!e)
		err = ESRCH;
	else if (kill(-e->pid, q->signo) < 0)
		err = errno;
	if (err)
		agent_send_error(x->chan, m->h.id, err, "SIGNAL");
	else
		agent_send_ok(x->chan, m->h.id);
}

/* ---- the loop ---------------------------------------------------------- */

/* Returns true when asked to stop. */
static bool drain_queue(struct agent_exec *x)
{
	uint64_t n;
	if (read(x->wakefd, &n, sizeof n) < 0) {
		/* EAGAIN: a previous drain took these already */
	}
	/* The batch is taken whole so that `stop` is read together with it. */
	struct list_node batch;
	list_init(&batch);
	pthread_mutex_lock(&x->lock);
	for (struct list_node *ln; (ln = list_pop_head(&x->queue));)
		list_add_tail(&batch, ln);
	bool stop = x->stop;
	pthread_mutex_unlock(&x->lock);
	for (struct list_node *ln; (ln = list_pop_head(&batch));) {
		struct agent_msg *m = msg_of(ln);
		switch (m->h.type) {
		case VP_EXEC: on_exec(x, m); break;
		case VP_STDIN: on_stdin(x, m); continue; /* owned by the exec now, or freed */
		case VP_SIGNAL: on_signal(x, m); break;
		case VP_OUTPUT_ACK: on_ack(x, &m->u.ack); break;
		}
		agent_msg_free(m);
	}
	return stop;
}

static void kill_all(struct agent_exec *x)
{
	list_for_each (&x->execs, it) {
		struct exec *e = exec_of(it);
		if (kill(-e->pid, SIGKILL) < 0 && !e->reaped)
			kill(e->pid, SIGKILL);
	}
	/* SIGKILL is quick, but a process in uninterruptible sleep is not:
	 * wait a bounded time, then leave it to whoever inherits it. */
	const struct timespec step = { 0, 10 * 1000 * 1000 };
	for (int i = 0; i < 200; i++) {
		bool left = false;
		list_for_each (&x->execs, it) {
			struct exec *e = exec_of(it);
			if (!e->reaped && waitpid(e->pid, &e->status, WNOHANG) != 0)
				e->reaped = true; /* exited, or not ours any more */
			left |= !e->reaped;
		}
		if (!left)
			break;
		nanosleep(&step, NULL);
	}
}

static void *loop(void *arg)
{
	struct agent_exec *x = arg;
	struct epoll_event ev[64];
	bool stop = false;
	while (!stop) {
		int n = epoll_wait(x->ep, ev, 64, -1);
		if (n < 0) {
			if (errno != EINTR)
				AGENT_LOG("epoll_wait: %s", strerror(errno));
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = ev[i].data.ptr;
			if (w->e && w->e->finished)
				continue;
			switch (w->kind) {
			case W_WAKE: stop |= drain_queue(x); break;
			case W_SIGCHLD: reap(x); break;
			case W_STDIN: pump_stdin(x, w->e); break;
			case W_STDOUT: read_output(x, w->e, 1); break;
			case W_STDERR: read_output(x, w->e, 2); break;
			case W_TIMER: on_timer(x, w->e); break;
			}
		}
		for (struct list_node *ln; (ln = list_pop_head(&x->dead));)
			exec_free(exec_of(ln));
	}
	kill_all(x);
	return NULL;
}

int agent_exec_new(struct agent_chan *c, struct agent_cmdns *ns, struct agent_exec **out)
{
	struct agent_exec *x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	x->chan = c;
	list_init(&x->queue);
	list_init(&x->execs);
	list_init(&x->dead);
	x->ns = ns;
	x->ep = x->wakefd = x->sigfd = -1;
	vp_buf_init(&x->out);
	pthread_mutex_init(&x->lock, NULL);
	x->w_wake = (struct watch){ W_WAKE, NULL };
	x->w_sig = (struct watch){ W_SIGCHLD, NULL };
	/* SIGCHLD is blocked in every thread (agent_main.c), so it is only
	 * ever consumed here. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	int r = -ENOMEM;
	x->buf = malloc(OUT_CHUNK);
	if (!x->buf)
		goto fail;
	x->ep = epoll_create1(EPOLL_CLOEXEC);
	x->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	x->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (x->ep < 0 || x->wakefd < 0 || x->sigfd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = ep_add(x, x->wakefd, EPOLLIN, &x->w_wake)) < 0 ||
	    (r = ep_add(x, x->sigfd, EPOLLIN, &x->w_sig)) < 0)
		goto fail;
	r = -pthread_create(&x->thr, NULL, loop, x);
	if (r < 0)
		goto fail;
	*out = x;
	return 0;
fail:
	if (x->ep >= 0)
		close(x->ep);
	if (x->wakefd >= 0)
		close(x->wakefd);
	if (x->sigfd >= 0)
		close(x->sigfd);
	free(x->buf);
	vp_buf_free(&x->out);
	pthread_mutex_destroy(&x->lock);
	free(x);
	return r;
}

static void wake(struct agent_exec *x)
{
	uint64_t one = 1;
	if (write(x->wakefd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is saturated, the loop is awake anyway */
	}
}

void agent_exec_submit(struct agent_exec *x, struct agent_msg *m)
{
	pthread_mutex_lock(&x->lock);
	list_add_tail(&x->queue, &m->link);
	pthread_mutex_unlock(&x->lock);
	wake(x);
}

void agent_exec_free(struct agent_exec *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->lock);
	x->stop = true;
	pthread_mutex_unlock(&x->lock);
	wake(x);
	pthread_join(x->thr, NULL);
	for (struct list_node *ln; (ln = list_pop_head(&x->queue));)
		agent_msg_free(msg_of(ln));
	for (struct list_node *ln; (ln = list_pop_head(&x->execs));)
		exec_free(exec_of(ln));
	close(x->ep);
	close(x->wakefd);
	close(x->sigfd);
	free(x->buf);
	vp_buf_free(&x->out);
	pthread_mutex_destroy(&x->lock);
	free(x);
}
