/* The ns agents' logs (ns.h): each agent's stderr is a pipe, and one thread
 * per backend copies what arrives into machine-<id>.log in a private
 * runtime directory. Why not the file itself as stderr: the guest (any
 * command can open /proc/1/fd/2) would decide how much of the host's disk
 * it fills. Through the pipe the daemon keeps at most NS_LOG_LIMIT bytes
 * per life of a machine and drops the rest after a marker line; the
 * agent's end is non-blocking, so a log never stalls the agent. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/list.h"
#include "lib/thread_safety.h"
#include "vmm/ns/ns.h"
#include "vmm/rundir.h"

/* Threads: the copier (logs_main) and the machines' threads (attach).
 * A sink's rd, file, written and truncated are the copier's once the sink
 * is in epoll (attach only fills them before). `lock` protects the list of
 * sinks and the links in it, nothing else; it is a leaf, held for list
 * operations only (never across I/O or epoll_ctl). */
struct sink {
	struct list_node link; /* in ns_logs.sinks */
	int rd, file;
	uint64_t written;
	bool truncated;
};

struct ns_logs {
	char dir[256];
	int epfd, stopfd;
	pthread_t thread;
	struct vp_mutex lock;
	struct list_node sinks GUARDED_BY(lock); /* every sink whose pipe has not ended */
};

static void sink_unlink(struct ns_logs *l, struct sink *k)
{
	vp_mutex_lock(&l->lock);
	list_del(&k->link);
	vp_mutex_unlock(&l->lock);
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, k->rd, NULL);
	close(k->rd);
	close(k->file);
	free(k);
}

/* Copies what the pipe has; false at its end (every writer gone). */
static bool sink_pump(struct sink *k)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(k->rd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN;
		if (n == 0)
			return false;
		size_t keep = 0;
		if (k->written < NS_LOG_LIMIT)
			keep = (size_t)n < NS_LOG_LIMIT - k->written ? (size_t)n
								     : (size_t)(NS_LOG_LIMIT - k->written);
		ssize_t w = keep ? write(k->file, buf, keep) : 0;
		if (w > 0)
			k->written += (uint64_t)w; /* what the file holds, short writes too */
		if (keep < (size_t)n && !k->truncated) {
			k->truncated = true;
			dprintf(k->file, "\n[vmpoolfs: log truncated at %u bytes]\n", NS_LOG_LIMIT);
		}
	}
}

static void *logs_main(void *arg)
{
	struct ns_logs *l = arg;
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(l->epfd, ev, 16, -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct sink *k = ev[i].data.ptr;
			if (!k)
				return NULL; /* the stop eventfd */
			if (!sink_pump(k))
				sink_unlink(l, k);
		}
	}
	return NULL;
}

int ns_logs_open(struct ns_logs **out)
{
	struct ns_logs *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->epfd = l->stopfd = -1;
	list_init(&l->sinks);
	vp_mutex_init(&l->lock);
	int err = rundir_make("ns", l->dir, sizeof l->dir);
	if (err) {
		l->dir[0] = '\0';
		ns_logs_close(l);
		return err;
	}
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (l->epfd < 0 || l->stopfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev) < 0)
		err = -errno;
	else
		err = -pthread_create(&l->thread, NULL, logs_main, l);
	if (err) {
		close(l->stopfd);
		l->stopfd = -1; /* no thread to stop */
		ns_logs_close(l);
		return err;
	}
	*out = l;
	return 0;
}

void ns_logs_close(struct ns_logs *l)
{
	if (!l)
		return;
	if (l->stopfd >= 0) {
		uint64_t one = 1;
		if (write(l->stopfd, &one, sizeof one) < 0)
			abort(); /* an eventfd write cannot fail here; a hang would be worse */
		pthread_join(l->thread, NULL);
		close(l->stopfd);
	}
	/* Lives whose pipes have not ended yet (machines destroyed just now).
	 * The copier is gone; the lock is for the analysis, uncontended. */
	vp_mutex_lock(&l->lock);
	struct list_node *n;
	while ((n = list_pop_head(&l->sinks))) {
		struct sink *k = container_of(n, struct sink, link);
		close(k->rd);
		close(k->file);
		free(k);
	}
	vp_mutex_unlock(&l->lock);
	if (l->epfd >= 0)
		close(l->epfd);
	rundir_remove(l->dir);
	vp_mutex_destroy(&l->lock);
	free(l);
}

int ns_log_path(const struct ns_logs *l, uint32_t id, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%s/machine-%u.log", l->dir, id) >= (int)cap ? -ENAMETOOLONG : 0;
}

int ns_log_attach(struct ns_logs *l, uint32_t id, int *wr)
{
	char path[300];
	int err = ns_log_path(l, id, path, sizeof path);
	if (err)
		return err;
	/* A new inode per life: the previous life's sink may still be draining
	 * into the old one. */
	unlink(path);
	struct sink *k = calloc(1, sizeof *k);
	if (!k)
		return -ENOMEM;
	int p[2] = { -1, -1 };
	k->file = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (k->file < 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		err = -errno;
		if (k->file >= 0)
			close(k->file);
		free(k);
		return err;
	}
	k->rd = p[0];
	vp_mutex_lock(&l->lock);
	list_add_head(&l->sinks, &k->link);
	vp_mutex_unlock(&l->lock);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = k };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, k->rd, &ev) < 0) {
		err = -errno;
		close(p[1]);
		sink_unlink(l, k);
		return err;
	}
	*wr = p[1];
	return 0;
}

void ns_log_remove(struct ns_logs *l, uint32_t id)
{
	char path[300];
	if (ns_log_path(l, id, path, sizeof path) == 0)
		unlink(path);
}
