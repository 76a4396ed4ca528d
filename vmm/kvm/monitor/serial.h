/* An 8250/16550A UART for the guest kernel's console (docs/design.md §3, kvm):
 * what Linux's 8250 driver probes and polls (THR/RBR, IER, IIR/FCR, LCR with
 * the DLAB divisor latch, MCR with loopback, LSR, MSR, scratch). Transmit
 * is instant, so LSR always says the transmitter is empty; nothing is ever
 * received. Guest output goes to a log fd, at most `log_limit` bytes of it
 * (the guest decides how much it writes; the host's disk must not be its
 * to fill): past that one marker line, then nothing. No interrupt is raised yet: the
 * console path polls LSR, and this host's PVM cannot deliver interrupts. */
#ifndef VMPOOL_KVM_SERIAL_H
#define VMPOOL_KVM_SERIAL_H

#include <stdbool.h>
#include <stdint.h>

struct kvm_vm;

#define KVM_SERIAL_COM1 0x3f8
#define KVM_SERIAL_LOG_LIMIT (1u << 20) /* the default log_limit: a kernel log fits */

struct kvm_serial {
	int log_fd;
	uint16_t port; /* where it is attached, for snapshots */
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thre_pending;	/* THR-empty "interrupt" until IIR is read or THR written */
	uint64_t bytes_out;	/* written to the log */
	uint64_t bytes_dropped; /* past log_limit */
	uint64_t log_limit;	/* KVM_SERIAL_LOG_LIMIT after attach; callers may change it */
	int log_err;		/* first failed log write (-errno); the guest goes on */
};

/* The guest-visible registers, for snapshots (fixed layout, no pointers). */
struct kvm_serial_state {
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm, thre_pending;
};

void kvm_serial_save(const struct kvm_serial *s, struct kvm_serial_state *st);
/* Puts saved registers back; -EBADMSG for values the UART cannot hold
 * (a corrupt snapshot), leaving `s` as it was. */
int kvm_serial_restore(struct kvm_serial *s, const struct kvm_serial_state *st);

/* Registers the UART's 8 ports at `port` (KVM_SERIAL_COM1) on `vm`;
 * `s` must outlive the vm's run loop. */
int kvm_serial_attach(struct kvm_serial *s, struct kvm_vm *vm, uint16_t port, int log_fd);

#endif
