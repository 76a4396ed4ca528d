/* root/ proxy: write-behind.
 *
 * A write to a regular file is answered once its WRITE frame is on the
 * channel, with up to RP_WB_MAX per handle in flight, so the writer, the
 * channel and the guest's write overlap (as sshfs's and NFS's do). What
 * keeps that invisible to everyone who does not race with the writer:
 *  - Errors are sticky on the handle: the first failed write is returned by
 *    the next write, by every flush (close) and fsync of it.
 *  - flush, fsync, release and truncate through the handle, and getattr,
 *    read and open of the node through any handle, first wait for the
 *    node's writes sent before them: whoever starts after a close sees
 *    every byte (close-to-open), and a truncate is never overtaken.
 *  - The agent runs the WRITEs of one handle in the order they came
 *    (agent_pool.c). Writes through different handles of a node have no
 *    order there, so a write overlapping one in flight through any handle
 *    of its node waits for it first.
 *  - Appends, O_SYNC/O_DSYNC and non-regular files (FIFOs, devices, where
 *    each write's own result matters) stay synchronous. */
#include "fs/root_proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "lib/clock.h"

/* WRITE frames in flight per open handle. Two keep the guest writing one
 * while the next crosses FUSE and the channel; 4 and 8 were slower on 2
 * cores (dd of 256 MiB, interleaved: 2.5x sshfs with 2, 2.0x with 4, 2.2x
 * with 8), as more 1 MiB buffers queue in the channel. */
#define RP_WB_MAX 2
/* How long anything waits for in-flight writes before the guest counts as
 * stuck (the client's own default timeout for a call). */
#define RP_WB_TIMEOUT_MS 60000

/* One WRITE in flight, answered to the kernel already. */
struct rp_wb {
	struct root_proxy *rp;
	struct rp_file *f;
	uint64_t node, off, end, seq;
	uint32_t size;
	struct list_node link; /* in root_proxy.wbs */
};

/* What a wait waits for: writes in flight with seq <= upto, of file f (if
 * set), of node (if set), overlapping [off, end) (if range); and lim_f
 * having `limit` or more in flight. */
struct wb_query {
	const struct rp_file *f;
	uint64_t node;
	bool range;
	uint64_t off, end;
	uint64_t upto;
	const struct rp_file *lim_f;
	unsigned limit;
};

int rpi_wb_init(struct root_proxy *rp)
{
	int err = vp_mutex_init(&rp->wb_lock);
	if (err)
		return -err;
	/* Monotonic: a guest's SET_TIME or NTP must not stretch the wait. */
	err = clock_cond_init(&rp->wb_cond);
	if (err) {
		vp_mutex_destroy(&rp->wb_lock);
		return err;
	}
	list_init(&rp->files);
	list_init(&rp->wbs);
	rp->wb_seq = 0;
	return 0;
}

void rpi_wb_fini(struct root_proxy *rp)
{
	/* Files the kernel never released through us (the machine went away
	 * under them) are freed here; the kernel's later RELEASE does not
	 * reach this proxy any more. Writes still in flight are those of
	 * files open across rmdir: they are not waited for (rmdir returns at
	 * once whatever the guest does); the channel is shut down, which
	 * ends them now, and the machine is replaced instead of reset. */
	vp_mutex_lock(&rp->wb_lock);
	bool busy = !list_empty(&rp->wbs);
	vp_mutex_unlock(&rp->wb_lock);
	if (busy)
		vp_client_shutdown(rp->client);
	rpi_wb_wait_all(rp);
	list_for_each_safe (&rp->files, it, tmp) {
		list_del(it);
		free(container_of(it, struct rp_file, link));
	}
	pthread_cond_destroy(&rp->wb_cond);
	vp_mutex_destroy(&rp->wb_lock);
}

static bool wb_pending_locked(const struct root_proxy *rp, const struct wb_query *q) REQUIRES(&rp->wb_lock)
{
	if (q->lim_f && q->lim_f->inflight >= q->limit)
		return true;
	list_for_each (&rp->wbs, it) {
		const struct rp_wb *w = container_of(it, struct rp_wb, link);
		if (w->seq > q->upto)
			continue;
		if (q->f && w->f != q->f)
			continue;
		if (q->node && w->node != q->node)
			continue;
		if (q->range && (w->end <= q->off || q->end <= w->off))
			continue;
		return true;
	}
	return false;
}

/* Called with wb_lock held. Writes have no timeout of their own (the
 * client cannot time out a request whose caller has gone); a guest that
 * answers none for as long as a synchronous call may take is stuck, and
 * only the channel's death guarantees the callbacks that end this wait.
 * A stuck guest's synchronous calls would fail with ETIMEDOUT; here the
 * machine becomes dead instead, and the wait goes on without a deadline. */
