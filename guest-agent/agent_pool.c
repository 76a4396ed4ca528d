/* Worker threads for file requests. A thread is added whenever a request
 * arrives and none is idle, so one request blocked in the guest (reading
 * an empty FIFO) never holds up the others; the cap bounds what a flood
 * of such requests can cost. Threads stay until the agent ends.
 *
 * WRITEs of one handle run one at a time, in the order they came: the
 * host sends several without waiting (write-behind), and two workers
 * writing one file would both reorder them (appends, overlapping ranges)
 * and contend for its inode lock, spinning on it. A write whose handle is
 * busy stays queued, and the worker that finishes its predecessor takes
 * it next. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "lib/clock.h"
#include "lib/list.h"

#define POOL_MAX 64
#define JOIN_STEP_MS 50 /* SIGUSR1 again this often while joining */
#define JOIN_GIVE_UP_MS 2000

struct agent_pool {
	agent_pool_fn *fn;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_cond_t exited_cv; /* CLOCK_MONOTONIC (clock_cond_init): nexited grew */
	struct list_node queue;	  /* agent_msg.link, oldest first */
	unsigned queued, idle, nthreads, nexited;
	bool stop;
	uint64_t busy[POOL_MAX]; /* handles with a WRITE running */
	unsigned nbusy;
	pthread_t thr[POOL_MAX];
};

static void on_usr1(int sig)
{
	(void)sig; /* only here to make a blocked syscall return EINTR */
}

int agent_pool_install_signal(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1; /* no SA_RESTART: the point is EINTR */
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGUSR1, &sa, NULL) < 0 ? -errno : 0;
}

static bool ordered(const struct agent_msg *m)
{
	return m->err == 0 && m->h.type == VP_FS_WRITE;
}

static bool busy_locked(const struct agent_pool *p, uint64_t fh)
{
	for (unsigned i = 0; i < p->nbusy; i++)
		if (p->busy[i] == fh)
			return true;
	return false;
}

/* The first queued message that may run now. */
static struct agent_msg *take_locked(struct agent_pool *p)
{
	list_for_each (&p->queue, it) {
		struct agent_msg *m = container_of(it, struct agent_msg, link);
		if (ordered(m) && busy_locked(p, m->u.fs.fh))
			continue;
		list_del(&m->link); /* and return at once: `it` is not used again */
		p->queued--;
		if (ordered(m))
			p->busy[p->nbusy++] = m->u.fs.fh; /* ≤ one per worker */
		return m;
	}
	return NULL;
}

static void unbusy_locked(struct agent_pool *p, uint64_t fh)
{
	for (unsigned i = 0; i < p->nbusy; i++) {
		if (p->busy[i] == fh) {
			p->busy[i] = p->busy[--p->nbusy];
			return;
		}
	}
}

static void *worker(void *arg)
{
	struct agent_pool *p = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct agent_msg *m = NULL;
		while (!p->stop && !(m = take_locked(p))) {
			p->idle++;
			pthread_cond_wait(&p->cond, &p->lock);
			p->idle--;
		}
		if (p->stop)
			break;
		bool ord = ordered(m);
		uint64_t fh = ord ? m->u.fs.fh : 0;
		pthread_mutex_unlock(&p->lock);
		p->fn(p->ctx, m);
		agent_msg_free(m);
		pthread_mutex_lock(&p->lock);
		if (ord) {
			unbusy_locked(p, fh);
			/* This worker takes one queued message next; an idle one
			 * may run another that waited for this handle. */
			if (p->queued > 1)
				pthread_cond_signal(&p->cond);
		}
	}
	p->nexited++;
	pthread_cond_signal(&p->exited_cv);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int agent_pool_new(agent_pool_fn *fn, void *ctx, struct agent_pool **out)
{
	struct agent_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->ctx = ctx;
	list_init(&p->queue);
	/* The join deadline is on CLOCK_MONOTONIC: SET_TIME may move the wall
	 * clock while the agent is stopping. */
	int r = clock_cond_init(&p->exited_cv);
	if (r < 0) {
		free(p);
		return r;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	*out = p;
	return 0;
}

/* The idle worker is woken after the lock is released: woken under it, it
 * would run only to block on the mutex the submitter still holds. */
void agent_pool_submit(struct agent_pool *p, struct agent_msg *m)
{
	pthread_mutex_lock(&p->lock);
	list_add_tail(&p->queue, &m->link);
	p->queued++;
	if (p->idle < p->queued && p->nthreads < POOL_MAX) {
		if (pthread_create(&p->thr[p->nthreads], NULL, worker, p) == 0)
			p->nthreads++;
		else if (p->nthreads == 0) {
			/* No thread at all to run it: answer here rather than
			 * leave the host waiting. */
			list_del(&m->link); /* without a thread, it is the only one */
			p->queued = 0;
			pthread_mutex_unlock(&p->lock);
			m->err = EAGAIN;
			p->fn(p->ctx, m);
			agent_msg_free(m);
			return;
		}
	}
	pthread_mutex_unlock(&p->lock);
	pthread_cond_signal(&p->cond);
}

/* Waits for every worker to leave its loop, knocking those blocked in the
 * guest (FIFO open/read) out of their syscall with SIGUSR1; the signal is
 * repeated because it may land just before a worker enters one. Signalling
 * a worker that already left is harmless: it is not joined yet. 0, or
 * -ETIMEDOUT after ~2 s (the process is ending anyway). */
static int wait_exited_locked(struct agent_pool *p)
{
	uint64_t give_up = deadline_after_ms(JOIN_GIVE_UP_MS);
	while (p->nexited < p->nthreads) {
		if (deadline_passed(give_up))
			return -ETIMEDOUT;
		uint64_t step = deadline_after_ms(JOIN_STEP_MS);
		if (clock_cond_wait(&p->exited_cv, &p->lock, step < give_up ? step : give_up) == -ETIMEDOUT)
			for (unsigned i = 0; i < p->nthreads; i++)
				pthread_kill(p->thr[i], SIGUSR1);
	}
	return 0;
}

int agent_pool_free(struct agent_pool *p)
{
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	int r = wait_exited_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (r < 0) {
		AGENT_LOG("a file request is stuck; not waiting for it");
		return -EBUSY; /* it may still use p: leave everything allocated */
	}
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->thr[i], NULL);
	for (struct list_node *n; (n = list_pop_head(&p->queue));)
		agent_msg_free(container_of(n, struct agent_msg, link));
	pthread_cond_destroy(&p->exited_cv);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return 0;
}
