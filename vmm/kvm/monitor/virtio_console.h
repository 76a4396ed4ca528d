/* virtio-console device (virtio 1.2 §5.3), port 0 only, on virtio-mmio:
 * the kvm machine's agent channel (docs/design.md §3, kvm).
 *
 * The guest's console is bridged to one end of a host socketpair; the
 * caller gets the other end, a plain byte stream, so the host's protocol
 * client (proto/client.h) can talk to the guest agent unchanged.
 * receiveq (0) carries host→guest bytes, transmitq (1) guest→host bytes.
 * Offered features: VIRTIO_F_VERSION_1 only (no MULTIPORT, SIZE or
 * EMERG_WRITE). A device thread does all queue work: it wakes on the
 * queue-notify eventfds and on the socket, so neither direction needs a
 * vCPU exit. Functions return 0 or -errno. */
#ifndef VMPOOL_KVM_VIRTIO_CONSOLE_H
#define VMPOOL_KVM_VIRTIO_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/kvm/monitor/virtio_mmio.h"

struct kvm_vm;

#define VIRTIO_ID_CONSOLE 3u
#define KVM_CONSOLE_RXQ 0u
#define KVM_CONSOLE_TXQ 1u
/* Where the monitor puts the device unless told otherwise: the start of
 * the 32-bit MMIO hole Linux leaves alone, and a free ISA IRQ. */
#define KVM_CONSOLE_BASE 0xd0000000ull
#define KVM_CONSOLE_IRQ 5u

struct kvm_console {
	struct virtio_mmio mmio; /* its lock also guards the fields below */
	int sock;		 /* the monitor's end, non-blocking */
	int stop_fd;		 /* eventfd: the device thread ends */
	pthread_t thread;
	bool running, mmio_ok;
	struct virtq_chain *rx, *tx; /* a popped chain being filled / drained */
	bool rx_held, tx_held;
	uint64_t tx_off; /* bytes of *tx already sent */
	bool host_gone;	 /* peer closed: rx ends, tx is discarded */
	uint64_t to_guest, from_guest, queue_errors;
	int host_err; /* first socket error other than EAGAIN */
};

/* The device's state for snapshots. Chains the device had taken from the
 * rings are recorded as "held" and taken again from the (restored) rings:
 * a held receive chain has nothing written yet, a held transmit chain had
 * tx_off bytes sent. The socket is not part of it: a restored machine gets
 * a new channel, and bytes the old peer had queued stay with the old one. */
struct kvm_console_state {
	struct virtio_mmio_state mmio;
	uint64_t tx_off;
	uint8_t rx_held, tx_held, pad[6];
};

/* Save: with c->mmio.lock held (the caller keeps the device frozen while
 * it also copies guest RAM) and the vCPU stopped. Restore takes the lock
 * itself, on a console just opened on the restored vm, and returns
 * -EBADMSG for a state that does not fit the device or the guest's rings. */
void kvm_console_save(struct kvm_console *c, struct kvm_console_state *st);
int kvm_console_restore(struct kvm_console *c, const struct kvm_console_state *st);

/* Attaches the device at `base`/`irq` on `vm` (before the vm runs) and
 * starts its thread; *host_fd is the caller's end of the channel
 * (O_CLOEXEC, blocking; the caller closes it). */
int kvm_console_open(struct kvm_console *c, struct kvm_vm *vm, uint64_t base, uint32_t irq, int *host_fd);
/* Stops the thread and releases everything; after the vm's run loop has
 * returned. Safe after a failed open and twice. */
void kvm_console_close(struct kvm_console *c);

#endif
