/* The notify thread; see notify.h for why it exists. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/root_proxy.h"
#include "ctlfiles.h"
#include "ino.h"
#include "lib/clock.h"
#include "session.h"

struct notifier {
	struct vpfs *fs;
	pthread_t thread;
	pid_t tid;
	struct vp_mutex lock;			 /* queue, stop, and each queued session's nq_* */
	pthread_cond_t cond;			 /* CLOCK_MONOTONIC (clock_cond_init) */
	struct list_node queue GUARDED_BY(lock); /* sessions (nq_link), each with a reference */
	bool stop GUARDED_BY(lock);
};

pid_t notifier_tid(const struct notifier *n)
{
	return n ? __atomic_load_n(&n->tid, __ATOMIC_ACQUIRE) : 0;
}

void notifier_post(struct notifier *n, struct session *s, unsigned what)
{
	if (!n)
		return;
	vp_mutex_lock(&n->lock);
	if (n->stop && (what & NQ_EXIT)) {
		vp_mutex_unlock(&n->lock);
		session_settled(s); /* nobody will drop caches any more */
		return;
	}
	if (!n->stop) {
		s->nq_flags |= what;
		if (!list_linked(&s->nq_link)) {
			session_ref(s);
			list_add_head(&n->queue, &s->nq_link);
		}
		pthread_cond_signal(&n->cond);
	}
	vp_mutex_unlock(&n->lock);
}

/* Under n->lock: the flags of s that are due now; *wait_ms lowered to the
 * time until the next rate-limited one. */
static unsigned due_flags(struct session *s, uint64_t now, uint64_t *wait_ms)
{
	unsigned due = s->nq_flags & (NQ_EXIT | NQ_REPLACED);
	for (int i = 0; i < 2; i++) {
		unsigned bit = i ? NQ_TOUCH_ERR : NQ_TOUCH_OUT;
		if (!(s->nq_flags & bit))
			continue;
		uint64_t at = s->touch_last_ms[i] + NOTIFY_TOUCH_MS;
		if (now >= at) {
			due |= bit;
			s->touch_last_ms[i] = now;
		} else if (at - now < *wait_ms) {
			*wait_ms = at - now;
		}
	}
	return due;
}

static void path_of(struct vpfs *fs, struct session *s, const char *file, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/pool/%s/%s", fs->mnt, s->name, file);
}

static void act(struct notifier *n, struct session *s, unsigned what)
{
	struct vpfs *fs = n->fs;
	char path[PATH_MAX + 300];
	vp_mutex_lock(&s->lock);
	bool released = s->released;
	vp_mutex_unlock(&s->lock);
	if (released) {
		if (what & NQ_EXIT)
			session_settled(s);
		return;
	}
	if (what & NQ_REPLACED) {
		/* The names now lead to the new command's files; the old inodes
		 * (kept by open files) lose them, so watchers see them deleted.
		 * ENOENT when a lookup already moved the name on: nothing to do. */
		vp_mutex_lock(&s->lock);
		uint64_t gen = s->gen;
		vp_mutex_unlock(&s->lock);
		fuse_ino_t dir = ino_make(s->serial, SF_DIR);
		(void)fuse_lowlevel_notify_delete(fs->se, dir, ino_make_gen(s->serial, SF_STDOUT, gen - 1),
						  "stdout", 6);
		(void)fuse_lowlevel_notify_delete(fs->se, dir, ino_make_gen(s->serial, SF_STDERR, gen - 1),
						  "stderr", 6);
	}
	if (what & (NQ_TOUCH_OUT | NQ_TOUCH_ERR)) {
		static const struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_NOW } };
		if (what & NQ_TOUCH_OUT) {
			path_of(fs, s, "stdout", path, sizeof(path));
			(void)utimensat(AT_FDCWD, path, ts, 0);
		}
		if (what & NQ_TOUCH_ERR) {
			path_of(fs, s, "stderr", path, sizeof(path));
			(void)utimensat(AT_FDCWD, path, ts, 0);
		}
	}
	if (what & NQ_EXIT) {
		/* Fresh root/ first, so a watcher woken by the event sees it. */
		if (session_machine_get(s) == 0) {
			rp_invalidate(s->rp, fs->se);
			session_machine_put(s);
		}
		session_settled(s); /* now exit/stdout readers see the end */
		path_of(fs, s, "stat", path, sizeof(path));
		int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			close(fd); /* IN_CLOSE_WRITE; the content is unchanged */
	}
}

static void *notify_main(void *arg)
{
	struct notifier *n = arg;
	__atomic_store_n(&n->tid, gettid(), __ATOMIC_RELEASE);
	vp_mutex_lock(&n->lock);
	while (!n->stop) {
		uint64_t now = clock_mono_ms(), wait_ms = UINT64_MAX;
		struct session *pick = NULL;
		unsigned what = 0;
		list_for_each (&n->queue, it) {
			struct session *s = container_of(it, struct session, nq_link);
			what = due_flags(s, now, &wait_ms);
			if (what) {
				pick = s;
				break;
			}
		}
		if (pick) {
			pick->nq_flags &= ~what;
			if (!pick->nq_flags) { /* its queue reference is ours now */
				list_del(&pick->nq_link);
			} else {
				session_ref(pick);
			}
			vp_mutex_unlock(&n->lock);
			act(n, pick, what);
			session_unref(pick);
			vp_mutex_lock(&n->lock);
			continue;
		}
		(void)clock_cond_wait(&n->cond, vp_mutex_raw(&n->lock),
				      wait_ms == UINT64_MAX ? 0 : deadline_after_ms(wait_ms));
	}
	vp_mutex_unlock(&n->lock);
	return NULL;
}

int notifier_start(struct vpfs *fs, struct notifier **out)
{
	struct notifier *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->fs = fs;
	list_init(&n->queue);
	vp_mutex_init(&n->lock);
	int r = clock_cond_init(&n->cond);
	if (r < 0) {
		vp_mutex_destroy(&n->lock);
		free(n);
		return r;
	}
	r = pthread_create(&n->thread, NULL, notify_main, n);
	if (r != 0) {
		pthread_cond_destroy(&n->cond);
		vp_mutex_destroy(&n->lock);
		free(n);
		return -r;
	}
	/* The tid must be known before the first self-open reaches the tree. */
	while (!notifier_tid(n))
		sched_yield();
	*out = n;
	return 0;
}

void notifier_stop(struct notifier *n)
{
	if (!n)
		return;
	vp_mutex_lock(&n->lock);
	if (n->stop) {
		vp_mutex_unlock(&n->lock);
		return;
	}
	n->stop = true;
	pthread_cond_signal(&n->cond);
	vp_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	/* Drop what is still queued. */
	for (;;) {
		vp_mutex_lock(&n->lock);
		struct list_node *first = list_pop_head(&n->queue);
		struct session *s = first ? container_of(first, struct session, nq_link) : NULL;
		if (s)
			s->nq_flags = 0;
		vp_mutex_unlock(&n->lock);
		if (!s)
			return;
		session_settled(s);
		session_unref(s);
	}
}

void notifier_free(struct notifier *n)
{
	if (!n)
		return;
	notifier_stop(n);
	pthread_cond_destroy(&n->cond);
	vp_mutex_destroy(&n->lock);
	free(n);
}
