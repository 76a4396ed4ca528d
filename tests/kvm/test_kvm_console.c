/* kvm monitor, second slice: the virtio-mmio console.
 * - virtq.c against a fake guest RAM buffer: good chains, and hostile rings
 *   (index out of range, buffers outside RAM or wrapping, huge lengths,
 *   descriptor loops, indirect, order, avail index running ahead, random
 *   garbage) give clean errors, never a read or write outside the buffer
 *   (ASan watches) and never a hang;
 * - the transport's registers through its handler (magic, version, ids,
 *   feature negotiation and FEATURES_OK refusal, queue limits, widths) and a
 *   hostile ring set live in VM RAM (device thread fails the queue and sets
 *   NEEDS_RESET);
 * - the conformance guest driving the device: init order as the monitor
 *   saw it, negotiated features, READY and PING→PONG through the socketpair
 *   with the real codec (proto/proto.c), frames spanning receive
 *   buffers, irqfd signalled and the pin's state read back with
 *   KVM_GET_IRQCHIP.
 * SKIPs (77) when /dev/kvm cannot make a VM (the virtq part runs anyway). */
#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/common/tap.h"
#include "tests/common/testutil.h"
#include "tests/kvm/kvm_testutil.h"
#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/virtio_console.h"
#include "vmm/kvm/monitor/virtio_mmio.h"
#include "vmm/kvm/monitor/virtq.h"
#include "vmm/kvm/monitor/vm.h"

#define MEM (64ull << 20)
#define RUN_TIMEOUT_MS 60000

/* ---- virtq over a fake RAM buffer ------------------------------------- */

#define FAKE_SIZE 0x10000u
#define F_DESC 0x1000u
#define F_AVAIL 0x2000u
#define F_USED 0x3000u
#define F_DATA 0x4000u

struct fake {
	uint8_t *ram;
	struct virtq_mem mem;
	struct virtq q;
};

static void fake_init(struct fake *f)
{
	memset(f->ram, 0, FAKE_SIZE);
	f->mem = (struct virtq_mem){ f->ram, FAKE_SIZE };
	f->q = (struct virtq){ .num = 8, .desc = F_DESC, .avail = F_AVAIL, .used = F_USED };
}

