/* A running kvm machine: its vCPU thread, its agent client, its teardown
 * (machine_kvm.h). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/client.h"
#include "vmm/kvm/machine_kvm.h"

/* kvm_vm_run's timeout is only a safety net for its callers; a machine
 * runs until it stops or is paused, so the loop just runs it again. */
#define RUN_SLICE_MS (3600u * 1000u)

/* How the guest ended, after its console output in the machine's log,
 * where a user of the tree looks (pool/NAME/log) when its commands fail
 * with "guest connection lost". Written by the monitor, once, so not
 * under the guest's log limit. */
static void note_guest_end(struct kvm_live *l, int rc)
{
	if (!l->parts.serial || l->ser.log_fd < 0)
		return;
	if (rc == 0)
		dprintf(l->ser.log_fd, "\n[vmpoolfs: the guest stopped itself (exit status %d)]\n",
			l->vm.exit_status);
	else if (rc == -EFAULT)
		dprintf(l->ser.log_fd, "\n[vmpoolfs: the guest stopped: shutdown, triple fault or an exit "
				       "KVM could not handle (a panic reboots)]\n");
	else
		dprintf(l->ser.log_fd, "\n[vmpoolfs: the guest stopped: %s]\n", strerror(-rc));
}

static void *vcpu_main(void *arg)
{
	struct kvm_live *l = arg;
	int rc;
	do
		rc = kvm_vm_run(&l->vm, RUN_SLICE_MS);
	while (rc == -ETIMEDOUT);
	l->run_rc = rc;
	atomic_store(&l->stopped, true);
	/* -EINTR is our own pause: the guest lives on in its state. Anything
	 * else means nobody will ever answer on the channel again: hang up the
	 * monitor's end, so the client sees EOF and fails its waiters. */
	if (rc != -EINTR && l->parts.console)
		shutdown(l->con.sock, SHUT_RDWR);
	if (rc != -EINTR && l->note_end)
		note_guest_end(l, rc);
	return NULL;
}

/* Only vm.h's kick signal (SIGRTMIN+1: run timeout and kvm_vm_pause) may
 * reach the vCPU thread; the process's other signals are for its other
 * threads, and one landing here would just cost a guest exit. */
static int start_vcpu(struct kvm_live *l)
{
	sigset_t set, old;
	sigfillset(&set);
	sigdelset(&set, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	atomic_store(&l->stopped, false);
	int err = -pthread_create(&l->vcpu, NULL, vcpu_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	l->vcpu_started = err == 0;
	return err;
}

/* A restored guest's kvmclock, so its wall clock, is the snapshot's:
 * behind by however long ago that was. The agent sets it to ours. An
 * agent that answers at all leaves a working machine, so its refusal
 * (EPERM: not a VM's PID 1; ENOSYS: older than SET_TIME; a failed
 * clock_settime) costs only the correction; a channel that failed or a
 * guest that did not answer in time fails the machine, as in any call. */
static int tell_time(struct vp_client *c)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int err = vp_set_time(c, &now);
	return err && err != -ETIMEDOUT && vp_client_alive(c) ? 0 : err;
}

int kvm_live_start(struct kvm_live *l, int host_fd, bool resumed, uint32_t timeout_ms)
{
	int err = start_vcpu(l);
	if (err) {
		close(host_fd);
		return err;
	}
	err = vp_client_new(host_fd, &l->client); /* closes host_fd on failure */
	if (err) {
		l->client = NULL;
		return err;
	}
	int ms = timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
	if (!resumed)
		return vp_client_handshake(l->client, ms);
	err = vp_client_handshake_resumed(l->client, ms);
	if (err)
		return err;
	/* Part of getting ready: bounded like the handshake, not by the
	 * default timeout meant for a user's requests. */
	vp_client_set_timeout(l->client, ms);
	err = tell_time(l->client);
	vp_client_set_timeout(l->client, VP_CLIENT_DEFAULT_TIMEOUT_MS);
	return err;
}

void kvm_live_pause(struct kvm_live *l)
{
	if (!l->vcpu_started)
		return;
	kvm_vm_pause(&l->vm);
	pthread_join(l->vcpu, NULL);
	l->vcpu_started = false;
}

void kvm_live_hang_up(struct kvm_live *l)
{
	kvm_live_pause(l);
	vp_client_free(l->client); /* fails whatever still waits */
	l->client = NULL;
}

void kvm_live_stop(struct kvm_live *l)
{
	kvm_live_hang_up(l);
	if (l->vm_up)
		kvm_snapshot_release(&l->parts); /* console (its thread) first, then the VM */
	l->vm_up = false;
}

bool kvm_live_alive(struct kvm_live *l)
{
	return l->vcpu_started && !atomic_load(&l->stopped) && vp_client_alive(l->client);
}