static void wb_wait_locked(struct root_proxy *rp, const struct wb_query *q) REQUIRES(&rp->wb_lock)
{
	uint64_t deadline = deadline_after_ms(RP_WB_TIMEOUT_MS);
	while (wb_pending_locked(rp, q)) {
		if (clock_cond_wait(&rp->wb_cond, vp_mutex_raw(&rp->wb_lock), deadline) == -ETIMEDOUT &&
		    wb_pending_locked(rp, q)) {
			vp_mutex_unlock(&rp->wb_lock);
			vp_client_shutdown(rp->client);
			vp_mutex_lock(&rp->wb_lock);
			deadline = 0;
		}
	}
}

/* Waits for what q names, everything sent so far. */
static void wb_wait(struct root_proxy *rp, struct wb_query q)
{
	vp_mutex_lock(&rp->wb_lock);
	if (!list_empty(&rp->wbs)) {
		q.upto = rp->wb_seq;
		wb_wait_locked(rp, &q);
	}
	vp_mutex_unlock(&rp->wb_lock);
}

void rpi_wb_wait_node(struct root_proxy *rp, uint64_t node)
{
	wb_wait(rp, (struct wb_query){ .node = node });
}

void rpi_wb_wait_all(struct root_proxy *rp)
{
	wb_wait(rp, (struct wb_query){ 0 });
}

void rpi_wb_wait_range(struct root_proxy *rp, uint64_t node, uint64_t off, uint64_t end)
{
	wb_wait(rp, (struct wb_query){ .node = node, .range = true, .off = off, .end = end });
}

int rpi_wb_wait_file(struct root_proxy *rp, struct rp_file *f)
{
	vp_mutex_lock(&rp->wb_lock);
	if (!list_empty(&rp->wbs)) {
		struct wb_query q = { .f = f, .upto = rp->wb_seq };
		wb_wait_locked(rp, &q);
	}
	int err = f->err;
	vp_mutex_unlock(&rp->wb_lock);
	return err;
}

static void wb_unlink_locked(struct root_proxy *rp, struct rp_wb *w) REQUIRES(&rp->wb_lock)
{
	list_del(&w->link);
	w->f->inflight--;
	pthread_cond_broadcast(&rp->wb_cond);
}

/* The client's reader thread, once per write: must not block. */
static void wb_done(void *ctx, int err, uint32_t written)
{
	struct rp_wb *w = ctx;
	struct root_proxy *rp = w->rp;
	/* The agent answers a short count when a regular file's write failed
	 * after some bytes (its error is lost with it); the next write would
	 * have failed with what is nearly always the cause. */
	if (!err && written < w->size)
		err = -ENOSPC;
	vp_mutex_lock(&rp->wb_lock);
	if (err && !w->f->err)
		w->f->err = err;
	wb_unlink_locked(rp, w);
	vp_mutex_unlock(&rp->wb_lock);
	free(w);
}

/* Known after the first write. */
bool rpi_wb_usable(struct root_proxy *rp, struct rp_file *f)
{
	if (f->flags & (O_APPEND | O_DSYNC))
		return false;
	vp_mutex_lock(&rp->wb_lock);
	int regular = f->regular;
	vp_mutex_unlock(&rp->wb_lock);
	if (regular < 0) {
		struct vp_attr a;
		/* Failing to ask costs only the overlap: stay synchronous. */
		if (vp_fs_getattr(rp->client, f->node, &a) != 0)
			return false;
		regular = S_ISREG(a.mode) ? 1 : 0;
		vp_mutex_lock(&rp->wb_lock);
		f->regular = (int8_t)regular;
		vp_mutex_unlock(&rp->wb_lock);
	}
	return regular == 1;
}

void rpi_wb_write(struct root_proxy *rp, fuse_req_t req, struct rp_file *f, const char *buf, size_t size,
		  uint64_t off)
{
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint32_t want = size - done > VP_MAX_DATA ? VP_MAX_DATA : (uint32_t)(size - done);
		struct rp_wb *w = malloc(sizeof(*w));
		if (!w) {
			err = -ENOMEM;
			break;
		}
		w->rp = rp;
		w->f = f;
		w->node = f->node;
		w->off = off + done;
		w->end = w->off + want;
		w->size = want;
		vp_mutex_lock(&rp->wb_lock);
		/* Room on this handle, and nothing sent before that this write
		 * overlaps, through any handle of the node. */
		struct wb_query q = { .node = f->node,
				      .range = true,
				      .off = w->off,
				      .end = w->end,
				      .upto = rp->wb_seq,
				      .lim_f = f,
				      .limit = RP_WB_MAX };
		wb_wait_locked(rp, &q);
		err = f->err;
		if (err) {
			vp_mutex_unlock(&rp->wb_lock);
			free(w);
			break;
		}
		w->seq = ++rp->wb_seq;
		list_add_head(&rp->wbs, &w->link);
		f->inflight++;
		vp_mutex_unlock(&rp->wb_lock);
		err = vp_fs_write_async(rp->client, f->fh, w->off, buf + done, want, wb_done, w);
		if (err) {
			vp_mutex_lock(&rp->wb_lock);
			wb_unlink_locked(rp, w);
			vp_mutex_unlock(&rp->wb_lock);
			free(w);
			break;
		}
		done += want;
	}
	if (err && done == 0)
		rpi_reply_err(req, err);
	else
		fuse_reply_write(req, done);
}
