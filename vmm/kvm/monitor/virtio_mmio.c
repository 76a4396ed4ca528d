/* virtio-mmio transport (virtio_mmio.h). Register behaviour per virtio
 * 1.2 §4.2.2 as Linux's virtio_mmio.c drives it. */
#include "vmm/kvm/monitor/virtio_mmio.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/kvm/monitor/vm.h"

static void kick(int fd)
{
	uint64_t one = 1;
	/* Only fails when the counter would overflow: then it is set anyway. */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return;
}

static void raise_irq(struct virtio_mmio *t, uint32_t why)
{
	t->isr |= why;
	uint64_t one = 1;
	if (write(t->irq_fd, &one, sizeof(one)) == sizeof(one))
		t->irqs++;
	else if (!t->irq_err)
		t->irq_err = -errno;
}

static void reset(struct virtio_mmio *t)
{
	t->status = t->dev_feat_sel = t->drv_feat_sel = t->queue_sel = t->isr = 0;
	t->driver_features = 0;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		t->q[i].vq = (struct virtq){ 0 };
		t->q[i].ready = t->q[i].broken = false;
	}
	if (t->ops->reset)
		t->ops->reset(t->dev);
}

/* §3.1.1: FEATURES_OK sticks only when the driver took a subset of what
 * we offer, including VERSION_1 (we have no legacy interface). */
static uint32_t write_status(struct virtio_mmio *t, uint32_t v)
{
	if (t->nstatus < VIRTIO_MMIO_STATUS_LOG)
		t->status_log[t->nstatus] = (uint8_t)v;
	t->nstatus++;
	if (v == 0) {
		reset(t);
		return 0;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		bool ok = !(t->driver_features & ~t->ops->features) &&
			  (t->driver_features & VIRTIO_F_VERSION_1);
		if (!ok)
			v &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	/* The device owns NEEDS_RESET; the driver cannot clear it but by reset. */
	v = (v & ~VIRTIO_STATUS_NEEDS_RESET) | (t->status & VIRTIO_STATUS_NEEDS_RESET);
	bool went_live = (v & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_DRIVER_OK);
	t->status = v;
	if (went_live) /* the device may now use buffers the driver queued before */
		for (unsigned i = 0; i < t->ops->nqueues; i++)
			kick(t->q[i].notify_fd);
	return 0;
}

static struct virtio_mmio_queue *selected(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->nqueues ? &t->q[t->queue_sel] : NULL;
}

static void set_half(uint64_t *v, bool high, uint32_t x)
{
	*v = high ? (*v & 0xffffffffull) | (uint64_t)x << 32 : (*v & ~0xffffffffull) | x;
}

static void write_queue_reg(struct virtio_mmio *t, uint64_t reg, uint32_t v)
{
	struct virtio_mmio_queue *q = selected(t);
	if (!q)
		return;
	if (reg == VIRTIO_MMIO_QUEUE_READY) {
		if (!v) {
			q->ready = false;
			return;
		}
		/* A ring outside RAM or misaligned never goes live. */
		if (!q->ready && virtq_validate(&t->mem, &q->vq) == 0) {
			q->vq.last_avail = q->vq.used_idx = 0;
			q->ready = true;
		}
		return;
	}
	if (q->ready)
		return; /* §4.2.2.3: configuration is fixed while the queue is live */
	switch (reg) {
	case VIRTIO_MMIO_QUEUE_NUM: q->vq.num = (uint16_t)(v > VIRTQ_NUM_MAX ? 0 : v); break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW: set_half(&q->vq.desc, false, v); break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH: set_half(&q->vq.desc, true, v); break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW: set_half(&q->vq.avail, false, v); break;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH: set_half(&q->vq.avail, true, v); break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW: set_half(&q->vq.used, false, v); break;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: set_half(&q->vq.used, true, v); break;
	}
}

static void write_reg(struct virtio_mmio *t, uint64_t reg, uint32_t v)
{
	switch (reg) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL: t->dev_feat_sel = v; break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL: t->drv_feat_sel = v; break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Only while negotiating: once FEATURES_OK is set they are final. */
		if (t->drv_feat_sel < 2 && !(t->status & VIRTIO_STATUS_FEATURES_OK))
			set_half(&t->driver_features, t->drv_feat_sel == 1, v);
		break;
	case VIRTIO_MMIO_QUEUE_SEL: t->queue_sel = v; break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Reached only without ioeventfd, or for an index no eventfd matches. */
		t->mmio_notifies++;
		if (v < t->ops->nqueues)
			kick(t->q[v].notify_fd);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK: t->isr &= ~v; break;
	case VIRTIO_MMIO_STATUS: write_status(t, v); break;
	default: write_queue_reg(t, reg, v); break;
	}
}

