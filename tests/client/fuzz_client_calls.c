/* fuzz_client's requesters: real calls on the client, each result checked
 * (bounded time, 0 or -errno, counts within what was asked; exec and
 * write-behind callbacks exactly once and in turn). */
#include <string.h>

#include "tests/client/fuzz_client.h"

/* Runs one call's result through the common checks; true to go on. */
static bool check_call(struct fz *f, const char *what, bool was_dead, int rc, double t0)
{
	double took = now_s() - t0;
	if (took > HANG_S)
		FAIL("%s took %.3f s", what, took);
	if (rc > 0 || rc < -4095)
		FAIL("%s returned %d", what, rc);
	if (was_dead && rc != -ECONNRESET)
		FAIL("%s on a dead channel returned %d", what, rc);
	return !was_dead && !atomic_load(&f->stop);
}

static int dir_fn(void *ctx, const struct vp_dirent *d)
{
	unsigned *n = ctx;
	if (d->name.len == 0 || d->name.len > VP_MAX_NAME || memchr(d->name.p, '/', d->name.len) ||
	    d->type > 15)
		FAIL("bad dirent handed to the caller");
	(*n)++;
	return 0;
}

struct async_ctx {
	struct fz *f;
	uint32_t size;
};

static void async_done(void *ctx, int err, uint32_t written)
{
	struct async_ctx *a = ctx;
	if (err == 0 && written > a->size)
		FAIL("write-behind: %u written of %u", written, a->size);
	if (err > 0 || err < -4095)
		FAIL("write-behind: err %d", err);
	atomic_fetch_add(&a->f->async_done, 1);
	free(a);
}

/* One exec's callbacks; lives until its on_exit. */
struct exec_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int exits;
	bool started;
};

static void ex_started(void *ctx, uint32_t pid)
{
	struct exec_ctx *e = ctx;
	(void)pid;
	pthread_mutex_lock(&e->mu);
	if (e->exits || e->started)
		FAIL("on_started out of turn");
	e->started = true;
	pthread_mutex_unlock(&e->mu);
}

static void ex_output(void *ctx, int stream, const void *data, size_t len)
{
	struct exec_ctx *e = ctx;
	(void)data;
	pthread_mutex_lock(&e->mu);
	if (e->exits)
		FAIL("on_output after on_exit");
	if ((stream != 1 && stream != 2) || len == 0 || len > VP_MAX_DATA)
		FAIL("on_output stream %d len %zu", stream, len);
	pthread_mutex_unlock(&e->mu);
}

