/* The guest agent in host test mode, over a socketpair, with raw frames.
 *
 * A reader thread files every frame the agent sends; tests take the frames
 * of one request id in order. Output is acknowledged by the tests
 * themselves, so flow control is observable. Prints TAP-like lines; exits
 * non-zero on any failure, 77 when the agent binary is not given. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "proto/proto.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"

static const char *agent_path;

/* ---- connection to one agent ------------------------------------------ */

struct frame {
	struct frame *next;
	struct vp_hdr h;
	uint8_t *p;
};

struct conn {
	int fd;
	pid_t pid;
	pthread_t reader;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct frame *head;
	bool eof;
	uint32_t next_id;
	char root[PATH_MAX];
};

static void *reader(void *arg)
{
	struct conn *c = arg;
	for (;;) {
		struct frame *f = calloc(1, sizeof *f);
		if (!f || vp_frame_read(c->fd, &f->h, &f->p) < 0) {
			free(f);
			break;
		}
		pthread_mutex_lock(&c->lock);
		struct frame **pp = &c->head;
		while (*pp)
			pp = &(*pp)->next;
		*pp = f;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_lock(&c->lock);
	c->eof = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void frame_free(struct frame *f)
{
	if (f) {
		free(f->p);
		free(f);
	}
}

/* The first frame with this id, waiting up to ms; NULL on timeout/EOF. */
static struct frame *get_frame(struct conn *c, uint32_t id, int ms)
{
	struct timespec dl = deadline_ms(ms);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		for (struct frame **pp = &c->head; *pp; pp = &(*pp)->next) {
			if ((*pp)->h.id == id) {
				struct frame *f = *pp;
				*pp = f->next;
				pthread_mutex_unlock(&c->lock);
				return f;
			}
		}
		if (c->eof || pthread_cond_timedwait(&c->cond, &c->lock, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static bool conn_eof(struct conn *c, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		bool eof = c->eof;
		pthread_mutex_unlock(&c->lock);
		if (eof || now_ms() > end)
			return eof;
		sleep_ms(5);
	}
}

static int send_raw(struct conn *c, uint16_t type, uint32_t id, const void *p, size_t n)
{
	return vp_frame_write(c->fd, type, id, p, n);
}

static uint32_t send_buf(struct conn *c, uint16_t type, struct vp_buf *b)
{
	uint32_t id = ++c->next_id;
	CHECKF(b->err == 0, "encoding %s: %d", vp_type_name(type), b->err);
	CHECKF(send_raw(c, type, id, b->data, b->len) == 0, "send %s", vp_type_name(type));
	vp_buf_reset(b);
	return id;
}

/* Waits for the agent to end; its status, or -1 after killing it. */
static int wait_agent(pid_t pid, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0 || now_ms() > end)
			break;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* child_setup (may be NULL) runs in the agent's process before the exec;
 * non-zero makes the child exit 126. */
static bool conn_open_with(struct conn *c, const char *root, int (*child_setup)(void))
{
	memset(c, 0, sizeof *c);
	snprintf(c->root, sizeof c->root, "%s", root);
	pthread_mutex_init(&c->lock, NULL);
	cond_init_monotonic(&c->cond);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	c->pid = fork();
	if (c->pid == 0) {
		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(sv[1], 3);
		if (child_setup && child_setup())
			_exit(126);
		execl(agent_path, agent_path, "--fd", "3", "--root", root, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	c->fd = sv[0];
	pthread_create(&c->reader, NULL, reader, c);
	struct frame *f = get_frame(c, 0, 10000);
	struct vp_ready r;
	bool ok = CHECKF(f && f->h.type == VP_READY, "first frame is READY") &&
		  CHECKF(vp_dec_ready(f->p, f->h.len, &r) == 0 && r.version == VP_PROTO_VERSION, "READY v1");
	frame_free(f);
	return ok;
}

static bool conn_open(struct conn *c, const char *root)
{
	return conn_open_with(c, root, NULL);
}

/* Closes our end; returns the agent's wait status (-1: had to be killed). */
static int conn_close(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	int st = wait_agent(c->pid, 10000);
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->reader, NULL);
	close(c->fd);
	for (struct frame *f = c->head, *next; f; f = next) {
		next = f->next;
		frame_free(f);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	return st;
}

static int err_of(const struct frame *f)
{
	struct vp_error e;
	if (!f || f->h.type != VP_ERROR || vp_dec_error(f->p, f->h.len, &e) < 0)
		return 0;
	return e.err;
}

/* Waits for the reply to id: 0 and *out (type want), -errno for ERROR,
 * -ETIMEDOUT, or -EPROTO for anything else. */
static int reply(struct conn *c, uint32_t id, uint16_t want, struct frame **out)
{
	struct frame *f = get_frame(c, id, 10000);
	if (!f)
		return -ETIMEDOUT;
	if (f->h.type == VP_ERROR) {
		int e = err_of(f);
		frame_free(f);
		return -e;
	}
	if (f->h.type != want) {
		frame_free(f);
		return -EPROTO;
	}
	if (out)
		*out = f;
	else
		frame_free(f);
	return 0;
}

/* ---- file request helpers ---------------------------------------------- */

static struct vp_bytes B(const char *s) {
	return (struct vp_bytes){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static int
fs_req(struct conn *c, uint16_t type, const struct vp_fs_req *q, uint16_t want, struct frame **out)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_fs_req(&b, type, q);
	uint32_t id = send_buf(c, type, &b);
	vp_buf_free(&b);
	return reply(c, id, want, out);
}

static int fs_entry(struct conn *c, uint16_t type, const struct vp_fs_req *q, struct vp_entry *e)
{
	struct frame *f;
	int r = fs_req(c, type, q, VP_FS_ENTRY, &f);
	if (r == 0) {
		CHECKF(vp_dec_entry(f->p, f->h.len, e) == 0, "ENTRY decodes");
		frame_free(f);
	}
	return r;
}

static int lookup(struct conn *c, uint64_t parent, const char *name, struct vp_entry *e)
{
	struct vp_fs_req q = { .node = parent, .name = B(name) };
	return fs_entry(c, VP_FS_LOOKUP, &q, e);
}

static int getattr(struct conn *c, uint64_t node, struct vp_attr *a)
{
	struct vp_fs_req q = { .node = node };
	struct frame *f;
	int r = fs_req(c, VP_FS_GETATTR, &q, VP_FS_ATTR, &f);
	if (r == 0) {
		CHECKF(vp_dec_attr(f->p, f->h.len, a) == 0, "ATTR decodes");
		frame_free(f);
	}
	return r;
}

static int setattr(struct conn *c, const struct vp_setattr *sa, struct vp_attr *a)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_setattr(&b, sa);
	uint32_t id = send_buf(c, VP_FS_SETATTR, &b);
	vp_buf_free(&b);
	struct frame *f;
	int r = reply(c, id, VP_FS_ATTR, &f);
	if (r == 0) {
		CHECKF(vp_dec_attr(f->p, f->h.len, a) == 0, "ATTR decodes");
		frame_free(f);
	}
	return r;
}

static int get_u64(const struct frame *f, uint64_t *v)
{
	struct vp_reader r;
	vp_reader_init(&r, f->p, f->h.len);
	*v = vp_get_u64(&r);
	return vp_reader_finish(&r);
}

static int open_node(struct conn *c, uint16_t type, uint64_t node, uint32_t flags, uint64_t *fh)
{
	struct vp_fs_req q = { .node = node, .flags = flags };
	struct frame *f;
	int r = fs_req(c, type, &q, VP_FS_HANDLE, &f);
	if (r == 0) {
		CHECKF(get_u64(f, fh) == 0 && *fh != 0, "HANDLE decodes");
		frame_free(f);
	}
	return r;
}

static int create(struct conn *c, uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
		  uint64_t *fh, struct vp_entry *e)
{
	struct vp_fs_req q = { .node = parent, .flags = flags, .mode = mode, .name = B(name) };
	struct frame *f;
	int r = fs_req(c, VP_FS_CREATE, &q, VP_FS_CREATED, &f);
	if (r == 0) {
		struct vp_reader rd;
		vp_reader_init(&rd, f->p, f->h.len);
		*fh = vp_get_u64(&rd);
		e->node = vp_get_u64(&rd);
		vp_get_attr(&rd, &e->attr);
		CHECKF(vp_reader_finish(&rd) == 0, "CREATED decodes");
		frame_free(f);
	}
	return r;
}

static int fs_write(struct conn *c, uint64_t fh, uint64_t off, const void *p, uint32_t n, uint32_t *done)
{
	struct vp_fs_req q = { .fh = fh, .offset = off, .data = { p, n } };
	struct frame *f;
	int r = fs_req(c, VP_FS_WRITE, &q, VP_FS_WRITTEN, &f);
	if (r == 0) {
		struct vp_reader rd;
		vp_reader_init(&rd, f->p, f->h.len);
		*done = vp_get_u32(&rd);
		CHECKF(vp_reader_finish(&rd) == 0, "WRITTEN decodes");
		frame_free(f);
	}
	return r;
}

/* DATA reply; *f keeps the bytes alive (caller frees). */
static int fs_data(struct conn *c, uint16_t type, const struct vp_fs_req *q, struct frame **f,
		   const uint8_t **p, uint32_t *n)
{
	int r = fs_req(c, type, q, VP_FS_DATA, f);
	if (r == 0) {
		struct vp_reader rd;
		vp_reader_init(&rd, (*f)->p, (*f)->h.len);
		vp_get_str(&rd, p, n, VP_MAX_DATA);
		CHECKF(vp_reader_finish(&rd) == 0, "DATA decodes");
	}
	return r;
}

static int fs_read(struct conn *c, uint64_t fh, uint64_t off, uint32_t size, void *buf, uint32_t *got)
{
	struct vp_fs_req q = { .fh = fh, .offset = off, .size = size };
	struct frame *f;
	const uint8_t *p;
	int r = fs_data(c, VP_FS_READ, &q, &f, &p, got);
	if (r == 0) {
		memcpy(buf, p, *got);
		frame_free(f);
	}
	return r;
}

static int fs_simple(struct conn *c, uint16_t type, const struct vp_fs_req *q)
{
	return fs_req(c, type, q, VP_OK, NULL);
}

static void forget(struct conn *c, uint64_t node, uint64_t n)
{
	struct vp_fs_req q = { .node = node, .nlookup = n };
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_fs_req(&b, VP_FS_FORGET, &q);
	CHECKF(send_raw(c, VP_FS_FORGET, 0, b.data, b.len) == 0, "send FORGET");
	vp_buf_free(&b);
}

/* READDIR through the whole directory in pages of max bytes. */
static int list_dir(struct conn *c, uint64_t node, uint32_t max, char names[][256], int cap, int *count)
{
	uint64_t fh;
	int r = open_node(c, VP_FS_OPENDIR, node, 0, &fh);
	if (r < 0)
		return r;
	uint64_t off = 0;
	*count = 0;
	for (int rounds = 0; rounds < 10000; rounds++) {
		struct vp_fs_req q = { .fh = fh, .offset = off, .size = max };
		struct frame *f;
		r = fs_req(c, VP_FS_READDIR, &q, VP_FS_DIRENTS, &f);
		if (r < 0)
			break;
		CHECKF(f->h.len <= max, "DIRENTS within max_bytes (%u > %u)", f->h.len, max);
		struct vp_reader rd;
		vp_reader_init(&rd, f->p, f->h.len);
		uint32_t n = vp_get_u32(&rd);
		for (uint32_t i = 0; i < n && !rd.err; i++) {
			struct vp_dirent d;
			vp_get_dirent(&rd, &d);
			if (rd.err)
				break;
			if (*count < cap) {
				memcpy(names[*count], d.name.p, d.name.len);
				names[*count][d.name.len] = '\0';
			}
			(*count)++;
			off = d.next_offset;
		}
		CHECKF(vp_reader_finish(&rd) == 0, "DIRENTS decodes");
		frame_free(f);
		if (n == 0)
			break;
	}
	struct vp_fs_req q = { .fh = fh };
	CHECKF(fs_simple(c, VP_FS_CLOSE, &q) == 0, "CLOSE dir");
	return r;
}

static bool has_name(char names[][256], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

/* ---- exec helpers ------------------------------------------------------ */

struct xres {
	int err; /* ERROR instead of EXEC_STARTED */
	uint32_t pid;
	char out[65536], errb[65536];
	size_t outlen, errlen;
	bool exited;
	struct vp_exit ex;
	uint64_t exit_ms; /* when EXIT arrived */
};

static uint32_t exec_send(struct conn *c, const char *cmd, const char *cwd, const char *const *env,
			  uint32_t nenv, uint32_t timeout_ms, uint32_t flags)
{
	struct vp_exec *q = calloc(1, sizeof *q);
	q->timeout_ms = timeout_ms;
	q->flags = flags;
	q->cmd = B(cmd);
	q->cwd = B(cwd ? cwd : "");
	q->nenv = nenv;
	for (uint32_t i = 0; i < nenv; i++)
		q->env[i] = B(env[i]);
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_exec(&b, q);
	uint32_t id = send_buf(c, VP_EXEC, &b);
	vp_buf_free(&b);
	free(q);
	return id;
}

static void ack(struct conn *c, uint32_t exec_id, uint32_t bytes)
{
	struct vp_output_ack a = { exec_id, bytes };
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_output_ack(&b, &a);
	CHECKF(send_raw(c, VP_OUTPUT_ACK, 0, b.data, b.len) == 0, "send ACK");
	vp_buf_free(&b);
}

/* Handles one frame of an exec; returns true once the exec is over. */
static bool exec_frame(struct conn *c, uint32_t id, struct frame *f, struct xres *x)
{
	bool done = false;
	switch (f->h.type) {
	case VP_ERROR:
		x->err = err_of(f);
		done = true;
		break;
	case VP_EXEC_STARTED: {
		struct vp_exec_started s;
		CHECKF(vp_dec_exec_started(f->p, f->h.len, &s) == 0, "EXEC_STARTED decodes");
		CHECKF(x->pid == 0, "one EXEC_STARTED");
		x->pid = s.pid;
		break;
	}
	case VP_OUTPUT: {
		struct vp_output o;
		CHECKF(vp_dec_output(f->p, f->h.len, &o) == 0, "OUTPUT decodes");
		CHECKF(x->pid != 0, "OUTPUT after EXEC_STARTED");
		char *buf = o.stream == VP_STREAM_STDOUT ? x->out : x->errb;
		size_t *len = o.stream == VP_STREAM_STDOUT ? &x->outlen : &x->errlen;
		size_t n = o.data.len;
		if (*len + n > sizeof x->out - 1)
			n = sizeof x->out - 1 - *len;
		memcpy(buf + *len, o.data.p, n);
		*len += n;
		buf[*len] = '\0';
		ack(c, id, o.data.len);
		break;
	}
	case VP_EXIT:
		CHECKF(vp_dec_exit(f->p, f->h.len, &x->ex) == 0, "EXIT decodes");
		x->exited = true;
		x->exit_ms = now_ms();
		done = true;
		break;
	default: CHECKF(0, "unexpected %s for an exec", vp_type_name(f->h.type)); done = true;
	}
	frame_free(f);
	return done;
}

static bool exec_wait(struct conn *c, uint32_t id, struct xres *x, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (;;) {
		uint64_t now = now_ms();
		struct frame *f = now < end ? get_frame(c, id, (int)(end - now)) : NULL;
		if (!f)
			return CHECKF(0, "exec %u: no EXIT within %d ms", id, ms);
		if (exec_frame(c, id, f, x))
			return true;
	}
}

static struct xres *run(struct conn *c, const char *cmd, const char *cwd, const char *const *env,
			uint32_t nenv, uint32_t timeout_ms)
{
	struct xres *x = calloc(1, sizeof *x);
	uint32_t id = exec_send(c, cmd, cwd, env, nenv, timeout_ms, 0);
	exec_wait(c, id, x, 20000);
	return x;
}

static int stdin_send(struct conn *c, uint32_t exec_id, const void *p, uint32_t n, bool eof)
{
	struct vp_stdin s = { exec_id, eof, { p, n } };
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_stdin(&b, &s);
	uint32_t id = send_buf(c, VP_STDIN, &b);
	vp_buf_free(&b);
	return (int)id;
}

static int signal_exec(struct conn *c, uint32_t exec_id, int signo)
{
	struct vp_signal s = { exec_id, signo };
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_signal(&b, &s);
	uint32_t id = send_buf(c, VP_SIGNAL, &b);
	vp_buf_free(&b);
	return reply(c, id, VP_OK, NULL);
}

/* A process is gone when it no longer exists or is a zombie (whoever
 * inherited it reaps it in its own time). */
static bool pid_gone(pid_t pid, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	for (;;) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		FILE *f = fopen(path, "r");
		if (f) {
			char buf[512] = "";
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			fclose(f);
			buf[n] = '\0';
			char *rp = strrchr(buf, ')');
			if (rp && rp[1] == ' ' && rp[2] == 'Z')
				return true;
		}
		if (now_ms() > end)
			return false;
		sleep_ms(10);
	}
}

static long proc_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	if (!f)
		return -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = strtol(line + kl + 1, NULL, 10);
	fclose(f);
	return v;
}

/* ---- tests: session ---------------------------------------------------- */

static void t_handshake(struct conn *c)
{
	struct vp_hello h = { 1, 3 };
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_hello(&b, &h);
	uint32_t id = send_buf(c, VP_HELLO, &b);
	struct frame *f;
	struct vp_ready r;
	if (CHECKF(reply(c, id, VP_READY, &f) == 0, "HELLO → READY")) {
		CHECKF(vp_dec_ready(f->p, f->h.len, &r) == 0 && r.version == 1, "version 1");
		frame_free(f);
	}
	h = (struct vp_hello){ 2, 7 };
	vp_enc_hello(&b, &h);
	id = send_buf(c, VP_HELLO, &b);
	CHECKF(reply(c, id, VP_READY, NULL) == -EPROTONOSUPPORT, "no common version");
	vp_buf_free(&b);
}

static int ping(struct conn *c, const char *s)
{
	struct vp_buf b;
	vp_buf_init(&b);
	vp_put_str(&b, s, strlen(s));
	uint32_t id = send_buf(c, VP_PING, &b);
	vp_buf_free(&b);
	struct frame *f;
	int r = reply(c, id, VP_PONG, &f);
	if (r == 0) {
		struct vp_reader rd;
		const uint8_t *p;
		uint32_t n;
		vp_reader_init(&rd, f->p, f->h.len);
		vp_get_str(&rd, &p, &n, VP_MAX_PAYLOAD);
		if (vp_reader_finish(&rd) < 0 || n != strlen(s) || memcmp(p, s, n))
			r = -EPROTO;
		frame_free(f);
	}
	return r;
}

static void t_ping(struct conn *c)
{
	CHECKF(ping(c, "hello agent") == 0, "PING echoes");
	CHECKF(ping(c, "") == 0, "empty PING");
}

static void t_malformed(struct conn *c)
{
	uint8_t junk[3] = { 1, 2, 3 };
	uint32_t id = ++c->next_id;
	send_raw(c, VP_PING, id, junk, sizeof junk);
	CHECKF(reply(c, id, VP_PONG, NULL) == -EBADMSG, "short PING → EBADMSG");
	id = ++c->next_id;
	send_raw(c, VP_FS_GETATTR, id, junk, sizeof junk);
	CHECKF(reply(c, id, VP_FS_ATTR, NULL) == -EBADMSG, "short GETATTR → EBADMSG");
	/* An EXEC whose command holds a NUL byte: refused by the codec. */
	uint8_t ex[64];
	size_t n = 0;
	uint32_t v;
	v = 0;
	memcpy(ex + n, &v, 4);
	n += 4; /* timeout */
	v = 0;
	memcpy(ex + n, &v, 4);
	n += 4; /* flags */
	v = 3;
	memcpy(ex + n, &v, 4);
	n += 4;
	memcpy(ex + n, "a\0b", 3);
	n += 3;
	v = 0;
	memcpy(ex + n, &v, 4);
	n += 4; /* cwd */
	v = 0;
	memcpy(ex + n, &v, 4);
	n += 4; /* nenv */
	id = ++c->next_id;
	send_raw(c, VP_EXEC, id, ex, n);
	CHECKF(reply(c, id, VP_EXEC_STARTED, NULL) == -EBADMSG, "NUL in command → EBADMSG");
	/* Names the codec refuses: "..", ".", "a/b". */
	const char *bad[] = { "..", ".", "a/b" };
	for (int i = 0; i < 3; i++) {
		uint8_t p[32];
		uint64_t node = VP_ROOT_NODE;
		uint32_t len = (uint32_t)strlen(bad[i]);
		memcpy(p, &node, 8);
		memcpy(p + 8, &len, 4);
		memcpy(p + 12, bad[i], len);
		id = ++c->next_id;
		send_raw(c, VP_FS_LOOKUP, id, p, 12 + len);
		int r = reply(c, id, VP_FS_ENTRY, NULL);
		CHECKF(r == -EBADMSG || r == -EINVAL, "LOOKUP \"%s\" refused (%d)", bad[i], r);
	}
	/* Unknown type (vp_frame_write refuses to send one: by hand), and a
	 * known type the agent does not serve. */
	id = ++c->next_id;
	uint8_t hdr[VP_HDR_SIZE + sizeof junk];
	struct vp_hdr h = { .len = sizeof junk, .type = 999, .id = id };
	vp_hdr_encode(hdr, &h);
	memcpy(hdr + VP_HDR_SIZE, junk, sizeof junk);
	CHECKF(write(c->fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr, "write");
	CHECKF(reply(c, id, VP_OK, NULL) == -ENOSYS, "unknown type → ENOSYS");
	id = ++c->next_id;
	send_raw(c, VP_OK, id, NULL, 0);
	CHECKF(reply(c, id, VP_OK, NULL) == -ENOSYS, "OK sent to the agent → ENOSYS");
	CHECKF(ping(c, "still alive") == 0, "agent still answers");
}

/* A header that cannot be framed, or a frame that cannot be answered:
 * the agent closes the channel and exits (status 2), without hanging. */
static void t_fatal(const char *root)
{
	static const struct {
		const char *what;
		uint8_t hdr[VP_HDR_SIZE];
	} cases[] = {
		{ "oversize length", { 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 1, 0, 0, 0 } },
		{ "flags set", { 0, 0, 0, 0, 3, 0, 1, 0, 1, 0, 0, 0 } },
		{ "request with id 0", { 4, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0 } },
		{ "one-way with an id", { 8, 0, 0, 0, 20, 0, 0, 0, 9, 0, 0, 0 } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conn c;
		if (!conn_open(&c, root))
			continue;
		uint8_t buf[VP_HDR_SIZE + 8] = { 0 };
		memcpy(buf, cases[i].hdr, VP_HDR_SIZE);
		CHECKF(write(c.fd, buf, sizeof buf) == (ssize_t)sizeof buf, "write");
		CHECKF(conn_eof(&c, 5000), "%s: channel closed by the agent", cases[i].what);
		int st = wait_agent(c.pid, 5000);
		CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2,
		       "%s: agent exited with 2 (status %d)", cases[i].what, st);
		c.pid = -1;
		shutdown(c.fd, SHUT_RDWR);
		pthread_join(c.reader, NULL);
		close(c.fd);
		for (struct frame *f = c.head, *next; f; f = next) {
			next = f->next;
			frame_free(f);
		}
	}
}

/* ---- tests: the clock ------------------------------------------------------ */

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "no seccomp arch value for this architecture"
#endif
#define CLOCK_CALL_ERRNO EHWPOISON /* what no clock call gives by itself */

/* Every call that sets a clock fails with CLOCK_CALL_ERRNO in the agent
 * (and its commands): the host's clock is out of its reach whatever it
 * does, and a reply carrying that errno shows it tried. Calls through
 * another architecture's table (i386), which it never makes, fail too. */
static int forbid_clock_setting(void)
{
	static struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clock_settime, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_settimeofday, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clock_adjtime, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_adjtimex, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | CLOCK_CALL_ERRNO),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

static int set_time(struct conn *c, int64_t sec, uint32_t nsec)
{
	struct vp_buf b;
	vp_buf_init(&b);
	/* By hand: the encoder would refuse a bad nsec. */
	vp_put_i64(&b, sec);
	vp_put_u32(&b, nsec);
	uint32_t id = send_buf(c, VP_SET_TIME, &b);
	vp_buf_free(&b);
	return reply(c, id, VP_OK, NULL);
}

/* Host mode is the host itself: SET_TIME is refused with EPERM without
 * clock_settime being tried. The time sent is the host's own, so not even
 * a broken filter could make this test move the clock. */
static void t_set_time(const char *root)
{
	struct conn c;
	if (!conn_open_with(&c, root, forbid_clock_setting))
		return;
	CHECKF(proc_kb(c.pid, "Seccomp") == 2, "agent runs under the clock filter");
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int r = set_time(&c, now.tv_sec, (uint32_t)now.tv_nsec);
	CHECKF(r == -EPERM, "SET_TIME in host mode → EPERM (%d%s)", r,
	       r == -CLOCK_CALL_ERRNO ? ": the agent called a clock setter" : "");
	CHECKF(set_time(&c, now.tv_sec, 1000000000u) == -EBADMSG, "nsec = 1e9 → EBADMSG");
	uint32_t id = ++c.next_id;
	CHECKF(send_raw(&c, VP_SET_TIME, id, "\1\0\0\0\0\0\0\0", 8) == 0, "send short SET_TIME");
	CHECKF(reply(&c, id, VP_OK, NULL) == -EBADMSG, "SET_TIME without nsec → EBADMSG");
	CHECKF(ping(&c, "still alive") == 0, "agent still answers");
	int st = conn_close(&c);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit (%d)", st);
}

/* ---- tests: commands --------------------------------------------------- */

static void t_exec_basic(struct conn *c)
{
	struct xres *x = run(c, "echo hi", NULL, NULL, 0, 0);
	CHECKF(x->err == 0 && x->pid > 0, "started (err %d)", x->err);
	CHECKF(!strcmp(x->out, "hi\n"), "stdout \"%s\"", x->out);
	CHECKF(x->errlen == 0, "no stderr");
	CHECKF(x->exited && x->ex.code == 0 && x->ex.signal == 0 && !x->ex.timed_out, "exit 0");
	free(x);

	x = run(c, "exit 3", NULL, NULL, 0, 0);
	CHECKF(x->exited && x->ex.code == 3 && x->ex.signal == 0, "exit 3 (code %d)", x->ex.code);
	free(x);

	x = run(c, "kill -TERM $$", NULL, NULL, 0, 0);
	CHECKF(x->exited && x->ex.code == -1 && x->ex.signal == SIGTERM, "signal 15 (code %d sig %d)",
	       x->ex.code, x->ex.signal);
	free(x);

	x = run(c, "echo out; echo err >&2; echo out2", NULL, NULL, 0, 0);
	CHECKF(!strcmp(x->out, "out\nout2\n") && !strcmp(x->errb, "err\n"), "streams apart: \"%s\" / \"%s\"",
	       x->out, x->errb);
	free(x);

	x = run(c, "sleep 0.2", NULL, NULL, 0, 0);
	CHECKF(x->ex.duration_us >= 150000 && x->ex.duration_us < 5000000, "duration %llu us",
	       (unsigned long long)x->ex.duration_us);
	free(x);
}

static void t_exec_env_cwd(struct conn *c)
{
	char real[PATH_MAX], want[PATH_MAX + 256];
	CHECKF(realpath(c->root, real) != NULL, "realpath");
	const char *env[] = { "FOO=bar", "TERM=xterm", "TERM=dumb", "EMPTY=" };
	struct xres *x =
		run(c, "echo \"$FOO|$(pwd -P)|$TERM|$HOME|${EMPTY-unset}|${VMPOOL_AGENT_HOST-unset}|$PATH\"",
		    c->root, env, 4, 0);
	snprintf(want, sizeof want,
		 "bar|%s|dumb|/root||unset|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
		 real);
	CHECKF(!strcmp(x->out, want), "env/cwd: \"%s\"", x->out);
	free(x);

	x = run(c, "pwd", NULL, NULL, 0, 0);
	CHECKF(!strcmp(x->out, "/\n"), "default cwd /: \"%s\"", x->out);
	free(x);

	x = run(c, "umask", NULL, NULL, 0, 0);
	CHECKF(!strcmp(x->out, "0022\n"), "umask 022: \"%s\"", x->out);
	free(x);

	x = run(c, "echo never", "/nonexistent/dir", NULL, 0, 0);
	CHECKF(x->err == ENOENT && x->pid == 0 && x->outlen == 0, "bad cwd → ENOENT (%d)", x->err);
	free(x);
}

static void t_exec_timeout(struct conn *c)
{
	uint64_t t0 = now_ms();
	struct xres *x = run(c, "sleep 100 & echo $!; sleep 100", NULL, NULL, 0, 300);
	uint64_t took = now_ms() - t0;
	CHECKF(x->exited && x->ex.timed_out == 1 && x->ex.signal == SIGKILL && x->ex.code == -1,
	       "timed out (t %d sig %d)", x->ex.timed_out, x->ex.signal);
	CHECKF(took >= 250 && took < 5000, "took %llu ms", (unsigned long long)took);
	int bg = atoi(x->out);
	CHECKF(bg > 0 && pid_gone(bg, 3000), "background sleep %d killed too", bg);
	CHECKF(pid_gone((pid_t)x->pid, 3000), "shell gone");
	free(x);
}

static void t_exec_background(struct conn *c)
{
	/* The shell exits while a background process holds its stdout: EXIT
	 * comes ~100 ms later, not after 5 s. */
	uint64_t t0 = now_ms();
	struct xres *x = run(c, "sleep 5 & echo $!", NULL, NULL, 0, 0);
	uint64_t took = now_ms() - t0;
	CHECKF(x->exited && x->ex.code == 0, "exit 0");
	CHECKF(took < 2000, "EXIT did not wait for the background process (%llu ms)",
	       (unsigned long long)took);
	int bg = atoi(x->out);
	if (bg > 0)
		kill(bg, SIGKILL);
	free(x);
}

static void t_exec_signal(struct conn *c)
{
	uint32_t id = exec_send(c, "sleep 100", NULL, NULL, 0, 0, 0);
	struct frame *f = get_frame(c, id, 10000);
	struct xres *x = calloc(1, sizeof *x);
	CHECKF(f && f->h.type == VP_EXEC_STARTED, "started");
	if (f)
		exec_frame(c, id, f, x);
	CHECKF(signal_exec(c, id, SIGTERM) == 0, "SIGNAL → OK");
	exec_wait(c, id, x, 5000);
	CHECKF(x->exited && x->ex.signal == SIGTERM, "ended by SIGTERM (%d)", x->ex.signal);
	CHECKF(signal_exec(c, id, SIGTERM) == -ESRCH, "SIGNAL after EXIT → ESRCH");
	CHECKF(signal_exec(c, 4242, SIGTERM) == -ESRCH, "unknown exec → ESRCH");
	/* signo 0 and 65 are refused by the codec. */
	uint8_t p[8];
	for (int i = 0; i < 2; i++) {
		uint32_t e = id;
		int32_t s = i ? 65 : 0;
		memcpy(p, &e, 4);
		memcpy(p + 4, &s, 4);
		uint32_t rid = ++c->next_id;
		send_raw(c, VP_SIGNAL, rid, p, 8);
		CHECKF(reply(c, rid, VP_OK, NULL) == -EBADMSG, "signo %d refused", s);
	}
	free(x);
}

static void t_exec_stdin(struct conn *c)
{
	uint32_t id = exec_send(c, "cat", NULL, NULL, 0, 0, VP_EXEC_STDIN);
	struct xres *x = calloc(1, sizeof *x);
	int rid = stdin_send(c, id, "hello\n", 6, false);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == 0, "STDIN → OK");
	while (x->outlen < 6) {
		struct frame *f = get_frame(c, id, 5000);
		if (!CHECKF(f != NULL, "output of cat"))
			break;
		exec_frame(c, id, f, x);
	}
	CHECKF(!strcmp(x->out, "hello\n"), "cat echoed \"%s\"", x->out);
	rid = stdin_send(c, id, "bye\n", 4, true);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == 0, "STDIN data+eof → OK");
	exec_wait(c, id, x, 5000);
	CHECKF(x->exited && x->ex.code == 0 && !strcmp(x->out, "hello\nbye\n"), "cat ended at EOF: \"%s\"",
	       x->out);
	rid = stdin_send(c, id, "late", 4, false);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == -ESRCH, "STDIN after EXIT → ESRCH");
	free(x);

	/* No stdin pipe; and a stdin the host closed already. */
	id = exec_send(c, "cat; sleep 0.3", NULL, NULL, 0, 0, VP_EXEC_STDIN);
	x = calloc(1, sizeof *x);
	rid = stdin_send(c, id, NULL, 0, true);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == 0, "bare eof → OK");
	rid = stdin_send(c, id, "x", 1, false);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == -EBADF, "after eof → EBADF");
	exec_wait(c, id, x, 5000);
	CHECKF(x->exited && x->ex.code == 0, "ended");
	free(x);

	id = exec_send(c, "sleep 0.2", NULL, NULL, 0, 0, 0);
	x = calloc(1, sizeof *x);
	rid = stdin_send(c, id, "x", 1, false);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == -EBADF, "no stdin pipe → EBADF");
	exec_wait(c, id, x, 5000);
	free(x);

	/* The command closes its stdin. */
	id = exec_send(c, "exec <&-; echo closed; sleep 1", NULL, NULL, 0, 0, VP_EXEC_STDIN);
	x = calloc(1, sizeof *x);
	while (x->outlen < 7) {
		struct frame *f = get_frame(c, id, 5000);
		if (!CHECKF(f != NULL, "output"))
			break;
		exec_frame(c, id, f, x);
	}
	rid = stdin_send(c, id, "data", 4, false);
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == -EPIPE, "command closed stdin → EPIPE");
	exec_wait(c, id, x, 5000);
	free(x);

	/* OK only once the data is in the pipe: 1 MiB into a command that
	 * reads nothing for 0.5 s (a pipe holds 64 KiB). */
	id = exec_send(c, "sleep 0.5; wc -c", NULL, NULL, 0, 0, VP_EXEC_STDIN);
	x = calloc(1, sizeof *x);
	char *big = malloc(VP_MAX_DATA);
	memset(big, 'z', VP_MAX_DATA);
	uint64_t t0 = now_ms();
	rid = stdin_send(c, id, big, VP_MAX_DATA, true);
	/* Meanwhile the agent serves other requests. */
	CHECKF(ping(c, "during stdin") == 0, "PING while STDIN is pending");
	CHECKF(now_ms() - t0 < 400, "PING not held up by STDIN");
	CHECKF(reply(c, (uint32_t)rid, VP_OK, NULL) == 0, "big STDIN → OK");
	CHECKF(now_ms() - t0 >= 350, "OK deferred until written (%llu ms)",
	       (unsigned long long)(now_ms() - t0));
	exec_wait(c, id, x, 5000);
	CHECKF(atoi(x->out) == (int)VP_MAX_DATA, "wc -c: %s", x->out);
	free(big);
	free(x);
}

