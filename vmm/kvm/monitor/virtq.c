/* Split virtqueue, device side (virtq.h). Layouts from virtio 1.2 §2.7:
 * desc[i] = {le64 addr, le32 len, le16 flags, le16 next} (16 bytes);
 * avail = {le16 flags, le16 idx, le16 ring[num]};
 * used = {le16 flags, le16 idx, {le32 id, le32 len} ring[num]}.
 * The guest writes these rings while we read them (another vCPU, or the
 * same one running concurrently with the device thread), so the indices
 * are read with acquire and published with release ordering, and every
 * descriptor is copied out once before it is checked and used. */
#include "vmm/kvm/monitor/virtq.h"

#include <errno.h>
#include <string.h>

#define DESC_SIZE 16u

/* Host pointer of guest [gpa, gpa+len), or NULL when any of it is outside. */
static uint8_t *gpa(const struct virtq_mem *m, uint64_t addr, uint64_t len)
{
	if (!m->base || addr > m->size || len > m->size - addr)
		return NULL;
	return m->base + addr;
}

static uint64_t avail_bytes(uint16_t num)
{
	return 4u + 2u * (uint64_t)num + 2u; /* + used_event, present or not */
}

static uint64_t used_bytes(uint16_t num)
{
	return 4u + 8u * (uint64_t)num + 2u;
}

int virtq_validate(const struct virtq_mem *m, const struct virtq *q)
{
	if (q->num == 0 || q->num > VIRTQ_NUM_MAX || (q->num & (q->num - 1)))
		return -EINVAL;
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return -EINVAL;
	if (!gpa(m, q->desc, (uint64_t)DESC_SIZE * q->num) || !gpa(m, q->avail, avail_bytes(q->num)) ||
	    !gpa(m, q->used, used_bytes(q->num)))
		return -EINVAL;
	return 0;
}

static uint16_t load16(const uint8_t *p, int order)
{
	return __atomic_load_n((const uint16_t *)(const void *)p, order); /* x86: little-endian */
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static struct desc read_desc(const uint8_t *table, uint16_t i)
{
	struct desc d;
	memcpy(&d.addr, table + (size_t)i * DESC_SIZE, 8);
	memcpy(&d.len, table + (size_t)i * DESC_SIZE + 8, 4);
	memcpy(&d.flags, table + (size_t)i * DESC_SIZE + 12, 2);
	memcpy(&d.next, table + (size_t)i * DESC_SIZE + 14, 2);
	return d;
}

int virtq_pop(const struct virtq_mem *m, struct virtq *q, struct virtq_chain *c)
{
	/* Re-check: the RAM window is fixed, but q may have been changed by a
	 * caller that skipped validation; this is cheap. */
	if (virtq_validate(m, q))
		return -EINVAL;
	const uint8_t *avail = gpa(m, q->avail, avail_bytes(q->num));
	const uint8_t *table = gpa(m, q->desc, (uint64_t)DESC_SIZE * q->num);
	uint16_t idx = load16(avail + 2, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->num)
		return -EPROTO;
	uint16_t head = load16(avail + 4 + 2u * (q->last_avail % q->num), __ATOMIC_RELAXED);
	if (head >= q->num)
		return -EINVAL;

	memset(c, 0, offsetof(struct virtq_chain, iov));
	c->head = head;
	uint16_t i = head;
	for (unsigned n = 0;; n++) {
		if (n >= q->num)
			return -ELOOP; /* more links than descriptors: it cycles */
		struct desc d = read_desc(table, i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		uint8_t *p = gpa(m, d.addr, d.len);
		if (!p)
			return -EFAULT;
		bool w = d.flags & VIRTQ_DESC_F_WRITE;
		if (!w && c->nwrite)
			return -EINVAL; /* §2.7.4.2: readable ones come first */
		c->iov[n] = (struct iovec){ p, d.len };
		if (w) {
			c->nwrite++;
			c->write_len += d.len;
		} else {
			c->nread++;
			c->read_len += d.len;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= q->num)
			return -EINVAL;
		i = d.next;
	}
	q->last_avail++;
	return 1;
}

void virtq_push(const struct virtq_mem *m, struct virtq *q, uint16_t head, uint32_t written)
{
	uint8_t *used = gpa(m, q->used, used_bytes(q->num));
	if (!used || q->num == 0)
		return; /* validated when it went live; never true in practice */
	uint8_t *e = used + 4 + 8u * (q->used_idx % q->num);
	uint32_t id = head;
	memcpy(e, &id, 4);
	memcpy(e + 4, &written, 4);
	q->used_idx++;
	/* The element must be visible before the index that announces it. */
	__atomic_store_n((uint16_t *)(void *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
}

bool virtq_no_interrupt(const struct virtq_mem *m, const struct virtq *q)
{
	const uint8_t *avail = gpa(m, q->avail, avail_bytes(q->num));
	return avail && (load16(avail, __ATOMIC_ACQUIRE) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

/* Walks iov[first, first+count) from byte `off`, copying `len` bytes in
 * the direction `to_guest` says. */
static size_t copy(const struct iovec *iov, unsigned count, uint64_t off, uint8_t *buf, size_t len,
		   bool to_guest)
{
	size_t done = 0;
	for (unsigned k = 0; k < count && done < len; k++) {
		if (off >= iov[k].iov_len) {
			off -= iov[k].iov_len;
			continue;
		}
		size_t n = iov[k].iov_len - off;
		if (n > len - done)
			n = len - done;
		uint8_t *g = (uint8_t *)iov[k].iov_base + off;
		if (to_guest)
			memcpy(g, buf + done, n);
		else
			memcpy(buf + done, g, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len)
{
	return copy(c->iov, c->nread, off, buf, len, false);
}

size_t virtq_chain_write(struct virtq_chain *c, uint64_t off, const void *buf, size_t len)
{
	return copy(c->iov + c->nread, c->nwrite, off, (uint8_t *)(uintptr_t)buf, len, true);
}