static void set_desc(struct fake *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = f->ram + F_DESC + 16u * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Publishes `head` as the driver does: ring entry, then the index. */
static void offer(struct fake *f, uint16_t head)
{
	uint16_t idx;
	memcpy(&idx, f->ram + F_AVAIL + 2, 2);
	uint16_t num = f->q.num ? f->q.num : 1; /* bad configs have 0 */
	memcpy(f->ram + F_AVAIL + 4 + 2u * (idx % num), &head, 2);
	idx++;
	memcpy(f->ram + F_AVAIL + 2, &idx, 2);
}

static int pop_one(struct fake *f, uint16_t head, struct virtq_chain *c)
{
	offer(f, head);
	return virtq_pop(&f->mem, &f->q, c);
}

static bool inside(const struct fake *f, const struct virtq_chain *c)
{
	for (unsigned k = 0; k < (unsigned)c->nread + c->nwrite; k++) {
		const uint8_t *p = c->iov[k].iov_base;
		if (p < f->ram || p > f->ram + FAKE_SIZE ||
		    c->iov[k].iov_len > (size_t)(f->ram + FAKE_SIZE - p))
			return false;
	}
	return true;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_virtq_good(void)
{
	struct fake f = { .ram = malloc(FAKE_SIZE) };
	struct virtq_chain *c = malloc(sizeof(*c));
	REQUIRE(f.ram && c);
	fake_init(&f);
	CHECK_EQ(virtq_validate(&f.mem, &f.q), 0);
	CHECK_EQ(virtq_pop(&f.mem, &f.q, c), 0); /* empty */
	memcpy(f.ram + F_DATA, "hello, world", 12);
	set_desc(&f, 3, F_DATA, 5, VIRTQ_DESC_F_NEXT, 5);
	set_desc(&f, 5, F_DATA + 5, 7, VIRTQ_DESC_F_NEXT, 6);
	set_desc(&f, 6, F_DATA + 0x100, 32, VIRTQ_DESC_F_WRITE, 0);
	CHECK_EQ(pop_one(&f, 3, c), 1);
	CHECK_EQ(c->head, 3);
	CHECK_EQ(c->nread, 2);
	CHECK_EQ(c->nwrite, 1);
	CHECK_EQ(c->read_len, 12);
	CHECK_EQ(c->write_len, 32);
	char buf[16] = { 0 };
	CHECK_EQ(virtq_chain_read(c, 3, buf, sizeof(buf)), 9);
	CHECK(memcmp(buf, "lo, world", 9) == 0);
	CHECK_EQ(virtq_chain_write(c, 30, "xyz", 3), 2); /* short at the end */
	CHECK(memcmp(f.ram + F_DATA + 0x100 + 30, "xy", 2) == 0);
	virtq_push(&f.mem, &f.q, c->head, 32);
	uint16_t used_idx;
	uint32_t id, len;
	memcpy(&used_idx, f.ram + F_USED + 2, 2);
	memcpy(&id, f.ram + F_USED + 4, 4);
	memcpy(&len, f.ram + F_USED + 8, 4);
	CHECK_EQ(used_idx, 1);
	CHECK_EQ(id, 3);
	CHECK_EQ(len, 32);
	CHECK_EQ(virtq_pop(&f.mem, &f.q, c), 0);
	CHECK(!virtq_no_interrupt(&f.mem, &f.q));
	f.ram[F_AVAIL] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	CHECK(virtq_no_interrupt(&f.mem, &f.q));
	/* A zero-length descriptor at the very end of RAM is still inside. */
	set_desc(&f, 0, FAKE_SIZE, 0, 0, 0);
	CHECK_EQ(pop_one(&f, 0, c), 1);
	free(c);
	free(f.ram);
}

static void test_virtq_hostile(void)
{
	struct fake f = { .ram = malloc(FAKE_SIZE) };
	struct virtq_chain *c = malloc(sizeof(*c));
	REQUIRE(f.ram && c);

	/* Configurations that must never go live. */
	static const struct {
		uint16_t num;
		uint64_t desc, avail, used;
	} bad_cfg[] = {
		{ 0, F_DESC, F_AVAIL, F_USED },		{ 3, F_DESC, F_AVAIL, F_USED },
		{ 512, F_DESC, F_AVAIL, F_USED },	{ 8, F_DESC + 8, F_AVAIL, F_USED },
		{ 8, F_DESC, F_AVAIL + 1, F_USED },	{ 8, F_DESC, F_AVAIL, F_USED + 2 },
		{ 8, FAKE_SIZE - 64, F_AVAIL, F_USED }, { 8, F_DESC, FAKE_SIZE - 2, F_USED },
		{ 8, F_DESC, F_AVAIL, FAKE_SIZE - 8 },	{ 8, UINT64_MAX - 15, F_AVAIL, F_USED },
		{ 8, F_DESC, F_AVAIL, UINT64_MAX - 3 },
	};
	for (size_t i = 0; i < sizeof(bad_cfg) / sizeof(bad_cfg[0]); i++) {
		fake_init(&f);
		f.q = (struct virtq){ .num = bad_cfg[i].num,
				      .desc = bad_cfg[i].desc,
				      .avail = bad_cfg[i].avail,
				      .used = bad_cfg[i].used };
		CHECKF(virtq_validate(&f.mem, &f.q) == -EINVAL, "config %zu accepted", i);
		offer(&f, 0);
		CHECKF(virtq_pop(&f.mem, &f.q, c) == -EINVAL, "config %zu popped", i);
	}

	/* head index out of range */
	fake_init(&f);
	CHECK_EQ(pop_one(&f, 8, c), -EINVAL);
	fake_init(&f);
	CHECK_EQ(pop_one(&f, 0xffff, c), -EINVAL);
	/* next index out of range */
	fake_init(&f);
	set_desc(&f, 0, F_DATA, 4, VIRTQ_DESC_F_NEXT, 200);
	CHECK_EQ(pop_one(&f, 0, c), -EINVAL);
	/* buffers outside RAM, wrapping, huge */
	fake_init(&f);
	set_desc(&f, 0, FAKE_SIZE, 1, 0, 0);
	CHECK_EQ(pop_one(&f, 0, c), -EFAULT);
	fake_init(&f);
	set_desc(&f, 0, FAKE_SIZE - 4, 8, 0, 0);
	CHECK_EQ(pop_one(&f, 0, c), -EFAULT);
	fake_init(&f);
	set_desc(&f, 0, UINT64_MAX - 1, 16, VIRTQ_DESC_F_WRITE, 0);
	CHECK_EQ(pop_one(&f, 0, c), -EFAULT);
	fake_init(&f);
	set_desc(&f, 0, F_DATA, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
	CHECK_EQ(pop_one(&f, 0, c), -EFAULT);
	fake_init(&f);
	set_desc(&f, 0, F_DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&f, 1, 0xd0000000ull, 16, 0, 0); /* MMIO, not RAM */
	CHECK_EQ(pop_one(&f, 0, c), -EFAULT);
	/* loops: two-cycle, self, and the longest legal chain is fine */
	fake_init(&f);
	set_desc(&f, 0, F_DATA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&f, 1, F_DATA, 4, VIRTQ_DESC_F_NEXT, 0);
	uint64_t t0 = now_ms();
	CHECK_EQ(pop_one(&f, 0, c), -ELOOP);
	fake_init(&f);
	set_desc(&f, 4, F_DATA, 4, VIRTQ_DESC_F_NEXT, 4);
	CHECK_EQ(pop_one(&f, 4, c), -ELOOP);
	fake_init(&f);
	for (uint16_t i = 0; i < 8; i++)
		set_desc(&f, i, F_DATA, 4, i < 7 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	CHECK_EQ(pop_one(&f, 0, c), 1);
	CHECK_EQ(c->nread, 8);
	/* the same chain on a 256 queue whose last link loops back */
	fake_init(&f);
	f.q.num = 256;
	for (uint16_t i = 0; i < 256; i++)
		set_desc(&f, i, F_DATA, 4, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % 256));
	CHECK_EQ(pop_one(&f, 17, c), -ELOOP);
	CHECKF(now_ms() - t0 < 1000, "loops took %llu ms", (unsigned long long)(now_ms() - t0));
	/* indirect (not offered), readable after writable */
	fake_init(&f);
	set_desc(&f, 0, F_DATA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	CHECK_EQ(pop_one(&f, 0, c), -EINVAL);
	fake_init(&f);
	set_desc(&f, 0, F_DATA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(&f, 1, F_DATA, 16, 0, 0);
	CHECK_EQ(pop_one(&f, 0, c), -EINVAL);
	/* the avail index claims more than a queue's worth of new entries */
	fake_init(&f);
	uint16_t idx = 9;
	memcpy(f.ram + F_AVAIL + 2, &idx, 2);
	CHECK_EQ(virtq_pop(&f.mem, &f.q, c), -EPROTO);

	/* Garbage rings: only clean results, iovs inside RAM, bounded time. */
	uint64_t seed = 0x1234567;
	int popped = 0, errors = 0;
	t0 = now_ms();
	for (int round = 0; round < 5000; round++) {
		fake_init(&f);
		f.q.num = (uint16_t)(1u << (xorshift(&seed) % 9));
		for (unsigned i = 0; i < 0x3000; i++)
			f.ram[F_DESC + i] = (uint8_t)xorshift(&seed);
		/* Mostly small addresses and lengths, so some chains are valid. */
		for (unsigned i = 0; i < f.q.num; i++)
			if (xorshift(&seed) % 2)
				set_desc(&f, (uint16_t)i, xorshift(&seed) % FAKE_SIZE,
					 (uint32_t)(xorshift(&seed) % 0x2000), (uint16_t)(xorshift(&seed) % 4),
					 (uint16_t)(xorshift(&seed) % (f.q.num + 2u)));
		f.q.last_avail = (uint16_t)xorshift(&seed);
		if (xorshift(&seed) % 4) { /* a plausible avail ring, else pure noise */
			uint16_t avail_idx = (uint16_t)(f.q.last_avail + xorshift(&seed) % (f.q.num + 1u));
			memcpy(f.ram + F_AVAIL + 2, &avail_idx, 2);
			for (unsigned i = 0; i < f.q.num; i++) {
				uint16_t head = (uint16_t)(xorshift(&seed) % (f.q.num + 1u));
				memcpy(f.ram + F_AVAIL + 4 + 2 * i, &head, 2);
			}
		}
		for (int k = 0; k < 4; k++) {
			int rc = virtq_pop(&f.mem, &f.q, c);
			if (rc == 1) {
				popped++;
				if (!inside(&f, c)) {
					CHECKF(0, "round %d: chain outside RAM", round);
					break;
				}
				uint8_t tmp[64];
				virtq_chain_read(c, 0, tmp, sizeof(tmp));
				virtq_chain_write(c, 0, tmp, sizeof(tmp));
				virtq_push(&f.mem, &f.q, c->head, (uint32_t)c->write_len);
			} else if (rc < 0) {
				errors++;
				CHECKF(rc == -EINVAL || rc == -EFAULT || rc == -ELOOP || rc == -EPROTO,
				       "round %d: rc %d", round, rc);
				break;
			} else {
				break;
			}
		}
	}
	printf("# garbage rings: %d chains popped, %d errors, %llu ms\n", popped, errors,
	       (unsigned long long)(now_ms() - t0));
	CHECK(popped > 0 && errors > 0);
	free(c);
	free(f.ram);
}

/* ---- transport registers ---------------------------------------------- */

static uint32_t reg_rd(struct virtio_mmio *t, uint64_t reg)
{
	uint32_t v = 0xdeadbeef;
	virtio_mmio_access(t, reg, (uint8_t *)&v, 4, false);
	return v;
}

static void reg_wr(struct virtio_mmio *t, uint64_t reg, uint32_t v)
{
	virtio_mmio_access(t, reg, (uint8_t *)&v, 4, true);
}

static void negotiate(struct virtio_mmio *t, uint32_t lo, uint32_t hi)
{
	reg_wr(t, VIRTIO_MMIO_STATUS, 0);
	reg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	reg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, lo);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, hi);
	reg_wr(t, VIRTIO_MMIO_STATUS,
	       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static bool wait_status(struct virtio_mmio *t, uint32_t bit, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	while (now_ms() < end) {
		if (reg_rd(t, VIRTIO_MMIO_STATUS) & bit)
			return true;
		sleep_ms(5);
	}
	return false;
}

static void test_registers(void)
{
	struct kvm_vm vm;
	REQUIRE_EQ(kvm_vm_open(&vm, NULL, MEM), 0);
	struct kvm_console con, other;
	int host = -1, h2 = -1;
	CHECK_EQ(kvm_console_open(&other, &vm, 0x1000, KVM_CONSOLE_IRQ, &h2), -EINVAL); /* in RAM */
	CHECK_EQ(kvm_console_open(&other, &vm, KVM_CONSOLE_BASE, 0, &h2), -EINVAL);
	CHECK_EQ(kvm_console_open(&other, &vm, KVM_CONSOLE_BASE + 1, 5, &h2), -EINVAL);
	kvm_console_close(&other);
	REQUIRE_EQ(kvm_console_open(&con, &vm, KVM_CONSOLE_BASE, KVM_CONSOLE_IRQ, &host), 0);
	CHECK_EQ(kvm_console_open(&other, &vm, KVM_CONSOLE_BASE, 6, &h2), -EEXIST);
	struct virtio_mmio *t = &con.mmio;
	char cmd[64];
	CHECK_EQ(virtio_mmio_cmdline(t, cmd, sizeof(cmd)), 0);
	CHECK(strcmp(cmd, "virtio_mmio.device=4K@0xd0000000:5") == 0);
	CHECK_EQ(virtio_mmio_cmdline(t, cmd, 10), -ENOSPC);
	printf("# ioeventfd on QueueNotify: %s\n", t->ioeventfd ? "yes" : "no (MMIO exit fallback)");

	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_VERSION), 2);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_CONSOLE);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	reg_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
	reg_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_DEVICE_FEATURES), 0); /* no MULTIPORT etc. */
	reg_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffffu);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_CONFIG_GENERATION), 0);

	/* FEATURES_OK refused without VERSION_1, or with a bit not offered. */
	negotiate(t, 0, 0);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_STATUS), 3);
	negotiate(t, 1u << 1 /* MULTIPORT */, 1);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_STATUS), 3);
	negotiate(t, 0, 1);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_STATUS), 11);
	CHECK_EQ(t->driver_features, VIRTIO_F_VERSION_1);
	/* Features are final once accepted. */
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffffu);
	CHECK_EQ(t->driver_features, VIRTIO_F_VERSION_1);

	/* Queues: limits, a ring outside RAM never goes live, widths. */
	reg_wr(t, VIRTIO_MMIO_QUEUE_SEL, 2);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTQ_NUM_MAX);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NUM, 8);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 1); /* 4 GiB: not RAM */
	reg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_QUEUE_READY), 0);
	uint16_t half = 0x1234;
	virtio_mmio_access(t, VIRTIO_MMIO_MAGIC_VALUE, (uint8_t *)&half, 2, false);
	CHECK_EQ(half, 0); /* registers are 32-bit only */
	uint8_t cfg[12];
	memset(cfg, 0xaa, sizeof(cfg));
	virtio_mmio_access(t, VIRTIO_MMIO_CONFIG, cfg, 8, false);
	virtio_mmio_access(t, VIRTIO_MMIO_CONFIG + 8, cfg + 8, 4, false);
	static const uint8_t zero[12];
	CHECK(memcmp(cfg, zero, sizeof(cfg)) == 0);

	/* A live transmit queue whose chain loops: the device thread fails
	 * the queue, sets NEEDS_RESET and raises a config interrupt. */
	uint64_t ring = 0x200000;
	uint8_t *ram = kvm_vm_gpa(&vm, ring, 0x3000);
	REQUIRE(ram);
	memset(ram, 0, 0x3000);
	for (uint16_t i = 0; i < 2; i++) {
		uint64_t addr = ring + 0x2000;
		uint32_t len = 16;
		uint16_t flags = VIRTQ_DESC_F_NEXT, next = (uint16_t)(1 - i);
		memcpy(ram + 16u * i, &addr, 8);
		memcpy(ram + 16u * i + 8, &len, 4);
		memcpy(ram + 16u * i + 12, &flags, 2);
		memcpy(ram + 16u * i + 14, &next, 2);
	}
	uint16_t one = 1;
	memcpy(ram + 0x1000 + 2, &one, 2); /* avail idx 1, ring[0] = head 0 */
	reg_wr(t, VIRTIO_MMIO_QUEUE_SEL, KVM_CONSOLE_TXQ);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NUM, 8);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)ring);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)ring + 0x1000);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)ring + 0x1800);
	reg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_QUEUE_READY), 1);
	reg_wr(t, VIRTIO_MMIO_STATUS, 15);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, KVM_CONSOLE_TXQ);
	CHECK(wait_status(t, VIRTIO_STATUS_NEEDS_RESET, 5000));
	CHECK(reg_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	pthread_mutex_lock(&t->lock);
	CHECK_EQ(con.queue_errors, 1);
	CHECK(t->irqs >= 1);
	pthread_mutex_unlock(&t->lock);
	reg_wr(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	reg_wr(t, VIRTIO_MMIO_STATUS, 0); /* reset clears it all */
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(reg_rd(t, VIRTIO_MMIO_QUEUE_READY), 0);

	kvm_console_close(&con);
	kvm_console_close(&con);
	close(host);
	kvm_vm_close(&vm);
}

/* ---- the conformance guest over the console ---------------------------- */

struct host_side {
	int fd;
	int ready_rc, pong_rc[3];
	uint32_t ready_version;
	char info[64];
};

static void *host_thread(void *arg)
{
	struct host_side *hs = arg;
	struct vp_hdr h;
	uint8_t *pl = NULL;
	hs->ready_rc = vp_frame_read(hs->fd, &h, &pl);
	if (!hs->ready_rc && (h.type != VP_READY || h.id != 0))
		hs->ready_rc = -EPROTO;
	struct vp_ready rd;
	if (!hs->ready_rc)
		hs->ready_rc = vp_dec_ready(pl, h.len, &rd);
	if (!hs->ready_rc) {
		hs->ready_version = rd.version;
		snprintf(hs->info, sizeof(hs->info), "%.*s", (int)rd.info.len, (const char *)rd.info.p);
	}
	free(pl);
	uint8_t big[200];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	hs->pong_rc[0] = guest_ping(hs->fd, 7, "hello", 5);
	hs->pong_rc[1] = guest_ping(hs->fd, 8, big, sizeof(big)); /* spans 64-byte rx buffers */
	hs->pong_rc[2] = guest_ping(hs->fd, 9, "bye", 3);
	return NULL;
}

static void test_guest(const uint8_t *image, size_t image_len)
{
	int log = memfd_create("kvm-serial", MFD_CLOEXEC);
	REQUIRE(log >= 0);
	struct kvm_vm vm;
	struct kvm_serial uart;
	struct kvm_console con;
	int host = -1;
	REQUIRE_EQ(kvm_vm_open(&vm, NULL, MEM), 0);
	REQUIRE_EQ(kvm_serial_attach(&uart, &vm, KVM_SERIAL_COM1, log), 0);
	REQUIRE_EQ(kvm_console_open(&con, &vm, KVM_CONSOLE_BASE, KVM_CONSOLE_IRQ, &host), 0);
	char dev[64], cmdline[128];
	REQUIRE_EQ(virtio_mmio_cmdline(&con.mmio, dev, sizeof(dev)), 0);
	snprintf(cmdline, sizeof(cmdline), "console=ttyS0 %s", dev);
	struct kvm_boot_cfg cfg = { image, image_len, NULL, 0, cmdline };
	REQUIRE_EQ(kvm_boot_linux(&vm, &cfg, NULL), 0);

	/* The host side must not hang the test if the guest never answers. */
	struct timeval tv = { RUN_TIMEOUT_MS / 1000 + 5, 0 };
	setsockopt(host, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct host_side hs = { .fd = host, .ready_rc = -1, .pong_rc = { -1, -1, -1 } };
	pthread_t th;
	REQUIRE_EQ(pthread_create(&th, NULL, host_thread, &hs), 0);
	uint64_t t0 = now_ms();
	int rc = kvm_vm_run(&vm, RUN_TIMEOUT_MS);
	printf("# guest ran %llu ms, %llu exits\n", (unsigned long long)(now_ms() - t0),
	       (unsigned long long)vm.exits);
	if (rc)
		shutdown(host, SHUT_RDWR); /* unblock the host thread */
	pthread_join(th, NULL);
	CHECK_EQ(rc, 0);
	CHECK_EQ(vm.exit_status, 0);

	/* Host side of the protocol, through the real codec. */
	CHECK_EQ(hs.ready_rc, 0);
	CHECK_EQ(hs.ready_version, VP_PROTO_VERSION);
	CHECK(strcmp(hs.info, "kvm-conformance-guest") == 0);
	for (int i = 0; i < 3; i++)
		CHECKF(hs.pong_rc[i] == 0, "ping %d: %d", i, hs.pong_rc[i]);

	kvm_console_close(&con); /* joins the device thread: state is final */
	struct virtio_mmio *t = &con.mmio;
	/* Init as Linux does it: reset, ACK, +DRIVER, +FEATURES_OK, +DRIVER_OK. */
	static const uint8_t want_status[] = { 0, 1, 3, 11, 15 };
	CHECK_EQ(t->nstatus, sizeof(want_status));
	CHECK(memcmp(t->status_log, want_status, sizeof(want_status)) == 0);
	printf("# status writes:");
	for (unsigned i = 0; i < t->nstatus && i < VIRTIO_MMIO_STATUS_LOG; i++)
		printf(" %u", t->status_log[i]);
	printf("\n");
	CHECK_EQ(t->driver_features, VIRTIO_F_VERSION_1);
	CHECK_EQ(t->status, 15);
	CHECK_EQ(con.queue_errors, 0);
	CHECK_EQ(con.host_err, 0);
	/* READY (12 + 33) + 3 PONGs (12+9, 12+204, 12+7) left the guest. */
	CHECK_EQ(con.from_guest, 45 + 21 + 216 + 19);
	CHECK_EQ(con.to_guest, 21 + 216 + 19);
	/* Interrupt side, from the host: irqfd signalled for used buffers. */
	printf("# irqfd signals %llu, QueueNotify exits %llu (ioeventfd %s)\n", (unsigned long long)t->irqs,
	       (unsigned long long)t->mmio_notifies, t->ioeventfd ? "on" : "off");
	CHECK(t->irqs >= 4);
	CHECK_EQ(t->irq_err, 0);
	if (t->ioeventfd)
		CHECK_EQ(t->mmio_notifies, 0);

	/* KVM's view of the line: the 8259's edge latch for IRQ 5 holds the
	 * request (it is masked, so nothing was delivered), and the IOAPIC
	 * pin is still masked as reset left it. */
	struct kvm_irqchip pic = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
	struct kvm_irqchip ioapic = { .chip_id = KVM_IRQCHIP_IOAPIC };
	CHECK_EQ(ioctl(vm.vm_fd, KVM_GET_IRQCHIP, &pic), 0);
	CHECK_EQ(ioctl(vm.vm_fd, KVM_GET_IRQCHIP, &ioapic), 0);
	printf("# PIC master irr %02x imr %02x; IOAPIC irr %08x redir[5] %016llx\n", pic.chip.pic.irr,
	       pic.chip.pic.imr, ioapic.chip.ioapic.irr,
	       (unsigned long long)ioapic.chip.ioapic.redirtbl[KVM_CONSOLE_IRQ].bits);
	CHECK(pic.chip.pic.irr & (1u << KVM_CONSOLE_IRQ));
	CHECK_EQ(pic.chip.pic.imr, 0xff);
	CHECK(ioapic.chip.ioapic.redirtbl[KVM_CONSOLE_IRQ].fields.mask);

	char *got = read_log(log);
	char want[512];
	snprintf(want, sizeof(want),
		 "virtio=0xd0000000 irq=5 init=ok features=0000000100000000\n"
		 "ready sent\npong id=7 len=5 n=1\npong id=8 len=200 n=2\npong id=9 len=3 n=3\nisr-acks=");
	CHECKF(got && strstr(got, want) && strstr(got, "\nstatus=0\n"), "report:\n%s", got ? got : "(none)");
	const char *acks = got ? strstr(got, "isr-acks=") : NULL;
	CHECKF(acks && atoi(acks + 9) >= 4, "guest saw InterruptStatus set: %s", acks ? acks : "-");
	free(got);
	close(host);
	close(log);
	kvm_vm_close(&vm);
}

int main(void)
{
	int mark = tap_mark();
	test_virtq_good();
	tap_ok_since(mark, "virtq: chains, copies, used ring");
	mark = tap_mark();
	test_virtq_hostile();
	tap_ok_since(mark, "virtq: hostile rings give clean errors, inside RAM, bounded");

	const char *path = getenv("VMPOOL_KVM_GUEST");
	struct kvm_vm probe;
	int rc = kvm_vm_open(&probe, NULL, MEM);
	kvm_vm_close(&probe);
	if (rc || !path) {
		/* The virtq points ran; a failure there is still a failure. */
		if (tap_done())
			return 1;
		printf("SKIP: %s\n", !path ? "VMPOOL_KVM_GUEST not set (run through meson test)"
					   : "/dev/kvm cannot make a VM here");
		if (rc)
			printf("# %s\n", strerror(-rc));
		return 77;
	}
	mark = tap_mark();
	test_registers();
	tap_ok_since(mark, "virtio-mmio registers, negotiation, hostile live ring");
	void *img;
	size_t len;
	rc = kvm_boot_read_file(path, 1 << 20, &img, &len);
	if (rc) {
		printf("Bail out! %s: %s\n", path, strerror(-rc));
		return 1;
	}
	mark = tap_mark();
	test_guest(img, len);
	tap_ok_since(mark, "conformance guest: init, READY, PING/PONG, irqfd and irqchip state");
	free(img);
	return tap_done();
}
