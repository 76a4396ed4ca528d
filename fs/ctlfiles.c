/* The rows of the control tree and what each file does; see ctlfiles.h
 * and docs/usage.md for what users see. */
#include "lib/vlog.h"
#include "ctlfiles.h"
#include "guestdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlparse.h"
#include "handles.h"
#include "images.h"
#include "info.h"
#include "lib/clock.h"
#include "proto/proto.h"
#include "fs/root_proxy.h"
#include "session.h"

/* ---- cmd ------------------------------------------------------------------ */

/* The longest command that runs: the agent hands it to sh as one argv
 * string, and Linux's MAX_ARG_STRLEN (VP_MAX_CMD, 128 KiB) counts its
 * terminating NUL, so a text of exactly 128 KiB would fail at exec with
 * E2BIG. Refusing it at the write says so where it happens. */
#define CMD_MAX (VP_MAX_CMD - 1)

static int cmd_open(struct vfh *fh)
{
	return fh->writer ? session_can_start(fh->s) : 0;
}

static int cmd_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)fs;
	(void)img;
	vp_mutex_lock(&s->lock);
	*len = s->cmd_len;
	*txt = malloc(*len ? *len : 1);
	if (*txt && *len)
		memcpy(*txt, s->cmd, *len);
	vp_mutex_unlock(&s->lock);
	return *txt ? 0 : -ENOMEM;
}

static int cmd_append(struct vfh *fh, const char *buf, size_t size)
{
	struct session *s = fh->s;
	if (memchr(buf, '\0', size))
		return -EINVAL; /* sh -c takes a C string */
	vp_mutex_lock(&s->lock);
	bool running = s->state == ST_RUNNING;
	vp_mutex_unlock(&s->lock);
	if (running)
		return -EBUSY;
	if (fh->started) { /* text after a started one is a new command */
		fh->started = false;
		fh->len = 0;
	}
	int r = fh->len + size > CMD_MAX ? -E2BIG : vfh_append(fh, buf, size);
	if (r == 0 && !fh->pending && size > 0) {
		fh->pending = true;
		session_pending(s, 1);
	}
	return r;
}

/* A failed write drops the text this open holds: `cat script > cmd` cut
 * at the limit would otherwise run the script's first half at close. */
static int cmd_write(struct vfh *fh, const char *buf, size_t size)
{
	if (fh->poison)
		return fh->poison;
	int r = cmd_append(fh, buf, size);
	if (r == 0)
		return 0;
	fh->poison = r;
	fh->len = 0;
	if (fh->pending) {
		fh->pending = false;
		session_pending(fh->s, -1);
	}
	vlog_warn(&fh->s->fs->log, "%s: cmd: a write failed (%s): nothing of this open runs", fh->s->name,
		  strerror(-r));
	return r;
}

static int cmd_start_pending(struct vfh *fh)
{
	if (!fh->writer)
		return 0;
	/* Taken out first: a dup closed at the same time starts nothing. */
	bool mine = fh->pending && !fh->started;
	fh->started = true;
	fh->pending = false;
	if (!mine)
		return 0;
	int r = session_start(fh->s, fh->buf, fh->len);
	fh->len = 0;
	session_pending(fh->s, -1); /* after the start: readers never see a gap */
	return r;
}

/* The command runs when the process that opened cmd closes it after
 * writing: close() waits for flush, not for release, so `echo x > cmd;
 * cat stdout` finds it running, and errors reach close. A close before any
 * write (the shell's dup2 of a redirection) has no text; a close by another
 * process that inherited the descriptor (`{ printf a; sleep 1; printf b; }
 * > cmd`: sleep exits first) is not the end of the text. Anything else
 * starts at release. */
static int cmd_flush(struct vfh *fh, pid_t pid)
{
	if (fh->poison)
		return fh->poison; /* also for a shell whose builtin echo ignores the write's error */
	return pid == fh->opener ? cmd_start_pending(fh) : 0;
}

static void cmd_release(struct vfh *fh)
{
	(void)cmd_start_pending(fh); /* no flush came (it cannot fail now) */
}

static uint64_t cmd_size(struct session *s)
{
	vp_mutex_lock(&s->lock);
	uint64_t n = s->cmd_len;
	vp_mutex_unlock(&s->lock);
	return n;
}

/* ---- stdout, stderr, exit ------------------------------------------------- */

static uint64_t out_size(struct session *s, int i)
{
	vp_mutex_lock(&s->lock);
	uint64_t n = outbuf_len(&s->out[i]);
	vp_mutex_unlock(&s->lock);
	return n;
}

