/* The kvm conformance guest (docs/design.md §3, "KVM on these development
 * machines"): booted through the monitor's Linux boot path, it reads
 * boot_params the way a kernel does and reports what it found, one line at
 * a time, on the 8250 at COM1, then writes its status to the debug exit
 * port. Freestanding and interrupt-free; every instruction costs ~0.3 us
 * under this host's emulation, so it does little and polls.
 *
 * Report (tests/kvm/test_kvm_boot.c parses it):
 *   kvm-conformance-guest
 *   proto=VVVV loader=LL uart=ok|bad
 *   e820 N
 *   e820 I ADDR SIZE TYPE        (hex, 16 digits for ADDR and SIZE)
 *   cmdline=TEXT
 *   initrd=0xADDR+0xLEN sum=XXXXXXXX   (FNV-1a 32 of the initrd bytes)
 *   virtio=none | virtio=absent | virtio=0xBASE irq=N init=ok features=F
 *     then, with a device: one line per frame exchanged (agent.c) and
 *   isr-acks=N                   (InterruptStatus reads that found a bit)
 *   status=S
 * Status: 0, or the GUEST_ERR_* bits of what was wrong. */
#include <stddef.h>
#include <stdint.h>

#include "vmm/kvm/monitor/bootparam.h"
#include "tests/kvm/guest/guest.h"
#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/vm.h"

#define LSR_THRE 0x20

void guest_main(const uint8_t *bp);

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	if (p < q)
		while (n--)
			*p++ = *q++;
	else
		while (n--)
			p[n] = q[n];
	return d;
}

void putc_(char c)
{
	/* As Linux's early console does: wait for THR empty, then send. */
	while (!(inb(KVM_SERIAL_COM1 + 5) & LSR_THRE))
		;
	outb(KVM_SERIAL_COM1, (uint8_t)c);
}

void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

void puthex(uint64_t v, int digits)
{
	for (int i = digits - 1; i >= 0; i--)
		putc_("0123456789abcdef"[(v >> (4 * i)) & 0xf]);
}

void putdec(uint64_t v)
{
	char buf[21];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putc_(buf[--n]);
}

static uint64_t get(const uint8_t *p, size_t off, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[off + i] << (8 * i);
	return v;
}

/* The 8n1 setup Linux's 8250 console does, and a scratch round trip that
 * proves port reads come back from the monitor. */
static int uart_init(void)
{
	const uint16_t p = KVM_SERIAL_COM1;
	outb(p + 1, 0x00); /* IER: no interrupts */
	outb(p + 3, 0x80); /* DLAB on */
	outb(p + 0, 0x01); /* 115200 baud */
	outb(p + 1, 0x00);
	outb(p + 3, 0x03); /* 8n1, DLAB off */
	outb(p + 7, 0x5a);
	return inb(p + 7) == 0x5a ? 0 : GUEST_ERR_UART;
}

static int report_e820(const uint8_t *bp)
{
	uint64_t n = get(bp, BP_E820_ENTRIES, 1);
	puts_("e820 ");
	putdec(n);
	putc_('\n');
	if (n == 0 || n > BP_E820_MAX)
		return GUEST_ERR_E820;
	for (uint64_t i = 0; i < n; i++) {
		size_t off = BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
		puts_("e820 ");
		putdec(i);
		putc_(' ');
		puthex(get(bp, off, 8), 16);
		putc_(' ');
		puthex(get(bp, off + 8, 8), 16);
		putc_(' ');
		putdec(get(bp, off + 16, 4));
		putc_('\n');
	}
	return 0;
}

static int report_cmdline(const uint8_t *bp, const char **cmdline)
{
	uint64_t ptr = get(bp, BP_CMD_LINE_PTR, 4) | get(bp, BP_EXT_CMD_LINE_PTR, 4) << 32;
	*cmdline = (const char *)(uintptr_t)ptr;
	puts_("cmdline=");
	if (ptr)
		puts_(*cmdline);
	putc_('\n');
	return ptr ? 0 : GUEST_ERR_CMD;
}

/* The virtio-mmio console, when the command line announces one: driver
 * init as Linux does it, then the agent protocol's basic frames. */
static int run_console(const char *cmdline)
{
	struct vcon_dev d;
	if (!cmdline || vcon_parse_cmdline(cmdline, &d)) {
		puts_("virtio=none\n");
		return 0;
	}
	int rc = vcon_init(&d);
	if (rc == 1) {
		puts_("virtio=absent\n");
		return 0;
	}
	puts_("virtio=0x");
	puthex(d.base, 8);
	puts_(" irq=");
	putdec(d.irq);
	puts_(rc ? " init=bad\n" : " init=ok features=");
	if (rc)
		return rc;
	puthex(d.features, 16);
	putc_('\n');
	rc = agent_run(&d);
	puts_("isr-acks=");
	putdec(d.isr_acks);
	putc_('\n');
	return rc;
}

static void report_initrd(const uint8_t *bp)
{
	uint64_t addr = get(bp, BP_RAMDISK_IMAGE, 4) | get(bp, BP_EXT_RAMDISK_IMAGE, 4) << 32;
	uint64_t len = get(bp, BP_RAMDISK_SIZE, 4) | get(bp, BP_EXT_RAMDISK_SIZE, 4) << 32;
	const uint8_t *p = (const uint8_t *)(uintptr_t)addr;
	uint32_t h = 2166136261u;
	for (uint64_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	puts_("initrd=0x");
	puthex(addr, 8);
	puts_("+0x");
	puthex(len, 8);
	puts_(" sum=");
	puthex(h, 8);
	putc_('\n');
}

void guest_main(const uint8_t *bp)
{
	int status = uart_init();
	puts_("kvm-conformance-guest\n");
	if (get(bp, BP_HEADER, 4) != BP_HDRS_MAGIC)
		status |= GUEST_ERR_MAGIC;
	puts_("proto=");
	puthex(get(bp, BP_VERSION, 2), 4);
	puts_(" loader=");
	puthex(get(bp, BP_TYPE_OF_LOADER, 1), 2);
	puts_(status & GUEST_ERR_UART ? " uart=bad\n" : " uart=ok\n");
	status |= report_e820(bp);
	const char *cmdline;
	status |= report_cmdline(bp, &cmdline);
	report_initrd(bp);
	status |= run_console(cmdline);
	puts_("status=");
	putdec((uint64_t)status);
	putc_('\n');
	outb(KVM_DEBUG_EXIT_PORT, (uint8_t)status);
}
