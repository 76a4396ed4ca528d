/* The kvm machine backend: machine.h on top of the kvm monitor. Internal
 * interface, one section per file:
 *
 * machine_kvm.c  kvm_machine_ops: backend open/close (private runtime
 *                directory, template snapshot) and machines: create =
 *                restore + vCPU thread + client, reset = tear down +
 *                restore, destroy
 * template.c     boots image_dir's kernel and initramfs to the agent's
 *                READY and saves the snapshot machines are restored from
 * live.c         a running machine: its vCPU thread (which hangs up the
 *                agent channel when the guest stops), client and teardown
 * reaper.c       releases machines a reset left behind, off the caller's path
 * detect.c       whether /dev/kvm can make a VM, and whether this host's
 *                KVM runs a guest kernel natively (the AUTO rule)
 *
 * Functions return 0 or -errno; a `why` buffer, where there is one, gets a
 * line saying what went wrong (or, for detection, why not native). */
#ifndef VMPOOL_KVM_MACHINE_KVM_H
#define VMPOOL_KVM_MACHINE_KVM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/list.h"
#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/snapshot.h"
#include "vmm/kvm/monitor/virtio_console.h"
#include "vmm/kvm/monitor/vm.h"
#include "vmm/machine.h"

/* ---- backend and machines (machine_kvm.c) -------------------------------- */

/* machine.h's calls for kvm (vmm/machine_ops.h). open boots the template
 * (bounded by ready_timeout_ms) and says in `why` what went wrong. */
struct machine_ops;
extern const struct machine_ops kvm_machine_ops;

/* ---- the template (template.c) ------------------------------------------- */

struct kvm_template_cfg {
	const char *image_dir; /* vmlinuz + initramfs.cpio.gz */
	uint64_t mem_bytes;    /* guest RAM, already within what vm.c takes */
	uint32_t ready_timeout_ms;
	const char *log_path; /* serial log of the template boot */
	const char *snap_dir; /* existing, empty: gets memory + state */
};

/* Boots, waits (bounded) for READY and the HELLO exchange, pauses, saves,
 * tears down. -ENOENT (no vmlinuz / initramfs), -ENOEXEC (not a bzImage),
 * -ETIMEDOUT (no READY in time), -EIO (the guest stopped before READY). */
int kvm_template_snapshot(const struct kvm_template_cfg *cfg, char *why, size_t cap);

/* ---- a running machine (live.c) ------------------------------------------ */

/* Threads and locks of a kvm backend:
 * - a machine's vCPU thread (live.c) runs the guest; it writes run_rc and
 *   then `stopped`, and shuts down con.sock. The owner (the one thread
 *   using the machine) reads run_rc only after joining it; `stopped` is
 *   atomic for kvm_live_alive. Pausing goes through kvm_vm_pause (vm.h's
 *   __atomic pause_req/in_run and a kick signal), not through a lock.
 * - the console's device thread (monitor/virtio_console.c) shares the
 *   device with the vCPU's MMIO exits under con.mmio.lock, which also
 *   freezes the device while a snapshot copies RAM.
 * - the reaper thread (reaper.c) owns each kvm_live it is handed.
 * Lock order: con.mmio.lock and the reaper's lock are leaves: neither is
 * held while taking any other lock, joining a thread or calling the
 * client. Everything else in kvm_live and kvm_machine is the owner's. */
struct kvm_live {
	struct kvm_vm vm;
	struct kvm_serial ser;
	struct kvm_console con;
	struct kvm_snap_machine parts; /* vm, ser and (once open) con */
	bool vm_up;		       /* vm, and parts.console when set, to release */
	pthread_t vcpu;
	bool vcpu_started;
	atomic_bool stopped; /* the run loop ended for good */
	int run_rc;	     /* how it ended (-EINTR: paused by us) */
	struct vp_client *client;
	bool note_end; /* say in the serial log how the guest stopped (machines, not the template) */
};

/* The caller zeroes *l, builds the VM and devices into it (parts, vm_up),
 * then: runs l->vm on a thread of its own until the guest stops or kvm_live_stop
 * pauses it; a guest that stops (exit port, shutdown, error) gets its
 * channel shut down at the monitor's end, so every waiter on the client
 * fails instead of hanging. Then makes the client on host_fd (owned from
 * here on, closed on failure too) and handshakes within timeout_ms: fully
 * (waits for the unsolicited READY) for a booted guest, `resumed` (HELLO
 * only) for one restored after READY, which is then sent SET_TIME with the
 * host's CLOCK_REALTIME (its clock is the snapshot's; the agent's refusal
 * is not an error). On failure the caller still calls kvm_live_stop. */
int kvm_live_start(struct kvm_live *l, int host_fd, bool resumed, uint32_t timeout_ms);
/* Pauses the vCPU (if it runs) and joins its thread; the machine's state
 * stays as it was (a snapshot can be taken). Idempotent. */
void kvm_live_pause(struct kvm_live *l);
/* Pauses the vCPU and frees the client: nothing runs or answers any more,
 * but the console and VM are still to be released (kvm_live_stop). */
void kvm_live_hang_up(struct kvm_live *l);
/* Everything: vCPU thread, client, console, VM. Safe after any failure. */
void kvm_live_stop(struct kvm_live *l);
bool kvm_live_alive(struct kvm_live *l);

/* ---- the reaper (reaper.c) ---------------------------------------------- */

/* `lock` protects queue, queued and stopping; `running` and `thread` are
 * the owner's (start/stop, never concurrent with release). The lock is a
 * leaf: nothing else is taken while holding it, and machines are released
 * with it dropped. */
struct kvm_reaper {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* queue gained an entry, or stopping */
	struct list_node queue; /* struct reaped (reaper.c), oldest first */
	int queued;
	bool stopping, running;
	pthread_t thread;
};

int kvm_reaper_start(struct kvm_reaper *r);
/* Takes a heap-allocated machine: pauses its vCPU and frees its client
 * now, releases the rest (console, VM, RAM) on the reaper thread, or here
 * when the reaper is behind or stopped. */
void kvm_reaper_release(struct kvm_reaper *r, struct kvm_live *l);
/* Releases everything still queued, then joins the thread. */
void kvm_reaper_stop(struct kvm_reaper *r);

/* ---- detection (detect.c) ------------------------------------------------ */

/* 0 when `dev` (NULL: /dev/kvm) can make a VM; else why says "/dev/kvm: ..." */
int kvm_detect_usable(const char *dev, char *why, size_t cap);
/* 0 when KVM here runs a guest kernel natively: usable, no PVM module
 * (kvm_pvm) and a hardware module (kvm_intel, kvm_amd) loaded, looked up
 * under sys_module (NULL: /sys/module). why names the reason either way
 * (on success the hardware module). -ENODEV when not native. */
int kvm_detect_native(const char *dev, const char *sys_module, char *why, size_t cap);

#endif