static uint64_t stdout_size(struct session *s)
{
	return out_size(s, 0);
}

static uint64_t stderr_size(struct session *s)
{
	return out_size(s, 1);
}

static uint64_t exit_size(struct session *s)
{
	uint64_t n = 0;
	vp_mutex_lock(&s->lock);
	if (s->state != ST_IDLE && s->state != ST_RUNNING && s->state != ST_ERROR)
		n = (uint64_t)snprintf(NULL, 0, "%d\n", s->exit_code);
	vp_mutex_unlock(&s->lock);
	return n;
}

/* ---- stat ----------------------------------------------------------------- */

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
 * spill disk, the machine's output_max): which stream, how much is there,
 * why. */
static void put_output_lost(FILE *f, const struct session *s)
{
	fputs("error=", f);
	const char *sep = "";
	for (int i = 0; i < 2; i++) {
		if (!s->out_err[i])
			continue;
		fprintf(f, "%s%s output lost after %llu bytes: %s", sep, i ? "stderr" : "stdout",
			(unsigned long long)outbuf_len(&s->out[i]),
			s->out_err[i] == -EDQUOT ? "output_max reached" : strerror(-s->out_err[i]));
		sep = "; ";
	}
	fputc('\n', f);
}

/* The root/ proxy's agent round trips (docs/usage.md); the proxy lives as
 * long as the machine, and s->lock keeps it from going meanwhile. */
static void put_fs_counters(FILE *f, const struct session *s) REQUIRES(&s->lock)
{
	if (!s->rp) {
		fputs("fs_lookups=\nfs_getattrs=\nfs_readdirs=\nfs_readdirplus=\n", f);
		return;
	}
	struct rp_counters c;
	rp_get_counters(s->rp, &c);
	fprintf(f, "fs_lookups=%llu\nfs_getattrs=%llu\nfs_readdirs=%llu\nfs_readdirplus=%llu\n",
		(unsigned long long)c.lookups, (unsigned long long)c.getattrs, (unsigned long long)c.readdirs,
		(unsigned long long)c.readdirplus);
}

/* Under s->lock. */
static void put_stat(FILE *f, const struct session *s) REQUIRES(&s->lock)
{
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
		uint64_t d = st == ST_RUNNING ? clock_mono_ms() - s->started_mono_ms : s->duration_ms;
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
	put_fs_counters(f, s);
	if (st == ST_ERROR)
		fprintf(f, "error=%s\n", s->error);
	else if (s->out_err[0] || s->out_err[1])
		put_output_lost(f, s);
}

static int stat_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)fs;
	(void)img;
	(void)session_check_alive(s); /* an idle guest that died says so here */
	session_refresh_oom_kills(s);
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return -ENOMEM;
	vp_mutex_lock(&s->lock);
	put_stat(f, s);
	vp_mutex_unlock(&s->lock);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*txt = buf;
	*len = sz;
	return 0;
}

/* ---- stdin ------------------------------------------------------------------ */

/* After EOF (an earlier open of stdin was closed) the agent has no pipe
 * left and says EBADF; for the writer that is a closed pipe: EPIPE, as a
 * write to a pipe whose reader is gone. */
static int stdin_write(struct vfh *fh, const char *buf, size_t size)
{
	int r = session_stdin(fh->s, fh->gen, buf, size, false);
	return r == -EBADF ? -EPIPE : r;
}

/* Closing the file is EOF for the command it was opened for. */
static void stdin_release(struct vfh *fh)
{
	if (fh->writer)
		(void)session_stdin(fh->s, fh->gen, NULL, 0, true);
}

/* ---- ctl ------------------------------------------------------------------- */

/* A ctl line may carry a path and an env word: bounded like them. */
#define CTL_PENDING_MAX (VP_MAX_PATH + 64 + 32 * 1024)

static int ctl_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)fs;
	(void)img;
	vp_mutex_lock(&s->lock);
	int r = settings_format(&s->settings, txt, len);
	vp_mutex_unlock(&s->lock);
	return r;
}

/* cwd PATH must name a directory in the guest now: a bad one would make
 * every later command fail. The guest can still remove it later; then
 * the command fails at its start (state=error, the agent's reason). */