/* `yes | head -c 50000000` with a slow consumer: never more than the window
 * unacknowledged, every byte in order, the agent's memory bounded. */
static void t_exec_flow(const char *root)
{
	struct conn c;
	if (!conn_open(&c, root))
		return;
	long rss0 = proc_kb(c.pid, "VmRSS");
	const uint64_t total = 50000000;
	uint32_t id = exec_send(&c, "yes | head -c 50000000", NULL, NULL, 0, 0, 0);
	uint64_t got = 0, unacked = 0, max_unacked = 0;
	bool in_order = true, exited = false;
	struct vp_exit ex = { 0 };
	long rss_max = 0;
	int frames = 0;
	bool paused = false;
	while (!exited) {
		struct frame *f = get_frame(&c, id, 20000);
		if (!CHECKF(f != NULL, "frames keep coming (got %llu)", (unsigned long long)got))
			break;
		if (f->h.type == VP_OUTPUT) {
			struct vp_output o;
			CHECKF(vp_dec_output(f->p, f->h.len, &o) == 0 && o.stream == 1, "stdout OUTPUT");
			for (uint32_t i = 0; i < o.data.len && in_order; i++)
				in_order = o.data.p[i] == ((got + i) % 2 ? '\n' : 'y');
			got += o.data.len;
			unacked += o.data.len;
			if (unacked > max_unacked)
				max_unacked = unacked;
			if (++frames % 64 == 0) {
				long rss = proc_kb(c.pid, "VmRSS");
				if (rss > rss_max)
					rss_max = rss;
			}
			if (!paused && got > 10 * 1000 * 1000) {
				/* Stop consuming for a while: the agent must stop
				 * sending at the window. */
				paused = true;
				sleep_ms(300);
				pthread_mutex_lock(&c.lock);
				uint64_t queued = 0;
				for (struct frame *q = c.head; q; q = q->next)
					if (q->h.id == id && q->h.type == VP_OUTPUT)
						queued += q->h.len - 5;
				pthread_mutex_unlock(&c.lock);
				CHECKF(unacked + queued <= VP_OUTPUT_WINDOW, "stalled at the window (%llu)",
				       (unsigned long long)(unacked + queued));
			}
			if (unacked >= 256 * 1024) {
				sleep_ms(1); /* a slow consumer */
				ack(&c, id, (uint32_t)unacked);
				unacked = 0;
			}
		} else if (f->h.type == VP_EXIT) {
			CHECKF(vp_dec_exit(f->p, f->h.len, &ex) == 0, "EXIT decodes");
			exited = true;
		} else {
			CHECKF(f->h.type == VP_EXEC_STARTED, "unexpected %s", vp_type_name(f->h.type));
		}
		frame_free(f);
	}
	CHECKF(got == total, "all bytes arrived (%llu)", (unsigned long long)got);
	CHECKF(in_order, "bytes in order");
	CHECKF(max_unacked <= VP_OUTPUT_WINDOW, "unacked ≤ window (%llu)", (unsigned long long)max_unacked);
	CHECKF(exited && ex.code == 0, "exit 0 (%d)", ex.code);
	long hwm = proc_kb(c.pid, "VmHWM");
	printf("# agent RSS: start %ld kB, max sampled %ld kB, peak %ld kB\n", rss0, rss_max, hwm);
	CHECKF(hwm > 0 && hwm - rss0 < 32 * 1024, "agent memory bounded (peak %ld kB, start %ld kB)", hwm,
	       rss0);
	int st = conn_close(&c);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit (%d)", st);
}