static uint32_t read_reg(struct virtio_mmio *t, uint64_t reg)
{
	struct virtio_mmio_queue *q = selected(t);
	switch (reg) {
	case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION: return 2;
	case VIRTIO_MMIO_DEVICE_ID: return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return t->dev_feat_sel < 2 ? (uint32_t)(t->ops->features >> (32 * t->dev_feat_sel)) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? VIRTQ_NUM_MAX : 0;
	case VIRTIO_MMIO_QUEUE_NUM: return q ? q->vq.num : 0;
	case VIRTIO_MMIO_QUEUE_READY: return q && q->ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return t->isr;
	case VIRTIO_MMIO_STATUS: return t->status;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH: return 0xffffffffu; /* no shared memory regions */
	case VIRTIO_MMIO_CONFIG_GENERATION: return 0;	   /* our config space never changes */
	default: return 0;
	}
}

int virtio_mmio_access(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *t = opaque;
	pthread_mutex_lock(&t->lock);
	if (addr >= VIRTIO_MMIO_CONFIG) {
		uint64_t off = addr - VIRTIO_MMIO_CONFIG;
		/* Config space: any width the driver likes; writes are ignored
		 * (nothing in the console's config is driver-writable here). */
		if (!is_write) {
			memset(data, 0, len);
			if (off < t->ops->config_len && len <= t->ops->config_len - off && t->ops->read_config)
				t->ops->read_config(t->dev, (uint32_t)off, data, len);
		}
	} else if (len != 4 || (addr & 3)) {
		/* §4.2.2.2: registers are 32-bit; anything else reads 0, writes vanish. */
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		uint32_t v;
		memcpy(&v, data, 4);
		write_reg(t, addr, v);
	} else {
		uint32_t v = read_reg(t, addr);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&t->lock);
	return 0; /* a confused guest never stops the monitor */
}

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

static int bind_eventfds(struct virtio_mmio *t)
{
	t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->irq_fd < 0)
		return neg_errno();
	struct kvm_irqfd irqfd = { .fd = (uint32_t)t->irq_fd, .gsi = t->irq };
	if (ioctl(t->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return neg_errno();
	t->ioeventfd = true;
	for (unsigned i = 0; i < t->ops->nqueues; i++) {
		t->q[i].notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->q[i].notify_fd < 0)
			return neg_errno();
		struct kvm_ioeventfd ev = {
			.datamatch = i,
			.addr = t->base + VIRTIO_MMIO_QUEUE_NOTIFY,
			.len = 4,
			.fd = t->q[i].notify_fd,
			.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};
		/* Without it the notify is an MMIO exit that kicks the same fd. */
		t->q[i].ioeventfd = ioctl(t->vm_fd, KVM_IOEVENTFD, &ev) == 0;
		t->ioeventfd &= t->q[i].ioeventfd;
	}
	return 0;
}

int virtio_mmio_init(struct virtio_mmio *t, struct kvm_vm *vm, uint64_t base, uint32_t irq,
		     const struct virtio_mmio_ops *ops, void *dev)
{
	memset(t, 0, sizeof(*t));
	t->irq_fd = -1;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		t->q[i].notify_fd = -1;
	t->ops = ops;
	if (!ops || ops->nqueues == 0 || ops->nqueues > VIRTIO_MMIO_MAX_QUEUES ||
	    !(ops->features & VIRTIO_F_VERSION_1) || ops->config_len > VIRTIO_MMIO_SIZE - VIRTIO_MMIO_CONFIG)
		return -EINVAL;
	/* IRQ 0 is the PIT and 2 the cascade; the IOAPIC has 24 pins. */
	if ((base & 0xfff) || base < vm->mem_size || base > 0xffffffffull - VIRTIO_MMIO_SIZE || irq == 0 ||
	    irq == 2 || irq > 23)
		return -EINVAL;
	t->dev = dev;
	t->mem = (struct virtq_mem){ vm->mem, vm->mem_size };
	t->vm_fd = vm->vm_fd;
	t->base = base;
	t->irq = irq;
	if (pthread_mutex_init(&t->lock, NULL))
		return -ENOMEM;
	t->lock_ok = true;
	int rc = bind_eventfds(t);
	if (!rc)
		rc = kvm_vm_add_dev(vm, KVM_IO_MMIO, base, VIRTIO_MMIO_SIZE, virtio_mmio_access, t);
	if (rc)
		virtio_mmio_destroy(t);
	return rc;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	/* Unbinding first lets KVM drop its references even if the VM lives on. */
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		if (t->q[i].notify_fd < 0)
			continue;
		struct kvm_ioeventfd ev = {
			.datamatch = i,
			.addr = t->base + VIRTIO_MMIO_QUEUE_NOTIFY,
			.len = 4,
			.fd = t->q[i].notify_fd,
			.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | KVM_IOEVENTFD_FLAG_DEASSIGN,
		};
		if (t->q[i].ioeventfd)
			(void)ioctl(t->vm_fd, KVM_IOEVENTFD, &ev);
		t->q[i].ioeventfd = false;
		close(t->q[i].notify_fd);
		t->q[i].notify_fd = -1;
	}
	if (t->irq_fd >= 0) {
		struct kvm_irqfd irqfd = { .fd = (uint32_t)t->irq_fd,
					   .gsi = t->irq,
					   .flags = KVM_IRQFD_FLAG_DEASSIGN };
		if (t->vm_fd >= 0)
			(void)ioctl(t->vm_fd, KVM_IRQFD, &irqfd);
		close(t->irq_fd);
		t->irq_fd = -1;
	}
	if (t->lock_ok)
		pthread_mutex_destroy(&t->lock);
	t->lock_ok = false;
}

