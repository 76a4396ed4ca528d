/* Split virtqueues (virtio 1.2 §2.7) seen from the device side, over guest
 * RAM that the guest may have filled with anything (docs/design.md §3, kvm; §6:
 * never crash or hang on hostile input).
 *
 * Every ring and descriptor address is checked against the RAM window
 * before it is touched; a chain may not be longer than the queue (that is
 * how a descriptor loop shows up); the available index may not run more
 * than a queue's worth ahead of us. Violations are -errno and the caller
 * stops using the queue until the driver resets the device. No indirect
 * descriptors and no event index: the transport does not offer them.
 * Functions return 0 or -errno unless said otherwise. */
#ifndef VMPOOL_KVM_VIRTQ_H
#define VMPOOL_KVM_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/kvm/monitor/virtio_regs.h"

#define VIRTQ_NUM_MAX 256u /* QueueNumMax we offer; also bounds a chain */


/* The guest RAM window: host pointer of guest-physical 0 and its size. */
struct virtq_mem {
	uint8_t *base;
	uint64_t size;
};

/* One queue as the driver configured it through the transport. */
struct virtq {
	uint16_t num;		    /* power of two, 1..VIRTQ_NUM_MAX */
	uint64_t desc, avail, used; /* guest-physical ring addresses */
	uint16_t last_avail;	    /* next available entry we will take */
	uint16_t used_idx;	    /* our copy of used->idx */
};

/* A popped descriptor chain: readable segments first, then writable ones,
 * each already translated to host pointers inside the RAM window. */
struct virtq_chain {
	uint16_t head;
	uint16_t nread, nwrite; /* iov[0..nread) readable, then nwrite writable */
	uint64_t read_len, write_len;
	struct iovec iov[VIRTQ_NUM_MAX];
};

/* Checks a configuration before the queue goes live: size a power of two
 * within limits, rings aligned (16/2/4) and wholly inside RAM. -EINVAL. */
int virtq_validate(const struct virtq_mem *m, const struct virtq *q);

/* Takes the next available chain. Returns 1 with *c filled, 0 when the
 * ring is empty, -EPROTO (avail index ran too far ahead), -EINVAL (head or
 * next index out of range, indirect, readable after writable), -EFAULT
 * (a buffer outside RAM or wrapping), -ELOOP (chain longer than the queue). */
int virtq_pop(const struct virtq_mem *m, struct virtq *q, struct virtq_chain *c);

/* Returns `head` to the driver through the used ring with `written` bytes. */
void virtq_push(const struct virtq_mem *m, struct virtq *q, uint16_t head, uint32_t written);

/* Whether the driver asked for no interrupt on used buffers. */
bool virtq_no_interrupt(const struct virtq_mem *m, const struct virtq *q);

/* Copies out of a chain's readable part / into its writable part, from
 * byte `off`; returns the bytes copied (short at the chain's end). */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len);
size_t virtq_chain_write(struct virtq_chain *c, uint64_t off, const void *buf, size_t len);

#endif