/* A worker blocked in the guest (an OPEN of a FIFO that has no writer)
 * must not hold the agent up at channel EOF: agent_pool_free knocks it
 * out of open(2) with SIGUSR1, joins it and frees everything. */
static void t_pool_stuck_at_eof(const char *root)
{
	struct conn c;
	if (!conn_open(&c, root))
		return;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/stuck-fifo", root);
	CHECKF(mkfifo(path, 0644) == 0, "mkfifo: %s", strerror(errno));
	struct vp_fs_req q = { .node = VP_ROOT_NODE, .name = B("stuck-fifo") };
	struct vp_entry e;
	if (CHECKF(fs_entry(&c, VP_FS_LOOKUP, &q, &e) == 0, "LOOKUP fifo")) {
		struct vp_fs_req oq = { .node = e.node, .flags = O_RDONLY };
		struct vp_buf b;
		vp_buf_init(&b);
		vp_enc_fs_req(&b, VP_FS_OPEN, &oq);
		uint32_t open_id = send_buf(&c, VP_FS_OPEN, &b);
		vp_buf_free(&b);
		CHECKF(get_frame(&c, open_id, 100) == NULL, "OPEN blocked");
	}
	uint64_t t0 = now_ms();
	int st = conn_close(&c);
	uint64_t took = now_ms() - t0;
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit status %d", st);
	CHECKF(took < 2000, "exited after %llu ms", (unsigned long long)took);
	unlink(path);
}

