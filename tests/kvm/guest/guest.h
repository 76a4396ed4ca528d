/* Shared by the conformance guest's files: port I/O, MMIO and the COM1
 * report helpers (guest.c). Freestanding: no libc. */
#ifndef VMPOOL_KVM_GUEST_H
#define VMPOOL_KVM_GUEST_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_ERR_MAGIC 0x01  /* zero page lacks the copied HdrS header */
#define GUEST_ERR_E820 0x02   /* no or too many e820 entries */
#define GUEST_ERR_CMD 0x04    /* no command line */
#define GUEST_ERR_UART 0x08   /* scratch register did not read back */
#define GUEST_ERR_VIRTIO 0x10 /* virtio-mmio device present but init failed */
#define GUEST_ERR_PROTO 0x20  /* bad frame from the host */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* Compiler barrier: x86 keeps stores ordered with stores and loads with
 * loads, which is all the split ring needs between us and the device. */
static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}

void putc_(char c);
void puts_(const char *s);
void puthex(uint64_t v, int digits);
void putdec(uint64_t v);

/* guest.c's libc stand-ins (gcc may call them even when freestanding). */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);

/* virtio console driver (vcon.c). */
struct vcon_dev {
	uint64_t base;
	uint32_t irq;
	uint64_t features; /* negotiated */
	uint32_t isr_acks; /* InterruptStatus reads that found something */
};
/* Finds `virtio_mmio.device=SIZE@BASE:IRQ` in the command line: 0, or -1. */
int vcon_parse_cmdline(const char *cmdline, struct vcon_dev *d);
/* Returns 0, 1 when no device answers at d->base, or GUEST_ERR_VIRTIO. */
int vcon_init(struct vcon_dev *d);
int vcon_send(struct vcon_dev *d, const uint8_t *buf, uint32_t len);
/* Waits for received bytes; copies at most `cap`, returns the count. */
uint32_t vcon_recv(struct vcon_dev *d, uint8_t *buf, uint32_t cap);

/* The agent protocol's basic frames over the console (agent.c): READY at
 * start, READY for HELLO, OK for SET_TIME, PONG for every PING, until a PING whose echo is
 * "bye" or an EXEC (which ends it unanswered). */
int agent_run(struct vcon_dev *d);

#endif
