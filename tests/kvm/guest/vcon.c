/* The conformance guest's virtio-mmio console driver: the init sequence
 * of Linux's virtio_mmio.c + virtio_console.c (reset, ACKNOWLEDGE, DRIVER,
 * features with the FEATURES_OK read-back, queues, DRIVER_OK), but polled:
 * interrupts cannot be delivered on this host (docs/design.md §3), so it watches
 * the used rings and reads and acknowledges InterruptStatus as a handler
 * would. Port 0 only: receiveq 0, transmitq 1. */
#include "tests/kvm/guest/guest.h"
#include "vmm/kvm/monitor/virtio_regs.h"

#define QN 8u	  /* entries per queue: enough to keep rx posted */
#define RXBUF 64u /* small, so frames span buffers and get reassembled */
#define TXBUF 512u

struct ring {
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
	} desc[QN] __attribute__((aligned(16)));
	struct {
		uint16_t flags, idx, ring[QN], used_event;
	} avail __attribute__((aligned(2)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QN];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
	uint16_t next_avail, last_used;
};

/* Guest-physical == virtual here (identity map), so pointers are addresses. */
static struct ring rings[2];
static uint8_t rxbufs[QN][RXBUF];
static uint8_t txbuf[TXBUF];
/* Received bytes not yet taken by vcon_recv: one used buffer at a time. */
static uint32_t rx_pending_id, rx_pending_off, rx_pending_len;
static int rx_pending;

static uint64_t parse_num(const char **p, int base16)
{
	uint64_t v = 0;
	const char *s = *p;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		base16 = 1;
	}
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		v = v * (base16 ? 16 : 10) + (uint64_t)d;
	}
	*p = s;
	return v;
}

/* memparse-like suffixes, as Linux's virtio_mmio_cmdline_set takes them. */
static uint64_t suffix(const char **p, uint64_t v)
{
	switch (**p) {
	case 'K':
	case 'k': (*p)++; return v << 10;
	case 'M':
	case 'm': (*p)++; return v << 20;
	case 'G':
	case 'g': (*p)++; return v << 30;
	default: return v;
	}
}

int vcon_parse_cmdline(const char *cmdline, struct vcon_dev *d)
{
	static const char key[] = "virtio_mmio.device=";
	for (const char *s = cmdline; *s; s++) {
		if (s != cmdline && s[-1] != ' ')
			continue;
		size_t k = 0;
		while (key[k] && s[k] == key[k])
			k++;
		if (key[k])
			continue;
		const char *p = s + k;
		uint64_t size = suffix(&p, parse_num(&p, 0));
		if (*p++ != '@')
			return -1;
		uint64_t base = suffix(&p, parse_num(&p, 0));
		if (*p++ != ':')
			return -1;
		uint64_t irq = parse_num(&p, 0);
		if (size < 0x200 || base == 0 || irq == 0 || irq > 255)
			return -1;
		*d = (struct vcon_dev){ .base = base, .irq = (uint32_t)irq };
		return 0;
	}
	return -1;
}

static uint32_t rd(struct vcon_dev *d, uint32_t reg)
{
	return mmio_read32(d->base + reg);
}

static void wr(struct vcon_dev *d, uint32_t reg, uint32_t v)
{
	mmio_write32(d->base + reg, v);
}

static void add_status(struct vcon_dev *d, uint32_t bits)
{
	wr(d, VIRTIO_MMIO_STATUS, rd(d, VIRTIO_MMIO_STATUS) | bits);
}

static int setup_queue(struct vcon_dev *d, uint32_t qi)
{
	struct ring *r = &rings[qi];
	wr(d, VIRTIO_MMIO_QUEUE_SEL, qi);
	if (rd(d, VIRTIO_MMIO_QUEUE_READY) || rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX) < QN)
		return -1;
	wr(d, VIRTIO_MMIO_QUEUE_NUM, QN);
	uint64_t desc = (uintptr_t)r->desc, avail = (uintptr_t)&r->avail, used = (uintptr_t)&r->used;
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return rd(d, VIRTIO_MMIO_QUEUE_READY) == 1 ? 0 : -1;
}

