/* The 8250 model against what Linux's 8250 driver probes (DLAB divisor,
 * scratch, loopback MSR, FIFO bits in IIR, THRE) and its output to the log;
 * driven through the registered PIO handler, so no /dev/kvm is needed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/common/tap.h"
#include "vmm/kvm/monitor/serial.h"
#include "vmm/kvm/monitor/vm.h"

struct rig {
	struct kvm_vm vm; /* only its device table: never opened */
	struct kvm_serial uart;
	int log;
};

static uint8_t in(struct rig *r, unsigned reg)
{
	uint8_t d[4] = { 0 };
	r->vm.devs[0].fn(r->vm.devs[0].opaque, reg, d, 1, false);
	return d[0];
}

static void out(struct rig *r, unsigned reg, uint8_t v)
{
	uint8_t d[4] = { v };
	r->vm.devs[0].fn(r->vm.devs[0].opaque, reg, d, 1, true);
}

static int setup(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	r->log = memfd_create("serial", MFD_CLOEXEC);
	if (r->log < 0)
		return -1;
	return kvm_serial_attach(&r->uart, &r->vm, KVM_SERIAL_COM1, r->log);
}

static void test_probe(void)
{
	struct rig r;
	REQUIRE_EQ(setup(&r), 0);
	CHECK_EQ(r.vm.devs[0].base, 0x3f8);
	CHECK_EQ(r.vm.devs[0].len, 8);
	CHECK_EQ(in(&r, 5) & 0x60, 0x60); /* LSR: THR and transmitter empty */
	out(&r, 7, 0xa5);
	CHECK_EQ(in(&r, 7), 0xa5); /* scratch */
	out(&r, 3, 0x80);	   /* DLAB: 0/1 are the divisor */
	out(&r, 0, 0x01);
	out(&r, 1, 0x02);
	CHECK_EQ(in(&r, 0), 0x01);
	CHECK_EQ(in(&r, 1), 0x02);
	out(&r, 3, 0x03);
	CHECK_EQ(in(&r, 3), 0x03);
	CHECK_EQ(in(&r, 1), 0x00);	  /* IER again, untouched by DLM */
	out(&r, 4, 0x1a);		  /* loopback + OUT2 + RTS */
	CHECK_EQ(in(&r, 6) & 0xf0, 0x90); /* Linux's loopback check */
	out(&r, 0, 'L');		  /* loopback: not on the wire */
	out(&r, 4, 0x0b);
	CHECK_EQ(in(&r, 6) & 0xb0, 0xb0); /* peer ready: DCD, DSR, CTS */
	CHECK_EQ(in(&r, 2), 0x01);	  /* IIR: nothing pending, no FIFO */
	out(&r, 2, 0x07);		  /* enable and reset FIFOs */
	CHECK_EQ(in(&r, 2), 0xc1);	  /* 16550A */
	out(&r, 1, 0x02);		  /* THRI with an empty THR */
	CHECK_EQ(in(&r, 2), 0xc2);	  /* THRE pending ... */
	CHECK_EQ(in(&r, 2), 0xc1);	  /* ... acknowledged by the read */
	for (const char *s = "hi\n"; *s; s++)
		out(&r, 0, (uint8_t)*s);
	char buf[8] = { 0 };
	CHECK_EQ(pread(r.log, buf, sizeof(buf) - 1, 0), 3);
	CHECK(strcmp(buf, "hi\n") == 0);
	CHECK_EQ(r.uart.bytes_out, 3);
	uint8_t wide[4] = { 0 };
	r.vm.devs[0].fn(r.vm.devs[0].opaque, 5, wide, 4, false);
	CHECK(wide[0] == 0x60 && wide[1] == 0xff && wide[3] == 0xff);
	close(r.log);
}

/* The guest chooses how much it prints: the log stops at log_limit with
 * one marker line, and the guest goes on. */
static void test_log_limit(void)
{
	struct rig r;
	REQUIRE_EQ(setup(&r), 0);
	CHECK_EQ(r.uart.log_limit, KVM_SERIAL_LOG_LIMIT);
	r.uart.log_limit = 16;
	for (int i = 0; i < 100; i++)
		out(&r, 0, (uint8_t)('a' + i % 26));
	CHECK_EQ(r.uart.bytes_out, 16);
	CHECK_EQ(r.uart.bytes_dropped, 84);
	char buf[128] = { 0 };
	ssize_t n = pread(r.log, buf, sizeof(buf) - 1, 0);
	CHECKF(n > 16 && strncmp(buf, "abcdefghijklmnop", 16) == 0 &&
		       strcmp(buf + 16, "\n[vmpoolfs: serial log truncated at 16 bytes]\n") == 0,
	       "log: '%s'", buf);
	CHECK_EQ(in(&r, 5) & 0x60, 0x60); /* still "transmitter empty" */
	close(r.log);
}

static void test_log_failure(void)
{
	struct rig r;
	REQUIRE_EQ(setup(&r), 0);
	close(r.log);
	int p[2];
	REQUIRE_EQ(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	r.uart.log_fd = p[1]; /* a broken pipe: the guest must go on (SIGPIPE aside) */
	signal(SIGPIPE, SIG_IGN);
	out(&r, 0, 'x');
	CHECK_EQ(r.uart.log_err, -EPIPE);
	CHECK_EQ(in(&r, 5) & 0x60, 0x60);
	close(p[1]);
	CHECK_EQ(kvm_serial_attach(&r.uart, &r.vm, KVM_SERIAL_COM1, -1), -EBADF);
}

int main(void)
{
	static const struct tap_test t[] = {
		{ "8250 registers as Linux probes them", test_probe },
		{ "the log stops at log_limit with a marker line", test_log_limit },
		{ "a failing log does not stop the console", test_log_failure },
	};
	return tap_main(t, sizeof(t) / sizeof(t[0]));
}
