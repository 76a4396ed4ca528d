/* virtio-mmio transport, version 2 registers (virtio 1.2 §4.2.2), for one
 * device in a 4 KiB window of the 32-bit MMIO hole (docs/design.md §3, kvm).
 *
 * Linux finds it through the kernel command line word
 * `virtio_mmio.device=4K@0xBASE:IRQ` (virtio_mmio_cmdline builds it).
 * QueueNotify writes land on one eventfd per queue: KVM_IOEVENTFD with the
 * queue index as datamatch, so they do not leave KVM; where that cannot be
 * registered the MMIO exit writes the same eventfd. Used-buffer and config
 * interrupts are KVM_IRQFD on the device's IOAPIC/PIC pin (an edge, as for
 * an ISA IRQ); the guest may also poll InterruptStatus.
 *
 * Locking: `lock` guards every field below it; the vCPU thread takes it in
 * the MMIO handler and the device's own thread takes it to work on queues.
 * The device's ops run with it held. Functions return 0 or -errno. */
#ifndef VMPOOL_KVM_VIRTIO_MMIO_H
#define VMPOOL_KVM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/kvm/monitor/virtio_regs.h"
#include "vmm/kvm/monitor/virtq.h"

struct kvm_vm;

#define VIRTIO_MMIO_MAX_QUEUES 2u
#define VIRTIO_MMIO_STATUS_LOG 16u

/* What the device behind the transport provides. */
struct virtio_mmio_ops {
	uint32_t device_id;
	uint64_t features;   /* offered; must include VIRTIO_F_VERSION_1 */
	uint16_t nqueues;    /* ≤ VIRTIO_MMIO_MAX_QUEUES */
	uint32_t config_len; /* ≤ VIRTIO_MMIO_SIZE - VIRTIO_MMIO_CONFIG */
	void (*read_config)(void *dev, uint32_t off, uint8_t *data, uint32_t len);
	void (*reset)(void *dev); /* driver wrote status 0: drop queue state */
};

struct virtio_mmio_queue {
	struct virtq vq;
	bool ready;
	bool broken;	/* the driver broke the ring; unused until reset */
	int notify_fd;	/* eventfd: the driver notified this queue */
	bool ioeventfd; /* notify_fd is bound with KVM_IOEVENTFD */
};

struct virtio_mmio {
	const struct virtio_mmio_ops *ops;
	void *dev;
	struct virtq_mem mem;
	int vm_fd;
	uint64_t base;
	uint32_t irq;
	int irq_fd;	/* eventfd bound with KVM_IRQFD */
	bool ioeventfd; /* every queue's notify is bound with KVM_IOEVENTFD */
	pthread_mutex_t lock;
	bool lock_ok;
	uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, isr;
	uint64_t driver_features;
	struct virtio_mmio_queue q[VIRTIO_MMIO_MAX_QUEUES];
	uint8_t status_log[VIRTIO_MMIO_STATUS_LOG]; /* status values written, in order */
	unsigned nstatus;			    /* total writes; the log keeps the first ones */
	uint64_t irqs;				    /* irqfd signals */
	uint64_t mmio_notifies;			    /* QueueNotify writes that exited to us */
	int irq_err;				    /* first failed irqfd write */
};

/* Transport state for snapshots: fixed layout, no pointers or fds. The
 * diagnostics (status log, counters) start afresh in a restored machine. */
struct virtio_mmio_qstate {
	uint64_t desc, avail, used;
	uint16_t num, last_avail, used_idx;
	uint8_t ready, broken;
};

struct virtio_mmio_state {
	uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, isr, nqueues;
	uint64_t driver_features;
	struct virtio_mmio_qstate q[VIRTIO_MMIO_MAX_QUEUES];
};

/* With the lock held. Restore checks everything against the device's ops
 * and the RAM window (a live queue's rings must validate): -EBADMSG for a
 * state this transport could never have been in, leaving `t` unchanged. */
void virtio_mmio_save(const struct virtio_mmio *t, struct virtio_mmio_state *st);
int virtio_mmio_restore(struct virtio_mmio *t, const struct virtio_mmio_state *st);

/* Registers the window at `base` (page aligned, above RAM) on `vm`, the
 * notify eventfds and the irqfd for `irq` (1..23, not 0/2). `t` must stay
 * put until virtio_mmio_destroy and the vm's run loop has stopped. */
int virtio_mmio_init(struct virtio_mmio *t, struct kvm_vm *vm, uint64_t base, uint32_t irq,
		     const struct virtio_mmio_ops *ops, void *dev);
void virtio_mmio_destroy(struct virtio_mmio *t);

/* The register handler (a kvm_io_fn); exposed for tests. */
int virtio_mmio_access(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

/* `virtio_mmio.device=4K@0x...:N` for the kernel command line. */
int virtio_mmio_cmdline(const struct virtio_mmio *t, char *buf, size_t cap);

/* With the lock held, for the device: */
bool virtio_mmio_queue_live(const struct virtio_mmio *t, unsigned qi);
/* Marks queue qi unusable after a hostile ring, sets NEEDS_RESET and
 * raises a config interrupt (§2.1.2). */
void virtio_mmio_queue_fail(struct virtio_mmio *t, unsigned qi);
/* Used buffers were returned on qi: interrupt unless the driver said not. */
void virtio_mmio_used(struct virtio_mmio *t, unsigned qi);

#endif