static int check_cwd(struct session *s, const struct ctl_cmd *c)
{
	int r = session_machine_get(s);
	if (r < 0)
		return r;
	if ((r = session_call_enter(s, false)) < 0) { /* the machine's share of workers */
		session_machine_put(s);
		return r;
	}
	vp_mutex_lock(&s->lock);
	struct vp_client *cl = s->dead ? NULL : s->client;
	vp_mutex_unlock(&s->lock);
	r = cl ? guest_dir_check(cl, c->arg, c->arglen) : -EIO;
	session_call_leave(s);
	session_machine_put(s);
	if (r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN)
		r = -EIO;
	if (r < 0)
		vlog_warn(&s->fs->log, "%s: ctl: cwd %.*s: %s", s->name, (int)c->arglen, c->arg, strerror(-r));
	return r;
}

/* Runs each complete line; the rest waits for more data or the close
 * (all). */
static int ctl_lines(struct vfh *fh, bool all)
{
	struct session *s = fh->s;
	int err = 0;
	size_t start = 0;
	while (start < fh->len) {
		char *nl = memchr(fh->buf + start, '\n', fh->len - start);
		if (!nl && !all)
			break;
		size_t end = nl ? (size_t)(nl - fh->buf) : fh->len;
		struct ctl_cmd c;
		err = ctl_parse_line(fh->buf + start, end - start, &c);
		if (err < 0)
			vlog_warn(&s->fs->log, "%s: ctl: refused '%.*s': %s", s->name,
				  (int)(end - start > 200 ? 200 : end - start), fh->buf + start,
				  strerror(-err));
		start = nl ? end + 1 : fh->len;
		if (err < 0)
			break;
		if (c.kind == CTL_KILL) {
			err = session_kill(s, c.signo);
		} else if (c.kind == CTL_SNAPSHOT) {
			char name[80];
			snprintf(name, sizeof name, "%.*s", (int)c.arglen, c.arg);
			err = session_snapshot(s, name);
		} else if (c.kind == CTL_CWD && (err = check_cwd(s, &c)) < 0) {
			/* refused: says why in the log, the write gets the errno */
		} else if (c.kind != CTL_NONE) {
			vp_mutex_lock(&s->lock);
			err = settings_apply(&s->settings, &c);
			vp_mutex_unlock(&s->lock);
		}
		if (err < 0)
			break;
	}
	if (err < 0)
		start = fh->len; /* a bad line drops what came with it */
	memmove(fh->buf, fh->buf + start, fh->len - start);
	fh->len -= start;
	return err;
}

static int ctl_write(struct vfh *fh, const char *buf, size_t size)
{
	if (fh->len + size > CTL_PENDING_MAX)
		return -E2BIG;
	if (memchr(buf, '\0', size))
		return -EINVAL;
	int r = vfh_append(fh, buf, size);
	return r < 0 ? r : ctl_lines(fh, false);
}

static int ctl_flush(struct vfh *fh, pid_t pid)
{
	(void)pid;
	return fh->writer && fh->len > 0 ? ctl_lines(fh, true) : 0;
}

/* ---- log ------------------------------------------------------------------- */

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

/* The machine's log (console or agent stderr; machine_log_path) as it is
 * now; -ESTALE after rmdir. */
static int log_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)fs;
	(void)img;
	struct machine *m = session_machine_hold(s);
	if (!m)
		return -ESTALE;
	/* A guest found dead now gets its end noted in the log before we read. */
	machine_is_alive(m);
	const char *path = machine_log_path(m);
	int err = 0;
	if (path) {
		err = read_small_file(path, txt, len);
	} else {
		*txt = NULL;
		*len = 0;
	}
	session_machine_put(s);
	return err;
}

static uint64_t log_size(struct session *s)
{
	struct machine *m = session_machine_hold(s);
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

/* ---- MNT/stats, MNT/config ---------------------------------------------- */

/* img NULL: the mount's own (its default image, and the mount's totals). */
static int stats_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)s;
	return img ? image_format_stats(img, txt, len) : info_format_stats(fs, txt, len);
}

static int config_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)s;
	return img ? image_format_config(img, txt, len) : info_format_config(fs, txt, len);
}

static int manifest_read(struct vpfs *fs, struct session *s, struct image *img, char **txt, size_t *len)
{
	(void)fs;
	(void)s;
	return image_read_manifest(img, txt, len);
}

/* ---- the tables -------------------------------------------------------------- */

static const struct vfile mnt_rows[] = {
	{ .name = "pool", .file = INO_POOL, .kind = VF_DIR, .mode = S_IFDIR | 0755 },
	{ .name = "stats", .file = INO_STATS, .kind = VF_TEXT, .mode = S_IFREG | 0444, .read = stats_read },
	{ .name = "config", .file = INO_CONFIG, .kind = VF_TEXT, .mode = S_IFREG | 0444, .read = config_read },
	{ .name = "images", .file = INO_IMAGES, .kind = VF_DIR, .mode = S_IFDIR | 0755 },
};