int virtio_mmio_cmdline(const struct virtio_mmio *t, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "virtio_mmio.device=4K@0x%" PRIx64 ":%" PRIu32, t->base, t->irq);
	return n < 0 ? -EIO : (size_t)n >= cap ? -ENOSPC : 0;
}

bool virtio_mmio_queue_live(const struct virtio_mmio *t, unsigned qi)
{
	return qi < t->ops->nqueues && t->q[qi].ready && !t->q[qi].broken &&
	       (t->status & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_mmio_queue_fail(struct virtio_mmio *t, unsigned qi)
{
	if (qi < VIRTIO_MMIO_MAX_QUEUES)
		t->q[qi].broken = true;
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	raise_irq(t, VIRTIO_INT_CONFIG);
}

void virtio_mmio_used(struct virtio_mmio *t, unsigned qi)
{
	if (qi < t->ops->nqueues && !virtq_no_interrupt(&t->mem, &t->q[qi].vq))
		raise_irq(t, VIRTIO_INT_USED);
}

void virtio_mmio_save(const struct virtio_mmio *t, struct virtio_mmio_state *st)
{
	memset(st, 0, sizeof(*st)); /* padding too: the file is checksummed */
	st->status = t->status;
	st->dev_feat_sel = t->dev_feat_sel;
	st->drv_feat_sel = t->drv_feat_sel;
	st->queue_sel = t->queue_sel;
	st->isr = t->isr;
	st->nqueues = t->ops->nqueues;
	st->driver_features = t->driver_features;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		const struct virtio_mmio_queue *q = &t->q[i];
		st->q[i] = (struct virtio_mmio_qstate){
			.desc = q->vq.desc,
			.avail = q->vq.avail,
			.used = q->vq.used,
			.num = q->vq.num,
			.last_avail = q->vq.last_avail,
			.used_idx = q->vq.used_idx,
			.ready = q->ready,
			.broken = q->broken,
		};
	}
}

static bool queue_state_ok(const struct virtio_mmio *t, unsigned i, const struct virtio_mmio_qstate *q)
{
	if (q->ready > 1 || q->broken > 1 || q->num > VIRTQ_NUM_MAX)
		return false;
	if (i >= t->ops->nqueues) /* absent queues never leave reset state */
		return !q->ready && !q->broken && !q->num && !q->desc && !q->avail && !q->used;
	struct virtq vq = { .num = q->num, .desc = q->desc, .avail = q->avail, .used = q->used };
	/* Only a validated ring goes live (write_queue_reg); the device's
	 * indices may run at most a queue ahead of what it gave back. */
	return !q->ready ||
	       (virtq_validate(&t->mem, &vq) == 0 && (uint16_t)(q->last_avail - q->used_idx) <= q->num);
}

int virtio_mmio_restore(struct virtio_mmio *t, const struct virtio_mmio_state *st)
{
	/* Status is a byte; the driver may have written bits we do not name. */
	if (st->nqueues != t->ops->nqueues || (st->status & ~0xffu) ||
	    (st->isr & ~(VIRTIO_INT_USED | VIRTIO_INT_CONFIG)) || (st->driver_features & ~t->ops->features))
		return -EBADMSG;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		if (!queue_state_ok(t, i, &st->q[i]))
			return -EBADMSG;
	t->status = st->status;
	t->dev_feat_sel = st->dev_feat_sel;
	t->drv_feat_sel = st->drv_feat_sel;
	t->queue_sel = st->queue_sel;
	t->isr = st->isr;
	t->driver_features = st->driver_features;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		const struct virtio_mmio_qstate *q = &st->q[i];
		t->q[i].vq = (struct virtq){ .num = q->num,
					     .desc = q->desc,
					     .avail = q->avail,
					     .used = q->used,
					     .last_avail = q->last_avail,
					     .used_idx = q->used_idx };
		t->q[i].ready = q->ready;
		t->q[i].broken = q->broken;
	}
	return 0;
}