static void t_exec_eof_kills(const char *root)
{
	struct conn c;
	if (!conn_open(&c, root))
		return;
	uint32_t id = exec_send(&c, "sleep 100 & echo $!; wait", NULL, NULL, 0, 0, 0);
	struct xres *x = calloc(1, sizeof *x);
	while (!strchr(x->out, '\n')) {
		struct frame *f = get_frame(&c, id, 5000);
		if (!CHECKF(f != NULL, "output"))
			break;
		exec_frame(&c, id, f, x);
	}
	int bg = atoi(x->out);
	int st = conn_close(&c);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exits 0 at EOF (%d)", st);
	CHECKF(x->pid > 0 && pid_gone((pid_t)x->pid, 3000), "running command killed");
	CHECKF(bg > 0 && pid_gone(bg, 3000), "its background process killed");
	free(x);
}

/* ---- tests: files ------------------------------------------------------ */

static void t_fs_basic(struct conn *c)
{
	struct vp_entry d, f, e;
	struct vp_attr a;
	struct vp_fs_req q;
	CHECKF(getattr(c, VP_ROOT_NODE, &a) == 0 && S_ISDIR(a.mode), "root is a directory");

	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .mode = 0750, .name = B("d") };
	CHECKF(fs_entry(c, VP_FS_MKDIR, &q, &d) == 0 && S_ISDIR(d.attr.mode) && (d.attr.mode & 07777) == 0750,
	       "MKDIR d (mode %o)", d.attr.mode);
	CHECKF(fs_entry(c, VP_FS_MKDIR, &q, &e) == -EEXIST, "MKDIR again → EEXIST");

	uint64_t fh;
	CHECKF(create(c, d.node, "f", O_RDWR, 0640, &fh, &f) == 0 && S_ISREG(f.attr.mode) &&
		       (f.attr.mode & 07777) == 0640,
	       "CREATE d/f");
	uint32_t n;
	CHECKF(fs_write(c, fh, 0, "hello world", 11, &n) == 0 && n == 11, "WRITE");
	char buf[64] = "";
	CHECKF(fs_read(c, fh, 6, 64, buf, &n) == 0 && n == 5 && !memcmp(buf, "world", 5), "READ");
	CHECKF(fs_read(c, fh, 100, 64, buf, &n) == 0 && n == 0, "READ past EOF → empty");
	q = (struct vp_fs_req){ .fh = fh, .flags = 0 };
	CHECKF(fs_simple(c, VP_FS_FSYNC, &q) == 0, "FSYNC");
	q.flags = 1;
	CHECKF(fs_simple(c, VP_FS_FSYNC, &q) == 0, "FDATASYNC");
	CHECKF(getattr(c, f.node, &a) == 0 && a.size == 11, "GETATTR size 11");

	/* Same inode, same node: lookups are counted on it. */
	CHECKF(lookup(c, d.node, "f", &e) == 0 && e.node == f.node, "LOOKUP finds the same node");
	CHECKF(lookup(c, d.node, "nope", &e) == -ENOENT, "LOOKUP missing → ENOENT");

	/* RENAME keeps the node (identity, not path). */
	q = (struct vp_fs_req){ .node = d.node, .node2 = VP_ROOT_NODE, .name = B("f"), .name2 = B("g") };
	CHECKF(fs_simple(c, VP_FS_RENAME, &q) == 0, "RENAME d/f → g");
	CHECKF(lookup(c, VP_ROOT_NODE, "g", &e) == 0 && e.node == f.node, "g is the same node");
	CHECKF(lookup(c, d.node, "f", &e) == -ENOENT, "d/f gone");
	CHECKF(getattr(c, f.node, &a) == 0 && a.size == 11, "node still valid after rename");
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE,
				.node2 = VP_ROOT_NODE,
				.flags = RENAME_NOREPLACE,
				.name = B("g"),
				.name2 = B("d") };
	CHECKF(fs_simple(c, VP_FS_RENAME, &q) == -EEXIST, "RENAME_NOREPLACE → EEXIST");

	/* SYMLINK / READLINK */
	struct vp_entry s;
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("s"), .name2 = B("g") };
	CHECKF(fs_entry(c, VP_FS_SYMLINK, &q, &s) == 0 && S_ISLNK(s.attr.mode), "SYMLINK s → g");
	q = (struct vp_fs_req){ .node = s.node };
	struct frame *fr;
	const uint8_t *p;
	uint32_t pl;
	if (CHECKF(fs_data(c, VP_FS_READLINK, &q, &fr, &p, &pl) == 0, "READLINK")) {
		CHECKF(pl == 1 && p[0] == 'g', "target g");
		frame_free(fr);
	}
	CHECKF(lookup(c, VP_ROOT_NODE, "s", &e) == 0 && e.node == s.node && S_ISLNK(e.attr.mode),
	       "LOOKUP does not follow the symlink");
	q = (struct vp_fs_req){ .node = f.node };
	CHECKF(fs_data(c, VP_FS_READLINK, &q, &fr, &p, &pl) == -EINVAL, "READLINK of a file → EINVAL");

	/* LINK */
	q = (struct vp_fs_req){ .node = f.node, .node2 = d.node, .name2 = B("h") };
	CHECKF(fs_entry(c, VP_FS_LINK, &q, &e) == 0 && e.node == f.node && e.attr.nlink == 2,
	       "LINK d/h (nlink %u)", e.attr.nlink);

	/* SETATTR: chmod, chown, truncate (path and handle), utimens. */
	struct vp_setattr sa = { .node = f.node, .valid = VP_SET_MODE, .mode = 0600 };
	CHECKF(setattr(c, &sa, &a) == 0 && (a.mode & 07777) == 0600 && S_ISREG(a.mode), "chmod 600 (%o)",
	       a.mode);
	if (geteuid() == 0) {
		sa = (struct vp_setattr){ .node = f.node,
					  .valid = VP_SET_UID | VP_SET_GID,
					  .uid = 1234,
					  .gid = 4321 };
		CHECKF(setattr(c, &sa, &a) == 0 && a.uid == 1234 && a.gid == 4321, "chown");
	}
	sa = (struct vp_setattr){ .node = f.node, .valid = VP_SET_SIZE, .size = 2 };
	CHECKF(setattr(c, &sa, &a) == 0 && a.size == 2, "truncate 2");
	sa = (struct vp_setattr){ .node = f.node, .fh = fh, .valid = VP_SET_SIZE, .size = 4096 };
	CHECKF(setattr(c, &sa, &a) == 0 && a.size == 4096, "ftruncate 4096");
	sa = (struct vp_setattr){ .node = f.node,
				  .valid = VP_SET_ATIME | VP_SET_MTIME,
				  .atime_sec = 1000,
				  .atime_nsec = 5,
				  .mtime_sec = 2000,
				  .mtime_nsec = 7 };
	CHECKF(setattr(c, &sa, &a) == 0 && a.atime_sec == 1000 && a.atime_nsec == 5 && a.mtime_sec == 2000 &&
		       a.mtime_nsec == 7,
	       "utimens");
	sa = (struct vp_setattr){ .node = f.node, .valid = VP_SET_MTIME | VP_SET_MTIME_NOW };
	CHECKF(setattr(c, &sa, &a) == 0 && a.atime_sec == 1000 && a.mtime_sec > time(NULL) - 60,
	       "utimens NOW");
	sa = (struct vp_setattr){ .node = s.node, .valid = VP_SET_MTIME, .mtime_sec = 3000 };
	int r = setattr(c, &sa, &a);
	CHECKF(r == 0 || r == -EINVAL || r == -EPERM, "utimens on a symlink (%d)", r);
	CHECKF(getattr(c, f.node, &a) == 0 && a.mtime_sec > 2000, "the target's times were not touched");

	/* STATFS */
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE };
	if (CHECKF(fs_req(c, VP_FS_STATFS, &q, VP_FS_STATFS_REPLY, &fr) == 0, "STATFS")) {
		struct vp_statfs st;
		CHECKF(vp_dec_statfs(fr->p, fr->h.len, &st) == 0 && st.bsize > 0 && st.namemax >= 255,
		       "statfs values");
		frame_free(fr);
	}

	/* OPEN an existing file read-only; CLOSE twice. */
	uint64_t fh2;
	CHECKF(open_node(c, VP_FS_OPEN, f.node, O_RDONLY, &fh2) == 0, "OPEN");
	CHECKF(fs_read(c, fh2, 0, 2, buf, &n) == 0 && n == 2 && !memcmp(buf, "he", 2),
	       "READ via OPEN handle");
	CHECKF(fs_write(c, fh2, 0, "x", 1, &n) == -EBADF, "WRITE on O_RDONLY → EBADF");
	CHECKF(open_node(c, VP_FS_OPEN, d.node, O_WRONLY, &fh2) == -EISDIR, "OPEN dir for writing → EISDIR");
	q = (struct vp_fs_req){ .fh = fh };
	CHECKF(fs_simple(c, VP_FS_CLOSE, &q) == 0, "CLOSE");
	CHECKF(fs_simple(c, VP_FS_CLOSE, &q) == -EBADF, "CLOSE again → EBADF");
	CHECKF(fs_read(c, fh, 0, 2, buf, &n) == -EBADF, "READ closed → EBADF");

	/* READDIR includes . and .. */
	char names[16][256];
	int cnt = 0;
	CHECKF(list_dir(c, d.node, 4096, names, 16, &cnt) == 0 && cnt == 3 && has_name(names, cnt, ".") &&
		       has_name(names, cnt, "..") && has_name(names, cnt, "h"),
	       "READDIR d (%d entries)", cnt);

	/* UNLINK / RMDIR */
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("d") };
	CHECKF(fs_simple(c, VP_FS_RMDIR, &q) == -ENOTEMPTY, "RMDIR non-empty → ENOTEMPTY");
	q = (struct vp_fs_req){ .node = d.node, .name = B("h") };
	CHECKF(fs_simple(c, VP_FS_UNLINK, &q) == 0, "UNLINK d/h");
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("d") };
	CHECKF(fs_simple(c, VP_FS_RMDIR, &q) == 0, "RMDIR d");
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("g") };
	CHECKF(fs_simple(c, VP_FS_UNLINK, &q) == 0, "UNLINK g");
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("s") };
	CHECKF(fs_simple(c, VP_FS_UNLINK, &q) == 0, "UNLINK s");
	CHECKF(getattr(c, f.node, &a) == 0 && a.nlink == 0, "unlinked node still answers (nlink %u)", a.nlink);

	/* FORGET: CREATE + LOOKUP + LOOKUP g + LINK = 4 lookups on f. */
	forget(c, f.node, 3);
	CHECKF(getattr(c, f.node, &a) == 0, "node lives with 1 lookup left");
	forget(c, f.node, 1);
	CHECKF(getattr(c, f.node, &a) == -ESTALE, "forgotten node → ESTALE");
	forget(c, VP_ROOT_NODE, 1000);
	CHECKF(getattr(c, VP_ROOT_NODE, &a) == 0, "root is never forgotten");
	CHECKF(getattr(c, 987654321, &a) == -ESTALE, "unknown node → ESTALE");
	forget(c, d.node, 1);
	forget(c, s.node, 2);
}