static void ex_exit(void *ctx, const struct vp_exit *ex, int err)
{
	struct exec_ctx *e = ctx;
	pthread_mutex_lock(&e->mu);
	if (e->exits++)
		FAIL("on_exit twice");
	if ((err == 0) != (ex != NULL) || err > 0)
		FAIL("on_exit err %d ex %p", err, (const void *)ex);
	if (ex && (ex->code < -1 || ex->code > 255 || ex->signal < 0 || ex->signal > 64 || ex->timed_out > 1))
		FAIL("on_exit with an out-of-range status");
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

static const struct vp_exec_cb ex_cb = { ex_started, ex_output, ex_exit };

/* Starts an exec, pokes it while it runs, and waits for its on_exit, which
 * must come: at EXIT, or when the channel dies at the end of the input. */
static bool exec_once(struct fz *f, unsigned i)
{
	struct vp_exec ex;
	memset(&ex, 0, sizeof ex);
	ex.cmd = (struct vp_bytes){ (const uint8_t *)"cat", 3 };
	ex.flags = VP_EXEC_STDIN;
	struct exec_ctx *e = calloc(1, sizeof *e);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	bool dead = !vp_client_alive(f->c);
	uint32_t id = 0;
	double t0 = now_s();
	int rc = vp_exec_start(f->c, &ex, &ex_cb, e, &id);
	bool go = check_call(f, "exec_start", dead, rc, t0);
	if (rc == 0) {
		dead = !vp_client_alive(f->c);
		t0 = now_s();
		int r2 = i & 1 ? vp_exec_stdin(f->c, id, "hi", 2, i & 2) : vp_exec_signal(f->c, id, 15);
		check_call(f, "stdin/signal", dead, r2, t0);
		double until = 0;
		pthread_mutex_lock(&e->mu);
		while (!e->exits) {
			pthread_mutex_unlock(&e->mu);
			if (until == 0 && (atomic_load(&f->stop) || !vp_client_alive(f->c)))
				until = now_s() + HANG_S;
			if (until && now_s() > until)
				FAIL("no on_exit %.1f s after the end", HANG_S);
			sleep_ms(1);
			pthread_mutex_lock(&e->mu);
		}
		pthread_mutex_unlock(&e->mu);
	}
	/* On an error no callback may ever run: ASan sees one on freed memory. */
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return go;
}

static bool call_once(struct fz *f, int kind, unsigned i)
{
	struct vp_client *c = f->c;
	static const uint32_t read_sizes[] = { 100, 0, 4096, 70000, 1 };
	static const uint32_t dir_sizes[] = { 4096, 100, 30, 1u << 20 };
	static const uint8_t wbuf[5000];
	bool dead = !vp_client_alive(c);
	double t0 = now_s();
	int rc = 0;
	switch (kind) {
	case 0: rc = vp_ping(c); break;
	case 1: {
		struct vp_entry en;
		uint64_t fh;
		char lb[64];
		switch (i % 8) {
		case 0: rc = vp_fs_lookup(c, 1, "etc", &en); break;
		case 1: rc = vp_fs_getattr(c, 5, &en.attr); break;
		case 2: rc = vp_fs_open(c, 5, 0, &fh); break;
		case 3: rc = vp_fs_opendir(c, 1, &fh); break;
		case 4:
			rc = vp_fs_readlink(c, 5, lb, sizeof lb);
			if (rc == 0 && strnlen(lb, sizeof lb) >= sizeof lb)
				FAIL("readlink overran its buffer");
			break;
		case 5: {
			struct vp_statfs st;
			rc = vp_fs_statfs(c, 1, &st);
			break;
		}
		case 6: rc = vp_fs_create(c, 1, "new", 0101, 0644, &fh, &en); break;
		default: rc = vp_fs_mkdir(c, 1, "dir", 0755, &en); break;
		}
		break;
	}
	case 2: {
		uint32_t size = read_sizes[i % 5], got = 0;
		uint8_t *buf = malloc(size ? size : 1);
		rc = vp_fs_read(c, 9, 0, buf, size, &got);
		if (rc == 0 && got > size)
			FAIL("read: got %u of %u", got, size);
		free(buf);
		break;
	}
	case 3: {
		uint32_t max = dir_sizes[i % 4], count = 0;
		unsigned calls = 0;
		rc = vp_fs_readdir(c, 9, i, max, dir_fn, &calls, &count);
		/* An entry is at least 25 bytes and the reply at most max. */
		if (rc == 0 && (count != calls || count > max / 25))
			FAIL("readdir: %u entries (%u seen) in %u bytes", count, calls, max);
		break;
	}
	case 4: {
		uint32_t size = i & 2 ? sizeof wbuf : 10, n = 0;
		if (i & 1) {
			struct async_ctx *a = malloc(sizeof *a);
			*a = (struct async_ctx){ f, size };
			rc = vp_fs_write_async(c, 9, 0, wbuf, size, async_done, a);
			if (rc)
				free(a);
			else
				atomic_fetch_add(&f->async_started, 1);
		} else {
			rc = vp_fs_write(c, 9, 0, wbuf, size, &n);
			if (rc == 0 && n > size)
				FAIL("write: %u written of %u", n, size);
		}
		break;
	}
	case 5: return exec_once(f, i);
	default: {
		struct vp_entry en;
		switch (i % 8) {
		case 0: {
			struct vp_setattr sa = { .node = 5, .valid = VP_SET_SIZE, .size = 1 };
			rc = vp_fs_setattr(c, &sa, &en.attr);
			break;
		}
		case 1: rc = vp_fs_fsync(c, 9, true); break;
		case 2: rc = vp_fs_close(c, 9); break;
		case 3: rc = vp_fs_unlink(c, 1, "x"); break;
		case 4: {
			struct timespec ts = { 1700000000, 5 };
			rc = vp_set_time(c, &ts);
			break;
		}
		case 5: rc = vp_fs_symlink(c, 1, "l", "target", &en); break;
		case 6: rc = vp_fs_rename(c, 1, "a", 1, "b", 0); break;
		default:
			vp_fs_forget(c, 5, 1); /* one-way: no result to check */
			rc = dead ? -ECONNRESET : 0;
			break;
		}
		break;
	}
	}
	return check_call(f, "call", dead, rc, t0);
}

void *req_main(void *arg)
{
	struct req *r = arg;
	for (unsigned i = 0; call_once(r->f, r->kind, i); i++)
		;
	return NULL;
}
