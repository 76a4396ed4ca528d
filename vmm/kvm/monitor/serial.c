/* 8250 UART (serial.h). Register semantics follow the 16550A datasheet as
 * far as Linux's 8250 driver looks at them. */
#include "vmm/kvm/monitor/serial.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "vmm/kvm/monitor/vm.h"

enum {
	REG_DATA = 0,
	REG_IER = 1,
	REG_IIR_FCR = 2,
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};
#define LCR_DLAB 0x80
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_FIFO 0xc0 /* reported with FIFOs on: Linux's probe then says 16550A */
#define FCR_ENABLE 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

static void emit(struct kvm_serial *s, uint8_t c)
{
	if (s->bytes_out >= s->log_limit) {
		if (s->bytes_dropped++ == 0) {
			char note[96];
			int len = snprintf(note, sizeof note,
					   "\n[vmpoolfs: serial log truncated at %llu bytes]\n",
					   (unsigned long long)s->log_limit);
			if (write(s->log_fd, note, (size_t)len) < 0 && !s->log_err)
				s->log_err = -errno;
		}
		return;
	}
	for (;;) {
		ssize_t n = write(s->log_fd, &c, 1);
		if (n == 1) {
			s->bytes_out++;
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* A full or broken log must not stop the guest's console. */
		if (!s->log_err)
			s->log_err = n < 0 ? -errno : -EIO;
		return;
	}
}

/* In loopback the modem inputs mirror the outputs, which Linux's probe
 * checks (MCR 0x0a must read back as MSR 0x90); otherwise a present, ready
 * peer: DCD, DSR, CTS. */
static uint8_t msr(const struct kvm_serial *s)
{
	if (!(s->mcr & MCR_LOOP))
		return 0xb0;
	return (uint8_t)(((s->mcr & 0x08) << 4) | ((s->mcr & 0x04) << 4) | ((s->mcr & 0x02) << 3) |
			 ((s->mcr & 0x01) << 5));
}

static uint8_t read_reg(struct kvm_serial *s, uint64_t reg)
{
	bool dlab = s->lcr & LCR_DLAB;
	switch (reg) {
	case REG_DATA: return dlab ? s->dll : 0; /* nothing is ever received */
	case REG_IER: return dlab ? s->dlm : s->ier;
	case REG_IIR_FCR: {
		uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
		if ((s->ier & IER_THRI) && s->thre_pending) {
			s->thre_pending = false; /* reading IIR acknowledges THRE */
			return fifo | IIR_THRI;
		}
		return fifo | IIR_NONE;
	}
	case REG_LCR: return s->lcr;
	case REG_MCR: return s->mcr;
	case REG_LSR: return LSR_THRE | LSR_TEMT;
	case REG_MSR: return msr(s);
	default: return s->scr;
	}
}

static void write_reg(struct kvm_serial *s, uint64_t reg, uint8_t v)
{
	bool dlab = s->lcr & LCR_DLAB;
	switch (reg) {
	case REG_DATA:
		if (dlab) {
			s->dll = v;
		} else {
			if (!(s->mcr & MCR_LOOP))
				emit(s, v);
			s->thre_pending = true; /* sent at once: empty again */
		}
		return;
	case REG_IER:
		if (dlab) {
			s->dlm = v;
		} else {
			/* Enabling THRI with an empty THR makes THRE pending at once. */
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thre_pending = true;
			s->ier = v & 0x0f;
		}
		return;
	case REG_IIR_FCR:
		s->fcr = v & FCR_ENABLE; /* the reset bits self-clear; only "enabled" sticks */
		return;
	case REG_LCR: s->lcr = v; return;
	case REG_MCR: s->mcr = v & 0x1f; return;
	case REG_SCR: s->scr = v; return;
	default: return; /* LSR and MSR writes are undefined on real parts: ignore */
	}
}

static int serial_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct kvm_serial *s = opaque;
	/* Byte registers: a wider access touches only the first one, and the
	 * rest of a read floats high like an empty bus. */
	for (uint32_t i = 1; !is_write && i < len; i++)
		data[i] = 0xff;
	if (is_write)
		write_reg(s, addr, data[0]);
	else
		data[0] = read_reg(s, addr);
	return 0;
}

int kvm_serial_attach(struct kvm_serial *s, struct kvm_vm *vm, uint16_t port, int log_fd)
{
	if (log_fd < 0)
		return -EBADF;
	*s = (struct kvm_serial){ .log_fd = log_fd,
				  .port = port,
				  .dll = 12 /* 9600 baud, the reset default */,
				  .log_limit = KVM_SERIAL_LOG_LIMIT };
	return kvm_vm_add_dev(vm, KVM_IO_PIO, port, 8, serial_io, s);
}

void kvm_serial_save(const struct kvm_serial *s, struct kvm_serial_state *st)
{
	*st = (struct kvm_serial_state){
		.ier = s->ier,
		.lcr = s->lcr,
		.mcr = s->mcr,
		.scr = s->scr,
		.fcr = s->fcr,
		.dll = s->dll,
		.dlm = s->dlm,
		.thre_pending = s->thre_pending,
	};
}

int kvm_serial_restore(struct kvm_serial *s, const struct kvm_serial_state *st)
{
	/* write_reg masks these; anything else never came from a live UART. */
	if ((st->ier & ~0x0f) || (st->mcr & ~0x1f) || (st->fcr & ~FCR_ENABLE) || st->thre_pending > 1)
		return -EBADMSG;
	s->ier = st->ier;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->scr = st->scr;
	s->fcr = st->fcr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->thre_pending = st->thre_pending;
	return 0;
}