static void t_fs_mknod_readdir(struct conn *c)
{
	struct vp_entry d, e;
	struct vp_fs_req q = { .node = VP_ROOT_NODE, .mode = 0755, .name = B("many") };
	CHECKF(fs_entry(c, VP_FS_MKDIR, &q, &d) == 0, "MKDIR many");
	char cmd[PATH_MAX + 128];
	snprintf(cmd, sizeof cmd,
		 "cd '%s/many' && for i in $(seq 1 300); do : > file-with-a-longish-name-$i; done", c->root);
	struct xres *x = run(c, cmd, NULL, NULL, 0, 0);
	CHECKF(x->exited && x->ex.code == 0, "made 300 files");
	free(x);
	static char names[400][256];
	int cnt = 0;
	/* Small pages: continuation through next_offset, nothing skipped or repeated. */
	CHECKF(list_dir(c, d.node, 200, names, 400, &cnt) == 0 && cnt == 302, "READDIR in small pages (%d)",
	       cnt);
	bool dup = false;
	for (int i = 0; i < cnt && i < 400; i++)
		for (int j = i + 1; j < cnt && j < 400; j++)
			dup |= !strcmp(names[i], names[j]);
	CHECKF(!dup, "no entry twice");
	CHECKF(has_name(names, cnt, "file-with-a-longish-name-300") && has_name(names, cnt, "."),
	       "all there");
	CHECKF(list_dir(c, d.node, 1 << 20, names, 400, &cnt) == 0 && cnt == 302, "READDIR in one page (%d)",
	       cnt);
	uint64_t fh;
	if (CHECKF(open_node(c, VP_FS_OPENDIR, d.node, 0, &fh) == 0, "OPENDIR")) {
		struct vp_fs_req rq = { .fh = fh, .size = 20 };
		CHECKF(fs_req(c, VP_FS_READDIR, &rq, VP_FS_DIRENTS, NULL) == -EINVAL,
		       "max_bytes too small → EINVAL");
		rq = (struct vp_fs_req){ .fh = fh };
		fs_simple(c, VP_FS_CLOSE, &rq);
	}

	/* MKNOD a FIFO; an OPEN on it blocks in the agent until a writer
	 * comes, and meanwhile other requests are served. */
	q = (struct vp_fs_req){ .node = d.node, .mode = S_IFIFO | 0644, .name = B("fifo") };
	CHECKF(fs_entry(c, VP_FS_MKNOD, &q, &e) == 0 && S_ISFIFO(e.attr.mode), "MKNOD fifo");
	struct vp_fs_req oq = { .node = e.node, .flags = O_RDONLY };
	struct vp_buf b;
	vp_buf_init(&b);
	vp_enc_fs_req(&b, VP_FS_OPEN, &oq);
	uint32_t open_id = send_buf(c, VP_FS_OPEN, &b);
	uint64_t t0 = now_ms();
	struct vp_attr a;
	for (int i = 0; i < 10; i++)
		CHECKF(getattr(c, VP_ROOT_NODE, &a) == 0, "GETATTR while an OPEN blocks");
	CHECKF(ping(c, "x") == 0, "PING while an OPEN blocks");
	CHECKF(now_ms() - t0 < 1000, "not held up");
	CHECKF(get_frame(c, open_id, 50) == NULL, "OPEN still blocked");
	snprintf(cmd, sizeof cmd, "echo through-fifo > '%s/many/fifo'", c->root);
	x = run(c, cmd, NULL, NULL, 0, 0);
	CHECKF(x->exited && x->ex.code == 0, "writer ran");
	free(x);
	struct frame *f;
	if (CHECKF(reply(c, open_id, VP_FS_HANDLE, &f) == 0, "OPEN completed")) {
		get_u64(f, &fh);
		frame_free(f);
		char buf[64];
		uint32_t n;
		CHECKF(fs_read(c, fh, 0, 64, buf, &n) == 0 && n == 13 && !memcmp(buf, "through-fifo\n", 13),
		       "READ from the FIFO");
		struct vp_fs_req cq = { .fh = fh };
		fs_simple(c, VP_FS_CLOSE, &cq);
	}
	vp_buf_free(&b);
	forget(c, e.node, 1);
	forget(c, d.node, 1);
}