static void post(struct ring *r, uint16_t id)
{
	r->avail.ring[r->next_avail % QN] = id;
	barrier(); /* the entry before the index that publishes it */
	r->avail.idx = ++r->next_avail;
	barrier();
}

static void post_rx(uint16_t id)
{
	struct ring *r = &rings[0];
	r->desc[id].addr = (uintptr_t)rxbufs[id];
	r->desc[id].len = RXBUF;
	r->desc[id].flags = VIRTQ_DESC_F_WRITE;
	post(r, id);
}

int vcon_init(struct vcon_dev *d)
{
	/* Linux masks the 8259 once it runs on the IOAPIC; here it also keeps
	 * the device's IRQ from becoming an ExtINT this vCPU cannot take. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	if (rd(d, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC)
		return 1;
	if (rd(d, VIRTIO_MMIO_VERSION) != 2 || rd(d, VIRTIO_MMIO_DEVICE_ID) != 3)
		return GUEST_ERR_VIRTIO;
	wr(d, VIRTIO_MMIO_STATUS, 0);
	if (rd(d, VIRTIO_MMIO_STATUS) != 0)
		return GUEST_ERR_VIRTIO;
	add_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	add_status(d, VIRTIO_STATUS_DRIVER);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	uint64_t feat = (uint64_t)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	feat |= rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	/* We know VERSION_1 and nothing else (no MULTIPORT: port 0 only). */
	d->features = feat & VIRTIO_F_VERSION_1;
	if (!d->features)
		goto failed;
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)d->features);
	add_status(d, VIRTIO_STATUS_FEATURES_OK);
	if (!(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		goto failed;
	if (setup_queue(d, 0) || setup_queue(d, 1))
		goto failed;
	add_status(d, VIRTIO_STATUS_DRIVER_OK);
	for (uint16_t i = 0; i < QN; i++)
		post_rx(i);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	return 0;
failed:
	add_status(d, VIRTIO_STATUS_FAILED);
	return GUEST_ERR_VIRTIO;
}

/* What an interrupt handler would do, polled: read and acknowledge. */
static void poll_isr(struct vcon_dev *d)
{
	uint32_t isr = rd(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr) {
		wr(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
		d->isr_acks++;
	}
}

/* Spins until the device has used something on `r`; the InterruptStatus
 * read in the loop is also what gives the monitor's vCPU thread a turn. */
static void wait_used(struct vcon_dev *d, struct ring *r)
{
	while (*(volatile uint16_t *)&r->used.idx == r->last_used)
		poll_isr(d);
	barrier();
	poll_isr(d);
}

int vcon_send(struct vcon_dev *d, const uint8_t *buf, uint32_t len)
{
	struct ring *r = &rings[1];
	if (len > TXBUF)
		return -1;
	memcpy(txbuf, buf, len);
	r->desc[0].addr = (uintptr_t)txbuf;
	r->desc[0].len = len;
	r->desc[0].flags = 0;
	post(r, 0);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wait_used(d, r); /* one buffer: the device is done with it when used */
	r->last_used++;
	return 0;
}

uint32_t vcon_recv(struct vcon_dev *d, uint8_t *buf, uint32_t cap)
{
	struct ring *r = &rings[0];
	if (!rx_pending) {
		wait_used(d, r);
		uint32_t id = r->used.ring[r->last_used % QN].id;
		uint32_t len = r->used.ring[r->last_used % QN].len;
		r->last_used++;
		rx_pending_id = id < QN ? id : 0;
		rx_pending_len = len <= RXBUF ? len : RXBUF;
		rx_pending_off = 0;
		rx_pending = 1;
	}
	uint32_t n = rx_pending_len - rx_pending_off;
	if (n > cap)
		n = cap;
	memcpy(buf, rxbufs[rx_pending_id] + rx_pending_off, n);
	rx_pending_off += n;
	if (rx_pending_off == rx_pending_len) {
		rx_pending = 0;
		post_rx((uint16_t)rx_pending_id); /* back to the device */
		wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	}
	return n;
}
