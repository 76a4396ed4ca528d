/* Sessions: an acquired machine and its command state; see session.h. */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/root_proxy.h"
#include "proto/client.h"
#include "notify.h"
#include "waiters.h"

const char *cmd_state_name(enum cmd_state st)
{
	static const char *const names[] = {"idle", "running", "exited", "signaled", "timeout", "error"};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

uint64_t vpfs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t vpfs_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void session_ref(struct session *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

static void session_destroy(struct session *s)
{
	struct vpfs *fs = s->fs;
	pthread_mutex_lock(&fs->lock);
	if (s->prev_all)
		s->prev_all->next_all = s->next_all;
	else
		fs->all = s->next_all;
	if (s->next_all)
		s->next_all->prev_all = s->prev_all;
	pthread_mutex_unlock(&fs->lock);
	outbuf_free(&s->out[0]);
	outbuf_free(&s->out[1]);
	settings_free(&s->settings);
	free(s->cmd);
	free(s->name);
	pthread_mutex_destroy(&s->lock);
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

/* ---- name table ------------------------------------------------------ */

static struct session *find_live(struct vpfs *fs, const char *name)
{
	for (struct session *s = fs->live; s; s = s->next_live)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static void unlink_live(struct vpfs *fs, struct session *s)
{
	for (struct session **pp = &fs->live; *pp; pp = &(*pp)->next_live) {
		if (*pp == s) {
			*pp = s->next_live;
			s->next_live = NULL;
			fs->nlive--;
			return;
		}
	}
}

struct session *session_by_name(struct vpfs *fs, const char *name)
{
	pthread_mutex_lock(&fs->lock);
	struct session *s = find_live(fs, name);
	if (s && s->ready)
		session_ref(s);
	else
		s = NULL;
	pthread_mutex_unlock(&fs->lock);
	return s;
}

/* Looks in the live list, or with `any` in the list of every session. */
static struct session *by_serial(struct vpfs *fs, uint64_t serial, bool any)
{
	struct session *s;
	pthread_mutex_lock(&fs->lock);
	for (s = any ? fs->all : fs->live; s; s = any ? s->next_all : s->next_live)
		if (s->serial == serial && s->ready)
			break;
	if (s)
		session_ref(s);
	pthread_mutex_unlock(&fs->lock);
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

int session_create(struct vpfs *fs, const char *name, struct session **out)
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
	s->refs = 1; /* the name table */
	pthread_mutex_init(&s->lock, NULL);
	outbuf_init(&s->out[0], fs->opts.spill_threshold, fs->spill_dir);
	outbuf_init(&s->out[1], fs->opts.spill_threshold, fs->spill_dir);
	settings_init(&s->settings, fs->opts.timeout_ms);
	clock_gettime(CLOCK_REALTIME, &s->ctime);
	s->mtime[0] = s->mtime[1] = s->ctime;

	pthread_mutex_lock(&fs->lock);
	int err = 0;
	if (fs->shutting_down)
		err = -ESHUTDOWN;
	else if (find_live(fs, name))
		err = -EEXIST;
	else if (fs->next_serial > SES_SERIAL_MAX)
		err = -ENOSPC;
	if (err) {
		pthread_mutex_unlock(&fs->lock);
		free(s->name);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return err;
	}
	/* The name is reserved (not yet visible) while the machine comes. */
	s->serial = fs->next_serial++;
	s->next_live = fs->live;
	fs->live = s;
	fs->nlive++;
	s->next_all = fs->all;
	if (fs->all)
		fs->all->prev_all = s;
	fs->all = s;
	pthread_mutex_unlock(&fs->lock);

	void *m = NULL;
	struct root_proxy *rp = NULL;
	err = pool_acquire(fs->pool, &m);
	if (err == 0) {
		err = rp_new(machine_client(m), INO_RP_BIT | (s->serial << RP_NODE_BITS), &rp);
		if (err < 0) {
			pool_release(fs->pool, m);
			m = NULL;
		}
	}
	if (err < 0) {
		pthread_mutex_lock(&fs->lock);
		unlink_live(fs, s);
		pthread_mutex_unlock(&fs->lock);
		session_unref(s);
		return err;
	}
	struct machine_info info;
	machine_get_info(m, &info);
	pthread_mutex_lock(&s->lock);
	s->m = m;
	s->client = machine_client(m);
	s->rp = rp;
	s->host_pid = info.host_pid;
	s->machine_id = info.id;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&fs->lock);
	s->ready = true;
	session_ref(s);
	pthread_mutex_unlock(&fs->lock);
	*out = s;
	return 0;
}

/* ---- machine use ------------------------------------------------------- */

int session_machine_get(struct session *s)
{
	int r = 0;
	pthread_mutex_lock(&s->lock);
	if (s->released || !s->m)
		r = -ESTALE;
	else
		s->musers++;
	pthread_mutex_unlock(&s->lock);
	return r;
}

void session_machine_put(struct session *s)
{
	struct machine *m = NULL;
	struct root_proxy *rp = NULL;
	pthread_mutex_lock(&s->lock);
	if (--s->musers == 0 && s->released && s->m) {
		m = s->m;
		rp = s->rp;
		s->m = NULL;
		s->rp = NULL;
		s->client = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (m) {
		/* The proxy forgets through the client, so it goes first; the pool
		 * resets (or, if dead, evicts and replaces) in the background. */
		rp_free(rp);
		pool_release(s->fs->pool, m);
	}
}

/* Unnamed already; kill what runs and give the machine back when unused. */
static void release_session(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->released = true;
	bool kill = s->state == ST_RUNNING && s->exec_id_valid && !s->dead && s->client;
	uint32_t id = s->exec_id;
	struct vp_client *c = s->client;
	s->musers++;
	pthread_mutex_unlock(&s->lock);
	if (kill)
		(void)vp_exec_signal(c, id, SIGKILL); /* ESRCH if it just ended */
	session_machine_put(s);
}

int session_remove(struct vpfs *fs, const char *name)
{
	pthread_mutex_lock(&fs->lock);
	struct session *s = find_live(fs, name);
	if (!s || !s->ready) {
		pthread_mutex_unlock(&fs->lock);
		return -ENOENT;
	}
	unlink_live(fs, s);
	pthread_mutex_unlock(&fs->lock);
	release_session(s);
	session_unref(s); /* the name table's */
	return 0;
}

/* ---- commands ---------------------------------------------------------- */

static void on_started(void *ctx, uint32_t pid)
{
	struct session *s = ctx;
	pthread_mutex_lock(&s->lock);
	s->pid = pid;
	pthread_mutex_unlock(&s->lock);
}

static void on_output(void *ctx, int stream, const void *data, size_t len)
{
	struct session *s = ctx;
	int i = stream == VP_STREAM_STDERR;
	pthread_mutex_lock(&s->lock);
	/* After a failed append nothing more is kept for this stream: what a
	 * reader gets stays a true prefix of the output, never one with a hole. */
	int r = s->out_err[i] ? 0 : outbuf_append(&s->out[i], data, len);
	if (r < 0) {
		s->out_err[i] = r;
		fprintf(stderr, "vmpoolfs: %s: %s output lost: %s\n", s->name, i ? "stderr" : "stdout",
			strerror(-r));
	}
	clock_gettime(CLOCK_REALTIME, &s->mtime[i]);
	pthread_mutex_unlock(&s->lock);
	waiters_wake(s, i ? SF_STDERR : SF_STDOUT);
	notifier_post(s->fs->notify, s, i ? NQ_TOUCH_ERR : NQ_TOUCH_OUT);
}

static void on_exit_cb(void *ctx, const struct vp_exit *ex, int err)
{
	struct session *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (err < 0 || !ex) {
		if (s->released) {
			/* The machine went back to the pool under the command. */
			s->state = ST_SIGNALED;
			s->signo = SIGKILL;
			s->exit_code = 128 + SIGKILL;
		} else {
			s->state = ST_ERROR;
			s->dead = true;
			set_error(s, "guest connection lost", err < 0 ? err : -EIO);
		}
		s->duration_ms = vpfs_now_ms() - s->started_mono_ms;
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
	pthread_mutex_unlock(&s->lock);
	if (s->fs->notify)
		notifier_post(s->fs->notify, s, NQ_EXIT);
	else
		waiters_wake(s, SF_EXIT);
	session_unref(s); /* the exec's */
}

void session_settled(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	bool was = s->settling;
	s->settling = false;
	pthread_mutex_unlock(&s->lock);
	if (was)
		waiters_wake(s, SF_EXIT);
}

void session_pending(struct session *s, int delta)
{
	pthread_mutex_lock(&s->lock);
	s->pending += delta;
	bool idle = s->pending == 0;
	pthread_mutex_unlock(&s->lock);
	if (idle)
		waiters_wake(s, SF_EXIT);
}

int session_can_start(struct session *s)
{
	int r = 0;
	pthread_mutex_lock(&s->lock);
	if (s->released || !s->m)
		r = -ESTALE;
	else if (s->state == ST_RUNNING || s->settling)
		r = -EBUSY;
	else if (s->dead)
		r = -EIO;
	if (r == 0)
		s->musers++; /* keeps s->m from going back to the pool meanwhile */
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	bool alive = machine_is_alive(s->m);
	session_machine_put(s);
	if (!alive) {
		pthread_mutex_lock(&s->lock);
		if (!s->dead && s->state != ST_RUNNING) {
			s->dead = true;
			s->state = ST_ERROR;
			snprintf(s->error, sizeof(s->error), "guest is not alive");
		}
		pthread_mutex_unlock(&s->lock);
		r = -EIO;
	}
	return r;
}

int session_start(struct session *s, const char *text, size_t len)
{
	int r = session_can_start(s);
	if (r < 0)
		return r;
	char *cmd = malloc(len + 1);
	if (!cmd)
		return -ENOMEM;
	memcpy(cmd, text, len);
	cmd[len] = '\0';
	struct exec_settings set;

	pthread_mutex_lock(&s->lock);
	if (s->released || !s->m)
		r = -ESTALE;
	else if (s->state == ST_RUNNING || s->settling)
		r = -EBUSY; /* lost a race with another writer */
	else if (s->dead)
		r = -EIO;
	else
		r = settings_copy(&set, &s->settings);
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		free(cmd);
		return r;
	}
	free(s->cmd);
	s->cmd = cmd;
	s->cmd_len = len;
	outbuf_reset(&s->out[0]);
	outbuf_reset(&s->out[1]);
	s->out_err[0] = s->out_err[1] = 0;
	s->state = ST_RUNNING;
	uint64_t gen = ++s->gen;
	s->exec_id_valid = false;
	s->pid = 0;
	s->exit_code = 0;
	s->signo = 0;
	s->duration_ms = 0;
	s->error[0] = '\0';
	s->started_wall_ms = vpfs_wall_ms();
	s->started_mono_ms = vpfs_now_ms();
	clock_gettime(CLOCK_REALTIME, &s->ctime);
	s->mtime[0] = s->mtime[1] = s->ctime;
	s->musers++;
	s->oom_base_known = false;
	s->oom_kills = 0;
	struct vp_client *c = s->client;
	struct machine *m = s->m;
	pthread_mutex_unlock(&s->lock);

	/* The baseline for stat's oom_kills: the machine's count never goes
	 * back, so what a command's processes lost to the memory limit is the
	 * count now minus this. */
	struct machine_info info;
	machine_get_info(m, &info);
	pthread_mutex_lock(&s->lock);
	if (s->gen == gen) {
		s->oom_base = info.oom_kills;
		s->oom_base_known = true;
	}
	pthread_mutex_unlock(&s->lock);

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
	static const struct vp_exec_cb cb = {on_started, on_output, on_exit_cb};
	uint32_t id = 0;
	session_ref(s); /* the exec's, dropped by on_exit */
	r = vp_exec_start(c, &req, &cb, s, &id);
	settings_free(&set);

	pthread_mutex_lock(&s->lock);
	if (r == 0) {
		/* on_exit may already have run for a quick command. */
		if (s->gen == gen && s->state == ST_RUNNING) {
			s->exec_id = id;
			s->exec_id_valid = true;
		}
	} else {
		s->state = ST_ERROR;
		s->duration_ms = 0;
		if (r == -ECONNRESET || r == -EPIPE || !vp_client_alive(c)) {
			s->dead = true;
			set_error(s, "guest connection lost", r);
		} else {
			set_error(s, "exec failed", r);
		}
		clock_gettime(CLOCK_REALTIME, &s->ctime);
	}
	bool dead = s->dead;
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		session_unref(s); /* no callback will run */
		waiters_wake(s, SF_EXIT);
		notifier_post(s->fs->notify, s, NQ_EXIT);
	} else {
		pthread_mutex_lock(&s->fs->lock);
		s->fs->commands_run++;
		pthread_mutex_unlock(&s->fs->lock);
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
	pthread_mutex_lock(&s->lock);
	bool ok = s->state == ST_RUNNING && (!gen || s->gen == *gen) && s->exec_id_valid && s->client &&
		  !s->released;
	if (ok) {
		*id = s->exec_id;
		*c = s->client;
		s->musers++;
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

int session_kill(struct session *s, int signo)
{
	uint32_t id;
	struct vp_client *c;
	if (!running_exec(s, NULL, &id, &c))
		return -ESRCH;
	int r = vp_exec_signal(c, id, signo);
	session_machine_put(s);
	return r;
}

int session_stdin(struct session *s, uint64_t gen, const void *data, size_t len, bool eof)
{
	uint32_t id;
	struct vp_client *c;
	if (!running_exec(s, &gen, &id, &c))
		return -EPIPE;
	/* Returns once the agent wrote it to the pipe: a command that does not
	 * read holds the writer, as a pipe would. */
	int r = vp_exec_stdin(c, id, data, len, eof);
	session_machine_put(s);
	if (r == -ESRCH)
		r = -EPIPE;
	else if (r == -ECONNRESET)
		r = -EIO;
	return r;
}

/* ---- text of the files ------------------------------------------------- */

static void put_escaped(FILE *f, const char *p, size_t n)
{
	/* One line per key: a multi-line command shows its newlines as \n. */
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			fputs("\\n", f);
		else if (p[i] == '\\')
			fputs("\\\\", f);
		else
			fputc(p[i], f);
	}
}

/* The error= line of a command whose output could not all be kept (a full
 * spill disk): which stream, how much is there, why. */
static void put_output_lost(FILE *f, const struct session *s)
{
	fputs("error=", f);
	const char *sep = "";
	for (int i = 0; i < 2; i++) {
		if (!s->out_err[i])
			continue;
		fprintf(f, "%s%s output lost after %llu bytes: %s", sep, i ? "stderr" : "stdout",
			(unsigned long long)outbuf_len(&s->out[i]), strerror(-s->out_err[i]));
		sep = "; ";
	}
	fputc('\n', f);
}

/* Reads the machine's OOM-kill count into s->oom_kills (while the machine
 * is still ours; after rmdir the last value stays). */
static void refresh_oom_kills(struct session *s)
{
	if (session_machine_get(s) < 0)
		return;
	pthread_mutex_lock(&s->lock);
	struct machine *m = s->m;
	uint64_t gen = s->gen;
	pthread_mutex_unlock(&s->lock);
	struct machine_info info;
	machine_get_info(m, &info);
	pthread_mutex_lock(&s->lock);
	if (s->gen == gen && s->oom_base_known && info.oom_kills >= s->oom_base)
		s->oom_kills = info.oom_kills - s->oom_base;
	pthread_mutex_unlock(&s->lock);
	session_machine_put(s);
}

int session_format_stat(struct session *s, char **out, size_t *len)
{
	refresh_oom_kills(s);
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	enum cmd_state st = s->settling ? ST_RUNNING : s->state;
	fprintf(f, "state=%s\n", cmd_state_name(st));
	if (st == ST_EXITED || st == ST_SIGNALED || st == ST_TIMEOUT)
		fprintf(f, "exit_code=%d\n", s->exit_code);
	else
		fputs("exit_code=\n", f);
	if ((st == ST_SIGNALED || st == ST_TIMEOUT) && s->signo)
		fprintf(f, "signal=%d\n", s->signo);
	else
		fputs("signal=\n", f);
	if (st != ST_IDLE && s->pid)
		fprintf(f, "pid=%u\n", s->pid);
	else
		fputs("pid=\n", f);
	if (st != ST_IDLE) {
		fprintf(f, "started_ms=%llu\n", (unsigned long long)s->started_wall_ms);
		uint64_t d = st == ST_RUNNING ? vpfs_now_ms() - s->started_mono_ms : s->duration_ms;
		fprintf(f, "duration_ms=%llu\n", (unsigned long long)d);
	} else {
		fputs("started_ms=\nduration_ms=\n", f);
	}
	fprintf(f, "stdout_bytes=%llu\n", (unsigned long long)outbuf_len(&s->out[0]));
	fprintf(f, "stderr_bytes=%llu\n", (unsigned long long)outbuf_len(&s->out[1]));
	if (st != ST_IDLE)
		fprintf(f, "oom_kills=%llu\n", (unsigned long long)s->oom_kills);
	else
		fputs("oom_kills=\n", f);
	fputs("cmd=", f);
	if (s->cmd)
		put_escaped(f, s->cmd, s->cmd_len);
	fputc('\n', f);
	fprintf(f, "host_pid=%d\n", s->host_pid);
	if (st == ST_ERROR)
		fprintf(f, "error=%s\n", s->error);
	else if (s->out_err[0] || s->out_err[1])
		put_output_lost(f, s);
	pthread_mutex_unlock(&s->lock);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = sz;
	return 0;
}

/* Reads the whole log file: the backends cap it (1 MiB and a marker line
 * per life of a machine), so a bound here only guards against surprises. */
#define LOG_READ_MAX (2u << 20)

/* Up to LOG_READ_MAX bytes of the file as it is now, sized by fstat rather
 * than by the bound: a log is usually empty or a few lines. */
static int read_small_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	size_t want = (uint64_t)st.st_size < LOG_READ_MAX ? (size_t)st.st_size : LOG_READ_MAX;
	char *buf = malloc(want ? want : 1);
	size_t got = 0;
	int err = buf ? 0 : -ENOMEM;
	while (!err && got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = -errno;
		else if (n == 0)
			break;
		else
			got += (size_t)n;
	}
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*len = got;
	return 0;
}

/* The machine, held (musers) so that it stays ours; NULL after rmdir.
 * The caller ends with session_machine_put. */
static struct machine *machine_held(struct session *s)
{
	if (session_machine_get(s) < 0)
		return NULL;
	pthread_mutex_lock(&s->lock);
	struct machine *m = s->m;
	pthread_mutex_unlock(&s->lock);
	return m;
}

int session_read_log(struct session *s, char **out, size_t *len)
{
	struct machine *m = machine_held(s);
	if (!m)
		return -ESTALE;
	/* A guest found dead now gets its end noted in the log before we read. */
	machine_is_alive(m);
	const char *path = machine_log_path(m);
	int err = 0;
	if (path) {
		err = read_small_file(path, out, len);
	} else {
		*out = NULL;
		*len = 0;
	}
	session_machine_put(s);
	return err;
}

static uint64_t log_size(struct session *s)
{
	struct machine *m = machine_held(s);
	if (!m)
		return 0;
	const char *path = machine_log_path(m);
	struct stat st;
	uint64_t n = 0;
	if (path && stat(path, &st) == 0)
		n = (uint64_t)st.st_size < LOG_READ_MAX ? (uint64_t)st.st_size : LOG_READ_MAX;
	session_machine_put(s);
	return n;
}

uint64_t session_file_size(struct session *s, int file)
{
	uint64_t n = 0;
	char *txt = NULL;
	size_t tl = 0;
	switch (file) {
	case SF_STAT:
		if (session_format_stat(s, &txt, &tl) == 0)
			n = tl;
		break;
	case SF_CTL:
		pthread_mutex_lock(&s->lock);
		if (settings_format(&s->settings, &txt, &tl) == 0)
			n = tl;
		pthread_mutex_unlock(&s->lock);
		break;
	case SF_LOG:
		n = log_size(s);
		break;
	default:
		pthread_mutex_lock(&s->lock);
		if (file == SF_CMD)
			n = s->cmd_len;
		else if (file == SF_STDOUT || file == SF_STDERR)
			n = outbuf_len(&s->out[file == SF_STDERR]);
		else if (file == SF_EXIT && s->state != ST_IDLE && s->state != ST_RUNNING &&
			 s->state != ST_ERROR)
			n = (uint64_t)snprintf(NULL, 0, "%d\n", s->exit_code);
		pthread_mutex_unlock(&s->lock);
		break;
	}
	free(txt);
	return n;
}

/* ---- handles ------------------------------------------------------------ */

/* The list a handle is on and the lock that guards it: its session's, or
 * the daemon's list of handles with no session. */
static struct vfh **fh_list(struct vpfs *fs, struct session *s, pthread_mutex_t **lock)
{
	*lock = s ? &s->lock : &fs->lock;
	return s ? &s->fhs : &fs->misc_fhs;
}

struct vfh *vfh_new(struct vpfs *fs, struct session *s, int kind)
{
	struct vfh *fh = calloc(1, sizeof(*fh));
	if (!fh)
		return NULL;
	fh->s = s;
	fh->kind = kind;
	pthread_mutex_init(&fh->io, NULL);
	if (s)
		session_ref(s);
	pthread_mutex_t *lock;
	struct vfh **head = fh_list(fs, s, &lock);
	pthread_mutex_lock(lock);
	if (s)
		fh->gen = s->gen;
	fh->next = *head;
	if (fh->next)
		fh->next->prev = fh;
	*head = fh;
	pthread_mutex_unlock(lock);
	return fh;
}

void vfh_free(struct vpfs *fs, struct vfh *fh)
{
	struct session *s = fh->s;
	pthread_mutex_t *lock;
	struct vfh **head = fh_list(fs, s, &lock);
	pthread_mutex_lock(lock);
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		*head = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	struct fuse_pollhandle *ph = fh->ph;
	fh->ph = NULL;
	pthread_mutex_unlock(lock);
	if (ph)
		fuse_pollhandle_destroy(ph);
	pthread_mutex_destroy(&fh->io);
	free(fh->buf);
	free(fh);
	if (s)
		session_unref(s);
}

void session_release_all(struct vpfs *fs)
{
	/* Named sessions: unname and release, as rmdir would. */
	for (;;) {
		pthread_mutex_lock(&fs->lock);
		fs->shutting_down = true;
		struct session *s = fs->live;
		while (s && !s->ready)
			s = s->next_live;
		if (s)
			unlink_live(fs, s);
		pthread_mutex_unlock(&fs->lock);
		if (!s)
			break;
		release_session(s);
		session_unref(s);
	}
	/* The kernel sends no RELEASE after the connection is gone: drop the
	 * handles it still had, and answer every parked read. */
	for (;;) {
		struct session *s = NULL;
		struct vfh *fh = NULL;
		pthread_mutex_lock(&fs->lock);
		if (fs->misc_fhs) {
			fh = fs->misc_fhs;
		} else {
			for (s = fs->all; s; s = s->next_all) {
				pthread_mutex_lock(&s->lock);
				fh = s->fhs;
				bool waiting = s->waiters != NULL;
				pthread_mutex_unlock(&s->lock);
				if (fh || waiting)
					break;
			}
			if (s)
				session_ref(s);
		}
		pthread_mutex_unlock(&fs->lock);
		if (!fh && !s)
			break;
		if (s) {
			waiters_fail_all(s, EIO);
			pthread_mutex_lock(&s->lock);
			fh = s->fhs;
			pthread_mutex_unlock(&s->lock);
			if (fh)
				vfh_free(fs, fh);
			session_unref(s);
		} else {
			vfh_free(fs, fh);
		}
	}
}
