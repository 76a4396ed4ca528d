/* Sessions: an acquired machine and its command state; see session.h. */
#include "lib/vlog.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctlfiles.h"
#include "fs/root_proxy.h"
#include "handles.h"
#include "images.h"
#include "ino.h"
#include "lib/clock.h"
#include "notify.h"
#include "proto/client.h"
#include "waiters.h"

const char *cmd_state_name(enum cmd_state st)
{
	static const char *const names[] = { "idle", "running", "exited", "signaled", "timeout", "error" };
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

void session_ref(struct session *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

static void session_destroy(struct session *s)
{
	struct vpfs *fs = s->fs;
	vp_mutex_lock(&fs->lock);
	u64map_remove(&fs->sessions, &s->by_serial);
	vp_mutex_unlock(&fs->lock);
	outbuf_free(&s->out[0]);
	outbuf_free(&s->out[1]);
	settings_free(&s->settings);
	free(s->cmd);
	free(s->name);
	image_put(s->img);
	vp_mutex_destroy(&s->lock);
	free(s);
}

void session_unref(struct session *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		session_destroy(s);
}

static void set_error(struct session *s, const char *what, int err)
{
	snprintf(s->error, sizeof(s->error), "%s: %s", what, strerror(err < 0 ? -err : err));
}

/* Without pings, how long an agent gets to act on a ctl kill, and to
 * enforce a command's timeout, before the host does (with pings, the
 * health bound is the grace). */
#define TIMEOUT_GRACE_MS 3000

/* The deadline of every synchronous agent call a FUSE worker makes: below
 * the health bound, so that a call to a hung agent ends before, or as,
 * the watch thread declares the machine dead; never less than a second
 * (a busy but healthy guest must not see its calls fail). Without pings,
 * the client's default. */
static int call_timeout_ms(const struct vpfs *fs)
{
	if (!fs->opts.ping_ms)
		return VP_CLIENT_DEFAULT_TIMEOUT_MS;
	uint32_t t = fs->opts.ping_ms / 4 * 3;
	return t < 1000 ? 1000 : (int)t;
}

/* ---- name table ------------------------------------------------------ */

/* Under fs->lock. */
static struct session *find_live(struct vpfs *fs, fuse_ino_t dir, const char *name) REQUIRES(&fs->lock)
{
	list_for_each (&fs->live, it) {
		struct session *s = container_of(it, struct session, live_link);
		if (s->dir == dir && strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

/* Under fs->lock. */
static void unlink_live(struct vpfs *fs, struct session *s) REQUIRES(&fs->lock)
{
	if (list_linked(&s->live_link)) {
		list_del(&s->live_link);
		fs->nlive--;
	}
}

struct session *session_by_name(struct vpfs *fs, fuse_ino_t dir, const char *name)
{
	vp_mutex_lock(&fs->lock);
	struct session *s = find_live(fs, dir, name);
	if (s && s->ready)
		session_ref(s);
	else
		s = NULL;
	vp_mutex_unlock(&fs->lock);
	return s;
}

/* A named session, or with `any` also one that rmdir unnamed but
 * something still holds. */
static struct session *by_serial(struct vpfs *fs, uint64_t serial, bool any)
{
	vp_mutex_lock(&fs->lock);
	struct u64map_link *l = u64map_find(&fs->sessions, serial);
	struct session *s = l ? container_of(l, struct session, by_serial) : NULL;
	if (s && (!s->ready || (!any && !list_linked(&s->live_link))))
		s = NULL;
	if (s)
		session_ref(s);
	vp_mutex_unlock(&fs->lock);
	return s;
}

struct session *session_by_serial(struct vpfs *fs, uint64_t serial)
{
	return by_serial(fs, serial, false);
}

struct session *session_by_serial_any(struct vpfs *fs, uint64_t serial)
{
	return by_serial(fs, serial, true);
}

int session_each_named(struct vpfs *fs, fuse_ino_t dir, int (*fn)(void *ctx, const struct session *s),
		       void *ctx)
{
	int r = 0;
	vp_mutex_lock(&fs->lock);
	list_for_each (&fs->live, it) {
		const struct session *s = container_of(it, struct session, live_link);
		if (s->ready && s->dir == dir && (r = fn(ctx, s)) != 0)
			break;
	}
	vp_mutex_unlock(&fs->lock);
	return r;
}

int session_create(struct vpfs *fs, struct image *img, fuse_ino_t dir, const char *name, struct session **out)
{
	/* FUSE passes names up to 1024 bytes; a directory name is NAME_MAX. */
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (!(s->name = strdup(name))) {
		free(s);
		return -ENOMEM;
	}
	s->fs = fs;
	s->dir = dir;
	s->refs = 1; /* the name table */
	list_init(&s->live_link);
	list_init(&s->waiters);
	list_init(&s->fhs);
	list_init(&s->nq_link);
	vp_mutex_init(&s->lock);
	outbuf_init(&s->out[0], fs->opts.spill_threshold, fs->spill_dir);
	outbuf_init(&s->out[1], fs->opts.spill_threshold, fs->spill_dir);
	s->obudget.max = fs->opts.output_max;
	outbuf_set_budget(&s->out[0], &s->obudget);
	outbuf_set_budget(&s->out[1], &s->obudget);
	settings_init(&s->settings, fs->opts.timeout_ms);
	clock_gettime(CLOCK_REALTIME, &s->ctime);
	s->mtime[0] = s->mtime[1] = s->ctime;

	vp_mutex_lock(&fs->lock);
	int err = 0;
	if (fs->shutting_down)
		err = -ESHUTDOWN;
	else if (find_live(fs, dir, name))
		err = -EEXIST;
	else if (fs->next_serial > INO_SESSION_MAX)
		err = -ENOSPC;
	if (err) {
		vp_mutex_unlock(&fs->lock);
		free(s->name);
		vp_mutex_destroy(&s->lock);
		free(s);
		return err;
	}
	/* The name is reserved (not yet visible) while the machine comes. */
	s->serial = fs->next_serial++;
	list_add_head(&fs->live, &s->live_link);
	fs->nlive++;
	s->by_serial.key = s->serial;
	u64map_insert(&fs->sessions, &s->by_serial);
	vp_mutex_unlock(&fs->lock);

	void *m = NULL;
	struct root_proxy *rp = NULL;
	image_ref(img);
	s->img = img;
	/* Counted in the image from here (rmdir of it: EBUSY) until the
	 * machine is back in its pool. */
	err = image_machine_get(img, &s->pool);
	if (err == 0 && (err = pool_acquire(s->pool, &m)) < 0)
		image_machine_put(img);
	if (err == 0) {
		vp_client_set_timeout(machine_client(m), call_timeout_ms(fs));
		err = rp_new(machine_client(m), ino_rp_base(s->serial), &rp);
		if (err < 0) {
			pool_release(s->pool, m);
			image_machine_put(img);
			m = NULL;
		}
	}
	if (err < 0) {
		vp_mutex_lock(&fs->lock);
		unlink_live(fs, s);
		vp_mutex_unlock(&fs->lock);
		session_unref(s);
		return err;
	}
	struct machine_info info;
	machine_get_info(m, &info);
	vp_mutex_lock(&s->lock);
	s->m = m;
	s->client = machine_client(m);
	s->rp = rp;
	s->host_pid = info.host_pid;
	s->machine_id = info.id;
	vp_mutex_unlock(&s->lock);
	vp_mutex_lock(&fs->lock);
	s->ready = true;
	session_ref(s);
	vp_mutex_unlock(&fs->lock);
	*out = s;
	return 0;
}

/* ---- machine use ------------------------------------------------------- */

int session_machine_get(struct session *s)
{
	int r = 0;
	vp_mutex_lock(&s->lock);
	if (s->released || !s->m)
		r = -ESTALE;
	else
		s->musers++;
	vp_mutex_unlock(&s->lock);
	return r;
}

struct machine *session_machine_hold(struct session *s)
{
	if (session_machine_get(s) < 0)
		return NULL;
	vp_mutex_lock(&s->lock);
	struct machine *m = s->m;
	vp_mutex_unlock(&s->lock);
	return m;
}

void session_machine_put(struct session *s)
{
	struct machine *m = NULL;
	struct root_proxy *rp = NULL;
	vp_mutex_lock(&s->lock);
	if (--s->musers == 0 && s->released && s->m) {
		m = s->m;
		rp = s->rp;
		s->m = NULL;
		s->rp = NULL;
		s->client = NULL;
	}
	vp_mutex_unlock(&s->lock);
	if (m) {
		/* The proxy forgets through the client, so it goes first; the pool
		 * resets (or, if dead, evicts and replaces) in the background. */
		rp_free(rp);
		pool_release(s->pool, m);
		image_machine_put(s->img);
	}
}

/* How long rmdir may wait for the channel to take its SIGKILL frame. */
#define RELEASE_SEND_MS 20

/* Unnamed already; kill what runs and give the machine back when unused. */
static void release_session(struct session *s)
{
	vp_mutex_lock(&s->lock);
	s->released = true;
	s->cut = s->state == ST_RUNNING;
	bool kill = s->state == ST_RUNNING && s->exec_id_valid && !s->dead && s->client;
	uint32_t id = s->exec_id;
	struct vp_client *c = s->client;
	s->musers++;
	vp_mutex_unlock(&s->lock);
	/* rmdir does not wait for the guest (it holds pool/ for everyone:
	 * the kernel locks the parent directory across it). The reset after
	 * release ends the command anyway; this only makes it end sooner. */
	if (kill)
		(void)vp_exec_signal_nowait(c, id, SIGKILL, RELEASE_SEND_MS);
	session_machine_put(s);
}

int session_remove(struct vpfs *fs, fuse_ino_t dir, const char *name)
{
	vp_mutex_lock(&fs->lock);
	struct session *s = find_live(fs, dir, name);
	if (!s || !s->ready) {
		vp_mutex_unlock(&fs->lock);
		return -ENOENT;
	}
	unlink_live(fs, s);
	vp_mutex_unlock(&fs->lock);
	release_session(s);
	session_unref(s); /* the name table's */
	return 0;
}

/* ---- bounds: calls per machine, dead agents ----------------------------- */

int session_call_enter(struct session *s, bool always)
{
	int r = 0;
	vp_mutex_lock(&s->lock);
	if (!always && s->calls >= (int)s->fs->opts.machine_calls)
		r = -EAGAIN;
	else
		s->calls++;
	vp_mutex_unlock(&s->lock);
	return r;
}

void session_call_leave(struct session *s)
{
	vp_mutex_lock(&s->lock);
	s->calls--;
	vp_mutex_unlock(&s->lock);
}

/* The guest is not to be waited on any more: the session is dead with
 * `why`, and the machine is killed host-side, which shuts its channel
 * down: pending calls fail, a running command ends (on_exit_cb with an
 * error, which keeps `why`), blocked readers get EIO. Once per session. */
static void declare_dead(struct session *s, const char *why)
{
	struct machine *m = session_machine_hold(s);
	if (!m)
		return; /* released: the pool resets or replaces it */
	vp_mutex_lock(&s->lock);
	bool first = !s->dead;
	if (first) {
		s->dead = true;
		snprintf(s->error, sizeof s->error, "%s", why);
		/* A running command becomes an error when its exec ends. */
		if (s->state != ST_RUNNING) {
			s->state = ST_ERROR;
			clock_gettime(CLOCK_REALTIME, &s->ctime);
		}
	}
	vp_mutex_unlock(&s->lock);
	if (first) {
		vlog_warn(&s->fs->log, "%s: %s: killing the machine", s->name, why);
		machine_kill(m);
	}
	session_machine_put(s);
}

/* ---- commands ---------------------------------------------------------- */

static void on_started(void *ctx, uint32_t pid)
{
	struct session *s = ctx;
	vp_mutex_lock(&s->lock);
	s->pid = pid;
	vp_mutex_unlock(&s->lock);
}

static void on_output(void *ctx, int stream, const void *data, size_t len)
{
	struct session *s = ctx;
	int i = stream == VP_STREAM_STDERR;
	vp_mutex_lock(&s->lock);
	/* After a failed append nothing more is kept for this stream: what a
	 * reader gets stays a true prefix of the output, never one with a hole. */
	int r = s->out_err[i] ? 0 : outbuf_append(&s->out[i], data, len);
	if (r < 0) {
		s->out_err[i] = r;
		vlog_warn(&s->fs->log, "%s: %s output lost: %s", s->name, i ? "stderr" : "stdout",
			  r == -EDQUOT ? "output_max reached" : strerror(-r));
	}
	clock_gettime(CLOCK_REALTIME, &s->mtime[i]);
	vp_mutex_unlock(&s->lock);
	waiters_wake(s, i ? SF_STDERR : SF_STDOUT);
	notifier_post(s->fs->notify, s, i ? NQ_TOUCH_ERR : NQ_TOUCH_OUT);
}

static void on_exit_cb(void *ctx, const struct vp_exit *ex, int err)
{
	struct session *s = ctx;
	vp_mutex_lock(&s->lock);
	if (err < 0 || !ex) {
		if (s->released) {
			/* The machine went back to the pool under the command. */
			s->state = ST_SIGNALED;
			s->signo = SIGKILL;
			s->exit_code = 128 + SIGKILL;
		} else {
			s->state = ST_ERROR;
			/* Declared dead first (session_declare_dead): keep its why. */
			if (!s->dead)
				set_error(s, "guest connection lost", err < 0 ? err : -EIO);
			s->dead = true;
		}
		s->duration_ms = clock_mono_ms() - s->started_mono_ms;
	} else {
		if (ex->timed_out) {
			s->state = ST_TIMEOUT;
			s->exit_code = 124;
			s->signo = ex->signal;
		} else if (ex->signal) {
			s->state = ST_SIGNALED;
			s->exit_code = 128 + ex->signal;
			s->signo = ex->signal;
		} else {
			s->state = ST_EXITED;
			s->exit_code = ex->code;
		}
		s->duration_ms = ex->duration_us / 1000u;
	}
	s->exec_id_valid = false;
	/* Readers are answered by the notify thread once root/ caches are
	 * dropped (it must not happen here: an invalidation can wait for a
	 * root/ request that waits for this very reader thread). */
	s->settling = s->fs->notify != NULL;
	clock_gettime(CLOCK_REALTIME, &s->ctime);
	vp_mutex_unlock(&s->lock);
	if (s->fs->notify)
		notifier_post(s->fs->notify, s, NQ_EXIT);
	else
		waiters_wake(s, SF_EXIT);
	session_unref(s); /* the exec's */
}

void session_settled(struct session *s)
{
	vp_mutex_lock(&s->lock);
	bool was = s->settling;
	s->settling = false;
	vp_mutex_unlock(&s->lock);
	if (was)
		waiters_wake(s, SF_EXIT);
}

void session_pending(struct session *s, int delta)
{
	vp_mutex_lock(&s->lock);
	s->pending += delta;
	bool idle = s->pending == 0;
	vp_mutex_unlock(&s->lock);
	if (idle)
		waiters_wake(s, SF_EXIT);
}

int session_can_start(struct session *s)
{
	int r = 0;
	vp_mutex_lock(&s->lock);
	if (s->released || !s->m)
		r = -ESTALE;
	else if (s->state == ST_RUNNING || s->settling || s->snapshotting)
		r = -EBUSY;
	else if (s->dead)
		r = -EIO;
	vp_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	if (!session_check_alive(s))
		r = -EIO;
	return r;
}

/* Why the guest died: the line its backend wrote in the machine log when
 * it noticed (ns: "[vmpoolfs: the agent ... was killed by signal 9
 * (Killed); ...]"), else a plain statement. */
static void death_reason(struct machine *m, char *out, size_t cap)
{
	static const char mark[] = "[vmpoolfs: the agent ";
	snprintf(out, cap, "guest is not alive");
	const char *path = machine_log_path(m);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	char buf[4096];
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
	ssize_t n = end > 0 ? pread(fd, buf, sizeof buf - 1, from) : 0;
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	const char *last = NULL;
	for (const char *p = buf; (p = strstr(p, mark)); p++)
		last = p;
	if (!last)
		return;
	last += strlen("[vmpoolfs: ");
	size_t len = strcspn(last, ";]\n");
	snprintf(out, cap, "guest is not alive: %.*s", (int)len, last);
}

bool session_check_alive(struct session *s)
{
	struct machine *m = session_machine_hold(s);
	if (!m)
		return true; /* released: not ours to judge */
	bool alive = machine_is_alive(m);
	char why[sizeof s->error];
	if (!alive)
		death_reason(m, why, sizeof why);
	session_machine_put(s);
	if (alive)
		return true;
	vp_mutex_lock(&s->lock);
	/* A running command learns it from its exec's end (on_exit_cb). */
	bool now = !s->dead && s->state != ST_RUNNING;
	if (now) {
		s->dead = true;
		s->state = ST_ERROR;
		snprintf(s->error, sizeof s->error, "%s", why);
		clock_gettime(CLOCK_REALTIME, &s->ctime);
	}
	vp_mutex_unlock(&s->lock);
	if (now)
		vlog_err(&s->fs->log, "%s: %s", s->name, why);
	return false;
}

static int start_command(struct session *s, const char *text, size_t len);

int session_start(struct session *s, const char *text, size_t len)
{
	int r = session_can_start(s);
	if (r < 0)
		return r;
	if ((r = session_call_enter(s, false)) < 0)
		return r;
	r = start_command(s, text, len);
	session_call_leave(s);
	return r;
}

/* session_start with a call slot held. */
static int start_command(struct session *s, const char *text, size_t len)
{
	int r;
	char *cmd = malloc(len + 1);
	if (!cmd)
		return -ENOMEM;
	memcpy(cmd, text, len);
	cmd[len] = '\0';
	struct exec_settings set;

	vp_mutex_lock(&s->lock);
	if (s->released || !s->m)
		r = -ESTALE;
	else if (s->state == ST_RUNNING || s->settling || s->snapshotting)
		r = -EBUSY; /* lost a race with another writer */
	else if (s->dead)
		r = -EIO;
	else
		r = settings_copy(&set, &s->settings);
	if (r < 0) {
		vp_mutex_unlock(&s->lock);
		free(cmd);
		return r;
	}
	free(s->cmd);
	s->cmd = cmd;
	s->cmd_len = len;
	/* Each command's output is a new file (stdout/stderr get a new inode,
	 * ino.h): `tail -F` sees the name replaced and follows the new one,
	 * open files keep the old output (handles.c); the notify thread
	 * drops the old names below. */
	unsigned replaced = s->gen > 0 ? NQ_REPLACED : 0u;
	vfh_retire_outputs(s);
	s->out_err[0] = s->out_err[1] = 0;
	s->state = ST_RUNNING;
	uint64_t gen = ++s->gen;
	s->exec_id_valid = false;
	s->pid = 0;
	s->exit_code = 0;
	s->signo = 0;
	s->duration_ms = 0;
	s->error[0] = '\0';
	s->started_wall_ms = clock_wall_ms();
	s->started_mono_ms = clock_mono_ms();
	clock_gettime(CLOCK_REALTIME, &s->ctime);
	s->mtime[0] = s->mtime[1] = s->ctime;
	s->musers++;
	s->oom_base_known = false;
	s->oom_kills = 0;
	s->run_timeout_ms = set.timeout_ms;
	struct vp_client *c = s->client;
	struct machine *m = s->m;
	vp_mutex_unlock(&s->lock);
	if (replaced)
		notifier_post(s->fs->notify, s, replaced);

	/* The baseline for stat's oom_kills: the machine's count never goes
	 * back, so what a command's processes lost to the memory limit is the
	 * count now minus this. */
	struct machine_info info;
	machine_get_info(m, &info);
	vp_mutex_lock(&s->lock);
	if (s->gen == gen) {
		s->oom_base = info.oom_kills;
		s->oom_base_known = true;
	}
	vp_mutex_unlock(&s->lock);

	struct vp_exec req;
	memset(&req, 0, sizeof(req));
	req.timeout_ms = set.timeout_ms;
	req.flags = VP_EXEC_STDIN;
	req.cmd.p = (const uint8_t *)cmd;
	req.cmd.len = (uint32_t)len;
	if (set.cwd) {
		req.cwd.p = (const uint8_t *)set.cwd;
		req.cwd.len = (uint32_t)strlen(set.cwd);
	}
	req.nenv = set.nenv;
	for (uint32_t i = 0; i < set.nenv; i++) {
		req.env[i].p = (const uint8_t *)set.env[i];
		req.env[i].len = (uint32_t)strlen(set.env[i]);
	}
	static const struct vp_exec_cb cb = { on_started, on_output, on_exit_cb };
	uint32_t id = 0;
	session_ref(s); /* the exec's, dropped by on_exit */
	r = vp_exec_start(c, &req, &cb, s, &id);
	settings_free(&set);

	vp_mutex_lock(&s->lock);
	if (r == 0) {
		/* on_exit may already have run for a quick command. */
		if (s->gen == gen && s->state == ST_RUNNING) {
			s->exec_id = id;
			s->exec_id_valid = true;
		}
	} else {
		s->state = ST_ERROR;
		s->duration_ms = 0;
		if (s->dead) {
			/* declared dead meanwhile: its reason stays */
		} else if (r == -ECONNRESET || r == -EPIPE || !vp_client_alive(c)) {
			s->dead = true;
			set_error(s, "guest connection lost", r);
		} else {
			set_error(s, "exec failed", r);
		}
		clock_gettime(CLOCK_REALTIME, &s->ctime);
	}
	bool dead = s->dead;
	vp_mutex_unlock(&s->lock);
	if (r < 0) {
		session_unref(s); /* no callback will run */
		waiters_wake(s, SF_EXIT);
		notifier_post(s->fs->notify, s, NQ_EXIT);
	} else {
		vp_mutex_lock(&s->fs->lock);
		s->fs->commands_run++;
		vp_mutex_unlock(&s->fs->lock);
	}
	session_machine_put(s);
	if (r < 0 && dead)
		return -EIO;
	return r;
}

/* The running command's exec id and client, with a machine use taken that
 * session_machine_put gives back; false when no command runs, or (gen not
 * NULL) when the one running is not command *gen. */
static bool running_exec(struct session *s, const uint64_t *gen, uint32_t *id, struct vp_client **c)
{
	vp_mutex_lock(&s->lock);
	bool ok = s->state == ST_RUNNING && (!gen || s->gen == *gen) && s->exec_id_valid && s->client &&
		  !s->released;
	if (ok) {
		*id = s->exec_id;
		*c = s->client;
		s->musers++;
	}
	vp_mutex_unlock(&s->lock);
	return ok;
}

int session_kill(struct session *s, int signo)
{
	uint32_t id;
	struct vp_client *c;
	int r = session_call_enter(s, false);
	if (r < 0)
		return r;
	if (!running_exec(s, NULL, &id, &c)) {
		session_call_leave(s);
		return -ESRCH;
	}
	/* A live agent answers at once; the wait is the grace it gets. */
	int grace = s->fs->opts.ping_ms ? call_timeout_ms(s->fs) : TIMEOUT_GRACE_MS;
	r = vp_exec_signal_timeout(c, id, signo, grace);
	if (r == -ETIMEDOUT) {
		/* The agent did not act on the kill: the host does, and the
		 * machine goes with the command (its agent is not to be trusted
		 * with another). */
		char why[96];
		snprintf(why, sizeof why, "agent did not answer ctl kill within %.3g s", grace / 1000.0);
		declare_dead(s, why);
		r = 0;
	}
	session_machine_put(s);
	session_call_leave(s);
	return r;
}

int session_stdin(struct session *s, uint64_t gen, const void *data, size_t len, bool eof)
{
	uint32_t id;
	struct vp_client *c;
	int r = session_call_enter(s, eof && !len);
	if (r < 0)
		return r;
	if (!running_exec(s, &gen, &id, &c)) {
		session_call_leave(s);
		return -EPIPE;
	}
	/* Returns once the agent wrote it to the pipe: a command that does not
	 * read holds the writer, as a pipe would. That wait is the command's,
	 * not the agent's: with pings on, a live agent answers them meanwhile
	 * and a dead one fails this call when the watch declares it, so it
	 * has no deadline of its own; it holds one of the machine's calls. */
	r = vp_exec_stdin_timeout(c, id, data, len, eof, s->fs->opts.ping_ms ? -1 : INT32_MIN);
	session_machine_put(s);
	session_call_leave(s);
	if (r == -ESRCH)
		r = -EPIPE;
	else if (r == -ECONNRESET)
		r = -EIO;
	return r;
}

void session_refresh_oom_kills(struct session *s)
{
	struct machine *m = session_machine_hold(s);
	if (!m)
		return;
	vp_mutex_lock(&s->lock);
	uint64_t gen = s->gen;
	vp_mutex_unlock(&s->lock);
	struct machine_info info;
	machine_get_info(m, &info);
	vp_mutex_lock(&s->lock);
	if (s->gen == gen && s->oom_base_known && info.oom_kills >= s->oom_base)
		s->oom_kills = info.oom_kills - s->oom_base;
	vp_mutex_unlock(&s->lock);
	session_machine_put(s);
}

void session_release_all(struct vpfs *fs)
{
	for (;;) {
		vp_mutex_lock(&fs->lock);
		fs->shutting_down = true;
		struct session *s = NULL;
		list_for_each (&fs->live, it) {
			struct session *c = container_of(it, struct session, live_link);
			if (c->ready) {
				s = c;
				break;
			}
		}
		if (s)
			unlink_live(fs, s);
		vp_mutex_unlock(&fs->lock);
		if (!s)
			return;
		release_session(s);
		session_unref(s); /* the name table's */
	}
}

/* ---- the watch thread ---------------------------------------------------- */

/* The watch thread's own state. `lock` guards `stop` only and is a leaf:
 * nothing is taken under it, and the thread drops it while it looks at
 * the sessions (fs->lock, then each session's lock, never nested). */
struct session_watch {
	struct vpfs *fs;
	pthread_t thread;
	struct vp_mutex lock;
	pthread_cond_t cond; /* stop was set */
	bool stop GUARDED_BY(lock);
};

/* One look at one machine; never waits on its guest. */
static void watch_one(struct session *s, uint64_t now)
{
	const struct vpfs_opts *o = &s->fs->opts;
	if (session_machine_get(s) < 0)
		return;
	vp_mutex_lock(&s->lock);
	bool dead = s->dead;
	struct vp_client *c = s->client;
	bool running = s->state == ST_RUNNING && s->exec_id_valid;
	uint64_t ran = now - s->started_mono_ms;
	uint32_t tmo = s->run_timeout_ms;
	/* A snapshot freezes the machine for its copy (a large layer can
	 * take longer than the ping bound): not a hung agent. */
	bool frozen = s->snapshotting;
	vp_mutex_unlock(&s->lock);
	char why[160] = "";
	uint32_t grace = o->ping_ms ? o->ping_ms : TIMEOUT_GRACE_MS;
	if (dead || !c) {
		/* nothing to watch */
	} else if (o->ping_ms && !frozen && vp_client_probe(c, (int)o->ping_ms) == -ETIMEDOUT) {
		snprintf(why, sizeof why, "agent did not answer for %.3g s", o->ping_ms / 1000.0);
	} else if (running && tmo && ran >= (uint64_t)tmo + grace) {
		snprintf(why, sizeof why, "command timeout (%.3g s) not enforced by the agent within %.3g s",
			 tmo / 1000.0, grace / 1000.0);
	}
	if (why[0])
		declare_dead(s, why);
	session_machine_put(s);
}

/* The named sessions, each with a reference, into a fresh array. */
static size_t watch_collect(struct vpfs *fs, struct session ***out)
{
	*out = NULL;
	vp_mutex_lock(&fs->lock);
	size_t cap = fs->nlive;
	vp_mutex_unlock(&fs->lock);
	struct session **v = cap ? calloc(cap, sizeof *v) : NULL;
	if (!v)
		return 0;
	size_t n = 0;
	vp_mutex_lock(&fs->lock);
	list_for_each (&fs->live, it) {
		struct session *s = container_of(it, struct session, live_link);
		if (n == cap)
			break; /* made since: the next tick sees them */
		if (s->ready) {
			session_ref(s);
			v[n++] = s;
		}
	}
	vp_mutex_unlock(&fs->lock);
	*out = v;
	return n;
}

static void *watch_main(void *arg)
{
	struct session_watch *w = arg;
	const struct vpfs_opts *o = &w->fs->opts;
	/* A few looks per bound, so a dead agent is declared within about
	 * 1.25 bounds; a bounded cost when no ping is set. */
	uint32_t tick = o->ping_ms ? o->ping_ms / 4 : 500;
	if (tick < 100)
		tick = 100;
	if (tick > 1000)
		tick = 1000;
	vp_mutex_lock(&w->lock);
	while (!w->stop) {
		uint64_t dl = deadline_after_ms(tick);
		while (!w->stop && clock_cond_wait(&w->cond, vp_mutex_raw(&w->lock), dl) != -ETIMEDOUT)
			;
		if (w->stop)
			break;
		vp_mutex_unlock(&w->lock);
		struct session **v;
		size_t n = watch_collect(w->fs, &v);
		uint64_t now = clock_mono_ms();
		for (size_t i = 0; i < n; i++) {
			watch_one(v[i], now);
			session_unref(v[i]);
		}
		free(v);
		vp_mutex_lock(&w->lock);
	}
	vp_mutex_unlock(&w->lock);
	return NULL;
}

int session_watch_start(struct vpfs *fs)
{
	struct session_watch *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fs = fs;
	int r = vp_mutex_init(&w->lock);
	if (r) {
		free(w);
		return -r;
	}
	if ((r = clock_cond_init(&w->cond))) {
		vp_mutex_destroy(&w->lock);
		free(w);
		return r;
	}
	/* No signals here: they belong to the FUSE loop's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&w->thread, NULL, watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_cond_destroy(&w->cond);
		vp_mutex_destroy(&w->lock);
		free(w);
		return r;
	}
	fs->watch = w;
	return 0;
}

void session_watch_stop(struct vpfs *fs)
{
	struct session_watch *w = fs->watch;
	if (!w)
		return;
	vp_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	vp_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	vp_mutex_destroy(&w->lock);
	free(w);
	fs->watch = NULL;
}