static const struct vfile img_rows[] = {
	{ .name = "pool", .file = IF_POOL, .kind = VF_DIR, .mode = S_IFDIR | 0755 },
	{ .name = "stats", .file = IF_STATS, .kind = VF_TEXT, .mode = S_IFREG | 0444, .read = stats_read },
	{ .name = "config", .file = IF_CONFIG, .kind = VF_TEXT, .mode = S_IFREG | 0444, .read = config_read },
	{ .name = "manifest",
	  .file = IF_MANIFEST,
	  .kind = VF_TEXT,
	  .mode = S_IFREG | 0444,
	  .read = manifest_read },
};

static const struct vfile ses_rows[] = {
	{ .name = "cmd",
	  .file = SF_CMD,
	  .kind = VF_TEXT,
	  .mode = S_IFREG | 0644,
	  .flags = VF_TEXT_AT_OPEN,
	  .open = cmd_open,
	  .read = cmd_read,
	  .write = cmd_write,
	  .flush = cmd_flush,
	  .release = cmd_release,
	  .size = cmd_size },
	{ .name = "stdout",
	  .file = SF_STDOUT,
	  .kind = VF_STREAM,
	  .mode = S_IFREG | 0444,
	  .out = VF_OUT_STDOUT,
	  .size = stdout_size },
	{ .name = "stderr",
	  .file = SF_STDERR,
	  .kind = VF_STREAM,
	  .mode = S_IFREG | 0444,
	  .out = VF_OUT_STDERR,
	  .size = stderr_size },
	{ .name = "stat",
	  .file = SF_STAT,
	  .kind = VF_TEXT,
	  .mode = S_IFREG | 0444,
	  .flags = VF_NOTIFY_WRITE,
	  .read = stat_read },
	{ .name = "exit", .file = SF_EXIT, .kind = VF_STREAM, .mode = S_IFREG | 0444, .size = exit_size },
	{ .name = "stdin",
	  .file = SF_STDIN,
	  .kind = VF_PIPE,
	  .mode = S_IFREG | 0200,
	  .write = stdin_write,
	  .release = stdin_release },
	{ .name = "ctl",
	  .file = SF_CTL,
	  .kind = VF_TEXT,
	  .mode = S_IFREG | 0644,
	  .read = ctl_read,
	  .write = ctl_write,
	  .flush = ctl_flush },
	{ .name = "log",
	  .file = SF_LOG,
	  .kind = VF_TEXT,
	  .mode = S_IFREG | 0444,
	  .read = log_read,
	  .size = log_size },
	{ .name = "root", .file = SF_ROOT, .kind = VF_PROXY, .mode = S_IFDIR | 0755 },
};

const struct vf_dir vf_mnt_dir = { mnt_rows, sizeof(mnt_rows) / sizeof(mnt_rows[0]) };
const struct vf_dir vf_ses_dir = { ses_rows, sizeof(ses_rows) / sizeof(ses_rows[0]) };
const struct vf_dir vf_img_dir = { img_rows, sizeof(img_rows) / sizeof(img_rows[0]) };

const struct vfile *vf_lookup(const struct vf_dir *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->rows[i].name, name) == 0)
			return &d->rows[i];
	return NULL;
}

const struct vfile *vf_at(const struct vf_dir *d, unsigned file)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->rows[i].file == file)
			return &d->rows[i];
	return NULL;
}

const struct vfile *vf_of_ino(fuse_ino_t ino)
{
	if (ino_is_rp(ino))
		return NULL;
	const struct vf_dir *d = ino_img_id(ino) ? &vf_img_dir : ino_serial(ino) ? &vf_ses_dir : &vf_mnt_dir;
	const struct vfile *vf = vf_at(d, ino_file(ino));
	return vf && (vf->kind == VF_DIR || vf->kind == VF_PROXY) ? NULL : vf;
}

uint64_t vf_size(const struct vfile *vf, struct vpfs *fs, struct session *s, struct image *img)
{
	if (vf->size)
		return s ? vf->size(s) : 0;
	if (vf->kind != VF_TEXT || !vf->read)
		return 0;
	/* The text is made anew for the size: these are a few hundred bytes,
	 * and a size kept up to date would have to follow every counter. */
	char *txt = NULL;
	size_t n = 0;
	if (vf->read(fs, s, img, &txt, &n) < 0)
		n = 0;
	free(txt);
	return n;
}
