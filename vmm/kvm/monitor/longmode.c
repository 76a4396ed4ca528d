/* 64-bit entry state (longmode.h). */
#include "vmm/kvm/monitor/longmode.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/kvm/monitor/boot.h"
#include "vmm/kvm/monitor/vm.h"

#define BOOT_CS 0x10 /* __BOOT_CS: the selectors Linux's entry code expects */
#define BOOT_DS 0x18
#define BOOT_TSS 0x20

#define CR0_PE 0x1ull
#define CR0_MP 0x2ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_WP 0x10000ull
#define CR0_AM 0x40000ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_PS 0x80ull
#define PD_PAGES 4 /* identity map of 4 GiB: RAM, and later the MMIO hole */

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v)); /* x86 host: little-endian like the guest */
}

/* 2 MiB pages only: with 1 GiB pages PVM reports a shutdown. */
static int build_page_tables(struct kvm_vm *vm)
{
	uint8_t *pml4 = kvm_vm_gpa(vm, KVM_BOOT_PML4, 4096);
	uint8_t *pdpt = kvm_vm_gpa(vm, KVM_BOOT_PDPT, 4096);
	uint8_t *pd = kvm_vm_gpa(vm, KVM_BOOT_PD, 4096 * PD_PAGES);
	if (!pml4 || !pdpt || !pd)
		return -ENOMEM;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	put64(pml4, KVM_BOOT_PDPT | PTE_P | PTE_RW);
	for (uint64_t i = 0; i < PD_PAGES; i++)
		put64(pdpt + i * 8, (KVM_BOOT_PD + i * 4096) | PTE_P | PTE_RW);
	for (uint64_t i = 0; i < 512 * PD_PAGES; i++)
		put64(pd + i * 8, (i << 21) | PTE_P | PTE_RW | PTE_PS);
	return 0;
}

static uint64_t gdt_entry(uint64_t flags, uint64_t base, uint64_t limit)
{
	return ((base & 0xff000000ull) << 32) | ((flags & 0xf0ffull) << 40) | ((limit & 0xf0000ull) << 32) |
	       ((base & 0xffffffull) << 16) | (limit & 0xffffull);
}

static struct kvm_segment seg_from(uint64_t sel, uint8_t type, int code)
{
	return (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = (uint16_t)sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = !code,
		.s = 1,
		.l = (uint8_t)code,
		.g = 1,
	};
}

static int setup_sregs(struct kvm_vm *vm)
{
	uint8_t *gdt = kvm_vm_gpa(vm, KVM_BOOT_GDT, 8 * 5);
	if (!gdt)
		return -ENOMEM;
	memset(gdt, 0, 8 * 5);
	put64(gdt + BOOT_CS, gdt_entry(0xa09b, 0, 0xfffff)); /* 64-bit code, exec/read */
	put64(gdt + BOOT_DS, gdt_entry(0xc093, 0, 0xfffff)); /* flat data, read/write */
	put64(gdt + BOOT_TSS, gdt_entry(0x808b, 0, 0x67));   /* busy TSS: VMX wants a valid TR */

	struct kvm_sregs s;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs = seg_from(BOOT_CS, 0xb, 1);
	s.ds = s.es = s.fs = s.gs = s.ss = seg_from(BOOT_DS, 0x3, 0);
	s.tr = (struct kvm_segment){ .base = 0,
				     .limit = 0x67,
				     .selector = BOOT_TSS,
				     .type = 0xb,
				     .present = 1,
				     .s = 0 };
	s.gdt.base = KVM_BOOT_GDT;
	s.gdt.limit = 8 * 5 - 1;
	s.cr3 = KVM_BOOT_PML4;
	s.cr4 = CR4_PAE;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	s.efer = EFER_LME | EFER_LMA;
	return ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0 ? -errno : 0;
}

int kvm_longmode_enter(struct kvm_vm *vm, uint64_t entry, uint64_t zero_page)
{
	int rc = build_page_tables(vm);
	if (!rc)
		rc = setup_sregs(vm);
	if (rc)
		return rc;
	struct kvm_regs r = {
		.rflags = 0x2, /* bit 1 is reserved-one; IF clear: interrupts off */
		.rip = entry,
		.rsi = zero_page,
		.rsp = KVM_BOOT_STACK_TOP,
	};
	return ioctl(vm->vcpu_fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}
