/* Tearing a VM down costs more than making one: closing the VM fd waits
 * for KVM's memory-slot teardown (about 15 ms here, against 11 ms for a
 * whole restore). A reset need not wait for it: the old machine is paused
 * and its channel closed at once, and the rest (console thread, VM, RAM)
 * is released here, on the backend's reaper thread, while the caller goes
 * on with the new machine. machine_kvm.h states the interface. */
#include <errno.h>
#include <stdlib.h>

#include "lib/list.h"
#include "vmm/kvm/machine_kvm.h"

/* Past this many waiting, the caller releases itself: a reaper that falls
 * behind must not pile up guest RAM. */
#define REAPER_MAX_QUEUED 4

struct reaped {
	struct list_node link; /* in kvm_reaper.queue */
	struct kvm_live *live;
};

static void *reaper_main(void *arg)
{
	struct kvm_reaper *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (list_empty(&r->queue) && !r->stopping)
			pthread_cond_wait(&r->cond, &r->lock);
		struct list_node *n = list_pop_head(&r->queue);
		if (!n)
			break; /* stopping, and nothing left */
		struct reaped *q = container_of(n, struct reaped, link);
		r->queued--;
		pthread_mutex_unlock(&r->lock);
		kvm_live_stop(q->live);
		free(q->live);
		free(q);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int kvm_reaper_start(struct kvm_reaper *r)
{
	*r = (struct kvm_reaper){ .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	list_init(&r->queue);
	int err = pthread_create(&r->thread, NULL, reaper_main, r);
	r->running = err == 0;
	return -err;
}

void kvm_reaper_release(struct kvm_reaper *r, struct kvm_live *l)
{
	/* What must not outlive the call: the vCPU and the channel. */
	kvm_live_hang_up(l);
	struct reaped *q = r->running ? malloc(sizeof *q) : NULL;
	pthread_mutex_lock(&r->lock);
	bool queue = q && r->queued < REAPER_MAX_QUEUED && !r->stopping;
	if (queue) {
		q->live = l;
		list_add_tail(&r->queue, &q->link);
		r->queued++;
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
	if (!queue) {
		free(q);
		kvm_live_stop(l);
		free(l);
	}
}

void kvm_reaper_stop(struct kvm_reaper *r)
{
	if (!r->running)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL); /* it drains the queue first */
	r->running = false;
}
