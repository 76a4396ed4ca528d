/* A KVM virtual machine with one vCPU: /dev/kvm, guest RAM, the in-kernel
 * irqchip and PIT, and a run loop that hands port I/O and MMIO exits to
 * registered devices (docs/design.md §3, kvm). Part of the kvm monitor, which
 * machine.h reaches through machine_kvm.h.
 *
 * Guest RAM is one slot at guest-physical 0 (below the 32-bit MMIO hole, so
 * at most KVM_VM_MEM_MAX bytes). All functions return 0 or -errno. */
#ifndef VMPOOL_KVM_VM_H
#define VMPOOL_KVM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#define KVM_VM_MEM_MAX 0xc0000000ull /* RAM stops where the MMIO hole starts */
#define KVM_VM_MAX_DEVS 16
#define KVM_DEBUG_EXIT_PORT 0x501 /* guest outb(status): "done with status" */

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
	int mem_fd;	     /* memfd behind RAM of a booted VM; -1 for a restored one */
	struct kvm_run *run; /* the vCPU's shared exit page */
	size_t run_size;
	uint8_t *mem; /* guest RAM, guest-physical 0 */
	uint64_t mem_size;
	struct kvm_io_dev devs[KVM_VM_MAX_DEVS];
	int ndevs;
	bool stopped; /* the guest wrote KVM_DEBUG_EXIT_PORT */
	int exit_status;
	uint64_t exits; /* exits seen by the run loop, for diagnostics */
	/* kvm_vm_pause from another thread: the request, and whom to kick. */
	int pause_req, in_run; /* accessed with __atomic builtins */
	pthread_t run_thread;
};

/* Opens /dev/kvm (or `dev`, when not NULL), checks the API version and the
 * capabilities the monitor needs, and builds a VM with `mem_size` bytes of
 * RAM, irqchip, PIT and one vCPU with the host-supported CPUID. RAM is a
 * memfd mapped shared (vm->mem_fd), so a snapshot can copy just the pages
 * the guest touched (SEEK_DATA). */
int kvm_vm_open(struct kvm_vm *vm, const char *dev, uint64_t mem_size);
/* The same, but RAM is `mem_fd` (a regular file exactly `mem_size` long,
 * not changed while the VM lives) mapped MAP_PRIVATE: pages stay shared
 * with the file until the guest or a device writes them (copy-on-write).
 * The caller keeps and closes mem_fd; the mapping does not need it. A
 * size mismatch is -EINVAL (a shorter file would SIGBUS on access). */
int kvm_vm_open_cow(struct kvm_vm *vm, const char *dev, uint64_t mem_size, int mem_fd);
/* Closes every fd and unmaps everything; safe after any kvm_vm_open, failed
 * or not, and twice (fds are -1 afterwards, not 0, which is a real fd). */
void kvm_vm_close(struct kvm_vm *vm);

/* Host pointer to guest-physical [gpa, gpa+len), or NULL when out of RAM. */
void *kvm_vm_gpa(struct kvm_vm *vm, uint64_t gpa, uint64_t len);

int kvm_vm_add_dev(struct kvm_vm *vm, enum kvm_io_space space, uint64_t base, uint64_t len, kvm_io_fn fn,
		   void *opaque);

/* Runs the vCPU until the guest writes its status to KVM_DEBUG_EXIT_PORT
 * (returns 0, status in vm->exit_status), a device fails, the guest dies
 * (-EFAULT for shutdown/internal error/unhandled exit) or `timeout_ms`
 * passes (-ETIMEDOUT). The timeout kicks the vCPU out of KVM_RUN with a
 * thread-directed SIGRTMIN+1 timer signal, whose no-op handler kvm_vm_open
 * installs when that signal has none. */
int kvm_vm_run(struct kvm_vm *vm, unsigned timeout_ms);
/* From any thread: makes kvm_vm_run return -EINTR soon, with the vCPU
 * stopped between instructions (a pending I/O exit already completed), so
 * its state can be read. Asked while no run is in progress, the next run
 * returns -EINTR at once. The thread in kvm_vm_run must stay alive until
 * the run returns (it is sent the timer signal). */
void kvm_vm_pause(struct kvm_vm *vm);
/* With the vCPU out of kvm_vm_run: finishes an I/O exit the last run left
 * pending (KVM completes it only on the next KVM_RUN; until then RIP and
 * registers are not final) without running guest code. For snapshots. */
int kvm_vm_settle(struct kvm_vm *vm);

#endif
