/* A KVM virtual machine with one vCPU: /dev/kvm, guest RAM, the in-kernel
 * irqchip and PIT, and a run loop that hands port I/O and MMIO exits to
 * registered devices (DESIGN §3, kvm). Part of the kvm monitor; not yet
 * reachable through machine.h.
 *
 * Guest RAM is one slot at guest-physical 0 (below the 32-bit MMIO hole, so
 * at most KVM_VM_MEM_MAX bytes). All functions return 0 or -errno. */
#ifndef VMPOOL_KVM_VM_H
#define VMPOOL_KVM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVM_VM_MEM_MAX     0xc0000000ull /* RAM stops where the MMIO hole starts */
#define KVM_VM_MAX_DEVS    16
#define KVM_DEBUG_EXIT_PORT 0x501        /* guest outb(status): "done with status" */

/* A device's access handler. `data` holds `len` (1..8) bytes: filled by the
 * handler on a read, given by the guest on a write. `addr` is relative to the
 * device's base. Returns 0, or -errno to stop the run loop with that error. */
typedef int (*kvm_io_fn)(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

enum kvm_io_space { KVM_IO_PIO, KVM_IO_MMIO };

struct kvm_io_dev {
	enum kvm_io_space space;
	uint64_t base, len;
	kvm_io_fn fn;
	void *opaque;
};

struct kvm_vm {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run; /* the vCPU's shared exit page */
	size_t run_size;
	uint8_t *mem;        /* guest RAM, guest-physical 0 */
	uint64_t mem_size;
	struct kvm_io_dev devs[KVM_VM_MAX_DEVS];
	int ndevs;
	bool stopped;        /* the guest wrote KVM_DEBUG_EXIT_PORT */
	int exit_status;
	uint64_t exits;      /* exits seen by the run loop, for diagnostics */
};

/* Opens /dev/kvm (or `dev`, when not NULL), checks the API version and the
 * capabilities the monitor needs, and builds a VM with `mem_size` bytes of
 * RAM, irqchip, PIT and one vCPU with the host-supported CPUID. */
int kvm_vm_open(struct kvm_vm *vm, const char *dev, uint64_t mem_size);
/* Closes every fd and unmaps everything; safe after any kvm_vm_open, failed
 * or not, and twice (fds are -1 afterwards, not 0, which is a real fd). */
void kvm_vm_close(struct kvm_vm *vm);

/* Host pointer to guest-physical [gpa, gpa+len), or NULL when out of RAM. */
void *kvm_vm_gpa(struct kvm_vm *vm, uint64_t gpa, uint64_t len);

int kvm_vm_add_dev(struct kvm_vm *vm, enum kvm_io_space space, uint64_t base, uint64_t len,
		   kvm_io_fn fn, void *opaque);

/* Runs the vCPU until the guest writes its status to KVM_DEBUG_EXIT_PORT
 * (returns 0, status in vm->exit_status), a device fails, the guest dies
 * (-EFAULT for shutdown/internal error/unhandled exit) or `timeout_ms`
 * passes (-ETIMEDOUT). The timeout kicks the vCPU out of KVM_RUN with a
 * thread-directed SIGRTMIN+1 timer signal, whose no-op handler kvm_vm_open
 * installs when that signal has none. */
int kvm_vm_run(struct kvm_vm *vm, unsigned timeout_ms);

#endif
