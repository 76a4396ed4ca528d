/* libFuzzer target for the device side of split virtqueues (virtq.h): the
 * guest owns the rings and may write anything into them, at any time, so
 * virtq_pop must never read or hand out memory outside the RAM window and
 * never loop, whatever the descriptors say.
 *
 * Guest RAM is a malloc'd block of exactly the window's size, so ASan
 * reports any access past it. The input is a queue configuration followed
 * by a little program of guest and device steps (poke RAM, write a
 * descriptor, publish a head, pop, push, reconfigure), so the fuzzer can
 * build well-formed rings and then break them between pops, as a second
 * vCPU would. Every pop is checked against a separate, deliberately
 * simple walk of the same rings (visited bitmap instead of a link count):
 * both must agree on empty / chain / error, and on the exact segments.
 * Seeds: tests/fuzz/corpus/virtq (tests/fuzz/mkcorpus.py). */
#include "vmm/kvm/monitor/virtq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, size_t bytes)
{
	uint64_t v = 0;
	for (size_t i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

/* Little-endian accessors that stay inside the window; out-of-window
 * writes are dropped (the guest cannot write outside its RAM either). */
static void poke(const struct virtq_mem *m, uint64_t off, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		if (off + i < m->size)
			m->base[off + i] = (uint8_t)(v >> (8 * i));
}

static uint64_t peek(const struct virtq_mem *m, uint64_t off, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)m->base[off + i] << (8 * i);
	return v;
}

static bool in_ram(const struct virtq_mem *m, uint64_t addr, uint64_t len)
{
	return addr <= m->size && len <= m->size - addr;
}

/* The reference: virtio 1.2 §2.7 as plainly as it can be said. Returns 1
 * with the segments in iov/len/w, 0 for an empty ring, -1 for anything a
 * device must refuse. */
struct ref_chain {
	unsigned nseg;
	uint64_t addr[VIRTQ_NUM_MAX];
	uint32_t len[VIRTQ_NUM_MAX];
	bool w[VIRTQ_NUM_MAX];
	uint16_t head;
};

static int ref_pop(const struct virtq_mem *m, const struct virtq *q, struct ref_chain *rc)
{
	unsigned num = q->num;
	if (num == 0 || num > VIRTQ_NUM_MAX || (num & (num - 1)))
		return -1;
	if (q->desc % 16 || q->avail % 2 || q->used % 4)
		return -1;
	if (!in_ram(m, q->desc, 16ull * num) || !in_ram(m, q->avail, 6 + 2ull * num) ||
	    !in_ram(m, q->used, 6 + 8ull * num))
		return -1;
	uint16_t idx = (uint16_t)peek(m, q->avail + 2, 2);
	uint16_t pending = (uint16_t)(idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > num)
		return -1;
	unsigned i = (unsigned)peek(m, q->avail + 4 + 2ull * (q->last_avail % num), 2);
	if (i >= num)
		return -1;
	bool seen[VIRTQ_NUM_MAX] = { false };
	bool any_w = false;
	rc->nseg = 0;
	rc->head = (uint16_t)i;
	for (;;) {
		if (seen[i])
			return -1;
		seen[i] = true;
		uint64_t d = q->desc + 16ull * i;
		uint64_t addr = peek(m, d, 8);
		uint32_t len = (uint32_t)peek(m, d + 8, 4);
		uint16_t flags = (uint16_t)peek(m, d + 12, 2);
		uint16_t next = (uint16_t)peek(m, d + 14, 2);
		bool w = flags & VIRTQ_DESC_F_WRITE;
		if ((flags & VIRTQ_DESC_F_INDIRECT) || !in_ram(m, addr, len) || (any_w && !w))
			return -1;
		any_w |= w;
		rc->addr[rc->nseg] = addr;
		rc->len[rc->nseg] = len;
		rc->w[rc->nseg] = w;
		rc->nseg++;
		if (!(flags & VIRTQ_DESC_F_NEXT))
			return 1;
		if (next >= num)
			return -1;
		i = next;
	}
}

/* Reading the chain back through virtq_chain_read must give the bytes
 * of its readable segments, in order, from any offset. */
static void check_copy(struct virtq_chain *c, uint64_t off)
{
	static uint8_t want[1 << 16], got[1 << 16];
	size_t n = 0;
	for (unsigned k = 0; k < c->nread; k++)
		for (size_t b = 0; b < c->iov[k].iov_len && n < sizeof(want); b++)
			want[n++] = ((const uint8_t *)c->iov[k].iov_base)[b];
	off = n ? off % (n + 1) : 0;
	size_t r = virtq_chain_read(c, off, got, sizeof(got));
	uint64_t expect = c->read_len - off < sizeof(got) ? c->read_len - off : sizeof(got);
	FUZZ_CHECK(r == expect);
	size_t cmp = n - off < r ? n - off : r;
	FUZZ_CHECK(memcmp(got, want + off, cmp) == 0);

	uint64_t woff = c->write_len ? off % (c->write_len + 1) : 0;
	size_t w = virtq_chain_write(c, woff, got, 64);
	FUZZ_CHECK(w == (c->write_len - woff < 64 ? c->write_len - woff : 64));
}

static void check_pop(const struct virtq_mem *m, struct virtq *q, uint64_t off)
{
	static struct virtq_chain c;
	static struct ref_chain ref;
	struct virtq before = *q;
	int want = ref_pop(m, q, &ref);
	int rc = virtq_pop(m, q, &c);
	FUZZ_CHECK(rc == 0 || rc == 1 || rc == -EPROTO || rc == -EINVAL || rc == -EFAULT || rc == -ELOOP);
	if (rc != 1) {
		/* A refused chain is not consumed. */
		FUZZ_CHECK(q->last_avail == before.last_avail && q->used_idx == before.used_idx);
		FUZZ_CHECK(q->num == before.num && q->desc == before.desc && q->avail == before.avail);
		FUZZ_CHECK(rc == 0 ? want == 0 : want < 0);
		return;
	}
	FUZZ_CHECK(want == 1);
	FUZZ_CHECK(q->last_avail == (uint16_t)(before.last_avail + 1));
	FUZZ_CHECK(c.head == ref.head && c.head < q->num);
	FUZZ_CHECK((unsigned)c.nread + c.nwrite == ref.nseg && ref.nseg <= q->num);
	uint64_t rl = 0, wl = 0;
	for (unsigned k = 0; k < ref.nseg; k++) {
		const uint8_t *b = c.iov[k].iov_base;
		/* Inside the window, and exactly the segment the guest named. */
		FUZZ_CHECK(b >= m->base && c.iov[k].iov_len <= m->size - (uint64_t)(b - m->base));
		FUZZ_CHECK(b == m->base + ref.addr[k] && c.iov[k].iov_len == ref.len[k]);
		FUZZ_CHECK(ref.w[k] == (k >= c.nread));
		if (ref.w[k])
			wl += ref.len[k];
		else
			rl += ref.len[k];
	}
	FUZZ_CHECK(c.read_len == rl && c.write_len == wl);
	check_copy(&c, off);

	/* Give it back; the used element and index must say so. */
	uint32_t written = (uint32_t)(off & 0xffff);
	virtq_push(m, q, c.head, written);
	uint64_t e = q->used + 4 + 8ull * ((uint16_t)(q->used_idx - 1) % q->num);
	FUZZ_CHECK(peek(m, q->used + 2, 2) == q->used_idx);
	FUZZ_CHECK(peek(m, e, 4) == c.head && peek(m, e + 4, 4) == written);
}

static void read_config(struct input *in, struct virtq *q)
{
	uint8_t nb = (uint8_t)take(in, 1);
	/* Mostly legal sizes; with the top bit, any value (0, odd, 256+). */
	q->num = nb & 0x80 ? (uint16_t)((nb & 0x7f) * 3) : (uint16_t)(1u << (nb % 9));
	q->desc = take(in, 2);
	q->avail = take(in, 2);
	q->used = take(in, 2);
	uint8_t how = (uint8_t)take(in, 1);
	if (how & 1) { /* aligned, so validation usually passes */
		q->desc &= ~15ull;
		q->avail &= ~1ull;
		q->used &= ~3ull;
	}
	if (how & 2) /* a huge address, for the overflow checks */
		q->desc |= 0xffffffffffff0000ull;
	q->last_avail = (uint16_t)take(in, 2);
	q->used_idx = (uint16_t)take(in, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint8_t ms = (uint8_t)take(&in, 1);
	struct virtq_mem m;
	/* 4..32 KiB, sometimes not a multiple of 16, so rings and buffers
	 * can end exactly at, or one byte past, the end of RAM. */
	m.size = (4096ull << (ms & 3)) - (ms >> 2);
	m.base = calloc(1, m.size);
	if (!m.base)
		return 0;
	struct virtq q;
	read_config(&in, &q);

	while (in.n) {
		switch (take(&in, 1) % 7) {
		case 0: { /* the guest writes a few bytes anywhere */
			uint64_t off = take(&in, 2);
			unsigned n = (unsigned)take(&in, 1) % 16;
			for (unsigned i = 0; i < n; i++)
				poke(&m, off + i, take(&in, 1), 1);
			break;
		}
		case 1: { /* the guest writes descriptor i */
			uint64_t d = q.desc + 16ull * (take(&in, 1) % (q.num ? q.num : 1));
			uint64_t addr = take(&in, 2);
			uint8_t hi = (uint8_t)take(&in, 1);
			if (hi) /* rarely, an address or length near 2^64 / 2^32 */
				addr |= (uint64_t)hi << 56;
			poke(&m, d, addr, 8);
			poke(&m, d + 8, take(&in, 2) | (hi & 1 ? 0xffff0000ull : 0), 4);
			poke(&m, d + 12, take(&in, 1), 2);
			poke(&m, d + 14, take(&in, 1), 2);
			break;
		}
		case 2: { /* the guest publishes a head */
			if (!q.num || !in_ram(&m, q.avail, 6 + 2ull * q.num))
				break;
			uint16_t idx = (uint16_t)peek(&m, q.avail + 2, 2);
			poke(&m, q.avail + 4 + 2ull * (idx % q.num), take(&in, 1), 2);
			poke(&m, q.avail + 2, (uint16_t)(idx + 1), 2);
			break;
		}
		case 3: /* the guest moves the index anywhere */
			if (in_ram(&m, q.avail, 4))
				poke(&m, q.avail + 2, take(&in, 2), 2);
			break;
		case 4:
		case 5: check_pop(&m, &q, take(&in, 2)); break;
		case 6: /* the driver reconfigures (or a caller skipped validation) */
			read_config(&in, &q);
			(void)virtq_no_interrupt(&m, &q);
			break;
		}
	}
	free(m.base);
	return 0;
}