/* Nothing outside the root is reachable: names are single components and
 * symlinks are never followed for the node itself. */
static void t_fs_confined(struct conn *c)
{
	struct vp_entry s, e;
	struct vp_fs_req q = { .node = VP_ROOT_NODE, .name = B("esc"), .name2 = B("/etc") };
	CHECKF(fs_entry(c, VP_FS_SYMLINK, &q, &s) == 0, "SYMLINK esc → /etc");
	CHECKF(lookup(c, s.node, "passwd", &e) == -ENOTDIR, "LOOKUP through a symlink node → ENOTDIR");
	uint64_t fh;
	CHECKF(open_node(c, VP_FS_OPENDIR, s.node, 0, &fh) < 0, "OPENDIR a symlink fails");
	CHECKF(open_node(c, VP_FS_OPEN, s.node, O_RDONLY, &fh) == -ELOOP, "OPEN a symlink → ELOOP");
	struct vp_entry f;
	CHECKF(create(c, VP_ROOT_NODE, "esc", O_RDWR, 0644, &fh, &f) < 0, "CREATE does not follow a symlink");
	CHECKF(create(c, VP_ROOT_NODE, "excl", O_RDWR | O_EXCL, 0644, &fh, &f) == 0, "CREATE O_EXCL");
	struct vp_fs_req cq = { .fh = fh };
	fs_simple(c, VP_FS_CLOSE, &cq);
	CHECKF(create(c, VP_ROOT_NODE, "excl", O_RDWR | O_EXCL, 0644, &fh, &e) == -EEXIST,
	       "CREATE O_EXCL again → EEXIST");
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("excl") };
	fs_simple(c, VP_FS_UNLINK, &q);
	forget(c, f.node, 1);
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("esc") };
	fs_simple(c, VP_FS_UNLINK, &q);
	forget(c, s.node, 1);
}

/* Requests that carry a caller run as that caller's fsuid, fsgid and
 * groups: the guest kernel checks and owns, then the thread is root
 * again (a root request after them still creates root's files). */
static void t_fs_creds(struct conn *c)
{
	static const uint8_t g1000[] = { 0xe8, 0x03, 0, 0 };
	const struct vp_cred user = { 1000, 1000, { g1000, 4 } };
	struct vp_entry pub, e;
	struct vp_attr a;
	struct vp_fs_req q = { .node = VP_ROOT_NODE, .mode = 0777, .name = B("pub") };
	if (!CHECKF(fs_entry(c, VP_FS_MKDIR, &q, &pub) == 0, "MKDIR pub"))
		return;
	if (geteuid() != 0) {
		q = (struct vp_fs_req){ .node = pub.node, .name = B("x"), .mode = 0755, .cred = user };
		CHECKF(fs_entry(c, VP_FS_MKDIR, &q, &e) == -EPERM,
		       "an agent that cannot switch ids refuses other callers (EPERM)");
		return;
	}
	struct vp_setattr sa = { .node = pub.node, .valid = VP_SET_MODE, .mode = 01777 };
	CHECKF(setattr(c, &sa, &a) == 0 && (a.mode & 07777) == 01777, "pub is 1777");

	struct frame *f = NULL;
	q = (struct vp_fs_req){ .node = pub.node,
				.flags = O_RDWR,
				.mode = 0644,
				.name = B("mine"),
				.cred = user };
	if (CHECKF(fs_req(c, VP_FS_CREATE, &q, VP_FS_CREATED, &f) == 0, "CREATE as 1000"))
		frame_free(f);
	struct vp_entry mine, roots;
	CHECKF(lookup(c, pub.node, "mine", &mine) == 0 && mine.attr.uid == 1000 && mine.attr.gid == 1000,
	       "its file is 1000:1000 (%u:%u)", mine.attr.uid, mine.attr.gid);
	CHECKF(fs_entry(c, VP_FS_MKNOD,
			&(struct vp_fs_req){ .node = pub.node, .mode = S_IFREG | 0644, .name = B("roots") },
			&roots) == 0 &&
		       roots.attr.uid == 0,
	       "root's file is root's");

	q = (struct vp_fs_req){ .node = roots.node, .flags = O_WRONLY, .cred = user };
	f = NULL;
	CHECKF(fs_req(c, VP_FS_OPEN, &q, VP_FS_HANDLE, &f) == -EACCES,
	       "OPEN root's 0644 for writing → EACCES");
	if (f)
		frame_free(f);
	q = (struct vp_fs_req){ .node = pub.node, .name = B("roots"), .cred = user };
	CHECKF(fs_simple(c, VP_FS_UNLINK, &q) == -EPERM, "UNLINK root's file in a sticky dir → EPERM");
	sa = (struct vp_setattr){ .node = roots.node, .valid = VP_SET_ATIME | VP_SET_MTIME, .cred = user };
	CHECKF(setattr(c, &sa, &a) == -EPERM, "explicit times on root's file → EPERM");
	sa = (struct vp_setattr){ .node = mine.node, .valid = VP_SET_UID, .uid = 0, .cred = user };
	CHECKF(setattr(c, &sa, &a) == -EPERM, "chown to root → EPERM");
	sa = (struct vp_setattr){ .node = mine.node, .valid = VP_SET_GID, .gid = 2000 };
	CHECKF(setattr(c, &sa, &a) == 0 && a.gid == 2000, "root gives it group 2000");
	sa = (struct vp_setattr){ .node = mine.node, .valid = VP_SET_MODE, .mode = 02644, .cred = user };
	CHECKF(setattr(c, &sa, &a) == 0 && (a.mode & 07777) == 0644,
	       "chmod g+s by a non-member drops the bit (%o)", a.mode & 07777);
	sa = (struct vp_setattr){ .node = mine.node, .valid = VP_SET_GID, .gid = 1000, .cred = user };
	CHECKF(setattr(c, &sa, &a) == 0 && a.gid == 1000, "chgrp to its own group");
	sa = (struct vp_setattr){ .node = mine.node, .valid = VP_SET_MODE, .mode = 02644, .cred = user };
	CHECKF(setattr(c, &sa, &a) == 0 && (a.mode & 07777) == 02644, "then g+s stays (%o)", a.mode & 07777);

	/* Back to root on the same threads. */
	q = (struct vp_fs_req){ .node = pub.node, .mode = 0755, .name = B("after") };
	CHECKF(fs_entry(c, VP_FS_MKDIR, &q, &e) == 0 && e.attr.uid == 0 && e.attr.gid == 0,
	       "a root request after them is root's (%u:%u)", e.attr.uid, e.attr.gid);
	q = (struct vp_fs_req){ .node = pub.node, .name = B("roots") };
	CHECKF(fs_simple(c, VP_FS_UNLINK, &q) == 0, "root unlinks in the sticky dir");
}

