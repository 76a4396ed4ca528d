/* The vCPU state the 64-bit boot protocol asks for at the kernel's entry
 * (boot.rst, "64-bit Boot Protocol"): long mode with paging, a GDT with
 * flat __BOOT_CS/__BOOT_DS, interrupts off, RSI = boot_params. Writes the
 * GDT and page tables at the KVM_BOOT_* addresses of boot.h. */
#ifndef VMPOOL_KVM_LONGMODE_H
#define VMPOOL_KVM_LONGMODE_H

#include <stdint.h>

struct kvm_vm;

int kvm_longmode_enter(struct kvm_vm *vm, uint64_t entry, uint64_t zero_page);

#endif