static void t_fs_big(struct conn *c)
{
	enum { CHUNK = 1 << 20, N = 50 };
	uint8_t *buf = malloc(CHUNK), *back = malloc(CHUNK);
	uint64_t fh;
	struct vp_entry e;
	if (!CHECKF(create(c, VP_ROOT_NODE, "big", O_RDWR | O_TRUNC, 0644, &fh, &e) == 0, "CREATE big"))
		goto out;
	uint64_t t0 = now_ms();
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < CHUNK; j++)
			buf[j] = (uint8_t)(i * 31 + j * 7 + (j >> 12));
		uint32_t n;
		if (!CHECKF(fs_write(c, fh, (uint64_t)i * CHUNK, buf, CHUNK, &n) == 0 && n == CHUNK,
			    "WRITE chunk %d", i))
			break;
	}
	struct vp_attr a;
	CHECKF(getattr(c, e.node, &a) == 0 && a.size == (uint64_t)N * CHUNK, "size 50 MiB");
	bool same = true;
	for (int i = 0; i < N && same; i++) {
		for (int j = 0; j < CHUNK; j++)
			buf[j] = (uint8_t)(i * 31 + j * 7 + (j >> 12));
		uint32_t n = 0;
		if (!CHECKF(fs_read(c, fh, (uint64_t)i * CHUNK, CHUNK, back, &n) == 0 && n == CHUNK,
			    "READ chunk %d", i))
			break;
		same = !memcmp(buf, back, CHUNK);
	}
	CHECKF(same, "50 MiB read back equal");
	uint32_t n = 1;
	CHECKF(fs_read(c, fh, (uint64_t)N * CHUNK, CHUNK, back, &n) == 0 && n == 0, "READ at EOF → 0");
	printf("# 50 MiB written and read back in %llu ms\n", (unsigned long long)(now_ms() - t0));
	struct vp_fs_req q = { .fh = fh };
	fs_simple(c, VP_FS_CLOSE, &q);
	q = (struct vp_fs_req){ .node = VP_ROOT_NODE, .name = B("big") };
	CHECKF(fs_simple(c, VP_FS_UNLINK, &q) == 0, "UNLINK big");
	forget(c, e.node, 1);
out:
	free(buf);
	free(back);
}

/* A long command does not hold up file requests. */
static void t_exec_concurrent(struct conn *c)
{
	uint32_t id = exec_send(c, "sleep 2", NULL, NULL, 0, 0, 0);
	struct xres *x = calloc(1, sizeof *x);
	struct frame *f = get_frame(c, id, 5000);
	if (CHECKF(f != NULL, "started"))
		exec_frame(c, id, f, x);
	uint64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		uint64_t t0 = now_ms();
		struct vp_attr a;
		struct vp_entry e;
		CHECKF(getattr(c, VP_ROOT_NODE, &a) == 0, "GETATTR during sleep 2");
		CHECKF(lookup(c, VP_ROOT_NODE, "nothing-here", &e) == -ENOENT, "LOOKUP during sleep 2");
		uint64_t d = now_ms() - t0;
		if (d > worst)
			worst = d;
	}
	CHECKF(worst < 500, "file requests answered quickly (worst %llu ms)", (unsigned long long)worst);
	CHECKF(get_frame(c, id, 0) == NULL, "sleep 2 still running");
	exec_wait(c, id, x, 10000);
	CHECKF(x->exited && x->ex.code == 0 && x->ex.duration_us >= 1900000, "sleep 2 ended");
	free(x);
}

/* ---- main -------------------------------------------------------------- */

/* ---- bounded node fds, READDIRPLUS ------------------------------------- */

static int agent_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Waits (FORGET is one-way) until the agent holds at most want fds. */
static int fds_settle(pid_t pid, int want)
{
	int n = agent_fds(pid);
	for (int i = 0; i < 200 && n > want; i++) {
		sleep_ms(10);
		n = agent_fds(pid);
	}
	return n;
}

#define LRU_FDS 16
#define LRU_DIRS 10
#define LRU_FILES 10

static int small_limits(void)
{
	return setenv("VMPOOL_AGENT_NODE_FDS", "16", 1) || setenv("VMPOOL_AGENT_HANDLES", "16", 1);
}

static void mkfile(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECKF(fd >= 0, "create %s", path);
	if (fd >= 0)
		close(fd);
}

/* Looks up every name of the chain from node `from`; the last node. */
static uint64_t lookup_path(struct conn *c, uint64_t from, const char *const *names, int n)
{
	struct vp_entry e = { .node = from };
	for (int i = 0; i < n; i++)
		if (!CHECKF(lookup(c, e.node, names[i], &e) == 0, "lookup %s", names[i]))
			return 0;
	return e.node;
}

static void t_fs_lru(const char *root)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/lru", root);
	mkdir(path, 0755);
	for (int d = 0; d < LRU_DIRS; d++) {
		snprintf(path, sizeof path, "%s/lru/d%d", root, d);
		mkdir(path, 0755);
		for (int f = 0; f < LRU_FILES; f++) {
			snprintf(path, sizeof path, "%s/lru/d%d/f%d", root, d, f);
			mkfile(path);
		}
	}
	static const char *const deep[] = { "lru", "a", "b", "c", "d", "e", "f", "g", "h", "file" };
	snprintf(path, sizeof path, "%s/lru/a/b/c/d/e/f/g/h", root);
	char cmd[2 * PATH_MAX + 32];
	snprintf(cmd, sizeof cmd, "mkdir -p %s && touch %s/file", path, path);
	CHECK_EQ(system(cmd), 0);

	struct conn c;
	if (!conn_open_with(&c, root, small_limits))
		return;
	int base = agent_fds(c.pid);
	uint64_t deep_node = lookup_path(&c, VP_ROOT_NODE, deep, 10);
	struct vp_entry lru, dir[LRU_DIRS], file[LRU_DIRS][LRU_FILES];
	CHECK_EQ(lookup(&c, VP_ROOT_NODE, "lru", &lru), 0);
	int most = 0;
	for (int d = 0; d < LRU_DIRS; d++) {
		char n[16];
		snprintf(n, sizeof n, "d%d", d);
		CHECK_EQ(lookup(&c, lru.node, n, &dir[d]), 0);
		for (int f = 0; f < LRU_FILES; f++) {
			snprintf(n, sizeof n, "f%d", f);
			CHECK_EQ(lookup(&c, dir[d].node, n, &file[d][f]), 0);
			int now = agent_fds(c.pid);
			most = now > most ? now : most;
		}
	}
	/* 121 nodes looked up; the agent held at most the bound more. */
	CHECKF(most - base <= LRU_FDS, "fds %d over a base of %d with a bound of %d", most, base, LRU_FDS);

	/* Every evicted node is found again, the deep one through its chain. */
	struct vp_attr a;
	CHECK_EQ(getattr(&c, deep_node, &a), 0);
	snprintf(path, sizeof path, "%s/lru/a/b/c/d/e/f/g/h/file", root);
	struct stat st;
	CHECK(stat(path, &st) == 0 && a.ino == st.st_ino);
	for (int d = 0; d < LRU_DIRS; d++)
		for (int f = 0; f < LRU_FILES; f++) {
			CHECK_EQ(getattr(&c, file[d][f].node, &a), 0);
			CHECK_EQ(a.ino, file[d][f].attr.ino);
		}
	CHECKF(agent_fds(c.pid) - base <= LRU_FDS, "fds bounded after getattrs");

	/* A rename through the agent moves the node with it. */
	struct vp_fs_req q = { .node = dir[0].node, .node2 = dir[1].node, .name = B("f0"), .name2 = B("moved") };
	CHECK_EQ(fs_simple(&c, VP_FS_RENAME, &q), 0);
	for (int f = 1; f < LRU_FILES; f++) /* evict f0 */
		for (int d = 2; d < LRU_DIRS; d++)
			getattr(&c, file[d][f].node, &a);
	CHECK_EQ(getattr(&c, file[0][0].node, &a), 0);
	CHECK_EQ(a.ino, file[0][0].attr.ino);

	/* Renamed behind its back and evicted: stale, until looked up again. */
	char from[PATH_MAX], to[PATH_MAX];
	snprintf(from, sizeof from, "%s/lru/d2/f0", root);
	snprintf(to, sizeof to, "%s/lru/d2/g0", root);
	CHECK_EQ(rename(from, to), 0);
	for (int f = 1; f < LRU_FILES; f++)
		for (int d = 3; d < LRU_DIRS; d++)
			getattr(&c, file[d][f].node, &a);
	CHECK_EQ(getattr(&c, file[2][0].node, &a), -ESTALE);
	struct vp_entry again;
	CHECK_EQ(lookup(&c, dir[2].node, "g0", &again), 0);
	CHECK_EQ(again.node, file[2][0].node); /* the same inode: the same node */
	CHECK_EQ(getattr(&c, file[2][0].node, &a), 0);
	forget(&c, again.node, 1);

	/* Open handles are bounded: EMFILE past it, not a broken agent. */
	uint64_t fhs[LRU_FDS + 1];
	int opened = 0, r = 0;
	for (int i = 0; i <= LRU_FDS; i++) {
		r = open_node(&c, VP_FS_OPEN, file[3][i % LRU_FILES].node, O_RDONLY, &fhs[opened]);
		if (r < 0)
			break;
		opened++;
	}
	CHECK_EQ(opened, LRU_FDS);
	CHECK_EQ(r, -EMFILE);
	for (int i = 0; i < opened; i++)
		CHECK_EQ(fs_simple(&c, VP_FS_CLOSE, &(struct vp_fs_req){ .fh = fhs[i] }), 0);

	/* FORGET of everything gives every fd back, kids before parents or not. */
	forget(&c, lru.node, 1);
	for (int d = 0; d < LRU_DIRS; d++) {
		forget(&c, dir[d].node, 1);
		for (int f = 0; f < LRU_FILES; f++)
			forget(&c, file[d][f].node, 1);
	}
	/* deep: each of its 10 nodes once */
	struct vp_entry e = { .node = VP_ROOT_NODE };
	uint64_t chain[10];
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(lookup(&c, e.node, deep[i], &e), 0);
		chain[i] = e.node;
	}
	for (int i = 0; i < 10; i++)
		forget(&c, chain[i], 2 + (i == 0)); /* "lru" was looked up thrice */
	CHECK_EQ(getattr(&c, VP_ROOT_NODE, &a), 0);
	CHECKF(fds_settle(c.pid, base) == base, "fds back to %d after FORGET (%d)", base, agent_fds(c.pid));
	CHECK_EQ(getattr(&c, file[1][1].node, &a), -ESTALE);
	int st2 = conn_close(&c);
	CHECKF(st2 != -1 && WIFEXITED(st2) && WEXITSTATUS(st2) == 0, "agent exit status %d", st2);
}

struct plus_list {
	int entries, requests, dots;
	uint64_t nodes[10100];
	int nnodes;
};

/* READDIRPLUS through the whole directory in requests of max bytes. */
static int list_plus(struct conn *c, uint64_t dir, uint64_t fh, uint32_t max, struct plus_list *pl)
{
	uint64_t off = 0;
	for (;;) {
		struct frame *f;
		int r = fs_req(c, VP_FS_READDIRPLUS,
			       &(struct vp_fs_req){ .node = dir, .fh = fh, .offset = off, .size = max },
			       VP_FS_DIRENTS_PLUS, &f);
		if (r < 0)
			return r;
		pl->requests++;
		CHECKF(f->h.len <= max, "DIRENTS_PLUS within max_bytes (%u > %u)", f->h.len, max);
		struct vp_dirents ds;
		CHECK_EQ(vp_dec_direntsplus(f->p, f->h.len, &ds), 0);
		struct vp_reader rd;
		vp_reader_init(&rd, ds.entries.p, ds.entries.len);
		for (uint32_t i = 0; i < ds.count && !rd.err; i++) {
			struct vp_direntplus d;
			vp_get_direntplus(&rd, &d);
			pl->entries++;
			off = d.d.next_offset;
			if (d.e.node == 0) {
				pl->dots++;
				continue;
			}
			CHECK_EQ(d.e.attr.ino, d.d.ino);
			CHECK(S_ISREG(d.e.attr.mode));
			if (pl->nnodes < (int)(sizeof pl->nodes / sizeof pl->nodes[0]))
				pl->nodes[pl->nnodes++] = d.e.node;
		}
		frame_free(f);
		if (ds.count == 0)
			return 0;
	}
}

#define PLUS_FILES 10000

static void t_fs_readdirplus(const char *root)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/plus", root);
	mkdir(path, 0755);
	for (int i = 0; i < PLUS_FILES; i++) {
		snprintf(path, sizeof path, "%s/plus/file-%05d", root, i);
		mkfile(path);
	}
	struct conn c;
	if (!conn_open_with(&c, root, small_limits))
		return;
	int base = agent_fds(c.pid);
	struct vp_entry dir;
	CHECK_EQ(lookup(&c, VP_ROOT_NODE, "plus", &dir), 0);
	uint64_t fh;
	CHECK_EQ(open_node(&c, VP_FS_OPENDIR, dir.node, 0, &fh), 0);
	static struct plus_list pl;
	memset(&pl, 0, sizeof pl);
	/* 128 KiB: a kernel request the proxy passes on as it is. */
	CHECK_EQ(list_plus(&c, dir.node, fh, 128 * 1024, &pl), 0);
	CHECK_EQ(pl.entries, PLUS_FILES + 2);
	CHECK_EQ(pl.dots, 2);
	CHECK_EQ(pl.nnodes, PLUS_FILES);
	/* max_bytes counts FUSE direntplus bytes: 168 for "file-NNNNN", 160
	 * for "." and "..". Every reply but the last two (the rest, then the
	 * empty end) fills the buffer: 780 entries of 168 bytes. */
	int per = 128 * 1024 / 168;
	int bound = (PLUS_FILES + 2 + per - 1) / per + 1;
	printf("# READDIRPLUS: %d entries in %d requests (bound %d)\n", pl.entries, pl.requests, bound);
	CHECKF(pl.requests <= bound, "%d requests", pl.requests);
	/* The nodes were made without fds. */
	CHECKF(agent_fds(c.pid) <= base + 2, "fds %d after listing (base %d)", agent_fds(c.pid), base);
	/* They are the lookups' nodes, and usable. */
	struct vp_entry e;
	CHECK_EQ(lookup(&c, dir.node, "file-00042", &e), 0);
	bool found = false;
	for (int i = 0; i < pl.nnodes; i++)
		found |= pl.nodes[i] == e.node;
	CHECK(found);
	forget(&c, e.node, 1);
	struct vp_attr a;
	CHECK_EQ(getattr(&c, pl.nodes[PLUS_FILES - 1], &a), 0);

	/* Too small for one entry; a node that is not the handle's. */
	CHECK_EQ(fs_req(&c, VP_FS_READDIRPLUS, &(struct vp_fs_req){ .node = dir.node, .fh = fh, .size = 100 },
			VP_FS_DIRENTS_PLUS, NULL),
		 -EINVAL);
	CHECK_EQ(fs_req(&c, VP_FS_READDIRPLUS,
			&(struct vp_fs_req){ .node = VP_ROOT_NODE, .fh = fh, .size = 4096 },
			VP_FS_DIRENTS_PLUS, NULL),
		 -EINVAL);
	CHECK_EQ(fs_req(&c, VP_FS_READDIRPLUS,
			&(struct vp_fs_req){ .node = pl.nodes[0], .fh = fh, .size = 4096 },
			VP_FS_DIRENTS_PLUS, NULL),
		 -ENOTDIR);
	CHECK_EQ(fs_simple(&c, VP_FS_CLOSE, &(struct vp_fs_req){ .fh = fh }), 0);

	for (int i = 0; i < pl.nnodes; i++)
		forget(&c, pl.nodes[i], 1);
	forget(&c, dir.node, 1);
	CHECK_EQ(getattr(&c, VP_ROOT_NODE, &a), 0);
	CHECKF(fds_settle(c.pid, base) == base, "fds back to %d (%d)", base, agent_fds(c.pid));
	CHECK_EQ(getattr(&c, pl.nodes[0], &a), -ESTALE);
	int st = conn_close(&c);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit status %d", st);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int main(void)
{
	agent_path = getenv("VMPOOL_AGENT_HOST");
	if (!agent_path || access(agent_path, X_OK) < 0) {
		/* meson always builds and passes it: its absence is a broken build. */
		tap_ok(false, "VMPOOL_AGENT_HOST (%s) is not an executable agent",
		       agent_path ? agent_path : "unset");
		return tap_done();
	}
	signal(SIGPIPE, SIG_IGN);
	char root[] = "/tmp/vmpool-agent-test.XXXXXX";
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}

	struct conn c;
	if (!conn_open(&c, root)) {
		tap_ok(false, "agent starts");
		return tap_done();
	}
	static const struct {
		const char *name;
		void (*fn)(struct conn *);
	} shared[] = {
		{ "handshake", t_handshake },
		{ "ping", t_ping },
		{ "malformed requests", t_malformed },
		{ "exec basics", t_exec_basic },
		{ "exec env and cwd", t_exec_env_cwd },
		{ "exec timeout kills the tree", t_exec_timeout },
		{ "exec background holder", t_exec_background },
		{ "exec signal", t_exec_signal },
		{ "exec stdin", t_exec_stdin },
		{ "file operations", t_fs_basic },
		{ "mknod, readdir paging, blocking fifo", t_fs_mknod_readdir },
		{ "confined to the root", t_fs_confined },
		{ "requests as their caller's ids", t_fs_creds },
		{ "50 MiB file", t_fs_big },
		{ "long exec vs file requests", t_exec_concurrent },
	};
	for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
		int mark = tap_mark();
		shared[i].fn(&c);
		tap_ok_since(mark, "%s", shared[i].name);
	}
	int st = conn_close(&c);
	int mark = tap_mark();
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit status %d", st);
	tap_ok_since(mark, "agent exits 0 at channel EOF (no leaks under ASan)");

	static const struct {
		const char *name;
		void (*fn)(const char *);
	} own[] = {
		{ "output flow control", t_exec_flow },
		{ "channel EOF kills commands", t_exec_eof_kills },
		{ "channel EOF interrupts a blocked file request", t_pool_stuck_at_eof },
		{ "fatal frames close the channel", t_fatal },
		{ "SET_TIME refused in host mode, no clock call", t_set_time },
		{ "node fds bounded by an LRU, found again by name", t_fs_lru },
		{ "READDIRPLUS: 10 000 entries in a few requests", t_fs_readdirplus },
	};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
		mark = tap_mark();
		own[i].fn(root);
		tap_ok_since(mark, "%s", own[i].name);
	}
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
